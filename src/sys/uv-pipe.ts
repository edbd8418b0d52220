/**
 * Unix stream sockets and pipes on libuv's pipe handles, without Node's `net` module.
 *
 * Why: a new shim sits on containerd's critical path from the moment `start` returns, and
 * loading `net` costs ~7 ms of the daemon's boot here (it pulls in the whole streams
 * implementation; a listening `net.Server` then also loads `cluster` and `child_process`).
 * A bare server on these handles answered its first request ~10 ms sooner than the same
 * server on `net`. The shim only needs byte streams: the ttrpc server and client, the
 * native helper's control socket.
 *
 * The handles come from `process.binding('pipe_wrap')` / `('stream_wrap')`, the classes
 * `net` itself is built on (both on the list process.binding still serves, without a
 * runtime deprecation). Their shape is checked once; if a Node release changes it, or
 * TSSHIM_NODE_PIPES=net is set, every function here returns `net` objects instead, which
 * satisfy the same interfaces. This module is the only place that touches those bindings
 * (openPipeHandle serves the terminal's pty master, which net cannot open itself).
 *
 * Semantics kept from net.Socket, as far as our callers use them: 'data' chunks while
 * flowing (reading starts when the first 'data' listener is added), pause()/resume(),
 * write() returning false past a high-water mark and 'drain' after, 'end' on EOF, 'error'
 * (errno codes as `code`), then 'close' once the handle is closed. One difference: the
 * peer's EOF destroys the stream after 'end' (our callers never half-close), and end(cb)
 * flushes, shuts the write side down and then closes, calling cb once closed.
 */
