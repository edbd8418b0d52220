/**
 * The `--console-socket` of runc/crun: a unix socket in a fresh private temp dir; the
 * runtime connects and sends the pty master with SCM_RIGHTS before `create` (or
 * `exec --detach`) returns.
 *
 * Node accepts connections for us (net.Server, event driven, no polling) but cannot
 * receive descriptors, so the accepted connection is never read by Node
 * (`pauseOnConnect`: a plain read() would discard the SCM_RIGHTS message and the fd with
 * it) and its fd is handed to recvmsg through FFI. Readiness of that fd cannot be watched
 * from JS either, so recvmsg is retried on a short backoff timer; in practice the
 * runtime connects and sends in one go, and the first or second attempt succeeds.
 *
 * Using the master in Node 20 (measured with runc 1.1.5): `new tty.ReadStream(fd)` and
 * `new tty.WriteStream(fd)` work (libuv TTY handles, non-blocking, no thread pool);
 * net.Socket refuses a pty ("ERR_INVALID_FD_TYPE"), and fs streams would tie up a pool
 * thread per blocking read. When the last slave fd closes (the container exits), reads
 * fail with EIO: treat EIO on the master as end of output.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShimError, deadlineExceeded } from '../core/errors.js';
import { recvFd } from './ffi.js';
import { builtin } from './lazy-builtins.js';

/** sun_path is 108 bytes including the NUL; stay clearly below */
const MAX_SOCKET_PATH = 100;
const RETRY_DELAYS_MS = [0, 1, 2, 5, 10, 20];

export interface ConsoleSocketOptions {
  /** parent of the private temp dir; default os.tmpdir() */
  parentDir?: string;
}

export class ConsoleSocket {
  private closed = false;
  /** connections accepted before (or while) someone receives; never read by Node */
  private readonly accepted = new Set<Socket>();
  private onAccepted: ((sock: Socket) => void) | undefined;
  private abortReceive: ((err: Error) => void) | undefined;
  private receiving = false;

  private constructor(
    /** pass as `--console-socket` */
    readonly path: string,
    private readonly dir: string,
    private readonly server: Server,
  ) {
    // the runtime may connect before receiveMaster() is called: keep the connection
    server.on('connection', (sock) => {
      sock.on('error', () => undefined); // nothing is read or written; we only destroy it
      this.accepted.add(sock);
      this.onAccepted?.(sock);
    });
  }

  /** Creates the temp dir (mode 0700) and starts listening. */
  static async create(opts: ConsoleSocketOptions = {}): Promise<ConsoleSocket> {
    const dir = mkdtempSync(join(opts.parentDir ?? tmpdir(), 'tsshim-pty-'));
    const path = join(dir, 'c.sock');
    if (Buffer.byteLength(path) >= MAX_SOCKET_PATH) {
      rmSync(dir, { recursive: true, force: true });
      throw new ShimError('InvalidArgument', `console socket path too long (${Buffer.byteLength(path)} bytes): ${path}`);
    }
    const server = builtin('node:net').createServer({ pauseOnConnect: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw new ShimError('Internal', `console socket listen ${path}: ${(err as Error).message}`, { cause: err });
    }
    server.unref(); // a console socket alone must not keep the shim alive
    return new ConsoleSocket(path, dir, server);
  }

  /**
   * Resolves with the pty master fd that the runtime sends (close-on-exec, owned by the
   * caller: wrap it in tty.ReadStream/WriteStream or close it). Works whether the runtime
   * connected before or after this call. Rejects with DeadlineExceeded after timeoutMs.
   * One receive at a time.
   */
  receiveMaster(timeoutMs: number): Promise<number> {
    if (this.closed) return Promise.reject(new ShimError('FailedPrecondition', 'console socket is closed'));
    if (this.receiving) return Promise.reject(new ShimError('FailedPrecondition', 'console socket is already receiving'));
    this.receiving = true;
    return new Promise<number>((resolve, reject) => {
      let done = false;
      const timers = new Set<NodeJS.Timeout>();
      const finish = (err: Error | undefined, fd?: number): void => {
        if (done) return;
        done = true;
        this.receiving = false;
        this.onAccepted = undefined;
        this.abortReceive = undefined;
        clearTimeout(deadline);
        for (const t of timers) clearTimeout(t);
        // the runtime has done its part once we hold the fd; drop every connection
        for (const s of this.accepted) s.destroy();
        this.accepted.clear();
        if (err) reject(err);
        else resolve(fd!);
      };
      const attempt = (sock: Socket, fd: number, n: number): void => {
        if (done) return;
        let got: number | null;
        try {
          got = recvFd(fd);
        } catch (err) {
          // this peer went away without a descriptor: wait for another connection
          this.accepted.delete(sock);
          sock.destroy();
          if (!(err instanceof ShimError && err.code === 'Unavailable')) finish(err as Error);
          return;
        }
        if (got !== null) {
          finish(undefined, got);
          return;
        }
        const t = setTimeout(() => {
          timers.delete(t);
          attempt(sock, fd, n + 1);
        }, RETRY_DELAYS_MS[Math.min(n, RETRY_DELAYS_MS.length - 1)]);
        timers.add(t);
      };
      const start = (sock: Socket): void => {
        const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
        if (typeof fd !== 'number' || fd < 0) {
          this.accepted.delete(sock);
          sock.destroy();
          return;
        }
        attempt(sock, fd, 0);
      };
      const deadline = setTimeout(
        () => finish(deadlineExceeded(`no console received on ${this.path} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.onAccepted = start;
      this.abortReceive = (err) => finish(err);
      for (const sock of [...this.accepted]) start(sock);
    });
  }

  /** Stops listening and removes the socket and its directory; a pending receive fails with Canceled. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abortReceive?.(new ShimError('Canceled', 'console socket closed'));
    for (const s of this.accepted) s.destroy();
    this.accepted.clear();
    this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
