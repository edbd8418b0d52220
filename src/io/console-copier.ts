/**
 * Terminal mode: copies stdin → pty master and pty master → output, with backpressure, and
 * tells when the output is fully delivered.
 *
 * The master fd is driven by libuv as a non-blocking stream (see openMasterStream), so no
 * read or write ever blocks the event loop or a threadpool thread: a client that stops
 * reading makes the container block on its terminal, a container that stops reading makes
 * stdin wait, and the shim keeps serving.
 *
 * Drain: the copier keeps reading until the master reports EIO (Linux, once every slave fd
 * is closed: the process and whatever inherited its terminal exited) or EOF. drained()
 * resolves when that happened and every byte read was handed to the output (written to the
 * FIFO / file / logger pipe). The caller bounds the wait: a daemonized child that keeps the
 * slave open, or a client that never reads, would otherwise hold it forever.
 */
import { readSync } from 'node:fs';
import type { Socket, SocketConstructorOpts } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { internal } from '../core/errors.js';
import { builtin } from '../sys/lazy-builtins.js';
import { openPipeHandle } from '../sys/uv-pipe.js';

/** ioctl(TIOCSWINSZ), owned by src/sys */
export type SetWinsize = (fd: number, rows: number, cols: number) => void;

export interface ConsoleStreams {
  /** client input (stdin FIFO read end as a stream); the copier owns and destroys it */
  stdin?: Readable;
  /** terminal output target; the copier owns and destroys it. Absent: output is discarded */
  output?: Writable;
}

/**
 * Wraps a pty master fd as a non-blocking net.Socket, taking ownership of the fd.
 *
 * Node's public wrappers do not fit: net.Socket({fd}) rejects ttys, and tty.ReadStream /
 * tty.WriteStream leave a master in blocking mode and write synchronously, so a container
 * that does not read its terminal would freeze the whole shim (measured). libuv's
 * uv_pipe_open accepts any pollable fd and sets O_NONBLOCK on it, which is what we want;
 * Node exposes it through the pipe_wrap binding (src/sys/uv-pipe.ts). Setting O_NONBLOCK is harmless here: the
 * runtime that sent us the master has exited and nobody else holds that file description.
 */
export function openMasterStream(fd: number, onread?: MasterOnRead): Socket {
  let handle: object;
  try {
    handle = openPipeHandle(fd);
  } catch (err) {
    throw internal(`cannot drive pty master fd ${fd} without blocking: ${(err as Error).message}`, err);
  }
  return new (builtin('node:net').Socket)({
    handle,
    readable: true,
    writable: true,
    // EOF on the read side must not shut the write side down (shutdown(2) is for sockets)
    allowHalfOpen: true,
    onread,
  } as SocketConstructorOpts);
}

/**
 * net.Socket's `onread`: bytes go straight to the callback, and returning false stops
 * reading at once. With the default 'data' mode a paused socket keeps reading into its
 * internal buffer, and the EIO that follows the process exit destroys the socket together
 * with that buffer: the last kilobytes of output were lost (measured).
 */
export interface MasterOnRead {
  buffer: Buffer;
  callback(nread: number, buf: Buffer): boolean;
}

const READ_BUFFER_SIZE = 64 * 1024;

