/**
 * `-info` (containerd 2.x runs it, 2.2+ before every Create of a non-runc runtime) and
 * `-v`, through the real binary.
 */
import { describe, it, expect } from 'vitest';
import { execa } from 'execa';
import { SHIM_BIN } from './fake-containerd.js';
import { RuntimeInfo } from '../../src/proto/gen/containerd/types/introspection.js';
import { Any } from '../../src/proto/gen/google/protobuf/any.js';
import { Options as RuntimeOptions } from '../../src/proto/gen/runtimeoptions/v1/options.js';
import { TypeUrl, packMessage } from '../../src/proto/typeurls.js';

describe('shim binary informational flags', () => {
  it('-info prints a RuntimeInfo with the default backend (native) features and echoes the options', async () => {
    const options = packMessage(TypeUrl.RuntimeOptions, RuntimeOptions, RuntimeOptions.fromPartial({ configPath: '' }));
    const r = await execa(SHIM_BIN, ['-info'], { input: Buffer.from(Any.encode(options).finish()), encoding: 'buffer', reject: false });
    expect(r.exitCode).toBe(0);
    const info = RuntimeInfo.decode(r.stdout as unknown as Uint8Array);
    expect(info.name).toBe('io.containerd.tsshim.v2');
    expect(info.version?.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.options?.typeUrl).toBe(TypeUrl.RuntimeOptions);
    expect(info.features?.typeUrl).toBe(TypeUrl.OciFeatures);
    const features = JSON.parse(Buffer.from(info.features!.value).toString()) as { ociVersionMax?: string };
    expect(features.ociVersionMax).toMatch(/^1\./);
  });

  it('-info with no stdin works too', async () => {
    const r = await execa(SHIM_BIN, ['-info'], { input: '', encoding: 'buffer', reject: false });
    expect(r.exitCode).toBe(0);
    expect(RuntimeInfo.decode(r.stdout as unknown as Uint8Array).name).toBe('io.containerd.tsshim.v2');
  });

  it('-v prints a version', async () => {
    const r = await execa(SHIM_BIN, ['-v'], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/Version: \d+\.\d+\.\d+/);
  });
});
