/**
 * The ttrpc server and client suite again, on `net` sockets instead of the raw libuv
 * handles (src/sys/uv-pipe.ts falls back to net when a Node release changes the handles'
 * shape): both must behave the same.
 */
import { afterAll, expect, it, vi } from 'vitest';
import { usingRawPipes } from '../../src/sys/uv-pipe.js';

vi.hoisted(() => {
  process.env.TSSHIM_NODE_PIPES = 'net';
});
afterAll(() => {
  delete process.env.TSSHIM_NODE_PIPES;
});

it('runs on net sockets', () => {
  expect(usingRawPipes()).toBe(false);
});

await import('./ttrpc-server.test.js');
