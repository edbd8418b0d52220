/**
 * gRPC status codes as ttrpc carries them in `google.rpc.Status.code`, and the error
 * type both our server and client use for a non-OK status.
 */
export enum Code {
  OK = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

/** Name of a code (`NotFound`), or `Code(<n>)` for numbers outside 0..16. */
export function codeName(code: number): string {
  const name = (Code as unknown as Record<number, string | undefined>)[code];
  return name ?? `Code(${code})`;
}

/** What a handler error becomes on the wire. */
export interface StatusLike {
  code: number;
  message: string;
  /** Raw `google.protobuf.Any` messages, passed through untouched. */
  details?: readonly Uint8Array[];
}

export class TtrpcError extends Error {
  readonly code: number;
  readonly details: readonly Uint8Array[];

  constructor(code: number, message: string, options?: { cause?: unknown; details?: readonly Uint8Array[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TtrpcError';
    this.code = code;
    this.details = options?.details ?? [];
  }
}

/** The message the Go implementation uses for frames over the size limit (clients match on it). */
export function oversizedMessage(length: number, max: number): string {
  return `message length ${length} exceed maximum message size of ${max}`;
}
