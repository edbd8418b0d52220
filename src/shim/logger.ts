/**
 * The daemon's logger: pino, writing to the bundle's `log` FIFO, which containerd
 * copies verbatim into its own log. containerd holds the FIFO open O_RDWR; while it is
 * down there is no reader and writes fail (EPIPE/EAGAIN): such lines are dropped, never
 * allowed to crash or block the shim.
 */
import { constants, openSync, writeSync } from 'node:fs';
import pino from 'pino';
import type { Logger } from '../core/task-core.js';
import { unreadBytes } from '../sys/ffi.js';

export type ShimLogger = pino.Logger;

export function createLogger(opts: { bundle: string; level: string; namespace: string; id: string }): ShimLogger {
  return createShimLog(opts).logger;
}

/**
 * The logger, and what the exit paths need from its FIFO: `final()` before the last lines
 * (from then on a full pipe is waited on, bounded, instead of dropping the line), and
 * `settle()` after them: wait, bounded, until containerd has read everything. containerd
 * closes its end of the FIFO as soon as Shutdown has answered (the ttrpc client's close
 * also ends the log copy), so lines still in the pipe then are lost.
 */
export function createShimLog(opts: { bundle: string; level: string; namespace: string; id: string }): {
  logger: ShimLogger;
  final(timeoutMs: number): void;
  settle(timeoutMs: number): boolean;
} {
  let fd: number | undefined;
  try {
    fd = openSync(`${opts.bundle}/log`, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_APPEND);
  } catch {
    // no containerd reading (manual run, or the FIFO is gone): log nowhere
  }
  const base = { runtime: 'io.containerd.tsshim.v2', namespace: opts.namespace, pid: process.pid };
  // a destination of our own even then: pino's default one opens stdout, for nothing
  if (fd === undefined) {
    return { logger: pino({ level: opts.level, base, enabled: false }, { write: () => {} }), final: () => {}, settle: () => true };
  }
  const dest = new LogFifoDestination(fd);
  return {
    logger: pino({ level: opts.level, base, timestamp: pino.stdTimeFunctions.isoTime }, dest),
    final: (ms) => dest.final(ms),
    settle: (ms) => dest.settle(ms),
  };
}

/** blocks the thread: only for the bounded waits of a shim's last lines */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * pino's own destination (sonic-boom) retries EAGAIN forever, and flushes synchronously
 * at exit: a shim whose log FIFO is full (containerd stopped reading) would never exit.
 * A log line either goes into the pipe now or is dropped; logging never blocks the shim.
 */
export class LogFifoDestination {
  dropped = 0;
  /** until when a full pipe is waited on (final lines); 0: never */
  private finalUntil = 0;
  /** the last write found no reader (EPIPE): containerd closed the log */
  private readerGone = false;
  constructor(
    private readonly fd: number,
    private readonly unread: (fd: number) => number = unreadBytes,
  ) {}

  write(line: string): void {
    const buf = Buffer.from(line);
    let off = 0;
    for (;;) {
      try {
        // a pipe write of at most PIPE_BUF bytes is atomic: all of it or EAGAIN
        off += writeSync(this.fd, buf, off);
        this.readerGone = false;
        if (off >= buf.length) return;
        if (this.finalUntil === 0) break; // the rest of a long line would interleave: dropped
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        this.readerGone = code === 'EPIPE';
        if (code !== 'EAGAIN' || Date.now() >= this.finalUntil) break;
      }
      if (Date.now() >= this.finalUntil) break;
      sleepMs(1);
    }
    this.dropped++;
  }

  /** the lines from now on are a shim's last: wait for room in the pipe, at most timeoutMs in all */
  final(timeoutMs: number): void {
    this.finalUntil = Date.now() + timeoutMs;
  }

  /** true once the reader has taken every byte written; false after timeoutMs, or without a reader */
  settle(timeoutMs: number): boolean {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.readerGone) return false;
      let pending: number;
      try {
        pending = this.unread(this.fd);
      } catch {
        return false;
      }
      if (pending === 0) return true;
      if (Date.now() >= deadline) return false;
      sleepMs(1);
    }
  }
}

/** the core's narrow Logger view of a pino logger */
export function coreLogger(l: ShimLogger): Logger {
  return {
    debug: (o, m) => l.debug(o, m),
    info: (o, m) => l.info(o, m),
    warn: (o, m) => l.warn(o, m),
    error: (o, m) => l.error(o, m),
  };
}
