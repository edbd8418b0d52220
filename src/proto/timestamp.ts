/**
 * google.protobuf.Timestamp conversions, including containerd's "not exited" value.
 *
 * The Go runc shim reports a live process's `exited_at` as Go's zero time (year 1),
 * seconds = -62135596800. A missing field is not equivalent: 1.6 (gogo) reads it as
 * year 1 but 2.x reads it as 1970-01-01, a real time. So always send this value
 * explicitly (protocol doc §1.9).
 */
import type { Timestamp } from './gen/google/protobuf/timestamp.js';

export type { Timestamp };

/** Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z) relative to the Unix epoch. */
export const GO_ZERO_TIME_SECONDS = -62_135_596_800n;

/** A fresh Go-zero Timestamp ("not exited"). */
export function zeroTimestamp(): Timestamp {
  return { seconds: GO_ZERO_TIME_SECONDS, nanos: 0 };
}

/** True for an absent timestamp and for Go's zero time: both mean "no time set". */
export function isZeroTimestamp(ts: Timestamp | undefined): boolean {
  return ts === undefined || (ts.seconds === GO_ZERO_TIME_SECONDS && ts.nanos === 0);
}

/** Millisecond-precision conversion; nanos stay in [0, 1e9) for pre-1970 dates too. */
export function timestampFromDate(date: Date): Timestamp {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('timestampFromDate: invalid Date');
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

/** Nanosecond-precision conversion from nanoseconds since the Unix epoch. */
export function timestampFromEpochNanos(nanos: bigint): Timestamp {
  let seconds = nanos / 1_000_000_000n;
  let rest = nanos % 1_000_000_000n;
  if (rest < 0n) {
    // BigInt division truncates toward zero; Timestamp wants floor + positive nanos.
    seconds -= 1n;
    rest += 1_000_000_000n;
  }
  return { seconds, nanos: Number(rest) };
}

/** The current time. */
export function timestampNow(): Timestamp {
  return timestampFromDate(new Date());
}

/** `exited_at` for a process: the real exit time, or Go's zero time while it has not exited. */
export function exitedAtTimestamp(exitedAt: Date | undefined): Timestamp {
  return exitedAt === undefined ? zeroTimestamp() : timestampFromDate(exitedAt);
}

/** Exact conversion to a Date (sub-millisecond nanos are truncated). Go's zero time gives year 1. */
export function dateFromTimestamp(ts: Timestamp): Date {
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000));
}

/** Like dateFromTimestamp, but undefined for an absent or Go-zero timestamp. */
export function exitDateFromTimestamp(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined || isZeroTimestamp(ts) ? undefined : dateFromTimestamp(ts);
}
