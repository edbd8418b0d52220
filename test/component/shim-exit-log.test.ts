/**
 * A shim's last log lines reach containerd's log. containerd reads the bundle's `log`
 * FIFO (opened O_RDWR) for as long as its ttrpc client to the shim lives, and closes
 * both right after Shutdown answers: a line still in the pipe then is lost. This fake
 * containerd does the same, for many shims at once, and for the signal exit path.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { FakeContainerd, connectShim } from './fake-containerd.js';
import * as pb from '../../src/proto/gen/containerd/task/v2/shim.js';
import { TASK_SERVICE_V2 } from '../../src/proto/typeurls.js';

const NS = 'tsshim-exit-log';
let dir: string;
let fake: FakeContainerd;

beforeAll(async () => {
  execFileSync(process.execPath, [path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../scripts/build.mjs')], { stdio: 'inherit' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tss-log-'));
  fake = new FakeContainerd(dir);
  await fake.start();
});

afterAll(async () => {
  await fake?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** containerd's side of the log FIFO: open before the shim starts, copied until closed */
function openLog(bundle: string): { text: () => string; lines: () => Array<Record<string, unknown>>; close: () => void } {
  const file = path.join(bundle, 'log');
  execFileSync('mkfifo', [file]);
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const sock = new net.Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  sock.on('data', (c) => chunks.push(c));
  sock.on('error', () => undefined);
  const text = () => Buffer.concat(chunks).toString();
  return {
    text,
    lines: () =>
      text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    close: () => sock.destroy(),
  };
}

async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function alive(pid: number): boolean {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}

/** one shim's life as containerd runs it; returns what its log FIFO carried */
async function shimLife(id: string, end: 'shutdown' | 'SIGTERM'): Promise<Array<Record<string, unknown>>> {
  const bundle = path.join(dir, id);
  fs.mkdirSync(bundle);
  fs.writeFileSync(path.join(bundle, 'config.json'), '{}');
  const log = openLog(bundle);
  try {
    const r = await fake.runShim('start', { namespace: NS, id, bundle });
    const out = String(r.stdout);
    expect(r.exitCode, out).toBe(0);
    const client = await connectShim(out.trim());
    const conn = pb.ConnectResponse.decode(
      await client.call(TASK_SERVICE_V2, 'Connect', pb.ConnectRequest.encode(pb.ConnectRequest.fromPartial({ id })).finish(), { timeoutMs: 20_000 }),
    );
    await until(() => log.text().includes('"shim serving"'), `${id}: shim serving`);
    if (end === 'shutdown') {
      await client.call(TASK_SERVICE_V2, 'Shutdown', pb.ShutdownRequest.encode(pb.ShutdownRequest.fromPartial({ id })).finish(), { timeoutMs: 20_000 });
      // what containerd does the moment Shutdown answers: the ttrpc client and the log go
      client.close();
      log.close();
      await until(() => !alive(conn.shimPid), `${id}: shim gone`);
    } else {
      client.close();
      process.kill(conn.shimPid, 'SIGTERM');
      await until(() => !alive(conn.shimPid), `${id}: shim gone`);
      log.close();
    }
    return log.lines();
  } finally {
    log.close();
  }
}

describe('a shim exiting: its last lines reach the log FIFO', () => {
  it('Shutdown, many shims at once, containerd closing the log as soon as Shutdown answers', async () => {
    const missing: string[] = [];
    for (let round = 0; round < 4; round++) {
      const ids = Array.from({ length: 12 }, (_, i) => `s${round}-${i}-${process.pid}`);
      const logs = await Promise.all(ids.map((id) => shimLife(id, 'shutdown')));
      logs.forEach((lines, i) => {
        expect(lines.some((l) => l.msg === 'shim serving')).toBe(true);
        if (!lines.some((l) => l.msg === 'shim exiting' && l.reason === 'shutdown')) missing.push(ids[i]!);
      });
    }
    expect(missing).toEqual([]);
  }, 240_000);

  it('SIGTERM: the reason is logged before the process ends', async () => {
    const ids = Array.from({ length: 6 }, (_, i) => `t${i}-${process.pid}`);
    const logs = await Promise.all(ids.map((id) => shimLife(id, 'SIGTERM')));
    for (const lines of logs) expect(lines.filter((l) => l.msg === 'shim exiting').map((l) => l.reason)).toEqual(['SIGTERM']);
  }, 120_000);
});
