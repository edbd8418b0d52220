/**
 * `containerd-shim-tsshim-v2 -info` (containerd 2.x; 2.2+ runs it before every Create of
 * a non-runc runtime): a containerd.types.RuntimeInfo on stdout. Features are the OCI
 * runtime features of the backend Create would pick for these runtime options: the binary's
 * alias, runc options' BinaryName, else the config's backend (backend-registry.ts). That is
 * what makes a handler of runtime type io.containerd.runc.v2 with `runtime_path` naming this
 * binary report our features through containerd 2.x's CRI (it introspects runc-typed
 * handlers only).
 */
import { fstatSync, readFileSync } from 'node:fs';
import type { ShimArgs } from './args.js';
import { RuntimeInfo } from '../proto/gen/containerd/types/introspection.js';
import { Any } from '../proto/gen/google/protobuf/any.js';
import { TypeUrl, packJson } from '../proto/typeurls.js';
import { SHIM_VERSION } from './version.js';
import { decodeRuntimeOptions } from './runtime-options.js';
import { loadConfig } from './config.js';
import { aliasFromBinary, chooseBackend } from './backend-registry.js';
import { shimArgv0 } from './daemon-launch.js';

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
  const backend = chooseBackend({ alias: aliasFromBinary(shimArgv0()), binaryName: decoded.runc.binaryName, config });
  let features: Any | undefined;
  if (backend.name === 'runc' || backend.name === 'crun') {
    const { RuncCli } = await import('../backends/runc/cli.js');
    const table = config[backend.name];
    const f = await new RuncCli({ binary: backend.binary ?? table.binary, root: table.root }).features().catch(() => undefined);
    if (f) features = packJson(TypeUrl.OciFeatures, f);
  } else if (backend.name === 'native') {
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
