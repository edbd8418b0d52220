/**
 * The one map from errors to ttrpc status. Messages end the way containerd's own
 * errdefs render them ("…: not found"), so what a user sees through ctr matches what
 * the runc shim produces.
 */
import { ShimError, type ErrorCode } from '../core/errors.js';
import { Code, TtrpcError } from '../ttrpc/status.js';

const CODE: Record<ErrorCode, Code> = {
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  FailedPrecondition: Code.FailedPrecondition,
  InvalidArgument: Code.InvalidArgument,
  Unimplemented: Code.Unimplemented,
  DeadlineExceeded: Code.DeadlineExceeded,
  Unavailable: Code.Unavailable,
  PermissionDenied: Code.PermissionDenied,
  ResourceExhausted: Code.ResourceExhausted,
  Canceled: Code.Canceled,
  Internal: Code.Internal,
  Unknown: Code.Unknown,
};

/** containerd's errdefs texts, appended unless the message already ends with them */
const SUFFIX: Partial<Record<ErrorCode, string>> = {
  NotFound: 'not found',
  AlreadyExists: 'already exists',
  FailedPrecondition: 'failed precondition',
  InvalidArgument: 'invalid argument',
  Unimplemented: 'not implemented',
  Unavailable: 'unavailable',
};

export function errorToStatus(err: unknown): { code: number; message: string } {
  if (err instanceof TtrpcError) return { code: err.code, message: err.message };
  if (err instanceof ShimError) {
    const suffix = SUFFIX[err.code];
    const message = suffix && !err.message.endsWith(`: ${suffix}`) ? `${err.message}: ${suffix}` : err.message;
    return { code: CODE[err.code], message };
  }
  return { code: Code.Unknown, message: err instanceof Error ? err.message : String(err) };
}
