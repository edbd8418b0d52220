/**
 * `containerd-shim-tsshim-v2 -info` (containerd 2.x; 2.2+ runs it before every Create of
 * a non-runc runtime): a containerd.types.RuntimeInfo on stdout. Features are the OCI
 * runtime features of the backend the default config selects.
 */
import { fstatSync, readFileSync } from 'node:fs';
import type { ShimArgs } from './args.js';
import { RuntimeInfo } from '../proto/gen/containerd/types/introspection.js';
import { Any } from '../proto/gen/google/protobuf/any.js';
import { TypeUrl, packJson } from '../proto/typeurls.js';
import { SHIM_VERSION } from './version.js';
import { decodeRuntimeOptions } from './runtime-options.js';
import { loadConfig } from './config.js';

export async function runInfo(_args: ShimArgs): Promise<Uint8Array> {
  let options: Any | undefined;
  try {
    const st = fstatSync(0);
    if (!st.isCharacterDevice()) {
      const raw = readFileSync(0);
      if (raw.length > 0) options = Any.decode(raw);
    }
  } catch {
    options = undefined;
  }
  const decoded = decodeRuntimeOptions(options);
  const config = loadConfig({ path: decoded.configPath, body: decoded.configBody });
  let features: Any | undefined;
  if (config.backend === 'runc' || config.backend === 'crun') {
    const { RuncCli } = await import('../backends/runc/cli.js');
    const table = config[config.backend];
    const f = await new RuncCli({ binary: table.binary, root: table.root }).features().catch(() => undefined);
    if (f) features = packJson(TypeUrl.OciFeatures, f);
  } else if (config.backend === 'native') {
    const { nativeFeatures } = await import('../backends/native/features.js');
    features = packJson(TypeUrl.OciFeatures, nativeFeatures());
  }
  return RuntimeInfo.encode(
    RuntimeInfo.fromPartial({
      name: 'io.containerd.tsshim.v2',
      version: { version: SHIM_VERSION, revision: '' },
      options,
      features,
      annotations: {},
    }),
  ).finish();
}
