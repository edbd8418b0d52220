/**
 * src/sys/uv-pipe.ts: byte streams on libuv pipe handles without `net`. The same cases run
 * on the raw handles and on the `net` fallback (TSSHIM_NODE_PIPES=net), so the two stay
 * interchangeable for the ttrpc server and client and the native helper's control socket.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { existsSync, fstatSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { socketpair } from '../../src/sys/ffi.js';
import type { ByteStream, ByteStreamListener } from '../../src/sys/uv-pipe.js';

type UvPipe = typeof import('../../src/sys/uv-pipe.js');

let dir: string;
const cleanups: Array<() => unknown> = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'uv-pipe-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** uv-pipe.ts loaded fresh with TSSHIM_NODE_PIPES set as given (it reads it once) */
async function loadWith(pipes: string | undefined): Promise<UvPipe> {
  const saved = process.env.TSSHIM_NODE_PIPES;
  if (pipes === undefined) delete process.env.TSSHIM_NODE_PIPES;
  else process.env.TSSHIM_NODE_PIPES = pipes;
  try {
    vi.resetModules();
    const mod = (await import('../../src/sys/uv-pipe.js')) as UvPipe;
    mod.usingRawPipes(); // decide now, under this environment
    return mod;
  } finally {
    if (saved === undefined) delete process.env.TSSHIM_NODE_PIPES;
    else process.env.TSSHIM_NODE_PIPES = saved;
  }
}

function collect(s: ByteStream): { data: Buffer[]; ended: Promise<void>; closed: Promise<void>; text(): string } {
  const data: Buffer[] = [];
  s.on('data', (c) => data.push(Buffer.from(c)));
  const ended = new Promise<void>((r) => s.once('end', () => r()));
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  return { data, ended, closed, text: () => Buffer.concat(data).toString() };
}

function nextConnection(l: ByteStreamListener): Promise<ByteStream> {
  return new Promise((resolve) => {
    const on = (s: ByteStream): void => {
      l.off('connection', on);
      resolve(s);
    };
    l.on('connection', on);
  });
}

function connected(s: ByteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
}

describe('uv-pipe implementation choice', () => {
  it('uses the raw handles on this Node', async () => {
    const m = await loadWith(undefined);
    expect(m.usingRawPipes()).toBe(true);
  });

  it('TSSHIM_NODE_PIPES=net gives net objects', async () => {
    const m = await loadWith('net');
    expect(m.usingRawPipes()).toBe(false);
    const l = await m.listenPipe({ path: join(dir, 'n.sock') });
    cleanups.push(() => new Promise((r) => l.close(() => r(undefined))));
    const { Server } = await import('node:net');
    expect(l).toBeInstanceOf(Server);
  });
});

