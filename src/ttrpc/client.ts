/**
 * ttrpc client for unary calls (used by the shim to forward events to containerd).
 * Stream ids count 1,3,5,... as Go clients do; calls run concurrently on one connection and
 * answers are matched by stream id.
 */
import { connectPipe, type ByteStream } from '../sys/uv-pipe.js';
import { FRAME_HEADER_LENGTH, FrameDecoder, MAX_MESSAGE, MessageType, writeFrameHeader, type DecodedFrame } from './frame.js';
import { decodeResponse, encodeRequest, type KeyValue } from './envelope.js';
import { Code, TtrpcError, oversizedMessage } from './status.js';

export interface ConnectOptions {
  /** Connect deadline. Default 5000 ms. */
  timeoutMs?: number;
}

export interface CallOptions {
  /** Local deadline, also sent to the server as timeout_nano. No deadline when absent. */
  timeoutMs?: number;
  metadata?: Record<string, string | readonly string[]>;
  /** Cancels the call locally (rejects with Canceled); the server is not told, as in ttrpc. */
  signal?: AbortSignal;
}

interface PendingCall {
  resolve: (payload: Uint8Array) => void;
  reject: (err: TtrpcError) => void;
}

const MAX_TIMER_MS = 0x7fffffff;
const MAX_STREAM_ID = 0xffffffff;

export class TtrpcClient {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, PendingCall>();
  private readonly closeCallbacks = new Set<(err?: Error) => void>();
  private nextStreamId = 1;
  private isClosed = false;
  private socketError: Error | undefined;
  private readonly socketClosed: Promise<void>;

  private constructor(private readonly socket: ByteStream) {
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      try {
        this.onData(chunk);
      } catch (err) {
        // Only a bug can land here; fail loudly for callers, never out of the event loop.
        this.shutdown(err instanceof Error ? err : new Error(String(err)));
      }
    });
    socket.on('error', (err) => {
      this.socketError ??= err;
    });
    socket.on('end', () => this.shutdown());
    socket.on('close', () => this.shutdown());
  }

  /** Connects to a unix socket. Rejects with TtrpcError Unavailable (cause = socket error) or DeadlineExceeded. */
  static connect(path: string, opts: ConnectOptions = {}): Promise<TtrpcClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const socket = connectPipe(path);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new TtrpcError(Code.Unavailable, `ttrpc: connect ${path}: ${err.message}`, { cause: err }));
      };
      const timer = setTimeout(() => {
        socket.off('error', onError);
        socket.destroy();
        reject(new TtrpcError(Code.DeadlineExceeded, `ttrpc: connect ${path}: timed out after ${timeoutMs} ms`));
      }, Math.min(timeoutMs, MAX_TIMER_MS));
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new TtrpcClient(socket));
      });
    });
  }

  /** Wraps an already connected socket. */
  static fromSocket(socket: ByteStream): TtrpcClient {
    return new TtrpcClient(socket);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Called once when the connection ends (with the socket error, if any). Returns an unsubscribe. */
  onClose(cb: (err?: Error) => void): () => void {
    if (this.isClosed) {
      const err = this.socketError;
      queueMicrotask(() => cb(err));
      return () => {};
    }
    this.closeCallbacks.add(cb);
    return () => this.closeCallbacks.delete(cb);
  }

  /**
   * One unary call. Rejects with TtrpcError: the server's status when not OK, DeadlineExceeded
   * on local timeout, Canceled on signal, Unavailable if the connection is or becomes closed.
   */
  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.isClosed) return Promise.reject(new TtrpcError(Code.Unavailable, 'ttrpc: closed'));
    const { timeoutMs, signal } = opts;
    if (signal?.aborted) return Promise.reject(canceled(signal));
    if (timeoutMs !== undefined && timeoutMs <= 0) return Promise.reject(deadlineExceeded(service, method));
    if (this.nextStreamId > MAX_STREAM_ID) {
      return Promise.reject(new TtrpcError(Code.ResourceExhausted, 'ttrpc: stream ids exhausted on this connection'));
    }

    const metadata: KeyValue[] = [];
    if (opts.metadata) {
      for (const [key, value] of Object.entries(opts.metadata)) {
        if (typeof value === 'string') metadata.push({ key, value });
        else for (const v of value) metadata.push({ key, value: v });
      }
    }
    const buf = encodeRequest(
      { service, method, payload, timeoutNano: timeoutMs === undefined ? 0 : Math.round(timeoutMs * 1e6), metadata },
      FRAME_HEADER_LENGTH,
    );
    const length = buf.length - FRAME_HEADER_LENGTH;
    if (length > MAX_MESSAGE) {
      return Promise.reject(new TtrpcError(Code.ResourceExhausted, oversizedMessage(length, MAX_MESSAGE)));
    }
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    writeFrameHeader(buf, 0, length, streamId, MessageType.Request, 0);

    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => settle(canceled(signal!));
      const cleanup = (): void => {
        this.pending.delete(streamId);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const settle = (err: TtrpcError): void => {
        cleanup();
        reject(err);
      };
      this.pending.set(streamId, {
        resolve: (p) => {
          cleanup();
          resolve(p);
        },
        reject: settle,
      });
      if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) {
        timer = setTimeout(() => settle(deadlineExceeded(service, method)), timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.socket.write(buf);
    });
  }

  /** Closes the connection; calls in flight reject with Unavailable. Resolves once the socket is closed. */
  close(): Promise<void> {
    this.shutdown();
    return this.socketClosed;
  }

  private onData(chunk: Buffer): void {
    for (const frame of this.decoder.push(chunk)) this.onFrame(frame);
  }

  private onFrame(f: DecodedFrame): void {
    const call = this.pending.get(f.streamId);
    if (!call) return; // late answer (timed out / canceled) or not ours
    if (f.kind === 'oversized') {
      call.reject(new TtrpcError(Code.ResourceExhausted, oversizedMessage(f.length, MAX_MESSAGE)));
      return;
    }
    if (f.type !== MessageType.Response) return; // Data frames (streaming) are not supported
    let resp;
    try {
      resp = decodeResponse(f.data);
    } catch (err) {
      call.reject(new TtrpcError(Code.Internal, `ttrpc: unmarshal response error: ${(err as Error).message}`));
      return;
    }
    const st = resp.status;
    if (st && st.code !== Code.OK) call.reject(new TtrpcError(st.code, st.message, { details: st.details }));
    else call.resolve(resp.payload);
  }

  private shutdown(err?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (err) this.socketError ??= err;
    this.socket.destroy();
    const closedErr = new TtrpcError(Code.Unavailable, 'ttrpc: closed', { cause: this.socketError });
    for (const call of [...this.pending.values()]) call.reject(closedErr);
    this.pending.clear();
    for (const cb of this.closeCallbacks) {
      try {
        cb(this.socketError);
      } catch {
        // A caller's hook must not break shutdown.
      }
    }
    this.closeCallbacks.clear();
  }
}

function deadlineExceeded(service: string, method: string): TtrpcError {
  return new TtrpcError(Code.DeadlineExceeded, `ttrpc: /${service}/${method}: context deadline exceeded`);
}

function canceled(signal: AbortSignal): TtrpcError {
  return new TtrpcError(Code.Canceled, 'ttrpc: call canceled', { cause: signal.reason });
}
