/**
 * ttrpc server for unary calls, behaving like containerd's Go server (containerd/ttrpc) on
 * everything a client can observe: status codes and messages for protocol errors, one stream-id
 * space per connection, concurrent handlers with out-of-order responses.
 *
 * Choices where Go versions differ (1.1 = containerd 1.6, 1.2+ = containerd 1.7/2.x):
 * - Request ids must be odd (both) and increase (1.2+: "StreamID cannot be re-used and must
 *   increment"); real clients always count 1,3,5,... so the stricter rule costs nothing.
 * - Frames of unknown type are ignored (1.1 ignores every non-Request frame).
 * - Data frames (streaming, 1.2+) are not supported: one for a stream with a call in flight is
 *   ignored (the unary handler answers that stream); any other gets the 1.2 answer
 *   InvalidArgument "StreamID is no longer active" (even id: "StreamID must be odd ...").
 * - Request flags (unary/streaming) are not inspected: a registered method is always unary,
 *   as in Go.
 * - The peer ending its side (EOF) ends the connection and cancels its calls, as in Go.
 * - A handler result over 4 MiB is answered with ResourceExhausted on its stream (Go would
 *   fail the send and drop the whole connection).
 */
import type { ByteStream, ByteStreamListener } from '../sys/uv-pipe.js';
import {
  FRAME_HEADER_LENGTH,
  FrameDecoder,
  MAX_MESSAGE,
  MessageType,
  writeFrameHeader,
  type DecodedFrame,
} from './frame.js';
import { decodeRequest, encodeResponse, type RequestEnvelope, type OutgoingResponse } from './envelope.js';
import { Code, TtrpcError, oversizedMessage, type StatusLike } from './status.js';

export interface CallContext {
  service: string;
  method: string;
  /** Request metadata; a key sent several times has several values. */
  metadata: Map<string, string[]>;
  /** Epoch ms, derived from the request's timeout_nano; absent when the client set none. */
  deadline?: number;
  /** Aborted when the deadline passes (reason: TtrpcError DeadlineExceeded) or the connection closes (Canceled). */
  signal: AbortSignal;
  streamId: number;
  connectionId: number;
}

/**
 * `payload` is the request message (may alias the received socket chunk: copy it to keep it
 * long-term). Resolve with the serialized response message; throw to answer a status.
 */
export type UnaryHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array>;

/** The decoding half of a generated protobuf message type. */
export interface PayloadDecoder<T> {
  decode(bytes: Uint8Array): T;
}

/**
 * Decodes a unary call's payload as the method's request message. A payload that does not
 * decode is answered as containerd's Go ttrpc answers it: Internal, "ttrpc: error
 * unmarshalling payload: …" (an undecodable Request envelope, by contrast, is
 * InvalidArgument: see handleRequest). Handlers decode through here and nowhere else.
 */
export function decodePayload<T>(decoder: PayloadDecoder<T>, payload: Uint8Array): T {
  try {
    return decoder.decode(payload);
  } catch (err) {
    throw new TtrpcError(Code.Internal, `ttrpc: error unmarshalling payload: ${errorMessage(err)}`, { cause: err });
  }
}

export interface TtrpcServerOptions {
  /** Turns a handler's thrown error into a status. Default: TtrpcError → its code, else Unknown + message. */
  errorToStatus?: (err: unknown) => StatusLike;
  /**
   * Calls in flight per connection before the server stops reading that connection (the
   * client's writes then block). Bounds handler concurrency and queued responses. It must stay
   * well above the number of long-blocking calls (Wait) one client keeps open. Default 1024.
   */
  maxInFlightPerConnection?: number;
  /** How long close() waits for in-flight calls before destroying connections. Default 5000 ms. */
  closeTimeoutMs?: number;
  /** Diagnostics for failures the server absorbs (socket errors, internal bugs). Never throws into the server. */
  onError?: (err: unknown, connectionId?: number) => void;
  /** Told when a call starts and when it finishes (the daemon's idle detection). Must not throw. */
  onActivity?: () => void;
}

/** setTimeout fires at once for delays above this (Node clamps to 1 ms with a warning). */
const MAX_TIMER_MS = 0x7fffffff;

