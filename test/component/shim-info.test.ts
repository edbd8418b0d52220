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
import { Options as RuncOptions } from '../../src/proto/gen/containerd/runc/v1/options.js';
import { join, dirname } from 'node:path';
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

  // containerd 2.0/2.1's CRI introspects only handlers of runtime type io.containerd.runc.v2;
  // with `runtime_path` naming our binary it runs `<path> -info` with runc options on stdin.
  // The features must then be those of the backend Create picks for the same options.
  const featuresOf = (stdout: unknown) => {
    const info = RuntimeInfo.decode(stdout as Uint8Array);
    expect(info.features?.typeUrl).toBe(TypeUrl.OciFeatures);
    return JSON.parse(Buffer.from(info.features!.value).toString()) as { annotations?: Record<string, string>; mountOptions?: string[] };
  };
  const runcOptions = (o: Partial<RuncOptions>) =>
    Buffer.from(Any.encode(packMessage(TypeUrl.RuncOptions, RuncOptions, RuncOptions.fromPartial(o))).finish());

  it('-info with runc options naming runc (BinaryName) reports runc\'s features, not the default backend\'s', async () => {
    const r = await execa(SHIM_BIN, ['-info'], { input: runcOptions({ binaryName: 'runc' }), encoding: 'buffer', reject: false });
    expect(r.exitCode).toBe(0);
    const features = featuresOf(r.stdout);
    expect(features.annotations?.['org.opencontainers.runc.version']).toBeTruthy();
    expect(features.annotations?.['io.github.tsshim.runtime']).toBeUndefined();
  });

  it('-info run through the runc alias reports runc\'s features; through the native alias, the native executor\'s', async () => {
    const bin = dirname(SHIM_BIN);
    const viaRunc = await execa(join(bin, 'containerd-shim-tsshim-runc-v2'), ['-info'], { input: runcOptions({}), encoding: 'buffer', reject: false });
    expect(viaRunc.exitCode).toBe(0);
    expect(featuresOf(viaRunc.stdout).annotations?.['org.opencontainers.runc.version']).toBeTruthy();
    const viaNative = await execa(join(bin, 'containerd-shim-tsshim-native-v2'), ['-info'], { input: runcOptions({ binaryName: 'runc' }), encoding: 'buffer', reject: false });
    expect(viaNative.exitCode).toBe(0);
    expect(featuresOf(viaNative.stdout).annotations?.['io.github.tsshim.runtime']).toBe('tsrun');
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
