/**
 * Hybrid vsock: how the host reaches a vsock port of the guest through a unix socket.
 *
 * Firecracker, Cloud Hypervisor and vhost-device-vsock expose the guest's vsock as a unix
 * socket on the host. A host process connects to it, writes `CONNECT <port>\n`, and the
 * device opens a vsock connection to that guest port. When the guest accepts, the device
 * answers `OK <host port>\n` and from then on the unix connection is the byte stream to the
 * guest; when nothing listens on the port (the agent has not started yet) the device just
 * closes the connection. Kata's runtime speaks ttrpc to its agent over such a stream.
 *
 * The device may send the guest's first bytes in the same read as the OK line; they belong
 * to the stream, so the returned stream replays them before anything read afterwards.
 */
import { EventEmitter } from 'node:events';
import { ShimError } from '../../core/errors.js';
import { connectPipe, type ByteStream } from '../../sys/uv-pipe.js';

export interface HybridVsockOptions {
  /** Deadline for the unix connect plus the CONNECT/OK handshake. */
  timeoutMs: number;
}

/** Longest reply line accepted ("OK 4294967295\n" is 14 bytes). */
const MAX_REPLY_LINE = 128;
const MAX_TIMER_MS = 0x7fffffff;
const MAX_VSOCK_PORT = 0xffffffff;

/**
 * Connects to guest vsock `port` through the hybrid vsock socket at `udsPath`.
 *
 * Rejects with ShimError:
 *  - Unavailable: the socket cannot be connected (no VM, or its device is gone), or the device
 *    closed the connection without OK (nothing listens on that port in the guest yet; callers
 *    that wait for an agent to boot retry on this code);
 *  - DeadlineExceeded: no OK within timeoutMs (the device or the guest hangs);
 *  - Internal: the device answered something other than `OK <n>`;
 *  - InvalidArgument: a port outside 0..2^32-1.
 */
export function connectHybridVsock(udsPath: string, port: number, opts: HybridVsockOptions): Promise<ByteStream> {
  if (!Number.isInteger(port) || port < 0 || port > MAX_VSOCK_PORT) {
    return Promise.reject(new ShimError('InvalidArgument', `hybrid vsock ${udsPath}: invalid vsock port ${port}`));
  }
  const what = `hybrid vsock ${udsPath} port ${port}`;
  return new Promise<ByteStream>((resolve, reject) => {
    const socket = connectPipe(udsPath);
    let received: Buffer = Buffer.alloc(0);
    let settled = false;

    const finish = (err: ShimError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('data', onData);
      if (err) {
        socket.destroy();
        reject(err);
      }
    };
    const onError = (err: Error): void => {
      const errno = (err as NodeJS.ErrnoException).code;
      const connected = connectedAt !== undefined;
      const message = connected
        ? `${what}: connection failed during the handshake: ${err.message}`
        : `${what}: cannot connect to the vsock device socket (${errno ?? err.message}); is the VM running?`;
      finish(new ShimError('Unavailable', message, { cause: err }));
    };
    const onEnd = (): void => {
      finish(
        new ShimError(
          'Unavailable',
          `${what}: the device closed the connection without OK: nothing accepted the connection on guest vsock port ${port}`,
        ),
      );
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const nl = received.indexOf(0x0a);
      if (nl < 0) {
        if (received.length > MAX_REPLY_LINE) {
          finish(new ShimError('Internal', `${what}: unexpected reply from the vsock device (no line end in ${received.length} bytes)`));
        }
        return;
      }
      const line = received.subarray(0, nl).toString('latin1').replace(/\r$/, '');
      const rest = received.subarray(nl + 1);
      if (!/^OK \d+$/.test(line)) {
        finish(new ShimError('Internal', `${what}: unexpected reply from the vsock device: ${JSON.stringify(line.slice(0, MAX_REPLY_LINE))}`));
        return;
      }
      // Stop reading before our listener goes, so nothing is read with no one to take it.
      socket.pause();
      finish(undefined);
      resolve(new PrefixedStream(socket, rest));
    };
    let connectedAt: number | undefined;

    const timer = setTimeout(() => {
      const stage = connectedAt === undefined ? 'connecting to the vsock device socket' : 'waiting for OK from the vsock device';
      finish(new ShimError('DeadlineExceeded', `${what}: timed out after ${opts.timeoutMs} ms ${stage}`));
    }, Math.min(Math.max(opts.timeoutMs, 0), MAX_TIMER_MS));

    socket.once('error', onError);
    socket.once('connect', () => {
      if (settled) return;
      connectedAt = Date.now();
      socket.once('end', onEnd);
      socket.once('close', onEnd);
      socket.on('data', onData);
      socket.write(Buffer.from(`CONNECT ${port}\n`, 'latin1'));
    });
  });
}

/**
 * A connected stream whose first bytes were already read (they came with the OK line):
 * 'data' delivers those bytes first, then whatever the underlying stream reads. Everything
 * else is the underlying stream's. The underlying stream is paused when handed over and
 * resumed once the buffered bytes have been delivered to a 'data' listener.
 */
class PrefixedStream extends EventEmitter implements ByteStream {
  private prefix: Buffer | undefined;
  private paused = false;
  private flowScheduled = false;
  /** an 'error' of the underlying stream before anyone listened: kept, 'close' follows */
  private unheardError: Error | undefined;

  constructor(
    private readonly inner: ByteStream,
    prefix: Buffer,
  ) {
    super();
    this.prefix = prefix.length > 0 ? Buffer.from(prefix) : undefined;
    inner.on('data', (chunk) => this.emit('data', chunk));
    inner.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else this.unheardError ??= err;
    });
    inner.on('drain', () => this.emit('drain'));
    inner.on('end', () => this.emit('end'));
    inner.on('close', () => this.emit('close'));
    this.on('newListener', (event: string | symbol) => {
      if (event === 'data') this.scheduleFlow();
    });
  }

  /** The first error of the underlying stream if it came before an 'error' listener did. */
  get earlyError(): Error | undefined {
    return this.unheardError;
  }

  get destroyed(): boolean {
    return this.inner.destroyed;
  }

  get writable(): boolean {
    return this.inner.writable;
  }

  write(chunk: Uint8Array): boolean {
    return this.inner.write(chunk);
  }

  end(cb?: () => void): unknown {
    this.inner.end(cb);
    return this;
  }

  destroy(): unknown {
    this.prefix = undefined;
    this.inner.destroy();
    return this;
  }

  pause(): unknown {
    this.paused = true;
    this.inner.pause();
    return this;
  }

  resume(): unknown {
    this.paused = false;
    this.scheduleFlow();
    return this;
  }

  // Deferred like the underlying streams do, so that a caller adding its 'data' listener
  // first and its other listeners right after sees every event.
  private scheduleFlow(): void {
    if (this.flowScheduled) return;
    this.flowScheduled = true;
    queueMicrotask(() => {
      this.flowScheduled = false;
      if (this.paused || this.inner.destroyed || this.listenerCount('data') === 0) return;
      const prefix = this.prefix;
      this.prefix = undefined;
      if (prefix) this.emit('data', prefix);
      // A listener may have paused or destroyed us while taking the prefix.
      if (!this.paused && !this.inner.destroyed) this.inner.resume();
    });
  }
}
