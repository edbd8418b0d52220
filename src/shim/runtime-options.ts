/**
 * The options Any that containerd passes on `start` stdin and in CreateTaskRequest:
 * runc options (also sent by containerd's client helpers to any runtime), the legacy
 * linux runc CreateOptions (1.6 clients on non-runc runtimes), or runtimeoptions
 * (CRI, for any non-runc runtime type: our config path or body). An unknown type is
 * tolerated: client helpers send runc-specific ones we have no use for.
 */
import type { RuncLikeOptions } from '../core/backend.js';
import { invalidArgument } from '../core/errors.js';
import type { Any } from '../proto/gen/google/protobuf/any.js';
import { Options as RuncOptions } from '../proto/gen/containerd/runc/v1/options.js';
import { CreateOptions as LinuxRuncCreateOptions } from '../proto/gen/containerd/linux/runc/runc.js';
import { Options as RuntimeOptions } from '../proto/gen/runtimeoptions/v1/options.js';
import { TypeUrl, typeUrlMatches } from '../proto/typeurls.js';

export interface DecodedOptions {
  runc: RuncLikeOptions;
  configPath?: string;
  configBody?: string;
  /** ShimCgroup of runc options: the cgroup `start` moves a new shim into */
  shimCgroup?: string;
  /** type URL we did not understand (logged by the caller) */
  ignoredType?: string;
}

export function decodeRuntimeOptions(any: Any | undefined): DecodedOptions {
  if (!any || (!any.typeUrl && any.value.length === 0)) return { runc: {} };
  try {
    if (typeUrlMatches(any.typeUrl, TypeUrl.RuncOptions)) {
      const o = RuncOptions.decode(any.value);
      return {
        runc: {
          ...commonRuncFields(o),
          binaryName: o.binaryName || undefined,
          root: o.root || undefined,
          systemdCgroup: o.systemdCgroup,
        },
        shimCgroup: o.shimCgroup || undefined,
      };
    }
    if (typeUrlMatches(any.typeUrl, TypeUrl.LinuxRuncCreateOptions)) {
      // what the Go client's WithShimCgroup sends to a runtime not named io.containerd.runc*
      const o = LinuxRuncCreateOptions.decode(any.value);
      return { runc: commonRuncFields(o), shimCgroup: o.shimCgroup || undefined };
    }
    if (typeUrlMatches(any.typeUrl, TypeUrl.RuntimeOptions)) {
      const o = RuntimeOptions.decode(any.value);
      const body = o.configBody.length > 0 ? Buffer.from(o.configBody).toString('utf8') : undefined;
      return { runc: {}, configPath: o.configPath || undefined, configBody: body };
    }
  } catch (err) {
    throw invalidArgument(`cannot decode runtime options of type ${any.typeUrl}: ${(err as Error).message}`, err);
  }
  return { runc: {}, ignoredType: any.typeUrl };
}

/** the fields runc Options and the legacy linux CreateOptions share */
function commonRuncFields(o: {
  noPivotRoot: boolean;
  noNewKeyring: boolean;
  ioUid: number;
  ioGid: number;
  criuImagePath: string;
  criuWorkPath: string;
}): RuncLikeOptions {
  return {
    noPivotRoot: o.noPivotRoot,
    noNewKeyring: o.noNewKeyring,
    ioUid: o.ioUid,
    ioGid: o.ioGid,
    criuImagePath: o.criuImagePath || undefined,
    criuWorkPath: o.criuWorkPath || undefined,
  };
}
