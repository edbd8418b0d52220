/**
 * The reaper against real processes. Installing it makes this vitest worker a child
 * subreaper, so every test that needs that lives in this one file.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExitEvent, ExitSubscription } from '../../src/core/backend.js';
import { isChildSubreaper, waitidPeekAny } from '../../src/sys/ffi.js';
import { Reaper } from '../../src/sys/reaper.js';

/** Collects a subscription's exits and lets a test await one pid. */
class ExitCollector {
  private readonly seen = new Map<number, ExitEvent>();
  private readonly waiters = new Map<number, (e: ExitEvent) => void>();
  constructor(readonly sub: ExitSubscription) {
    sub.onExit((e) => {
      this.seen.set(e.pid, e);
      this.waiters.get(e.pid)?.(e);
    });
  }
  has(pid: number): boolean {
    return this.seen.has(pid);
  }
  wait(pid: number, timeoutMs = 10_000): Promise<ExitEvent> {
    const e = this.seen.get(pid);
    if (e) return Promise.resolve(e);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no exit for pid ${pid} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(pid, (ev) => {
        clearTimeout(t);
        resolve(ev);
      });
    });
  }
}

/** Children of this process in state Z (zombies). */
function zombieChildren(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue;
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[1]) === process.pid && rest[0] === 'Z') out.push(Number(name));
  }
  return out;
}

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Blocks the event loop (so neither libuv nor the reaper can reap) until all pids are zombies. */
function blockUntilZombies(pids: number[], timeoutMs = 10_000): void {
  const deadline = Date.now() + timeoutMs;
  while (!pids.every((p) => procState(p) === 'Z')) {
    if (Date.now() > deadline) throw new Error(`pids ${pids.join(',')} did not become zombies`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
  }
}

/**
 * Shell code for a background process that becomes an orphan for sure: it runs `body`
 * only once the shell that started it is gone (a child that exits first may be reaped
 * by that shell and never reach us). `$$` is expanded by that outer shell.
 */
function orphanCmd(body: string): string {
  return `sh -c "while kill -0 $$ 2>/dev/null; do sleep 0.01; done; ${body}" >/dev/null 2>&1`;
}

/** Runs `script` in sh; it must print the pid of the orphan it leaves behind. */
async function makeOrphan(script: string): Promise<number> {
  const r = await execa('sh', ['-c', script]);
  const pid = Number(r.stdout.trim());
  expect(pid).toBeGreaterThan(0);
  return pid;
}

let reaper: Reaper;
const reaperErrors: unknown[] = [];

beforeAll(() => {
  reaper = Reaper.install({ onError: (err) => reaperErrors.push(err) });
});

afterAll(() => {
  expect(zombieChildren()).toEqual([]);
  expect(reaperErrors.map((e) => (e as Error).message)).toEqual(['subscriber bug']);
});

describe('Reaper', () => {
  it('makes the process a child subreaper, once', () => {
    expect(isChildSubreaper()).toBe(true);
    expect(Reaper.install()).toBe(reaper);
    expect(Reaper.current()).toBe(reaper);
  });

  it('reaps orphans with their exit codes: plain exit, SIGKILL, double fork', async () => {
    const c = new ExitCollector(reaper.subscribe());
    const exits3 = await makeOrphan(`${orphanCmd('exit 3')} & echo $!`);
    const killed = await makeOrphan(`sleep 30 >/dev/null 2>&1 & echo $!`);
    const doubleForked = await makeOrphan(
      `( sh -c "echo \\$\\$; exec >/dev/null 2>&1; while kill -0 $$ 2>/dev/null; do sleep 0.01; done; exit 7" & ) | head -n1`,
    );
    process.kill(killed, 'SIGKILL');
    expect((await c.wait(exits3)).status).toBe(3);
    expect((await c.wait(killed)).status).toBe(137);
    expect((await c.wait(doubleForked)).status).toBe(7);
    c.sub.close();
    expect(zombieChildren()).toEqual([]);
  });

  it('never steals execa children while reaping orphans concurrently', async () => {
    const c = new ExitCollector(reaper.subscribe());
    const runs = Array.from({ length: 40 }, (_, i) =>
      execa('sh', ['-c', `exit ${i % 7}`], { reject: false, timeout: 20_000 }).then((r) => [i % 7, r.exitCode]),
    );
    const orphans = Array.from({ length: 15 }, (_, i) =>
      makeOrphan(`${orphanCmd(`sleep 0.0${i % 5}; exit ${10 + i}`)} & echo $!`).then((pid) => [pid, 10 + i]),
    );
    const ran = await Promise.all(runs);
    for (const [want, got] of ran) expect(got).toBe(want);
    const orphanPids = await Promise.all(orphans);
    for (const [pid, code] of orphanPids) expect((await c.wait(pid!)).status).toBe(code);
    // the orphan creators were execa children: their exits are libuv's, never ours
    c.sub.close();
    expect(zombieChildren()).toEqual([]);
  });

  it('reaps past a libuv zombie that blocks the peek, leaving that zombie to libuv', async () => {
    const c = new ExitCollector(reaper.subscribe());
    const libuvChild = spawn('sh', ['-c', 'sleep 0.2; exit 9'], { stdio: 'ignore' });
    const libuvExit = new Promise<number | null>((resolve) => libuvChild.on('exit', (code) => resolve(code)));
    // reparented after libuvChild was forked, so it sits behind it in the children list
    const orphan = await makeOrphan(`sh -c 'sleep 0.2; exit 6' >/dev/null 2>&1 & echo $!`);
    blockUntilZombies([libuvChild.pid!, orphan]);
    expect(waitidPeekAny()?.pid).toBe(libuvChild.pid);
    expect(reaper.isLibuvChild(libuvChild.pid!)).toBe(true);
    reaper.sweep();
    expect(c.has(orphan)).toBe(true);
    expect((await c.wait(orphan)).status).toBe(6);
    expect(procState(libuvChild.pid!)).toBe('Z'); // still waiting for libuv
    expect(await libuvExit).toBe(9);
    expect(c.has(libuvChild.pid!)).toBe(false);
    c.sub.close();
  });

  it('buffers exits for take() (subscribe before spawn) and replays them to late onExit', async () => {
    const sub = reaper.subscribe();
    const other = reaper.subscribe();
    const orphan = await makeOrphan(`${orphanCmd('exit 42')} & echo $!`);
    // wait through a second collector; `sub` has no listener yet
    const c = new ExitCollector(other);
    await c.wait(orphan);
    const late: ExitEvent[] = [];
    sub.onExit((e) => late.push(e));
    expect(late.map((e) => e.pid)).toContain(orphan);
    const e = sub.take(orphan);
    expect(e?.status).toBe(42);
    expect(e?.at).toBeInstanceOf(Date);
    expect(sub.take(orphan)).toBeUndefined();
    sub.close();
    other.close();
  });

  it('stops delivering after close()', async () => {
    const closed = reaper.subscribe();
    const seen: number[] = [];
    closed.onExit((e) => seen.push(e.pid));
    closed.close();
    const c = new ExitCollector(reaper.subscribe());
    const orphan = await makeOrphan(`${orphanCmd('exit 1')} & echo $!`);
    await c.wait(orphan);
    expect(seen).toEqual([]);
    expect(closed.take(orphan)).toBeUndefined();
    c.sub.close();
  });

  it('want() reaps a known pid directly, even one that exited before it was announced', async () => {
    const c = new ExitCollector(reaper.subscribe());
    const orphan = await makeOrphan(`sleep 30 >/dev/null 2>&1 & echo $!`);
    reaper.want(orphan);
    expect(c.has(orphan)).toBe(false);
    process.kill(orphan, 'SIGTERM');
    expect((await c.wait(orphan)).status).toBe(128 + 15);
    reaper.want(999_999_999); // never a child: dropped without error
    c.sub.close();
  });

  it('survives a throwing subscriber, reports it, and still delivers to the others', async () => {
    const bad = reaper.subscribe();
    bad.onExit(() => {
      throw new Error('subscriber bug');
    });
    const c = new ExitCollector(reaper.subscribe());
    const orphan = await makeOrphan(`${orphanCmd('exit 2')} & echo $!`);
    expect((await c.wait(orphan)).status).toBe(2);
    expect(reaperErrors).toHaveLength(1);
    bad.close();
    c.sub.close();
  });
});
