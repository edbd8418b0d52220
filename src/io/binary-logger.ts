/**
 * `binary://` and `binary-v2://` stdio: a logging binary reads the process's output.
 *
 * Contract (containerd's runtime/v2/logging): argv `path k1 v1 k2 v2`, environment only
 * CONTAINER_ID and CONTAINER_NAMESPACE, fd 3 = read end of the stdout pipe, fd 4 = read end
 * of the stderr pipe, fd 5 = write end of a readiness pipe. The logger signals readiness by
 * closing fd 5 (legacy) or by writing one byte to it (v2, where EOF alone is a failure).
 * The process then gets the write ends of pipes 3/4 directly: no copying in the shim.
 *
 * Stop: SIGTERM, up to 12 s for the logger to exit, then SIGKILL.
 *
 * The logger is spawned through child_process, so libuv reaps it and the shim's reaper
 * leaves it alone.
 */
import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { deadlineExceeded, internal, ShimError, toShimError } from '../core/errors.js';
import type { OwnedFds } from './owned-fds.js';
import { createPipes, type MakeFifos } from './pipe.js';
import { builtin, childProcess } from '../sys/lazy-builtins.js';

export const LOGGER_STOP_TIMEOUT_MS = 12_000;
/** after SIGKILL: the kernel needs no grace, but the exit notification may lag */
const LOGGER_KILL_WAIT_MS = 2_000;

export interface BinaryLoggerOptions {
  protocol: 1 | 2;
  path: string;
  args: string[];
  id: string;
  namespace: string;
  readyTimeoutMs: number;
  stopTimeoutMs?: number;
  /** the shim writes stdout itself (terminal mode): open that write end non-blocking */
  stdoutForCopy?: boolean;
  owner?: { uid: number; gid: number };
  mkfifo: MakeFifos;
}

export class BinaryLogger {
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly path: string,
    private readonly stopTimeoutMs: number,
    /** write end of the stdout pipe (for the process, or for the console copier) */
    readonly stdoutFd: number,
    /** write end of the stderr pipe */
    readonly stderrFd: number,
  ) {}

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Starts the logger and waits for its readiness. The returned write ends are registered
   * in fds; on failure nothing is left open or running.
   */
  static async start(o: BinaryLoggerOptions, fds: OwnedFds): Promise<BinaryLogger> {
    const [out, err, ready] = await createPipes(
      [
        { owner: o.owner, writeNonBlocking: o.stdoutForCopy },
        { owner: o.owner },
        // the shim reads readiness through a stream; the logger's end stays blocking
        { readNonBlocking: true },
      ],
      fds,
      o.mkfifo,
    );
    let child: ChildProcess;
    try {
      child = childProcess().spawn(o.path, o.args, {
        env: { CONTAINER_ID: o.id, CONTAINER_NAMESPACE: o.namespace },
        stdio: ['ignore', 'ignore', 'ignore', out!.read, err!.read, ready!.write],
      });
    } catch (e) {
      for (const fd of [out!.read, out!.write, err!.read, err!.write, ready!.read, ready!.write]) fds.close(fd);
      throw toShimError(e);
    }
    // the logger holds its ends now; ours would keep the pipes from ever reaching EOF
    for (const fd of [out!.read, err!.read, ready!.write]) fds.close(fd);
    const logger = new BinaryLogger(child, o.path, o.stopTimeoutMs ?? LOGGER_STOP_TIMEOUT_MS, out!.write, err!.write);
    // exec failure is reported synchronously (no pid) and as an 'error' event on the next
    // tick; a later 'error' (a failed kill) must not become an uncaught exception either
    const spawnError = new Promise<Error>((resolve) => child.on('error', resolve));
    try {
      if (child.pid === undefined) throw toShimError(await spawnError);
      await waitReady(fds, ready!.read, o);
      return logger;
    } catch (e) {
      fds.close(out!.write);
      fds.close(err!.write);
      fds.close(ready!.read);
      await logger.stop();
      const se = toShimError(e);
      se.message = `logger ${o.path}: ${se.message}`;
      throw se;
    }
  }

  /** SIGTERM, wait up to stopTimeoutMs, then SIGKILL. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.terminate();
    return this.stopping;
  }

  private async terminate(): Promise<void> {
    const c = this.child;
    if (c.pid === undefined || exited(c)) return;
    const exit = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    if (await settlesWithin(exit, this.stopTimeoutMs)) return;
    c.kill('SIGKILL');
    if (!(await settlesWithin(exit, LOGGER_KILL_WAIT_MS))) {
      throw internal(`logger ${this.path} (pid ${c.pid}) did not exit after SIGKILL`);
    }
  }
}

function exited(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

async function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads the readiness pipe: a byte means ready; EOF means ready for protocol 1 only. */
function waitReady(fds: OwnedFds, fd: number, o: BinaryLoggerOptions): Promise<void> {
  let sock: Socket;
  try {
    sock = new (builtin('node:net').Socket)({ fd, readable: true, writable: false });
    fds.handOver(fd); // the socket closes it from now on
  } catch (err) {
    return Promise.reject(toShimError(err)); // fd is still in fds: the caller closes it
  }
  return new Promise<void>((resolve, reject) => {
    const finish = (err?: ShimError) => {
      clearTimeout(timer);
      sock.removeAllListeners('data').removeAllListeners('end');
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(deadlineExceeded(`not ready after ${o.readyTimeoutMs} ms`)),
      o.readyTimeoutMs,
    );
    sock.on('error', (e) => finish(internal(`reading the readiness pipe: ${e.message}`, e)));
    sock.once('data', () => finish());
    sock.once('end', () =>
      o.protocol === 1
        ? finish()
        : finish(internal('closed the readiness pipe (fd 5) without writing the readiness byte')),
    );
  });
}
