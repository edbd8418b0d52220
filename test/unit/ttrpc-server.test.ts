import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Code,
  FrameDecoder,
  MAX_MESSAGE,
  MessageType,
  TtrpcClient,
  TtrpcError,
  TtrpcServer,
  decodePayload,
  decodeRequest,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  encodeResponse,
  type CallContext,
  type Frame,
  type TtrpcServerOptions,
  type UnaryHandler,
} from '../../src/ttrpc/index.js';
import { StateRequest } from '../../src/proto/gen/containerd/task/v2/shim.js';
import { listenPipe, usingRawPipes, type ByteStream, type ByteStreamListener } from '../../src/sys/uv-pipe.js';

const SERVICE = 'test.v1.Echo';
const enc = (s: string) => Buffer.from(s);
const dec = (b: Uint8Array) => Buffer.from(b).toString();

let dir: string;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ttrpc-test-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

interface Harness {
  server: TtrpcServer;
  /** the listening socket (src/sys/uv-pipe.ts: raw handles, or net under TSSHIM_NODE_PIPES=net) */
  netServer: ByteStreamListener & { listening: boolean };
  path: string;
  /** Server-side sockets, in accept order. */
  accepted: Array<ByteStream & { writableLength: number }>;
}

let serverSeq = 0;
async function startServer(methods: Record<string, UnaryHandler>, opts: TtrpcServerOptions = {}): Promise<Harness> {
  const server = new TtrpcServer(opts);
  server.register(SERVICE, methods);
  const path = join(dir, `s${serverSeq++}.sock`);
  const netServer = (await listenPipe({ path })) as Harness['netServer'];
  const accepted: Harness['accepted'] = [];
  netServer.on('connection', (s) => accepted.push(s as Harness['accepted'][number]));
  server.listen(netServer);
  cleanups.push(() => server.close());
  return { server, netServer, path, accepted };
}

async function connect(path: string): Promise<TtrpcClient> {
  const client = await TtrpcClient.connect(path, { timeoutMs: 2000 });
  cleanups.push(() => client.close());
  return client;
}

