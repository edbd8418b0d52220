/**
 * The control-socket wait (src/backends/gvisor/sandbox-control.ts) against a stand-in for
 * runsc-sandbox's urpc server: the call's exact bytes, the answer decoded from one JSON object
 * however it is split, wait statuses as exit statuses, the sandbox hanging up or refusing, and
 * where the socket is for each runsc layout. The real sandboxes are in
 * test/e2e/cri-gvisor-control-wait.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { controlSocketAddress, exitStatusOf, parseWaitAnswer, waitOnControlSocket } from '../../src/backends/gvisor/sandbox-control.js';

const dir = mkdtempSync(join(tmpdir(), 'tsshim-urpc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** a urpc server that hands each connection's received bytes and socket to `onCall` */
async function fakeSandbox(address: string, onCall: (request: string, socket: Socket) => void): Promise<Server> {
  const server = createServer((socket) => {
    let text = '';
    socket.on('data', (d) => {
      text += d.toString();
      try {
        JSON.parse(text);
      } catch {
        return;
      }
      onCall(text, socket);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(address, resolve));
  return server;
}

describe('sandbox control socket', () => {
  it('turns wait statuses into exit statuses', () => {
    expect(exitStatusOf(0)).toBe(0);
    expect(exitStatusOf(7 << 8)).toBe(7);
    expect(exitStatusOf(255 << 8)).toBe(255);
    expect(exitStatusOf(9)).toBe(137);
    expect(exitStatusOf(15)).toBe(143);
    expect(parseWaitAnswer('{"success":true,"err":"","result":1792}')).toBe(7);
    expect(parseWaitAnswer('{"success":false,"err":"container \\"x\\" not found","result":null}')).toBeUndefined();
    expect(() => parseWaitAnswer('{"success":true,"err":"","result":"x"}')).toThrow(/answered/);
    expect(() => parseWaitAnswer('{"success":true,"err":"","res')).toThrow(SyntaxError);
  });

  it('finds the socket: a file in the root (runsc 2023+), else the abstract name (runsc 2022)', () => {
    const root = mkdtempSync(join(dir, 'root-'));
    // runsc 2022's abstract name ends in a NUL of its own (/proc/net/unix: @runsc-sandbox.sb1@)
    expect(controlSocketAddress(root, 'sb1')).toBe('\0runsc-sandbox.sb1\0');
    writeFileSync(join(root, 'runsc-sb1.sock'), '');
    expect(controlSocketAddress(root, 'sb1')).toBe(join(root, 'runsc-sb1.sock'));
  });

  it('sends one containerManager.Wait call and reads the answer, even split in pieces', async () => {
    // (a path: Node binds an abstract name padded to all of sun_path, which an exact-length
    // connect, as runsc's name needs, does not reach; the abstract case runs against runsc)
    const address = join(dir, 'split.sock');
    const requests: string[] = [];
    const server = await fakeSandbox(address, (request, socket) => {
      requests.push(request);
      // the answer in three writes, the number itself cut in two
      const answer = '{"success":true,"err":"","result":35584}';
      socket.write(answer.slice(0, 10));
      setTimeout(() => socket.write(answer.slice(10, 37)), 20);
      setTimeout(() => socket.write(answer.slice(37)), 40);
    });
    try {
      const wait = waitOnControlSocket(address, 'app-1');
      expect(await wait.status).toBe(139);
      expect(requests).toEqual(['{"method":"containerManager.Wait","arg":"app-1"}']);
    } finally {
      server.close();
    }
  });

  it('a sandbox that hangs up (it died) or refuses gives no status; cancel ends the wait', async () => {
    const path = join(dir, 'runsc-sb.sock');
    const server = await fakeSandbox(path, (request, socket) => {
      const { arg } = JSON.parse(request) as { arg: string };
      if (arg === 'dies') socket.destroy();
      else if (arg === 'unknown') socket.write('{"success":false,"err":"no such container","result":null}');
      // 'forever': never answers
    });
    try {
      expect(await waitOnControlSocket(path, 'dies').status).toBeUndefined();
      expect(await waitOnControlSocket(path, 'unknown').status).toBeUndefined();
      const forever = waitOnControlSocket(path, 'forever');
      setTimeout(() => forever.cancel(), 50);
      expect(await forever.status).toBeUndefined();
    } finally {
      server.close();
    }
  });

  it('throws when nothing listens, so the caller falls back to runsc wait', () => {
    expect(() => waitOnControlSocket('\0tsshim-urpc-nobody\0', 'c')).toThrow(/control socket @tsshim-urpc-nobody@: .*ECONNREFUSED/);
    expect(() => waitOnControlSocket(join(dir, 'missing.sock'), 'c')).toThrow(/ENOENT/);
    expect(() => waitOnControlSocket(`/${'x'.repeat(200)}`, 'c')).toThrow(/ENAMETOOLONG/);
  });
});
