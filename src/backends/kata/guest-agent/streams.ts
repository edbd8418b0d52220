/**
 * The agent's end of a container process's stdio, read and written on the host's demand
 * (Kata's ReadStdout/ReadStderr/WriteStdin/CloseStdin): the host pulls output with one
 * blocking call after another, so output is queued here until it asks.
 *
 * Backpressure: reading the fd stops while QUEUE_LIMIT bytes wait for the host, so a host
 * that does not read makes the process block on a full pipe (as with kata-agent), and the
 * agent's memory stays bounded.
 *
 * EOF: once every writer of a pipe closed it (or the pty's slave side is gone) and the
 * queue is empty, reads fail with "read meet eof", the text kata-agent answers with, which
 * tells the host to stop reading that stream.
 */
import { readSync } from 'node:fs';
import type { Socket, SocketConstructorOpts } from 'node:net';
import { openMasterStream } from '../../../io/console-copier.js';
import { closeQuietly } from '../../../io/owned-fds.js';
import { builtin } from '../../../sys/lazy-builtins.js';
import { openPipeHandle } from '../../../sys/uv-pipe.js';

/** bytes queued for the host before the agent stops reading the process's output */
const QUEUE_LIMIT = 1 << 20;
const READ_BUFFER_SIZE = 64 * 1024;

export const EOF_MESSAGE = 'read meet eof';

export class EndOfStream extends Error {
  constructor() {
    super(EOF_MESSAGE);
    this.name = 'EndOfStream';
  }
}

interface PendingRead {
  max: number;
  resolve: (data: Buffer) => void;
  reject: (err: Error) => void;
}

/**
 * Output of a process (a pipe's read end, or a pty master that may also be written to),
 * taken by the host in pieces of at most `len` bytes. Owns the fd.
 */
export class OutputQueue {
  private readonly chunks: Buffer[] = [];
  private queued = 0;
  private readonly readers: PendingRead[] = [];
  private ended = false;
  private paused = false;
  readonly socket: Socket;
  private readonly ended$: Promise<void>;
  private resolveEnded!: () => void;

  constructor(
    private readonly fd: number,
    private readonly isPty: boolean,
  ) {
    this.ended$ = new Promise((resolve) => (this.resolveEnded = resolve));
    this.socket = openMasterStream(fd, {
      buffer: Buffer.allocUnsafe(READ_BUFFER_SIZE),
      callback: (nread, buf) => this.push(Buffer.from(buf.subarray(0, nread))),
    });
    // a pty master answers EIO once the slave is gone: the end of its output, not a failure
    this.socket.on('error', () => this.end());
    this.socket.on('close', () => this.end());
    this.socket.on('end', () => {
      if (this.isPty) this.readRestAfterHangup();
      this.end();
    });
  }

  /** resolves once the stream reached its end (all output queued, or closed) */
  get done(): Promise<void> {
    return this.ended$;
  }

  /** up to max bytes; waits for output; EndOfStream once everything was taken */
  read(max: number): Promise<Buffer> {
    if (max <= 0) max = READ_BUFFER_SIZE;
    if (this.queued > 0) return Promise.resolve(this.take(max));
    if (this.ended) return Promise.reject(new EndOfStream());
    return new Promise((resolve, reject) => this.readers.push({ max, resolve, reject }));
  }

  /** writes to the pty (terminal processes: stdin goes to the master) */
  write(data: Uint8Array): Promise<void> {
    return writeAll(this.socket, data);
  }

  /**
   * The terminal's process exited: what the tty holds now is all its output (a background
   * process still holding the slave must not keep the host reading). Reads the rest, then
   * ends the stream as kata-agent does at a terminal process's exit.
   */
  finishAfterExit(): void {
    if (this.ended) return;
    this.readRestAfterHangup();
    this.end();
    this.serve();
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /** closes the fd; pending reads end with EOF */
  close(): void {
    this.end();
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private push(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    this.chunks.push(chunk);
    this.queued += chunk.length;
    this.serve();
    if (this.queued >= QUEUE_LIMIT) {
      this.paused = true;
      return false;
    }
    return true;
  }

  private serve(): void {
    while (this.readers.length > 0 && this.queued > 0) {
      const r = this.readers.shift()!;
      r.resolve(this.take(r.max));
    }
    if (this.ended && this.queued === 0) {
      for (const r of this.readers.splice(0)) r.reject(new EndOfStream());
    }
  }

  private take(max: number): Buffer {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < max && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const want = max - n;
      if (c.length <= want) {
        parts.push(c);
        this.chunks.shift();
        n += c.length;
      } else {
        parts.push(c.subarray(0, want));
        this.chunks[0] = c.subarray(want);
        n += want;
      }
    }
    this.queued -= n;
    if (this.paused && this.queued < QUEUE_LIMIT / 2 && !this.socket.destroyed) {
      this.paused = false;
      this.socket.resume();
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.resolveEnded();
    this.serve();
  }

  /**
   * libuv reports EOF on POLLHUP after a short read, right for pipes but early for a pty
   * master, whose tty may still hold output (src/io/console-copier.ts measured the loss):
   * read the rest until EIO.
   */
  private readRestAfterHangup(): void {
    if (this.socket.destroyed) return;
    const buf = Buffer.allocUnsafe(READ_BUFFER_SIZE);
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, buf, 0, buf.length, null);
      } catch {
        return;
      }
      if (n === 0) return;
      this.chunks.push(Buffer.from(buf.subarray(0, n)));
      this.queued += n;
    }
  }
}

/** The agent's write end of a process's stdin pipe. Owns the fd. */
export class InputPipe {
  private readonly socket: Socket;
  private closed = false;
  private last: Promise<void> = Promise.resolve();

  constructor(fd: number) {
    let handle: object;
    try {
      handle = openPipeHandle(fd);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    // write-only: a read on this fd would fail and take the stream down
    this.socket = new (builtin('node:net').Socket)({ handle, readable: false, writable: true } as SocketConstructorOpts);
    // EPIPE when the process is gone: reported by write(); never thrown into the loop
    this.socket.on('error', () => undefined);
  }

  write(data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('stdin is closed'));
    const w = writeAll(this.socket, data);
    this.last = w.catch(() => undefined);
    return w;
  }

  /**
   * The process reads EOF once what was written is consumed. Closes the fd rather than
   * end()ing the stream: shutdown(2) is for sockets and fails on a pipe.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.last.then(() => this.destroy());
  }

  destroy(): void {
    this.closed = true;
    if (!this.socket.destroyed) this.socket.destroy();
  }
}

/** resolves when the data has been handed to the kernel (the pipe had room for it) */
function writeAll(socket: Socket, data: Uint8Array): Promise<void> {
  if (socket.destroyed) return Promise.reject(new Error('stream is closed'));
  if (data.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    socket.write(Buffer.from(data), (err) => (err ? reject(err) : resolve()));
  });
}
