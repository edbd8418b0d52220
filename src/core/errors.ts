/**
 * Errors as data. Every failure that crosses a layer boundary is a ShimError with a
 * stable code; the protocol edge maps codes to ttrpc/gRPC status codes in one place
 * (src/shim/status.ts). Backends classify their own outside failures (CLI stderr,
 * errno) into these codes so the core never parses strings.
 */
export type ErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'InvalidArgument'
  | 'Unimplemented'
  | 'DeadlineExceeded'
  | 'Unavailable'
  | 'PermissionDenied'
  | 'ResourceExhausted'
  | 'Canceled'
  | 'Internal'
  | 'Unknown';

export class ShimError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ShimError';
  }
}

export const notFound = (msg: string, cause?: unknown) => new ShimError('NotFound', msg, { cause });
export const alreadyExists = (msg: string) => new ShimError('AlreadyExists', msg);
export const failedPrecondition = (msg: string) => new ShimError('FailedPrecondition', msg);
export const invalidArgument = (msg: string, cause?: unknown) => new ShimError('InvalidArgument', msg, { cause });
export const unimplemented = (msg: string) => new ShimError('Unimplemented', msg);
export const deadlineExceeded = (msg: string) => new ShimError('DeadlineExceeded', msg);
export const internal = (msg: string, cause?: unknown) => new ShimError('Internal', msg, { cause });

/** Turns anything thrown into a ShimError, keeping a ShimError as it is. */
export function toShimError(err: unknown): ShimError {
  if (err instanceof ShimError) return err;
  if (err instanceof Error) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') return new ShimError('NotFound', err.message, { cause: err });
    if (errno === 'EEXIST') return new ShimError('AlreadyExists', err.message, { cause: err });
    if (errno === 'EACCES' || errno === 'EPERM') return new ShimError('PermissionDenied', err.message, { cause: err });
    return new ShimError('Unknown', err.message, { cause: err });
  }
  return new ShimError('Unknown', String(err));
}
