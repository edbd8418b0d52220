/**
 * Lifecycle latency of one container running /bin/true: create + start + wait + delete.
 * The native backend (through its Backend API, in this process, exits from the Reaper)
 * against crun and runc (`<runtime> run`, which does the same four steps) on the same
 * busybox bundle. Prints medians and p90 and the native/crun ratio (target ≤ 0.5).
 *
 * Run: node dist/bench/native-lifecycle.js (after the build), as root.
 * Environment: TSSHIM_BENCH_RUNS (default 30).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeBackend } from '../src/backends/native/backend.js';
import type { ExitEvent, ExitSubscription } from '../src/core/backend.js';
import { Reaper } from '../src/sys/reaper.js';
import { median, percentile } from './stats.js';

const RUNS = Number(process.env.TSSHIM_BENCH_RUNS ?? 30);
const WARMUP = 3;
const CGROUP_PARENT = `/tsshim-bench-${process.pid}`;

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package root not found');
    dir = up;
  }
  return dir;
}

/** busybox rootfs + `runc spec` config running /bin/true */
function makeBundle(dir: string): string {
  const rootfs = path.join(dir, 'rootfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  fs.symlinkSync('busybox', path.join(rootfs, 'bin/true'));
  fs.symlinkSync('busybox', path.join(rootfs, 'bin/sh'));
  spawnSync('runc', ['spec'], { cwd: dir });
  const spec = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  spec.process.args = ['/bin/true'];
  spec.process.terminal = false;
  spec.root = { path: 'rootfs', readonly: true };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

function setCgroupsPath(bundle: string, id: string): void {
  const file = path.join(bundle, 'config.json');
  const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  spec.linux.cgroupsPath = `${CGROUP_PARENT}/${id}`;
  fs.writeFileSync(file, JSON.stringify(spec));
}

function exitOf(sub: ExitSubscription, pid: number): Promise<ExitEvent> {
  const seen = sub.take(pid);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => sub.onExit((e) => e.pid === pid && resolve(e)));
}

interface Result {
  label: string;
  samples: number[];
}

/** one lifecycle per call; returns milliseconds */
type Lifecycle = (i: number) => Promise<number>;

function nativeLifecycle(bundle: string, stateRoot: string, helperPath: string): { run: Lifecycle; close: () => void } {
  const reaper = Reaper.install();
  const sub = reaper.subscribe();
  const backend = new NativeBackend({ root: stateRoot, exits: reaper, helperPath });
  const run: Lifecycle = async (i) => {
    const id = `native-${i}`;
    setCgroupsPath(bundle, id);
    const t0 = process.hrtime.bigint();
    const { container, pid } = await backend.create({ id, namespace: 'bench', bundle, stdio: { terminal: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }, options: {} });
    await backend.start(container);
    const e = await exitOf(sub, pid);
    await backend.delete(container, { force: false });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (e.status !== 0) throw new Error(`native: /bin/true exited ${e.status}`);
    return ms;
  };
  return { run, close: () => sub.close() };
}

/** `<runtime> run` = create + start + wait + delete in one CLI call */
function cliLifecycle(binary: string, bundle: string, root: string): Lifecycle {
  return async (i) => {
    const id = `${binary}-${i}`;
    setCgroupsPath(bundle, id);
    const t0 = process.hrtime.bigint();
    const r = spawnSync(binary, ['--root', root, 'run', '--bundle', bundle, id], { stdio: 'ignore' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${binary} run exited ${r.status ?? r.signal}`);
    return ms;
  };
}

function removeCgroups(): void {
  for (const entry of fs.readdirSync('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', entry, CGROUP_PARENT);
    if (!fs.existsSync(dir)) continue;
    for (const child of fs.readdirSync(dir, { withFileTypes: true })) if (child.isDirectory()) fs.rmdirSync(path.join(dir, child.name));
    fs.rmdirSync(dir);
  }
}

async function main(): Promise<void> {
  const repo = findRepoRoot();
  const { buildNative } = (await import(path.join(repo, 'scripts/build-native.mjs'))) as { buildNative: (root: string) => string };
  const helperPath = buildNative(repo);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-bench-native-'));
  try {
    const bundle = makeBundle(path.join(work, 'bundle'));
    const native = nativeLifecycle(bundle, path.join(work, 'native-state'), helperPath);
    const runners: Array<{ label: string; run: Lifecycle }> = [{ label: 'native', run: native.run }];
    for (const binary of ['crun', 'runc']) {
      const run = cliLifecycle(binary, bundle, path.join(work, `${binary}-state`));
      try {
        await run(-1); // also the availability check
        runners.push({ label: binary, run });
      } catch (err) {
        console.log(`${binary}: not measured (${(err as Error).message})`);
      }
    }
    // interleaved, so every runtime sees the same machine load
    const results: Result[] = runners.map((r) => ({ label: r.label, samples: [] }));
    for (let i = 0; i < WARMUP + RUNS; i++) {
      for (const [k, r] of runners.entries()) {
        const ms = await r.run(i);
        if (i >= WARMUP) results[k]!.samples.push(ms);
      }
    }
    native.close();
    console.log(`create+start+wait+delete of /bin/true, ${RUNS} runs (${os.cpus().length} cpus, kernel ${os.release()})`);
    for (const r of results) console.log(`  ${r.label.padEnd(8)} median ${median(r.samples).toFixed(2)} ms   p90 ${percentile(r.samples, 90).toFixed(2)} ms`);
    const crun = results.find((r) => r.label === 'crun');
    if (crun) console.log(`  native / crun = ${(median(results[0]!.samples) / median(crun.samples)).toFixed(2)} (target ≤ 0.5)`);
  } finally {
    removeCgroups();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// the Reaper learns of exits from SIGCHLD, which does not keep Node's event loop alive
const keepAlive = setInterval(() => undefined, 1000);
try {
  await main();
} finally {
  clearInterval(keepAlive);
}
