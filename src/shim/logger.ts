/**
 * The daemon's logger: pino, writing to the bundle's `log` FIFO, which containerd
 * copies verbatim into its own log. containerd holds the FIFO open O_RDWR; while it is
 * down there is no reader and writes fail (EPIPE/EAGAIN): such lines are dropped, never
 * allowed to crash or block the shim.
 */
import * as fs from 'node:fs';
import pino from 'pino';
import type { Logger } from '../core/task-core.js';

export type ShimLogger = pino.Logger;

export function createLogger(opts: { bundle: string; level: string; namespace: string; id: string }): ShimLogger {
  let fd: number | undefined;
  try {
    fd = fs.openSync(`${opts.bundle}/log`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_APPEND);
  } catch {
    // no containerd reading (manual run, or the FIFO is gone): log nowhere
  }
  const base = { runtime: 'io.containerd.tsshim.v2', namespace: opts.namespace, pid: process.pid };
  if (fd === undefined) return pino({ level: opts.level, base, enabled: false });
  const dest = pino.destination({ fd, sync: false, minLength: 0 });
  dest.on('error', () => {
    /* containerd not reading: drop */
  });
  return pino({ level: opts.level, base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
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