export class ConsoleCopier {
  private readonly master: Socket;
  private readonly stdin: Readable | undefined;
  private output: Writable | undefined;
  private masterDone = false;
  private waitingForDrain = false;
  private pendingWrites = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** every stream whose fd we must close, even after we stopped using it */
  private readonly owned: Array<Readable | Writable> = [];
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  /** Takes ownership of masterFd and of the streams. */
  constructor(
    private readonly masterFd: number,
    streams: ConsoleStreams,
    private readonly setWinsize: SetWinsize,
  ) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.stdin = streams.stdin;
    this.output = streams.output;
    try {
      this.master = openMasterStream(masterFd, {
        buffer: Buffer.allocUnsafe(READ_BUFFER_SIZE),
        callback: (nread, buf) => this.onOutput(buf.subarray(0, nread)),
      });
    } catch (err) {
      this.stdin?.destroy();
      this.output?.destroy();
      throw err;
    }
    for (const s of [this.stdin, this.master, this.output]) if (s) this.owned.push(s);
    this.copyOutput();
    this.copyInput();
  }

  /** ResizePty: rows = height, cols = width. No-op once the console is gone. */
  resize(width: number, height: number): void {
    // after EIO the master is destroyed and its fd number may already belong to someone else
    if (this.closed || this.master.destroyed) return;
    this.setWinsize(this.masterFd, height, width);
  }

  /** Resolves once the master hit EIO/EOF and all output was written (or close()). */
  drained(): Promise<void> {
    return this.done;
  }

  /** Frees the master, stdin and output; resolves once their fds are closed. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.resolveDone();
      this.closing = Promise.all(this.owned.map(destroyAndWait)).then(() => undefined);
    }
    return this.closing;
  }

  /** one read from the master; false pauses reading until the output drains */
  private onOutput(chunk: Buffer): boolean {
    const out = this.output;
    if (!out) return true; // no target, or it failed: keep reading so the container never blocks
    this.pendingWrites++;
    // the read buffer is reused for the next read: the output gets a copy
    const accepted = out.write(Buffer.from(chunk), () => {
      this.pendingWrites--;
      this.checkDrained();
    });
    if (accepted) return true;
    if (!this.waitingForDrain) {
      this.waitingForDrain = true;
      out.once('drain', () => this.resumeOutput());
    }
    return false;
  }

  private resumeOutput(): void {
    if (!this.waitingForDrain) return;
    this.waitingForDrain = false;
    if (!this.master.destroyed) this.master.resume();
  }

  private copyOutput(): void {
    const finished = () => {
      this.masterDone = true;
      this.checkDrained();
    };
    // EIO arrives as an error (and destroys the stream): the tty had nothing left
    this.master.on('error', finished);
    this.master.on('close', finished);
    this.master.on('end', () => {
      this.readRestAfterHangup();
      finished();
    });
    this.output?.on('error', () => {
      // nothing can be delivered any more; stop waiting for it and keep the master flowing
      this.output = undefined;
      this.resumeOutput();
      this.checkDrained();
    });
  }

  /**
   * libuv reports EOF when poll says POLLHUP after a short read, which is right for pipes
   * but not for a pty master: the slave side closed, yet the tty still holds output it hands
   * out at most 4 KiB per read (measured: the last few KiB were lost). The fd is still open
   * (allowHalfOpen) and non-blocking, and nothing can be added any more, so read the rest
   * here until the tty says EIO. The amount is bounded by the kernel's pty buffers.
   */
  private readRestAfterHangup(): void {
    if (this.master.destroyed) return;
    const buf = Buffer.allocUnsafe(READ_BUFFER_SIZE);
    for (;;) {
      let n: number;
      try {
        n = readSync(this.masterFd, buf, 0, buf.length, null);
      } catch {
        return; // EIO: all read (EAGAIN would mean a slave again: libuv is not reading any more)
      }
      if (n === 0) return;
      this.onOutput(buf.subarray(0, n));
    }
  }

  private copyInput(): void {
    const { stdin, master } = this;
    if (!stdin) return;
    stdin.on('error', () => stdin.destroy());
    // the client's input ending only stops the copy: the terminal stays open for output
    stdin.on('end', () => stdin.destroy());
    stdin.pipe(master, { end: false });
  }

  private checkDrained(): void {
    if (this.masterDone && (this.pendingWrites === 0 || !this.output)) this.resolveDone();
  }
}

/** destroy() closes fds asynchronously for fs streams: wait for 'close' */
function destroyAndWait(s: Readable | Writable): Promise<void> {
  if (s.closed) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('close', () => resolve());
    s.destroy();
  });
}
