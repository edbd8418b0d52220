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

/**
 * The runc backend's runtime CLI in a fresh process with the Reaper installed, as in the
 * daemon: it goes through posix_spawn (src/backends/runc/spawn-command.ts), so none of
 * child_process, net or Node's streams is loaded by the calls; stdout and stderr are still captured,
 * errors classified, the deadline kept, and the runtime's exits never reach the backend's
 * exit subscribers.
 */
const RUNC_SCRIPT = (dir: string): string => `
import { writeFileSync, chmodSync } from 'node:fs';
import { Reaper } from ${JSON.stringify(path.join(repoRoot, 'dist/src/sys/reaper.js'))};
import { RuncBackend } from ${JSON.stringify(path.join(repoRoot, 'dist/src/backends/runc/backend.js'))};
const reaper = Reaper.install();
const backend = new RuncBackend({ binary: 'runc', root: ${JSON.stringify(dir)}, exits: reaper, criuAvailable: false });
const seen = [];
backend.exits.subscribe().onExit((e) => seen.push(e.pid));
const cli = backend.cliFor({}, 'ns');
// unbundled ESM loads stream on its own before any call; what counts is what the calls add
const heavy = () => process.moduleLoadList.filter((m) => /^NativeModule (child_process|net|stream)$/.test(m));
const before = heavy();
const features = await backend.features();
let stateErr;
try { await cli.state('no-such-container'); } catch (err) { stateErr = { code: err.code, message: err.message }; }
const slow = ${JSON.stringify(path.join(dir, 'slow-runtime'))};
writeFileSync(slow, '#!/bin/sh\\nexec sleep 30\\n');
chmodSync(slow, 0o755);
const slowBackend = new RuncBackend({ binary: slow, root: ${JSON.stringify(dir)}, exits: reaper, criuAvailable: false, timeouts: { state: 300 } });
const t0 = Date.now();
let slowErr;
try { await slowBackend.cliFor({}, 'ns').state('x'); } catch (err) { slowErr = { code: err.code, message: err.message }; }
const slowMs = Date.now() - t0;
let missingErr;
try { await new RuncBackend({ binary: ${JSON.stringify(path.join(dir, 'no-such-runtime'))}, root: ${JSON.stringify(dir)}, exits: reaper, criuAvailable: false }).cliFor({}, 'ns').state('x'); } catch (err) { missingErr = { code: err.code, message: err.message }; }
await new Promise((r) => setTimeout(r, 100));
const builtins = heavy().filter((m) => !before.includes(m));
console.log(JSON.stringify({ hasFeatures: typeof features?.ociVersionMin === 'string', stateErr, slowErr, slowMs, missingErr, seen, builtins }));
process.exit(0);
`;

describe('the runc backend with the Reaper installed', () => {
  it('runs the runtime CLI without child_process, net or streams, and keeps every guarantee', async () => {
    const dir = (await execa('mktemp', ['-d'])).stdout.trim();
    try {
      const r = await execa(process.execPath, ['--input-type=module', '-e', RUNC_SCRIPT(dir)], { timeout: 30_000 });
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        hasFeatures: boolean;
        stateErr?: { code: string; message: string };
        slowErr?: { code: string; message: string };
        slowMs: number;
        missingErr?: { code: string; message: string };
        seen: number[];
        builtins: string[];
      };
      expect(out.hasFeatures).toBe(true); // stdout captured (JSON)
      expect(out.stateErr?.code).toBe('NotFound'); // stderr captured and classified
      expect(out.stateErr?.message).toMatch(/does not exist|not found/i);
      expect(out.slowErr?.code).toBe('DeadlineExceeded'); // killed at the deadline
      expect(out.slowMs).toBeLessThan(5_000);
      expect(out.missingErr?.code).toBe('FailedPrecondition'); // posix_spawn's ENOENT, by path
      expect(out.missingErr?.message).toMatch(/not found/);
      expect(out.seen).toEqual([]); // runtime exits are not containers'
      expect(out.builtins).toEqual([]);
    } finally {
      await execa('rm', ['-rf', dir]);
    }
  });
});
