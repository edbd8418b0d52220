/**
 * OOM watching against a real memory cgroup: a child of this process's own memory cgroup
 * with an 8 MiB limit, and a busybox dd that wants a 64 MiB buffer in it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupLayout, memoryDir, readOomKillCount, readProcessCgroups } from '../../src/sys/cgroups.js';
import { OomWatcher } from '../../src/sys/oom.js';

const memRoot = memoryDir(readProcessCgroups('self'));
const realCgroups = cgroupLayout().mode !== 'v2' && memRoot !== undefined && existsSync(join(memRoot, 'memory.oom_control'));

let cg: string;
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tsshim-oom-'));
  if (!realCgroups) return;
  cg = join(memRoot!, `tsshim-oom-${process.pid}`);
  mkdirSync(cg);
  writeFileSync(join(cg, 'memory.limit_in_bytes'), String(8 << 20));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  if (cg && existsSync(cg)) rmdirSync(cg);
});

/** Starts a process in the cgroup that waits for a line on stdin, then allocates 64 MiB. */
function startHog(): { pid: number; go: () => void; exit: Promise<string | null> } {
  const child = spawn('sh', ['-c', 'read x; exec busybox dd if=/dev/zero of=/dev/null bs=64M count=1'], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  writeFileSync(join(cg, 'cgroup.procs'), String(child.pid));
  const exit = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  return { pid: child.pid!, go: () => child.stdin!.end('go\n'), exit };
}

describe.runIf(realCgroups)('OomWatcher on a real v1 memory cgroup', () => {
  it('check() at process exit reports the kill synchronously, once', async () => {
    const fired: string[] = [];
    const w = new OomWatcher((id) => fired.push(id), { pollIntervalMs: 600_000 });
    const hog = startHog();
    w.watch('c1', hog.pid);
    const before = readOomKillCount(cg)!;
    await new Promise((r) => setImmediate(r)); // the initial check: nothing yet
    expect(fired).toEqual([]);
    hog.go();
    expect(await hog.exit).toBe('SIGKILL');
    expect(readOomKillCount(cg)).toBe(before + 1n);
    expect(w.check('c1')).toBe(true);
    expect(fired).toEqual(['c1']);
    expect(w.check('c1')).toBe(false); // last value kept
    w.close();
  });

  it('the poll reports a kill without check()', async () => {
    let resolveFired: (id: string) => void;
    const fired = new Promise<string>((r) => (resolveFired = r));
    const w = new OomWatcher((id) => resolveFired(id), { pollIntervalMs: 50 });
    const hog = startHog();
    w.watch('c2', hog.pid, { baseline: 'current' });
    hog.go();
    expect(await hog.exit).toBe('SIGKILL');
    expect(await fired).toBe('c2');
    w.unwatch('c2');
    expect(w.containerIds).toEqual([]);
  });

  it("baseline 'zero' reports earlier kills at once, 'current' does not", async () => {
    expect(readOomKillCount(cg)).toBeGreaterThan(0n); // from the tests above
    const fired: string[] = [];
    const w = new OomWatcher((id) => fired.push(id), { pollIntervalMs: 600_000 });
    w.watchCgroup('old', cg, { baseline: 'current' });
    w.watchCgroup('fresh', cg);
    await new Promise((r) => setImmediate(r));
    expect(fired).toEqual(['fresh']);
    w.close();
  });
});

describe('OomWatcher', () => {
  it('refuses a pid that does not exist or a directory without a counter', () => {
    const w = new OomWatcher(() => undefined);
    expect(() => w.watch('x', 999_999_999)).toThrow(expect.objectContaining({ code: 'NotFound' }));
    expect(() => w.watchCgroup('x', tmp)).toThrow(expect.objectContaining({ code: 'NotFound' }));
    expect(w.containerIds).toEqual([]);
  });

  it('follows memory.events through inotify (v2 layout, fixture file)', async () => {
    const dir = join(tmp, 'v2');
    mkdirSync(dir);
    writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n');
    let resolveFired: (id: string) => void;
    const fired = new Promise<string>((r) => (resolveFired = r));
    const w = new OomWatcher((id) => resolveFired(id), { pollIntervalMs: 600_000 });
    w.watchCgroup('v2c', dir);
    await new Promise((r) => setImmediate(r));
    writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    expect(await fired).toBe('v2c');
    expect(w.check('v2c')).toBe(false);
    w.close();
  });

  it('reports a throwing callback to onError and keeps going', () => {
    const dir = join(tmp, 'throws');
    mkdirSync(dir);
    writeFileSync(join(dir, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n');
    const errors: unknown[] = [];
    const w = new OomWatcher(
      () => {
        throw new Error('core bug');
      },
      { pollIntervalMs: 600_000, onError: (e) => errors.push(e) },
    );
    w.watchCgroup('t', dir);
    writeFileSync(join(dir, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    expect(w.check('t')).toBe(true);
    expect((errors[0] as Error).message).toBe('core bug');
    w.close();
  });
});
