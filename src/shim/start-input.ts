/**
 * What `start` reads on stdin: containerd ≤ 2.2 writes the runtime options Any (or
 * nothing); 2.3+ writes BootstrapParams. Told apart like the Go library does: it is
 * BootstrapParams only if it decodes AND names our -id and -namespace, because a legacy
 * Any can decode as BootstrapParams by accident.
 */
import { fstatSync, readFileSync } from 'node:fs';
import type { ShimArgs } from './args.js';
import { Any } from '../proto/gen/google/protobuf/any.js';
import { BootstrapParams, BootstrapResult, LogLevel } from '../proto/gen/containerd/runtime/bootstrap/v1/bootstrap.js';
import { decodeRuntimeOptions } from './runtime-options.js';

const MAX_STDIN = 10 << 20;

export interface StartInput {
  configPath?: string;
  configBody?: string;
  socketDir?: string;
  /** runc options' ShimCgroup: where the daemon goes (src/shim/shim-cgroup.ts) */
  shimCgroup?: string;
  ttrpcAddress?: string;
  debug: boolean;
  /** set when containerd speaks the 2.3 bootstrap protocol: encodes our answer */
  bootstrap?: { encodeResult(address: string): Uint8Array };
}

function readStdin(): Uint8Array {
  try {
    const st = fstatSync(0);
    // a terminal (manual run) has nothing for us; never block on it
    if (st.isCharacterDevice()) return new Uint8Array(0);
    const buf = readFileSync(0);
    return buf.length > MAX_STDIN ? buf.subarray(0, MAX_STDIN) : buf;
  } catch {
    return new Uint8Array(0);
  }
}

export function readStartInput(args: ShimArgs, stdin: Uint8Array = readStdin()): StartInput {
  if (stdin.length === 0) return { debug: false };
  let params: BootstrapParams | undefined;
  try {
    params = BootstrapParams.decode(stdin);
  } catch {
    params = undefined;
  }
  if (params && params.instanceId === args.id && params.namespace === args.namespace) {
    const optionsAny = params.extensions.map((e) => e.value).find((v) => v !== undefined);
    const opts = safeDecodeOptions(optionsAny);
    return {
      configPath: opts.configPath,
      configBody: opts.configBody,
      shimCgroup: opts.shimCgroup,
      socketDir: params.socketDir || undefined,
      ttrpcAddress: params.containerdTtrpcAddress || undefined,
      debug: params.logLevel === LogLevel.LOG_LEVEL_DEBUG || params.logLevel === LogLevel.LOG_LEVEL_TRACE,
      bootstrap: {
        encodeResult: (address) =>
          BootstrapResult.encode(BootstrapResult.fromPartial({ version: 2, address, protocol: 'ttrpc' })).finish(),
      },
    };
  }
  let any: Any | undefined;
  try {
    any = Any.decode(stdin);
  } catch {
    any = undefined;
  }
  const opts = safeDecodeOptions(any);
  return { configPath: opts.configPath, configBody: opts.configBody, shimCgroup: opts.shimCgroup, debug: false };
}

function safeDecodeOptions(any: Any | undefined) {
  try {
    return decodeRuntimeOptions(any);
  } catch {
    // options are validated again, with an error to the caller, at Create
    return { runc: {} } as ReturnType<typeof decodeRuntimeOptions>;
  }
}
