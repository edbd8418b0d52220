/**
 * The Reaper with child_process loaded after it (src/sys/lazy-builtins.ts), in a fresh Node
 * process as in the daemon: children spawned through childProcess() keep their exits (the
 * Reaper must never reap libuv's children), while orphans and other children of ours are
 * still reaped. Runs the build (dist/src), since it needs a process vitest has not touched.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { repoRoot } from '../e2e/harness/repo-paths.js';

const SCRIPT = `
import { Reaper } from ${JSON.stringify(path.join(repoRoot, 'dist/src/sys/reaper.js'))};
import { childProcess, isLoaded } from ${JSON.stringify(path.join(repoRoot, 'dist/src/sys/lazy-builtins.js'))};
const reaper = Reaper.install();
const sub = reaper.subscribe();
const reaped = [];
sub.onExit((e) => reaped.push(e.pid));
const loadedBefore = isLoaded('child_process');
const cp = childProcess();
// an orphan: its parent exits at once, so it is reparented to us (a subreaper)
const orphanPid = Number(cp.execFileSync('sh', ['-c', 'sleep 0.2 & echo $!'], { encoding: 'utf8' }).trim());
const exits = [];
for (let i = 0; i < 20; i++) {
  exits.push(new Promise((resolve) => {
    const child = cp.spawn('sh', ['-c', 'exit ' + (i % 3)], { stdio: 'ignore' });
    child.on('exit', (code) => resolve({ pid: child.pid, code }));
  }));
}
// block until every child is a zombie, then make the Reaper sweep before libuv's SIGCHLD
// handling can run: an untracked child would be reaped here and never see 'exit'
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
reaper.want(orphanPid);
const results = await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(() => r('timeout'), 10000))]);
for (let i = 0; i < 100 && !reaped.includes(orphanPid); i++) await new Promise((r) => setTimeout(r, 50));
console.log(JSON.stringify({ loadedBefore, results, orphanReaped: reaped.includes(orphanPid), stolen: results === 'timeout' ? [] : results.filter((r) => reaped.includes(r.pid)).length }));
process.exit(0);
`;

describe('Reaper and a child_process loaded later', () => {
  it('child_process children keep their exits; orphans are reaped', async () => {
    const r = await execa(process.execPath, ['--input-type=module', '-e', SCRIPT], { timeout: 30_000 });
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      loadedBefore: boolean;
      results: Array<{ pid: number; code: number }> | 'timeout';
      orphanReaped: boolean;
      stolen: number;
    };
    expect(out.loadedBefore).toBe(false);
    expect(out.results).not.toBe('timeout');
    expect((out.results as Array<{ code: number }>).map((x) => x.code)).toEqual(Array.from({ length: 20 }, (_, i) => i % 3));
    expect(out.stolen).toBe(0);
    expect(out.orphanReaped).toBe(true);
  });
});