export function defaultErrorToStatus(err: unknown): StatusLike {
  if (err instanceof TtrpcError) return { code: err.code, message: err.message, details: err.details };
  if (err instanceof Error) return { code: Code.Unknown, message: err.message };
  return { code: Code.Unknown, message: String(err) };
}

export class TtrpcServer {
  private readonly services = new Map<string, Map<string, UnaryHandler>>();
  private readonly connections = new Set<ServerConnection>();
  private readonly listeners = new Map<ByteStreamListener, { onConnection: (s: ByteStream) => void; onError: (e: Error) => void }>();
  private nextConnectionId = 1;
  private closing: Promise<void> | null = null;
  private onAllGone: (() => void) | null = null;
  /** @internal */ readonly errorToStatus: (err: unknown) => StatusLike;
  /** @internal */ readonly maxInFlight: number;
  private readonly closeTimeoutMs: number;
  private readonly onErrorHook: ((err: unknown, connectionId?: number) => void) | undefined;
  private readonly onActivityHook: (() => void) | undefined;

  constructor(options: TtrpcServerOptions = {}) {
    this.errorToStatus = options.errorToStatus ?? defaultErrorToStatus;
    this.maxInFlight = Math.max(1, options.maxInFlightPerConnection ?? 1024);
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.onErrorHook = options.onError;
    this.onActivityHook = options.onActivity;
  }

  /** Registers the unary methods of a fully-qualified service (e.g. `containerd.task.v2.Task`). */
  register(serviceName: string, methods: Record<string, UnaryHandler>): void {
    if (this.services.has(serviceName)) throw new Error(`ttrpc: duplicate service ${serviceName} registered`);
    this.services.set(serviceName, new Map(Object.entries(methods)));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Accepts connections from a listening socket (src/sys/uv-pipe.ts, or a net.Server). */
  listen(server: ByteStreamListener): void {
    if (this.closing) throw new Error('ttrpc: server closed');
    if (this.listeners.has(server)) return;
    const onConnection = (socket: ByteStream): void => this.handleConnection(socket);
    // Without an 'error' listener an accept failure (EMFILE) would be thrown out of the event loop.
    const onError = (err: Error): void => this.reportError(err);
    server.on('connection', onConnection);
    server.on('error', onError);
    this.listeners.set(server, { onConnection, onError });
  }

  /** Serves one already-connected socket. */
  handleConnection(socket: ByteStream): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(this, socket, this.nextConnectionId++);
    this.connections.add(conn);
  }

  /**
   * Stops accepting, lets calls in flight finish (each connection is ended once it is idle),
   * and after closeTimeoutMs destroys whatever is left. Do not await it from inside a handler
   * (that handler's call counts as in flight).
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const closedListeners: Array<Promise<void>> = [];
    for (const [server, l] of this.listeners) {
      server.off('connection', l.onConnection);
      closedListeners.push(
        new Promise<void>((resolve) => {
          try {
            server.close(() => resolve());
          } catch {
            resolve();
          }
        }),
      );
      // Keep swallowing errors until the server has closed; drop the listener afterwards.
      void closedListeners[closedListeners.length - 1]!.then(() => server.off('error', l.onError));
    }
    this.listeners.clear();

    const allGone = new Promise<void>((resolve) => {
      if (this.connections.size === 0) resolve();
      else this.onAllGone = resolve;
    });
    for (const conn of [...this.connections]) conn.endWhenIdle();

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.closeTimeoutMs);
    });
    await Promise.race([allGone, timedOut]);
    for (const conn of [...this.connections]) conn.destroy();
    // Listener close callbacks fire once their connections are gone; still bounded.
    await Promise.race([Promise.all(closedListeners), timedOut]);
    clearTimeout(timer);
    this.onAllGone = null;
  }

  /** @internal */
  lookup(service: string, method: string): UnaryHandler | TtrpcError {
    const methods = this.services.get(service);
    if (!methods) return new TtrpcError(Code.Unimplemented, `service ${service}`);
    const handler = methods.get(method);
    if (!handler) return new TtrpcError(Code.Unimplemented, `method ${method}`);
    return handler;
  }

