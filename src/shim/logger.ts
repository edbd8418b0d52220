/**
 * The daemon's logger: pino, writing to the bundle's `log` FIFO, which containerd
 * copies verbatim into its own log. containerd holds the FIFO open O_RDWR; while it is
 * down there is no reader and writes fail (EPIPE/EAGAIN): such lines are dropped, never
 * allowed to crash or block the shim.
 */
import { constants, openSync, writeSync } from 'node:fs';
import pino from 'pino';
import type { Logger } from '../core/task-core.js';

export type ShimLogger = pino.Logger;

export function createLogger(opts: { bundle: string; level: string; namespace: string; id: string }): ShimLogger {
  let fd: number | undefined;
  try {
    fd = openSync(`${opts.bundle}/log`, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_APPEND);
  } catch {
    // no containerd reading (manual run, or the FIFO is gone): log nowhere
  }
  const base = { runtime: 'io.containerd.tsshim.v2', namespace: opts.namespace, pid: process.pid };
  // a destination of our own even then: pino's default one opens stdout, for nothing
  if (fd === undefined) return pino({ level: opts.level, base, enabled: false }, { write: () => {} });
  return pino({ level: opts.level, base, timestamp: pino.stdTimeFunctions.isoTime }, new LogFifoDestination(fd));
}

/**
 * pino's own destination (sonic-boom) retries EAGAIN forever, and flushes synchronously
 * at exit: a shim whose log FIFO is full (containerd stopped reading) would never exit.
 * A log line either goes into the pipe now or is dropped; logging never blocks the shim.
 */
export class LogFifoDestination {
  dropped = 0;
  constructor(private readonly fd: number) {}

  write(line: string): void {
    try {
      const buf = Buffer.from(line);
      // a pipe write of at most PIPE_BUF bytes is atomic: all of it or EAGAIN
      const n = writeSync(this.fd, buf);
      if (n < buf.length) this.dropped++;
    } catch {
      this.dropped++;
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