describe.each([
  { impl: 'raw libuv handles', pipes: undefined },
  { impl: 'net fallback', pipes: 'net' },
])('uv-pipe streams ($impl)', ({ pipes }) => {
  let m: UvPipe;
  beforeAll(async () => {
    m = await loadWith(pipes);
  });
  afterAll(() => vi.resetModules());

  async function pair(): Promise<{ client: ByteStream; server: ByteStream; listener: ByteStreamListener; path: string }> {
    const path = join(dir, `s${Math.random().toString(36).slice(2)}.sock`);
    const listener = await m.listenPipe({ path });
    cleanups.push(() => new Promise((r) => listener.close(() => r(undefined))));
    const accepted = nextConnection(listener);
    const client = m.connectPipe(path);
    cleanups.push(() => client.destroy());
    await connected(client);
    const server = await accepted;
    cleanups.push(() => server.destroy());
    return { client, server, listener, path };
  }

  it('carries bytes both ways', async () => {
    const { client, server } = await pair();
    const fromClient = collect(server);
    const fromServer = collect(client);
    client.write(Buffer.from('ping'));
    await vi.waitFor(() => expect(fromClient.text()).toBe('ping'));
    server.write(Buffer.from('pong'));
    await vi.waitFor(() => expect(fromServer.text()).toBe('pong'));
  });

  it('8 MiB through a reader that pauses: nothing lost, write() says when to wait, drain follows', async () => {
    const { client, server } = await pair();
    const payload = randomBytes(8 << 20);
    const got: Buffer[] = [];
    let received = 0;
    server.on('data', (c) => {
      got.push(Buffer.from(c));
      received += c.length;
      if (got.length % 16 === 0) {
        server.pause();
        setTimeout(() => server.resume(), 2);
      }
    });
    let sawBackpressure = false;
    let drains = 0;
    client.on('drain', () => drains++);
    for (let off = 0; off < payload.length; off += 256 << 10) {
      if (!client.write(payload.subarray(off, off + (256 << 10)))) {
        sawBackpressure = true;
        await new Promise<void>((r) => client.once('drain', () => r()));
      }
    }
    await vi.waitFor(() => expect(received).toBe(payload.length), { timeout: 10_000 });
    expect(Buffer.concat(got).equals(payload)).toBe(true);
    expect(sawBackpressure).toBe(true);
    expect(drains).toBeGreaterThan(0);
  });

  it("the peer's EOF gives 'end' then 'close'", async () => {
    const { client, server } = await pair();
    const s = collect(server);
    const order: string[] = [];
    server.once('end', () => order.push('end'));
    server.once('close', () => order.push('close'));
    client.write(Buffer.from('last words'));
    client.end();
    await s.closed;
    expect(s.text()).toBe('last words');
    expect(order).toEqual(['end', 'close']);
    expect(server.destroyed).toBe(true);
  });

  it('end(cb) flushes what was written before shutting down, then calls back', async () => {
    const { client, server } = await pair();
    const s = collect(server);
    const payload = randomBytes(2 << 20);
    client.write(payload);
    let called = false;
    client.end(() => (called = true));
    expect(client.writable).toBe(false);
    await s.ended;
    expect(Buffer.concat(s.data).equals(payload)).toBe(true);
    await vi.waitFor(() => expect(called).toBe(true));
  });

  it('destroy() closes both sides; writing afterwards is refused, a second destroy is harmless', async () => {
    const { client, server } = await pair();
    const s = collect(server);
    const c = collect(client);
    client.destroy();
    await c.closed;
    await s.closed;
    expect(client.destroyed).toBe(true);
    expect(client.writable).toBe(false);
    expect(client.write(Buffer.from('x'))).toBe(false);
    client.destroy();
  });

  it('connecting to nothing is an errno error (ENOENT, ECONNREFUSED)', async () => {
    const missing = m.connectPipe(join(dir, 'missing.sock'));
    await expect(connected(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    // a socket file nobody listens on any more
    const path = join(dir, 'stale.sock');
    const l = await m.listenPipe({ path });
    const { linkSync } = await import('node:fs');
    linkSync(path, `${path}.kept`);
    await new Promise((r) => l.close(() => r(undefined)));
    const refused = m.connectPipe(`${path}.kept`);
    await expect(connected(refused)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('listening on a path that is taken is an errno error', async () => {
    const path = join(dir, 'taken.sock');
    const l = await m.listenPipe({ path });
    cleanups.push(() => new Promise((r) => l.close(() => r(undefined))));
    await expect(m.listenPipe({ path })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('closing a listener it bound removes the socket file and takes no more connections', async () => {
    const { path, listener, client, server } = await pair();
    // (net's close waits for its connections to end; ours does not need to)
    client.destroy();
    server.destroy();
    await new Promise((r) => listener.close(() => r(undefined)));
    expect(existsSync(path)).toBe(false);
    await expect(connected(m.connectPipe(path))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('openPipeFd: a socketpair end becomes a stream that owns the fd', async () => {
    const [a, b] = socketpair();
    const sa = m.openPipeFd(a);
    const sb = m.openPipeFd(b);
    const got = collect(sb);
    sa.write(Buffer.from('over the pair'));
    await vi.waitFor(() => expect(got.text()).toBe('over the pair'));
    sa.destroy();
    await got.closed;
    // both fds are closed with their streams
    await vi.waitFor(() => {
      expect(() => fstatSync(a)).toThrow();
      expect(() => fstatSync(b)).toThrow();
    });
  });
});