import { EventEmitter } from 'node:events';
import type { Server as NetServer, Socket as NetSocket } from 'node:net';
import { closeSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { builtin } from './lazy-builtins.js';

/** What our callers need from a connected byte stream (net.Socket satisfies it). */
export interface ByteStream {
  readonly destroyed: boolean;
  readonly writable: boolean;
  write(chunk: Uint8Array): boolean;
  end(cb?: () => void): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'connect' | 'drain' | 'end' | 'close', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: 'connect' | 'drain' | 'end' | 'close', listener: () => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
  off(event: 'data', listener: (chunk: Buffer) => void): this;
  off(event: 'connect' | 'drain' | 'end' | 'close', listener: () => void): this;
}

/** What our callers need from a listening socket (net.Server satisfies it). */
export interface ByteStreamListener {
  on(event: 'connection', listener: (stream: ByteStream) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  off(event: 'connection', listener: (stream: ByteStream) => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
  close(cb?: (err?: Error) => void): unknown;
}

/* ------------------------------------------------------------------------------------
 * The bindings, checked once
 * ------------------------------------------------------------------------------------ */

interface StreamHandle {
  onread: ((arrayBuffer: ArrayBuffer | undefined) => void) | null;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: object, data: Uint8Array): number;
  shutdown(req: object): number;
  close(cb?: () => void): void;
}
interface PipeHandle extends StreamHandle {
  open(fd: number): number;
  bind(path: string): number;
  listen(backlog: number): number;
  connect(req: object, path: string): number;
  onconnection: ((status: number, client: PipeHandle | undefined) => void) | null;
}
interface ReqObject {
  handle?: StreamHandle;
  oncomplete?: (...args: never[]) => void;
  address?: string;
  async?: boolean;
  buffer?: Uint8Array;
}
interface Bindings {
  Pipe: new (type: number) => PipeHandle;
  PipeConnectWrap: new () => ReqObject;
  WriteWrap: new () => ReqObject;
  ShutdownWrap: new () => ReqObject;
  SOCKET: number;
  SERVER: number;
  state: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

/** libuv's UV_EOF */
const UV_EOF = -4095;
/** net.Socket's default writableHighWaterMark */
const HIGH_WATER_MARK = 16 * 1024;
const LISTEN_BACKLOG = 511;
export const PIPES_ENV = 'TSSHIM_NODE_PIPES';

let bindings: Bindings | null | undefined;

/** process.binding(name), or undefined where Node no longer serves it */
function legacyBinding(name: string): Record<string, unknown> | undefined {
  const legacy = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
  return typeof legacy === 'function' ? legacy(name) : undefined;
}

function loadBindings(): Bindings | null {
  if (bindings !== undefined) return bindings;
  bindings = null;
  if (process.env[PIPES_ENV] === 'net') return null;
  try {
    const pipe = legacyBinding('pipe_wrap');
    const stream = legacyBinding('stream_wrap');
    if (!pipe || !stream) return null;
    const constants = pipe.constants as Record<string, unknown> | undefined;
    const state = stream.streamBaseState;
    const fns = [pipe.Pipe, pipe.PipeConnectWrap, stream.WriteWrap, stream.ShutdownWrap];
    const nums = [constants?.SOCKET, constants?.SERVER, stream.kReadBytesOrError, stream.kArrayBufferOffset, stream.kLastWriteWasAsync];
    if (!fns.every((f) => typeof f === 'function') || !nums.every((n) => typeof n === 'number') || !(state instanceof Int32Array)) return null;
    const proto = (pipe.Pipe as { prototype: Record<string, unknown> }).prototype;
    for (const m of ['open', 'bind', 'listen', 'connect', 'readStart', 'readStop', 'writeBuffer', 'shutdown', 'close']) {
      if (typeof proto[m] !== 'function') return null;
    }
    bindings = {
      Pipe: pipe.Pipe as Bindings['Pipe'],
      PipeConnectWrap: pipe.PipeConnectWrap as Bindings['PipeConnectWrap'],
      WriteWrap: stream.WriteWrap as Bindings['WriteWrap'],
      ShutdownWrap: stream.ShutdownWrap as Bindings['ShutdownWrap'],
      SOCKET: constants!.SOCKET as number,
      SERVER: constants!.SERVER as number,
      state,
      kReadBytesOrError: stream.kReadBytesOrError as number,
      kArrayBufferOffset: stream.kArrayBufferOffset as number,
      kLastWriteWasAsync: stream.kLastWriteWasAsync as number,
    };
  } catch {
    bindings = null;
  }
  return bindings;
}

/** true when streams here run on the raw handles, false when they are net's */
export function usingRawPipes(): boolean {
  return loadBindings() !== null;
}

/** An Error shaped like Node's errno errors: `code` is the errno name (ECONNREFUSED, ...). */
function uvError(status: number, syscall: string, path?: string): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(status);
  } catch {
    code = `UV${status}`;
  }
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${code}${path ? ` ${path}` : ''}`);
  err.code = code;
  err.errno = status;
  err.syscall = syscall;
  if (path) err.path = path;
  return err;
}

/* ------------------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------------------ */

/** A connected pipe (socket, FIFO end, socketpair end) on a raw libuv handle. */
class UvPipeStream extends EventEmitter implements ByteStream {
  private closed = false;
  private ended = false;
  private reading = false;
  private paused = false;
  private connecting = false;
  /** bytes handed to libuv that it has not written yet */
  private queued = 0;
  private needDrain = false;
  private afterFlush: (() => void) | undefined;

  constructor(
    private readonly b: Bindings,
    private readonly handle: PipeHandle,
  ) {
    super();
    handle.onread = (ab) => this.onRead(ab);
    // flowing starts with the first 'data' listener, as for net.Socket
    this.on('newListener', (event: string | symbol) => {
      if (event === 'data') queueMicrotask(() => this.startReading());
    });
  }

  get destroyed(): boolean {
    return this.closed;
  }

  get writable(): boolean {
    return !this.closed && !this.ended;
  }

  /** bytes written but not yet taken by the kernel (net.Socket's writableLength) */
  get writableLength(): number {
    return this.queued;
  }

  /** @internal connect(path) for a fresh SOCKET handle; 'connect' or 'error' follows */
  beginConnect(path: string): void {
    const req = new this.b.PipeConnectWrap();
    this.connecting = true;
    req.address = path;
    req.oncomplete = ((status: number) => {
      this.connecting = false;
      if (this.closed) return;
      if (status < 0) this.fail(uvError(status, 'connect', path));
      else {
        this.emit('connect');
        if (this.listenerCount('data') > 0) this.startReading();
      }
    }) as never;
    const err = this.handle.connect(req, path);
    if (err < 0) {
      this.connecting = false;
      process.nextTick(() => this.fail(uvError(err, 'connect', path)));
    }
  }

  private startReading(): void {
    if (this.closed || this.reading || this.paused || this.connecting) return;
    const err = this.handle.readStart();
    if (err < 0) {
      this.fail(uvError(err, 'read'));
      return;
    }
    this.reading = true;
  }

  private onRead(ab: ArrayBuffer | undefined): void {
    const nread = this.b.state[this.b.kReadBytesOrError]!;
    if (this.closed) return;
    if (nread > 0 && ab) {
      this.emit('data', Buffer.from(ab, this.b.state[this.b.kArrayBufferOffset]!, nread));
      return;
    }
    if (nread === UV_EOF) {
      this.reading = false;
      this.emit('end');
      this.destroy();
    } else if (nread < 0) {
      this.fail(uvError(nread, 'read'));
    }
  }

  pause(): this {
    this.paused = true;
    if (this.reading && !this.closed) {
      this.handle.readStop();
      this.reading = false;
    }
    return this;
  }

  resume(): this {
    this.paused = false;
    this.startReading();
    return this;
  }

  write(chunk: Uint8Array): boolean {
    if (!this.writable) return false;
    const req = new this.b.WriteWrap();
    req.handle = this.handle;
    req.async = false;
    req.oncomplete = ((status: number) => this.afterWrite(status, chunk.length)) as never;
    const err = this.handle.writeBuffer(req, chunk);
    if (err < 0) {
      process.nextTick(() => this.fail(uvError(err, 'write')));
      return false;
    }
    if (this.b.state[this.b.kLastWriteWasAsync]) {
      // libuv holds a pointer into chunk until the write completes
      req.buffer = chunk;
      this.queued += chunk.length;
    }
    if (this.queued >= HIGH_WATER_MARK) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private afterWrite(status: number, bytes: number): void {
    this.queued -= bytes;
    if (this.closed) return;
    if (status < 0) {
      this.fail(uvError(status, 'write'));
      return;
    }
    if (this.queued === 0) {
      if (this.needDrain) {
        this.needDrain = false;
        this.emit('drain');
      }
      const flushed = this.afterFlush;
      this.afterFlush = undefined;
      flushed?.();
    }
  }

  end(cb?: () => void): this {
    if (cb) {
      if (this.closed) queueMicrotask(cb);
      else this.once('close', cb);
    }
    if (this.ended || this.closed) return this;
    this.ended = true;
    const shutdown = (): void => {
      if (this.closed) return;
      const req = new this.b.ShutdownWrap();
      req.handle = this.handle;
      req.oncomplete = (() => this.destroy()) as never;
      const err = this.handle.shutdown(req);
      // 1: finished synchronously; ENOTCONN: the peer is gone; anything else: nothing to wait for
      if (err !== 0) this.destroy();
    };
    if (this.queued === 0) shutdown();
    else this.afterFlush = shutdown;
    return this;
  }

  destroy(): this {
    if (this.closed) return this;
    this.closed = true;
    if (this.reading) this.handle.readStop();
    this.reading = false;
    this.handle.close(() => this.emit('close'));
    return this;
  }

  private fail(err: Error): void {
    if (this.closed) return;
    // closed first: even an 'error' nobody listens to (it throws) leaves no handle behind;
    // 'close' still comes after 'error', from the handle's close callback
    this.destroy();
    this.emit('error', err);
  }
}

/** A listening unix socket on a raw handle. */
class UvPipeListener extends EventEmitter implements ByteStreamListener {
  private closed = false;

  get listening(): boolean {
    return !this.closed;
  }

  constructor(
    private readonly b: Bindings,
    private readonly handle: PipeHandle,
  ) {
    super();
    handle.onconnection = (status, client) => {
      if (this.closed) {
        client?.close();
        return;
      }
      if (status < 0 || !client) this.emit('error', uvError(status, 'accept'));
      else this.emit('connection', new UvPipeStream(this.b, client));
    };
  }

  close(cb?: (err?: Error) => void): this {
    if (this.closed) {
      if (cb) queueMicrotask(() => cb());
      return this;
    }
    this.closed = true;
    // libuv unlinks a socket path it bound itself when the handle closes
    this.handle.close(() => {
      this.emit('close');
      cb?.();
    });
    return this;
  }
}

/* ------------------------------------------------------------------------------------
 * Entry points (each falls back to net)
 * ------------------------------------------------------------------------------------ */

function net(): typeof import('node:net') {
  return builtin('node:net');
}

/**
 * Accepts connections on an inherited listening socket (`fd`) or on a new socket bound at
 * `path`. Throws an errno error if the fd or path cannot be used.
 */
export async function listenPipe(where: { fd: number } | { path: string }): Promise<ByteStreamListener> {
  const b = loadBindings();
  if (!b) {
    const server: NetServer = net().createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen('fd' in where ? { fd: where.fd } : { path: where.path }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server as unknown as ByteStreamListener;
  }
  const handle = new b.Pipe(b.SERVER);
  const err = 'fd' in where ? handle.open(where.fd) : handle.bind(where.path);
  const listened = err < 0 ? err : handle.listen(LISTEN_BACKLOG);
  if (listened < 0) {
    handle.close();
    throw uvError(listened, 'fd' in where ? 'listen' : 'bind', 'path' in where ? where.path : undefined);
  }
  return new UvPipeListener(b, handle);
}

/** Starts connecting to a unix socket: 'connect' or 'error' follows, as for net.createConnection. */
export function connectPipe(path: string): ByteStream {
  const b = loadBindings();
  if (!b) return net().createConnection({ path }) as NetSocket as ByteStream;
  const stream = new UvPipeStream(b, new b.Pipe(b.SOCKET));
  stream.beginConnect(path);
  return stream;
}

/**
 * A bare libuv pipe handle opened on fd, for `new net.Socket({ handle })` where net's own
 * fd wrapping does not fit (it refuses a pty master; uv_pipe_open takes any pollable fd
 * and makes it non-blocking). Independent of TSSHIM_NODE_PIPES: net has no other way.
 * On failure the fd is left to the caller.
 */
export function openPipeHandle(fd: number): object {
  const pipe = legacyBinding('pipe_wrap') as { Pipe?: new (type: number) => PipeHandle; constants?: { SOCKET?: number } } | undefined;
  if (typeof pipe?.Pipe !== 'function' || typeof pipe.constants?.SOCKET !== 'number') {
    throw new Error(`this Node.js (${process.version}) does not expose pipe_wrap`);
  }
  const handle = new pipe.Pipe(pipe.constants.SOCKET);
  const err = handle.open(fd);
  if (err < 0) throw uvError(err, 'uv_pipe_open');
  return handle;
}

/**
 * A stream over an fd that is a socket or a pipe/FIFO end; the stream owns the fd from
 * here on (it is closed with the stream, also when this throws).
 */
export function openPipeFd(fd: number): ByteStream {
  const b = loadBindings();
  if (!b) return new (net().Socket)({ fd, readable: true, writable: true }) as ByteStream;
  const handle = new b.Pipe(b.SOCKET);
  const err = handle.open(fd);
  if (err < 0) {
    handle.close();
    try {
      closeSync(fd);
    } catch {
      // already gone
    }
    throw uvError(err, 'open');
  }
  return new UvPipeStream(b, handle);
}