  /** @internal */
  connectionGone(conn: ServerConnection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0 && this.onAllGone) {
      const resolve = this.onAllGone;
      this.onAllGone = null;
      resolve();
    }
  }

  /** @internal */
  reportActivity(): void {
    if (!this.onActivityHook) return;
    try {
      this.onActivityHook();
    } catch (err) {
      this.reportError(err);
    }
  }

  /** @internal */
  reportError(err: unknown, connectionId?: number): void {
    if (!this.onErrorHook) return;
    try {
      this.onErrorHook(err, connectionId);
    } catch {
      // A broken diagnostics hook must not break serving.
    }
  }
}

interface Outcome {
  payload?: Uint8Array;
  status?: StatusLike;
}

class ServerConnection {
  private readonly decoder = new FrameDecoder();
  /** In-flight calls by stream id. */
  private readonly calls = new Map<number, AbortController>();
  private backlog: DecodedFrame[] = [];
  private backlogHead = 0;
  private lastStreamId = 0;
  private congested = false;
  private paused = false;
  private closed = false;
  private draining = false;
  /** Graceful end started: nothing more is read. */
  private ending = false;

  constructor(
    private readonly server: TtrpcServer,
    private readonly socket: ByteStream,
    readonly id: number,
  ) {
    // Every listener is guarded: nothing may throw out of a socket event.
    socket.on('data', (chunk: Buffer) => this.guard(() => this.onData(chunk)));
    socket.on('drain', () =>
      this.guard(() => {
        this.congested = false;
        this.pump();
      }),
    );
    socket.on('end', () => this.destroy());
    socket.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ECONNRESET' && code !== 'EPIPE') this.server.reportError(err, this.id);
      this.destroy();
    });
    socket.on('close', () => this.destroy());
    if (socket.destroyed) this.destroy();
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.server.reportError(err, this.id);
      this.destroy();
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.ending) return;
    const frames = this.decoder.push(chunk);
    if (frames.length === 0) return;
    if (this.backlogHead === this.backlog.length) {
      this.backlog = frames;
      this.backlogHead = 0;
    } else {
      for (const f of frames) this.backlog.push(f);
    }
    this.pump();
  }

  /** Handles queued frames while the connection has capacity; pauses reading when it has none. */
  private pump(): void {
    while (this.backlogHead < this.backlog.length) {
      if (this.closed || this.ending) return;
      if (this.congested || this.calls.size >= this.server.maxInFlight) {
        if (!this.paused) {
          this.paused = true;
          this.socket.pause();
        }
        return;
      }
      const frame = this.backlog[this.backlogHead++]!;
      this.handleFrame(frame);
    }
    this.backlog = [];
    this.backlogHead = 0;
    if (this.paused && !this.closed) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private handleFrame(f: DecodedFrame): void {
    if (f.kind === 'oversized') {
      // Go answers on the announced stream whatever the frame type.
      this.sendStatus(f.streamId, Code.ResourceExhausted, oversizedMessage(f.length, MAX_MESSAGE));
      return;
    }
    if (f.type === MessageType.Request) {
      this.handleRequest(f.streamId, f.data);
    } else if (f.type === MessageType.Data) {
      if (f.streamId % 2 !== 1) {
        this.sendStatus(f.streamId, Code.InvalidArgument, 'StreamID must be odd for client initiated streams');
      } else if (!this.calls.has(f.streamId)) {
        this.sendStatus(f.streamId, Code.InvalidArgument, 'StreamID is no longer active');
      }
    }
    // Other types: ignored for forward compatibility.
  }

  private handleRequest(streamId: number, data: Uint8Array): void {
    if (streamId % 2 !== 1) {
      this.sendStatus(streamId, Code.InvalidArgument, 'StreamID must be odd for client initiated streams');
      return;
    }
    if (streamId <= this.lastStreamId) {
      this.sendStatus(streamId, Code.InvalidArgument, 'StreamID cannot be re-used and must increment');
      return;
    }
    this.lastStreamId = streamId;

    let req: RequestEnvelope;
    try {
      req = decodeRequest(data);
    } catch (err) {
      this.sendStatus(streamId, Code.InvalidArgument, `unmarshal request error: ${errorMessage(err)}`);
      return;
    }
    const handler = this.server.lookup(req.service, req.method);
    if (handler instanceof TtrpcError) {
      this.sendStatus(streamId, handler.code, handler.message);
      return;
    }
    this.startCall(streamId, req, handler);
  }

  private startCall(streamId: number, req: RequestEnvelope, handler: UnaryHandler): void {
    const abort = new AbortController();
    this.calls.set(streamId, abort);
    this.server.reportActivity();

    const metadata = new Map<string, string[]>();
    for (const { key, value } of req.metadata) {
      const values = metadata.get(key);
      if (values) values.push(value);
      else metadata.set(key, [value]);
    }
    const ctx: CallContext = {
      service: req.service,
      method: req.method,
      metadata,
      signal: abort.signal,
      streamId,
      connectionId: this.id,
    };

    let timer: NodeJS.Timeout | undefined;
    if (req.timeoutNano !== 0) {
      const ms = req.timeoutNano / 1e6;
      ctx.deadline = Date.now() + ms;
      const expire = (): void => abort.abort(new TtrpcError(Code.DeadlineExceeded, 'context deadline exceeded'));
      // A non-positive timeout is a deadline already passed (Go: context.WithTimeout(<=0)).
      if (ms <= 0) expire();
      else if (ms <= MAX_TIMER_MS) timer = setTimeout(expire, ms);
    }

    void this.invoke(handler, req.payload, ctx).then((outcome) => {
      if (timer) clearTimeout(timer);
      this.guard(() => this.finishCall(streamId, outcome));
    });
  }

  private async invoke(handler: UnaryHandler, payload: Uint8Array, ctx: CallContext): Promise<Outcome> {
    try {
      const result = await handler(payload, ctx);
      if (!(result instanceof Uint8Array)) {
        return { status: { code: Code.Internal, message: 'ttrpc: handler returned no payload' } };
      }
      return { payload: result };
    } catch (err) {
      try {
        return { status: this.server.errorToStatus(err) };
      } catch (mapErr) {
        return { status: { code: Code.Unknown, message: errorMessage(mapErr) } };
      }
    }
  }

  private finishCall(streamId: number, outcome: Outcome): void {
    this.server.reportActivity();
    if (this.closed) return; // peer is gone: the reply is dropped
    this.calls.delete(streamId);
    const status = outcome.status && outcome.status.code !== Code.OK ? outcome.status : undefined;
    this.send(streamId, status ? { status } : { payload: outcome.payload });
    if (this.draining && this.calls.size === 0) {
      this.endGracefully();
      return;
    }
    this.pump();
  }

  private sendStatus(streamId: number, code: number, message: string): void {
    this.send(streamId, { status: { code, message } });
  }

  private send(streamId: number, resp: OutgoingResponse): void {
    if (this.closed || !this.socket.writable) return;
    let buf = encodeResponse(resp, FRAME_HEADER_LENGTH);
    let length = buf.length - FRAME_HEADER_LENGTH;
    if (length > MAX_MESSAGE) {
      buf = encodeResponse(
        { status: { code: Code.ResourceExhausted, message: oversizedMessage(length, MAX_MESSAGE) } },
        FRAME_HEADER_LENGTH,
      );
      length = buf.length - FRAME_HEADER_LENGTH;
    }
    writeFrameHeader(buf, 0, length, streamId, MessageType.Response, 0);
    if (!this.socket.write(buf)) this.congested = true;
  }

  /** Part of server close: end now if idle, else after the last call in flight answers. */
  endWhenIdle(): void {
    this.draining = true;
    if (this.calls.size === 0) this.endGracefully();
  }

  private endGracefully(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    // end() flushes queued responses first; destroy once they are out.
    this.socket.end(() => this.destroy());
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.backlog = [];
    this.backlogHead = 0;
    if (this.calls.size > 0) {
      const reason = new TtrpcError(Code.Canceled, 'ttrpc: connection closed');
      for (const abort of this.calls.values()) abort.abort(reason);
      this.calls.clear();
    }
    this.socket.destroy();
    this.server.connectionGone(this);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
