/**
 * Hybrid vsock handshake against a fake vsock device (a unix socket server speaking the
 * CONNECT <port> / OK <n> protocol of Firecracker, Cloud Hypervisor and vhost-device-vsock).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectHybridVsock } from '../../src/backends/kata/hybrid-vsock.js';
import { ShimError } from '../../src/core/errors.js';
import type { ByteStream } from '../../src/sys/uv-pipe.js';

let dir: string;
const cleanups: Array<() => unknown> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kata-hvsock-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

interface FakeDevice {
  path: string;
  /** what each connection sent before the device answered (the CONNECT line) */
  requests: string[];
  /** server-side sockets, in accept order */
  sockets: Socket[];
  /** resolves when a server-side socket closes */
  closed: Array<Promise<void>>;
}

/**
 * A fake device: reads the CONNECT line, then calls `answer` with the socket and the line.
 * Bytes after the line on the same connection are kept on the socket as `extra`.
 */
async function fakeDevice(answer: (socket: Socket, line: string) => void): Promise<FakeDevice> {
  const path = join(dir, `dev-${cleanups.length}.sock`);
  const dev: FakeDevice = { path, requests: [], sockets: [], closed: [] };
  const server: Server = createServer((socket) => {
    dev.sockets.push(socket);
    dev.closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
    socket.on('error', () => {});
    let buf = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      socket.off('data', onData);
      const line = buf.slice(0, nl);
      dev.requests.push(line);
      answer(socket, line);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of dev.sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return dev;
}

/** Collects what the client stream receives until `want` bytes came. */
function readN(stream: ByteStream, want: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    stream.on('data', (chunk) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= want) resolve(got.toString('latin1'));
    });
    stream.on('error', reject);
    stream.on('close', () => reject(new Error(`closed after ${got.length} bytes: ${JSON.stringify(got.toString('latin1'))}`)));
  });
}

async function expectShimError(p: Promise<unknown>, code: string, text: RegExp): Promise<ShimError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ShimError);
  expect((err as ShimError).code).toBe(code);
  expect((err as ShimError).message).toMatch(text);
  return err as ShimError;
}

describe('connectHybridVsock', () => {
  it('sends CONNECT <port>, and keeps the guest bytes that came in the same chunk as the OK line', async () => {
    const dev = await fakeDevice((socket) => {
      // one write: the OK line and the guest's first bytes together
      socket.write('OK 1073741824\nhello');
      setTimeout(() => socket.write(' world'), 20);
    });
    const stream = await connectHybridVsock(dev.path, 1024, { timeoutMs: 2000 });
    cleanups.push(() => stream.destroy());
    expect(dev.requests).toEqual(['CONNECT 1024']);
    // listeners are added after the promise settled, a few ticks later: nothing may be lost
    await new Promise((r) => setTimeout(r, 10));
    expect(await readN(stream, 'hello world'.length)).toBe('hello world');
  }, 10_000);

  it('takes an OK line split over several reads, and the stream works both ways after it', async () => {
    const dev = await fakeDevice((socket) => {
      socket.write('O');
      setTimeout(() => socket.write('K 5'), 10);
      setTimeout(() => socket.write('\n'), 20);
      // echo the guest side afterwards
      socket.on('data', (chunk) => socket.write(Buffer.concat([Buffer.from('echo:'), chunk])));
    });
    const stream = await connectHybridVsock(dev.path, 52, { timeoutMs: 2000 });
    cleanups.push(() => stream.destroy());
    expect(dev.requests).toEqual(['CONNECT 52']);
    const got = readN(stream, 'echo:ping'.length);
    stream.write(Buffer.from('ping'));
    expect(await got).toBe('echo:ping');
  });

  it('delivers the buffered bytes only once the stream is resumed when paused before reading', async () => {
    const dev = await fakeDevice((socket) => socket.write('OK 9\nabc'));
    const stream = await connectHybridVsock(dev.path, 9, { timeoutMs: 2000 });
    cleanups.push(() => stream.destroy());
    stream.pause();
    const chunks: string[] = [];
    stream.on('data', (c) => chunks.push(c.toString()));
    await new Promise((r) => setTimeout(r, 30));
    expect(chunks).toEqual([]);
    stream.resume();
    await new Promise((r) => setTimeout(r, 30));
    expect(chunks.join('')).toBe('abc');
  });

  it('a refused CONNECT (the device closes: nothing listens on the port) is Unavailable', async () => {
    const dev = await fakeDevice((socket) => socket.end());
    await expectShimError(connectHybridVsock(dev.path, 1024, { timeoutMs: 2000 }), 'Unavailable', /port 1024.*without OK/);
  });

  it('a reply other than OK is Internal and names the reply', async () => {
    const dev = await fakeDevice((socket) => socket.write('ERR connection refused\n'));
    await expectShimError(connectHybridVsock(dev.path, 1024, { timeoutMs: 2000 }), 'Internal', /unexpected reply.*ERR connection refused/);
    await dev.closed[0];
  });

  it('no socket at the path is Unavailable', async () => {
    await expectShimError(connectHybridVsock(join(dir, 'missing.sock'), 1024, { timeoutMs: 2000 }), 'Unavailable', /ENOENT.*VM running/);
  });

  it('a device that never answers: DeadlineExceeded within the deadline, and our end is closed', async () => {
    const dev = await fakeDevice(() => {});
    const started = Date.now();
    await expectShimError(connectHybridVsock(dev.path, 1024, { timeoutMs: 200 }), 'DeadlineExceeded', /timed out after 200 ms waiting for OK/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(2000);
    // the connection does not linger on the device side
    await dev.closed[0];
  });

  it('rejects an invalid port without connecting', async () => {
    const dev = await fakeDevice((s) => s.write('OK 1\n'));
    await expectShimError(connectHybridVsock(dev.path, -1, { timeoutMs: 200 }), 'InvalidArgument', /invalid vsock port -1/);
    await expectShimError(connectHybridVsock(dev.path, 2 ** 32, { timeoutMs: 200 }), 'InvalidArgument', /invalid vsock port/);
    expect(dev.requests).toEqual([]);
  });

  it('a peer that closes right after OK + data: the data arrives, then end and close', async () => {
    const dev = await fakeDevice((socket) => socket.end('OK 3\nbye'));
    const stream = await connectHybridVsock(dev.path, 3, { timeoutMs: 2000 });
    const events: string[] = [];
    const data: string[] = [];
    await new Promise<void>((resolve) => {
      stream.on('data', (c) => data.push(c.toString()));
      stream.on('end', () => events.push('end'));
      stream.on('close', () => {
        events.push('close');
        resolve();
      });
    });
    expect(data.join('')).toBe('bye');
    expect(events).toEqual(['end', 'close']);
    expect(stream.destroyed).toBe(true);
  });
});