/** A hand-driven connection for sending crafted bytes and reading raw frames. */
class RawConnection {
  private readonly decoder = new FrameDecoder();
  private readonly frames: Frame[] = [];
  private waiter: (() => void) | null = null;
  readonly closed: Promise<void>;
  isClosed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) {
        if (f.kind === 'frame') this.frames.push({ ...f, data: Buffer.from(f.data) });
      }
      this.wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async open(path: string): Promise<RawConnection> {
    const socket = createConnection({ path });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const raw = new RawConnection(socket);
    cleanups.push(() => socket.destroy());
    return raw;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  request(streamId: number, service: string, method: string, payload: Uint8Array = new Uint8Array(0)): void {
    this.send(encodeFrame(streamId, MessageType.Request, 0, encodeRequest({ service, method, payload })));
  }

  async next(timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.isClosed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.frames.shift()!;
  }

  /** Next frame, decoded as a Response. */
  async response(): Promise<{ streamId: number; code: number; message: string; payload: string }> {
    const f = await this.next();
    expect(f.type).toBe(MessageType.Response);
    expect(f.flags).toBe(0);
    const r = decodeResponse(f.data);
    return { streamId: f.streamId, code: r.status?.code ?? 0, message: r.status?.message ?? '', payload: dec(r.payload) };
  }

  get pendingFrames(): number {
    return this.frames.length;
  }
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const echo: UnaryHandler = async (payload) => payload;

describe('TtrpcServer + TtrpcClient', () => {
  it('serves a unary call and answers OK with status absent', async () => {
    const h = await startServer({ Echo: echo });
    const client = await connect(h.path);
    expect(dec(await client.call(SERVICE, 'Echo', enc('hi')))).toBe('hi');

    const raw = await RawConnection.open(h.path);
    raw.request(1, SERVICE, 'Echo', enc('x'));
    const f = await raw.next();
    expect(f.streamId).toBe(1);
    expect(Buffer.from(f.data).toString('hex')).toBe('1201' + enc('x').toString('hex'));
  });

  it('tells onActivity when a call starts and when it ends, and survives a throwing hook', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const h = await startServer(
      {
        Slow: () => new Promise<Uint8Array>((resolve) => (release = () => resolve(enc('done')))),
        Echo: echo,
      },
      {
        onActivity: () => {
          seen.push('activity');
          if (seen.length === 1) throw new Error('broken hook');
        },
      },
    );
    const client = await connect(h.path);
    const slow = client.call(SERVICE, 'Slow', enc(''));
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(['activity']);
    expect(dec(await client.call(SERVICE, 'Echo', enc('x')))).toBe('x');
    expect(seen).toHaveLength(3);
    release();
    expect(dec(await slow)).toBe('done');
    expect(seen).toHaveLength(4);
  });

  it('answers an Empty result with a zero-length Response frame', async () => {
    const h = await startServer({ Nothing: async () => new Uint8Array(0) });
    const raw = await RawConnection.open(h.path);
    raw.request(1, SERVICE, 'Nothing');
    const f = await raw.next();
    expect(f).toMatchObject({ streamId: 1, type: MessageType.Response, flags: 0 });
    expect(f.data.length).toBe(0);
    const client = await connect(h.path);
    expect((await client.call(SERVICE, 'Nothing', new Uint8Array(0))).length).toBe(0);
  });

  it('runs 200 concurrent calls with random delays and matches answers by stream id', async () => {
    const completion: number[] = [];
    const h = await startServer({
      Slow: async (payload, ctx) => {
        await new Promise((r) => setTimeout(r, Math.random() * 30));
        completion.push(ctx.streamId);
        return payload;
      },
    });
    const client = await connect(h.path);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => client.call(SERVICE, 'Slow', enc(`call-${i}`)).then(dec)),
    );
    expect(results).toEqual(Array.from({ length: 200 }, (_, i) => `call-${i}`));
    expect(completion).toHaveLength(200);
    // Stream ids are 1,3,5,...; completion order differs from issue order (out-of-order answers).
    expect([...completion].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => 2 * i + 1));
    expect(completion).not.toEqual([...completion].sort((a, b) => a - b));
  });

  it('does not let a slow call block others on the same connection', async () => {
    const gate = deferred();
    const h = await startServer({ Block: async () => (await gate.promise, enc('late')), Echo: echo });
    const client = await connect(h.path);
    const blocked = client.call(SERVICE, 'Block', new Uint8Array(0));
    expect(dec(await client.call(SERVICE, 'Echo', enc('fast')))).toBe('fast');
    gate.resolve();
    expect(dec(await blocked)).toBe('late');
  });

  it('serves several connections, each with its own stream-id space', async () => {
    const seen: Array<[number, number]> = [];
    const h = await startServer({
      Who: async (_p, ctx) => {
        seen.push([ctx.connectionId, ctx.streamId]);
        await new Promise((r) => setTimeout(r, Math.random() * 10));
        return enc(String(ctx.connectionId));
      },
    });
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect(h.path)));
    await waitFor(() => h.server.connectionCount === 5, '5 connections');
    const answers = await Promise.all(
      clients.map((c) => Promise.all(Array.from({ length: 20 }, () => c.call(SERVICE, 'Who', new Uint8Array(0)).then(dec)))),
    );
    for (const perClient of answers) expect(new Set(perClient).size).toBe(1);
    expect(new Set(answers.map((a) => a[0])).size).toBe(5);
    // Every connection used stream id 1.
    expect(seen.filter(([, sid]) => sid === 1)).toHaveLength(5);

    await clients[0]!.close();
    await waitFor(() => h.server.connectionCount === 4, 'connection count to drop');
  });

  it('answers unknown service and unknown method with Unimplemented', async () => {
    const h = await startServer({ Echo: echo });
    const client = await connect(h.path);
    await expect(client.call('no.such.Service', 'Echo', new Uint8Array(0))).rejects.toMatchObject({
      code: Code.Unimplemented,
      message: 'service no.such.Service',
    });
    await expect(client.call(SERVICE, 'Nope', new Uint8Array(0))).rejects.toMatchObject({
      code: Code.Unimplemented,
      message: 'method Nope',
    });
    const err = await client.call(SERVICE, 'Nope', new Uint8Array(0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtrpcError);
  });

  it('rejects an even stream id with InvalidArgument on that stream', async () => {
    const h = await startServer({ Echo: echo });
    const raw = await RawConnection.open(h.path);
    raw.request(2, SERVICE, 'Echo', enc('x'));
    expect(await raw.response()).toEqual({
      streamId: 2,
      code: Code.InvalidArgument,
      message: 'StreamID must be odd for client initiated streams',
      payload: '',
    });
    raw.request(1, SERVICE, 'Echo', enc('still ok'));
    expect(await raw.response()).toMatchObject({ streamId: 1, code: 0, payload: 'still ok' });
  });

  it('rejects a stream id that does not increase (ttrpc 1.2 rule)', async () => {
    const h = await startServer({ Echo: echo });
    const raw = await RawConnection.open(h.path);
    raw.request(5, SERVICE, 'Echo', enc('a'));
    expect(await raw.response()).toMatchObject({ streamId: 5, code: 0 });
    raw.request(3, SERVICE, 'Echo', enc('b'));
    expect(await raw.response()).toMatchObject({
      streamId: 3,
      code: Code.InvalidArgument,
      message: 'StreamID cannot be re-used and must increment',
    });
  });

  it('answers an oversized frame with ResourceExhausted and keeps the connection usable', async () => {
    let calls = 0;
    const h = await startServer({ Echo: async (p) => (calls++, p) });
    const raw = await RawConnection.open(h.path);
    const length = 5 * 1024 * 1024;
    const header = Buffer.alloc(10);
    header.writeUInt32BE(length, 0);
    header.writeUInt32BE(7, 4);
    header[8] = MessageType.Request;
    raw.send(header);
    const body = encodeRequest({ service: SERVICE, method: 'Echo', payload: Buffer.alloc(length - 100, 1) });
    raw.send(Buffer.concat([body, Buffer.alloc(length - body.length, 0)]));
    expect(await raw.response()).toEqual({
      streamId: 7,
      code: Code.ResourceExhausted,
      message: 'message length 5242880 exceed maximum message size of 4194304',
      payload: '',
    });
    raw.request(9, SERVICE, 'Echo', enc('after'));
    expect(await raw.response()).toMatchObject({ streamId: 9, code: 0, payload: 'after' });
    expect(calls).toBe(1);
  });

  it('answers a handler result over 4 MiB with ResourceExhausted', async () => {
    const h = await startServer({ Big: async () => new Uint8Array(MAX_MESSAGE), Echo: echo });
    const client = await connect(h.path);
    await expect(client.call(SERVICE, 'Big', new Uint8Array(0))).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(dec(await client.call(SERVICE, 'Echo', enc('ok')))).toBe('ok');
  });

  it('survives a truncated frame followed by close', async () => {
    let calls = 0;
    const h = await startServer({ Echo: async (p) => (calls++, p) });
    const raw = await RawConnection.open(h.path);
    const frame = encodeFrame(1, MessageType.Request, 0, encodeRequest({ service: SERVICE, method: 'Echo', payload: enc('cut') }));
    raw.socket.end(frame.subarray(0, frame.length - 3));
    await raw.closed;
    await waitFor(() => h.server.connectionCount === 0, 'server to drop the connection');
    expect(calls).toBe(0);
    const client = await connect(h.path);
    expect(dec(await client.call(SERVICE, 'Echo', enc('fine')))).toBe('fine');
  });

  it('survives random garbage on one connection without disturbing others', async () => {
    const h = await startServer({ Echo: echo });
    const good = await connect(h.path);
    const inflight = good.call(SERVICE, 'Echo', enc('before'));
    for (let i = 0; i < 5; i++) {
      const raw = await RawConnection.open(h.path);
      raw.send(randomBytes(64 * 1024));
      raw.socket.destroy();
    }
    expect(dec(await inflight)).toBe('before');
    expect(dec(await good.call(SERVICE, 'Echo', enc('after')))).toBe('after');
    await waitFor(() => h.server.connectionCount === 1, 'garbage connections to go away');
  });

  it('answers every well-framed Request with a garbage envelope on its own stream', async () => {
    const h = await startServer({ Echo: echo });
    const raw = await RawConnection.open(h.path);
    const n = 200;
    for (let i = 0; i < n; i++) raw.send(encodeFrame(2 * i + 1, MessageType.Request, 0, randomBytes(1 + (i % 50))));
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await raw.response();
      expect([Code.InvalidArgument, Code.Unimplemented]).toContain(r.code);
      ids.push(r.streamId);
    }
    expect(ids).toEqual(Array.from({ length: n }, (_, i) => 2 * i + 1));
  });

  it('answers an undecodable Request with InvalidArgument "unmarshal request error: ..."', async () => {
    const h = await startServer({ Echo: echo });
    const raw = await RawConnection.open(h.path);
    raw.send(encodeFrame(1, MessageType.Request, 0, Buffer.from([0x0a, 0x05, 0x61])));
    const r = await raw.response();
    expect(r.streamId).toBe(1);
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.message).toMatch(/^unmarshal request error: .+/);
  });

  it('answers a payload that does not decode as the request message with Internal, as Go ttrpc does', async () => {
    // the envelope decodes; its payload (a field claiming 5 bytes, carrying 1) does not
    const h = await startServer({
      State: async (payload) => {
        const req = decodePayload(StateRequest, payload);
        return enc(req.id);
      },
    });
    const raw = await RawConnection.open(h.path);
    raw.request(1, SERVICE, 'State', Buffer.from([0x0a, 0x05, 0x61]));
    const r = await raw.response();
    expect(r).toMatchObject({ streamId: 1, code: Code.Internal });
    expect(r.message).toMatch(/^ttrpc: error unmarshalling payload: .+/);
    // the connection serves on, and a payload that decodes reaches the handler
    raw.request(3, SERVICE, 'State', StateRequest.encode(StateRequest.fromPartial({ id: 'c1' })).finish());
    expect(await raw.response()).toMatchObject({ streamId: 3, code: 0, payload: 'c1' });
  });

  it('ignores frames of unknown type; answers Data frames for unknown streams', async () => {
    const h = await startServer({ Echo: echo });
    const raw = await RawConnection.open(h.path);
    raw.send(encodeFrame(1, 0x09, 0, enc('whatever')));
    raw.send(encodeFrame(1, MessageType.Response, 0, new Uint8Array(0)));
    raw.send(encodeFrame(3, MessageType.Data, 0, enc('data')));
    raw.request(5, SERVICE, 'Echo', enc('x'));
    expect(await raw.response()).toMatchObject({
      streamId: 3,
      code: Code.InvalidArgument,
      message: 'StreamID is no longer active',
    });
    expect(await raw.response()).toMatchObject({ streamId: 5, code: 0, payload: 'x' });
    expect(raw.pendingFrames).toBe(0);
  });

  it('ignores Data frames for a stream whose unary call is in flight', async () => {
    const gate = deferred();
    const started = deferred();
    const h = await startServer({ Slow: async (p) => (started.resolve(), await gate.promise, p) });
    const raw = await RawConnection.open(h.path);
    // What a streaming client would send: Request with "remote open", then Data, then close.
    raw.send(encodeFrame(1, MessageType.Request, 0x02, encodeRequest({ service: SERVICE, method: 'Slow', payload: enc('p') })));
    await started.promise;
    raw.send(encodeFrame(1, MessageType.Data, 0, enc('more')));
    raw.send(encodeFrame(1, MessageType.Data, 0x05, new Uint8Array(0)));
    raw.request(3, SERVICE, 'Nope');
    expect(await raw.response()).toMatchObject({ streamId: 3, code: Code.Unimplemented });
    gate.resolve();
    expect(await raw.response()).toMatchObject({ streamId: 1, code: 0, payload: 'p' });
    expect(raw.pendingFrames).toBe(0);
  });

  it('maps handler errors to statuses', async () => {
    const h = await startServer({
      NotFound: async () => {
        throw new TtrpcError(Code.NotFound, 'container not created: not found');
      },
      Plain: async () => {
        throw new Error('boom');
      },
      Sync: (() => {
        throw new Error('sync boom');
      }) as UnaryHandler,
      NotError: async () => {
        throw 'a string';
      },
    });
    const client = await connect(h.path);
    const call = (m: string) => client.call(SERVICE, m, new Uint8Array(0));
    await expect(call('NotFound')).rejects.toMatchObject({ code: Code.NotFound, message: 'container not created: not found' });
    await expect(call('Plain')).rejects.toMatchObject({ code: Code.Unknown, message: 'boom' });
    await expect(call('Sync')).rejects.toMatchObject({ code: Code.Unknown, message: 'sync boom' });
    await expect(call('NotError')).rejects.toMatchObject({ code: Code.Unknown, message: 'a string' });
  });

  it('uses the errorToStatus option, and survives it throwing', async () => {
    const h = await startServer(
      {
        Fail: async () => {
          throw Object.assign(new Error('gone'), { code: 'ENOENT' });
        },
        Weird: async () => {
          throw null;
        },
      },
      {
        errorToStatus: (err) => {
          if (err === null) throw new Error('mapper broke');
          return { code: Code.NotFound, message: `${(err as Error).message}: not found` };
        },
      },
    );
    const client = await connect(h.path);
    await expect(client.call(SERVICE, 'Fail', new Uint8Array(0))).rejects.toMatchObject({ code: Code.NotFound, message: 'gone: not found' });
    await expect(client.call(SERVICE, 'Weird', new Uint8Array(0))).rejects.toMatchObject({ code: Code.Unknown, message: 'mapper broke' });
  });

  it('passes metadata and the deadline to the handler', async () => {
    let seen: CallContext | undefined;
    const h = await startServer({ Ctx: async (p, ctx) => ((seen = ctx), p) });
    const client = await connect(h.path);
    const before = Date.now();
    await client.call(SERVICE, 'Ctx', new Uint8Array(0), { timeoutMs: 2000, metadata: { a: 'x', b: ['1', '2'] } });
    expect(seen!.service).toBe(SERVICE);
    expect(seen!.method).toBe('Ctx');
    expect(seen!.streamId).toBe(1);
    expect(seen!.metadata).toEqual(new Map([['a', ['x']], ['b', ['1', '2']]]));
    expect(seen!.deadline).toBeGreaterThanOrEqual(before + 1900);
    expect(seen!.deadline).toBeLessThanOrEqual(Date.now() + 2000);
    expect(seen!.signal.aborted).toBe(false);

    await client.call(SERVICE, 'Ctx', new Uint8Array(0));
    expect(seen!.deadline).toBeUndefined();
    expect(seen!.metadata.size).toBe(0);
  });

  it('aborts ctx.signal when the deadline passes; the client times out with DeadlineExceeded', async () => {
    const aborted = deferred<unknown>();
    const h = await startServer({
      Hang: (_p, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            aborted.resolve(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        }),
      Echo: echo,
    });
    const client = await connect(h.path);
    const started = Date.now();
    const err = await client.call(SERVICE, 'Hang', new Uint8Array(0), { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtrpcError);
    expect((err as TtrpcError).code).toBe(Code.DeadlineExceeded);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    const reason = await aborted.promise;
    expect(reason).toMatchObject({ code: Code.DeadlineExceeded });
    // The late server answer is dropped; the client stays usable.
    expect(dec(await client.call(SERVICE, 'Echo', enc('next')))).toBe('next');
  });

  it('treats a negative timeout_nano as an already expired deadline', async () => {
    let signalAborted: boolean | undefined;
    const h = await startServer({ Ctx: async (p, ctx) => ((signalAborted = ctx.signal.aborted), p) });
    const raw = await RawConnection.open(h.path);
    raw.send(encodeFrame(1, MessageType.Request, 0, encodeRequest({ service: SERVICE, method: 'Ctx', timeoutNano: -5 })));
    await raw.response();
    expect(signalAborted).toBe(true);
  });

  it('times out locally even if the server never answers', async () => {
    const gate = deferred();
    const h = await startServer({ Never: async () => (await gate.promise, new Uint8Array(0)) });
    cleanups.push(() => gate.resolve());
    const client = await connect(h.path);
    await expect(client.call(SERVICE, 'Never', new Uint8Array(0), { timeoutMs: 50 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    expect(client.closed).toBe(false);
  });

  it('aborts handlers when the connection closes and drops their replies', async () => {
    const aborted = deferred<unknown>();
    const started = deferred();
    const finish = deferred();
    const h = await startServer({
      Hang: async (_p, ctx) => {
        ctx.signal.addEventListener('abort', () => aborted.resolve(ctx.signal.reason));
        started.resolve();
        await finish.promise;
        return enc('too late');
      },
    });
    const client = await connect(h.path);
    const call = client.call(SERVICE, 'Hang', new Uint8Array(0)).catch((e: unknown) => e);
    await started.promise;
    const closedCb = deferred<Error | undefined>();
    client.onClose((err) => closedCb.resolve(err));
    await client.close();
    expect(await call).toMatchObject({ code: Code.Unavailable });
    expect(await aborted.promise).toMatchObject({ code: Code.Canceled });
    expect(await closedCb.promise).toBeUndefined();
    expect(client.closed).toBe(true);
    finish.resolve(); // the reply goes to a closed connection: dropped silently
    await waitFor(() => h.server.connectionCount === 0, 'connection cleanup');
    await expect(client.call(SERVICE, 'Hang', new Uint8Array(0))).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it('rejects calls in flight with Unavailable when the server goes away', async () => {
    const started = deferred();
    const h = await startServer({ Hang: () => (started.resolve(), new Promise<Uint8Array>(() => {})) }, { closeTimeoutMs: 50 });
    const client = await connect(h.path);
    const closed = deferred<void>();
    client.onClose(() => closed.resolve());
    const call = client.call(SERVICE, 'Hang', new Uint8Array(0)).catch((e: unknown) => e);
    await started.promise;
    await h.server.close();
    expect(await call).toMatchObject({ code: Code.Unavailable });
    await closed.promise;
    expect(client.closed).toBe(true);
    expect(h.server.connectionCount).toBe(0);
  });

  it('close() lets in-flight calls finish, then closes connections and the listener', async () => {
    const gate = deferred();
    const started = deferred();
    const h = await startServer({ Slow: async () => (started.resolve(), await gate.promise, enc('done')) }, { closeTimeoutMs: 5000 });
    const client = await connect(h.path);
    const idle = await connect(h.path);
    const call = client.call(SERVICE, 'Slow', new Uint8Array(0));
    await started.promise;
    const closing = h.server.close();
    await new Promise<void>((resolve) => idle.onClose(() => resolve())); // idle connection ends first
    expect(client.closed).toBe(false);
    gate.resolve();
    expect(dec(await call)).toBe('done');
    await closing;
    expect(h.server.connectionCount).toBe(0);
    expect(h.netServer.listening).toBe(false);
    await expect(TtrpcClient.connect(h.path, { timeoutMs: 500 })).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it('stops reading a connection whose peer does not read (write backpressure)', async () => {
    let invoked = 0;
    const big = new Uint8Array(1024 * 1024);
    const h = await startServer({ Big: async () => (invoked++, big) }, { maxInFlightPerConnection: 4 });
    const raw = await RawConnection.open(h.path);
    raw.socket.pause(); // a client that sends but never reads
    const n = 64;
    for (let i = 0; i < n; i++) raw.request(2 * i + 1, SERVICE, 'Big');
    await waitFor(() => invoked >= 4, 'first calls');
    // Give the server time to run away if it were going to: it must not.
    await new Promise((r) => setTimeout(r, 300));
    expect(invoked).toBeLessThanOrEqual(8);
    const serverSide = h.accepted[0]!;
    expect(serverSide.writableLength).toBeLessThanOrEqual(8 * big.length + 1024);

    raw.socket.resume();
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const f = await raw.next();
      expect(decodeResponse(f.data).payload.length).toBe(big.length);
      ids.push(f.streamId);
    }
    expect(ids.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => 2 * i + 1));
    expect(invoked).toBe(n);
  });

  it('runs on the raw libuv handles unless TSSHIM_NODE_PIPES=net (ttrpc-server-net.test.ts)', () => {
    expect(usingRawPipes()).toBe(process.env.TSSHIM_NODE_PIPES !== 'net');
  });

  it('refuses a duplicate service registration', () => {
    const server = new TtrpcServer();
    server.register('a.B', {});
    expect(() => server.register('a.B', {})).toThrow(/duplicate/);
  });
});

describe('TtrpcClient against a scripted server', () => {
  async function scriptedServer(onFrame: (f: Frame, socket: Socket) => void): Promise<string> {
    const path = join(dir, 'scripted.sock');
    const srv = createServer((socket) => {
      const decoder = new FrameDecoder();
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        for (const f of decoder.push(chunk)) if (f.kind === 'frame') onFrame(f, socket);
      });
    });
    await new Promise<void>((resolve) => srv.listen(path, resolve));
    cleanups.push(() => new Promise((r) => srv.close(r)));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
    });
    const sockets: Socket[] = [];
    srv.on('connection', (s) => sockets.push(s));
    return path;
  }

  it('uses odd increasing stream ids and sends timeout and metadata', async () => {
    const seen: Array<{ sid: number; flags: number; timeoutNano: number; md: unknown }> = [];
    const path = await scriptedServer((f, socket) => {
      const req = decodeRequest(f.data);
      seen.push({ sid: f.streamId, flags: f.flags, timeoutNano: req.timeoutNano, md: req.metadata });
      socket.write(encodeFrame(f.streamId, MessageType.Response, 0, encodeResponse({ payload: req.payload })));
    });
    const client = await connect(path);
    await client.call('s', 'm', enc('1'));
    await client.call('s', 'm', enc('2'), { timeoutMs: 1500, metadata: { 'containerd-namespace-ttrpc': 'default' } });
    await client.call('s', 'm', enc('3'));
    expect(seen).toEqual([
      { sid: 1, flags: 0, timeoutNano: 0, md: [] },
      { sid: 3, flags: 0, timeoutNano: 1_500_000_000, md: [{ key: 'containerd-namespace-ttrpc', value: 'default' }] },
      { sid: 5, flags: 0, timeoutNano: 0, md: [] },
    ]);
  });

  it('handles out-of-order answers, unknown stream ids, oversized and undecodable responses', async () => {
    const held: Frame[] = [];
    const path = await scriptedServer((f, socket) => {
      held.push(f);
      if (held.length < 4) return;
      // Answer in reverse order, with noise in between.
      socket.write(encodeFrame(99, MessageType.Response, 0, encodeResponse({ payload: enc('stray') })));
      socket.write(encodeFrame(7, MessageType.Response, 0, encodeResponse({ payload: enc('seven') })));
      const oversized = Buffer.alloc(10);
      oversized.writeUInt32BE(MAX_MESSAGE + 1, 0);
      oversized.writeUInt32BE(5, 4);
      oversized[8] = MessageType.Response;
      socket.write(oversized);
      socket.write(Buffer.alloc(MAX_MESSAGE + 1));
      socket.write(encodeFrame(3, MessageType.Response, 0, Buffer.from([0x0a, 0x09])));
      socket.write(encodeFrame(1, MessageType.Response, 0, encodeResponse({ status: { code: Code.AlreadyExists, message: 'exists' } })));
    });
    const client = await connect(path);
    const calls = [1, 2, 3, 4].map((i) => client.call('s', 'm', enc(String(i))).then(dec, (e: TtrpcError) => e));
    const [r1, r3, r5, r7] = await Promise.all(calls);
    expect(r1).toMatchObject({ code: Code.AlreadyExists, message: 'exists' });
    expect(r3).toMatchObject({ code: Code.Internal });
    expect(r5).toMatchObject({ code: Code.ResourceExhausted, message: `message length ${MAX_MESSAGE + 1} exceed maximum message size of ${MAX_MESSAGE}` });
    expect(r7).toBe('seven');
    expect(client.closed).toBe(false);
  });

  it('fails to connect with Unavailable when nothing listens', async () => {
    await expect(TtrpcClient.connect(join(dir, 'missing.sock'))).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it('refuses to send a request over 4 MiB', async () => {
    const path = await scriptedServer(() => {});
    const client = await connect(path);
    await expect(client.call('s', 'm', new Uint8Array(MAX_MESSAGE))).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(client.closed).toBe(false);
  });

  it('cancels a call through its AbortSignal', async () => {
    const path = await scriptedServer(() => {});
    const client = await connect(path);
    const ac = new AbortController();
    const call = client.call('s', 'm', new Uint8Array(0), { signal: ac.signal });
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: Code.Canceled });
  });
});
