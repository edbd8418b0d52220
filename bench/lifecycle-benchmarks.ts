/**
 * Lifecycle latency of one container running /bin/true, create + start + wait + delete,
 * for the native executor against crun and runc, measured two ways in the same run:
 *
 *  - standalone: the runc command line on one busybox bundle, `tsrun run` against
 *    `crun run` and `runc run` (each does the four steps in one process);
 *  - through the shim: the Task API (Create, Start, Wait, Delete over ttrpc) on a running
 *    tsshim per backend (the aliases containerd-shim-tsshim-{native,crun,runc}-v2), which
 *    is what containerd pays per container once the pod's shim is up;
 *  - podman: `podman run --rm` with each CLI as podman's OCI runtime (target ≤ 1.0× crun).
 *
 * Samples are interleaved across runtimes so machine drift hits every column alike.
 * The target: native ≤ 0.5 × crun.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import * as net from 'node:net';
import { TtrpcClient } from '../src/ttrpc/client.js';
import { TtrpcServer } from '../src/ttrpc/server.js';
import { EVENTS_SERVICE, TASK_SERVICE_V2 } from '../src/proto/typeurls.js';
import {
  CreateTaskRequest,
  DeleteRequest,
  ShutdownRequest,
  StartRequest,
  WaitRequest,
  WaitResponse,
} from '../src/proto/gen/containerd/task/v2/shim.js';
import { median, percentile } from './stats.js';
import { nodeStartMs } from './node-floor.js';

const RUNS = Number(process.env.TSSHIM_BENCH_LIFECYCLE_RUNS ?? 30);
const WARMUP = 3;
const NAMESPACE = 'tsshim-bench-lifecycle';
export const LIFECYCLE_RUNTIMES = ['native', 'crun', 'runc'] as const;
type Runtime = (typeof LIFECYCLE_RUNTIMES)[number];

export interface LifecycleRow {
  metric: string;
  /** runtime → [median, p90] in ms */
  values: Map<Runtime, [number, number]>;
  /** the target for native/crun (default 0.5) */
  target?: number;
}

export interface LifecycleResult {
  rows: LifecycleRow[];
  failures: string[];
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TSRUN = path.join(repoRoot, 'bin/tsrun');
const CLI: Record<Runtime, string> = { native: TSRUN, crun: 'crun', runc: 'runc' };

/** tsrun's spares are opt-in for now (TSRUN_SPARE_IDLE): the tsrun column asks for them */
const WITH_SPARES = { ...process.env, TSRUN_SPARE_IDLE: '60' };

/** one lifecycle per call, in ms */
type Lifecycle = (i: number) => Promise<number>;

/** busybox (static, from Debian) rootfs + `runc spec` config running /bin/true */
function makeBundle(dir: string, cgroupsPath: string): string {
  const rootfs = path.join(dir, 'rootfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  fs.symlinkSync('busybox', path.join(rootfs, 'bin/true'));
  execFileSync('runc', ['spec'], { cwd: dir });
  const spec = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  spec.process.args = ['/bin/true'];
  spec.process.terminal = false;
  spec.root = { path: 'rootfs', readonly: true };
  spec.linux.cgroupsPath = cgroupsPath;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
  return dir;
}

function elapsedMs(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * `<cli> run`: the four steps in one process; sequential runs reuse the bundle. tsrun hands
 * each command to a spare booted by the one before (src/launcher/tsrun-front.c); `env`
 * says whether (TSRUN_SPARE_IDLE: unset or 0, every command boots Node, as on an idle node).
 */
function standalone(rt: Runtime, bundle: string, root: string, env?: NodeJS.ProcessEnv): Lifecycle {
  return async (i) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(CLI[rt], ['--root', root, 'run', '--bundle', bundle, `${rt}-${i}`], { stdio: 'ignore', timeout: 30_000, env: env ?? process.env });
    const ms = elapsedMs(t0);
    if (r.status !== 0) throw new Error(`${rt} run exited ${r.status ?? r.signal}`);
    return ms;
  };
}

/** where the shims publish: a ttrpc Events endpoint that accepts and drops everything */
async function eventSink(dir: string): Promise<{ ttrpcPath: string; close(): Promise<void> }> {
  const ttrpcPath = path.join(dir, 'events.sock');
  const server = new TtrpcServer();
  server.register(EVENTS_SERVICE, { Forward: async () => new Uint8Array(0) });
  const listener = net.createServer();
  server.listen(listener);
  await new Promise<void>((resolve) => listener.listen(ttrpcPath, resolve));
  return {
    ttrpcPath,
    close: async () => {
      await server.close();
      await new Promise<void>((r) => listener.close(() => r()));
    },
  };
}

interface ShimSession {
  run: Lifecycle;
  close(): Promise<void>;
}

/** a tsshim with backend `rt` (by alias), started as containerd starts one, driven over ttrpc */
async function throughShim(rt: Runtime, bundle: string, sinkPath: string): Promise<ShimSession> {
  const binary = path.join(repoRoot, `bin/containerd-shim-tsshim-${rt}-v2`);
  const started = await execa(binary, ['-namespace', NAMESPACE, '-address', `${sinkPath}.grpc`, '-publish-binary', '/bin/false', '-id', `${rt}-shim`, 'start'], {
    cwd: bundle,
    env: { TTRPC_ADDRESS: sinkPath },
    input: '',
    timeout: 20_000,
  });
  const client = await TtrpcClient.connect(started.stdout.trim().replace(/^unix:\/\//, ''), { timeoutMs: 5_000 });
  const call = (method: string, payload: Uint8Array): Promise<Uint8Array> => client.call(TASK_SERVICE_V2, method, payload, { timeoutMs: 30_000 });
  const run: Lifecycle = async (i) => {
    const id = `${rt}-${i}`;
    const t0 = process.hrtime.bigint();
    await call('Create', CreateTaskRequest.encode(CreateTaskRequest.fromPartial({ id, bundle })).finish());
    await call('Start', StartRequest.encode({ id, execId: '' }).finish());
    const waited = WaitResponse.decode(await call('Wait', WaitRequest.encode({ id, execId: '' }).finish()));
    await call('Delete', DeleteRequest.encode({ id, execId: '' }).finish());
    const ms = elapsedMs(t0);
    if (waited.exitStatus !== 0) throw new Error(`${rt} through the shim: /bin/true exited ${waited.exitStatus}`);
    return ms;
  };
  return {
    run,
    close: async () => {
      await call('Shutdown', ShutdownRequest.encode({ id: `${rt}-shim`, now: true }).finish()).catch(() => undefined);
      await client.close();
    },
  };
}

function removeCgroups(parent: string): void {
  for (const entry of fs.readdirSync('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', entry, parent);
    if (!fs.existsSync(dir)) continue;
    for (const child of fs.readdirSync(dir, { withFileTypes: true })) if (child.isDirectory()) fs.rmSync(path.join(dir, child.name), { recursive: false, force: true });
    try {
      fs.rmdirSync(dir);
    } catch {
      // a cgroup some process still holds: reported by nothing, seen by the next run
    }
  }
}

/** samples of every runner, interleaved; a runner that fails is dropped with its reason */
async function measure<K extends string>(runners: Map<K, Lifecycle>, failures: string[], what: string, runs = RUNS): Promise<Map<K, [number, number]>> {
  const samples = new Map<K, number[]>();
  for (let i = 0; i < WARMUP + runs; i++) {
    for (const [rt, run] of runners) {
      try {
        const ms = await run(i);
        if (i >= WARMUP) samples.set(rt, [...(samples.get(rt) ?? []), ms]);
      } catch (err) {
        failures.push(`${what}, ${rt}: ${(err as Error).message}`);
        runners.delete(rt);
        samples.delete(rt);
      }
    }
  }
  return new Map([...samples].map(([rt, s]) => [rt, [median(s), percentile(s, 90)] as [number, number]]));
}

export async function runLifecycleBenchmarks(): Promise<LifecycleResult> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-bench-lifecycle-'));
  const cgroupParent = `/tsshim-bench-lifecycle-${process.pid}`;
  const failures: string[] = [];
  const rows: LifecycleRow[] = [];
  const sink = await eventSink(work);
  const shims: ShimSession[] = [];
  try {
    const cliRunners = new Map<Runtime | 'floor' | 'no-spare', Lifecycle>();
    const cliBundle = makeBundle(path.join(work, 'cli-bundle'), `${cgroupParent}/cli`);
    for (const rt of LIFECYCLE_RUNTIMES) cliRunners.set(rt, standalone(rt, cliBundle, path.join(work, `${rt}-root`), rt === 'native' ? WITH_SPARES : undefined));
    cliRunners.set('no-spare', standalone('native', cliBundle, path.join(work, 'native-cold-root'), { ...process.env, TSRUN_SPARE_IDLE: '0' }));
    // Node's start alone, interleaved with the CLIs: the floor under every tsrun call
    cliRunners.set('floor', async () => nodeStartMs());
    const cli = await measure(cliRunners, failures, 'standalone');
    const floor = cli.get('floor');
    const noSpare = cli.get('no-spare');
    cli.delete('floor');
    cli.delete('no-spare');
    rows.push({ metric: 'standalone: `<cli> run` (tsrun | crun | runc)', values: cli as Map<Runtime, [number, number]> });
    if (noSpare && cli.has('crun')) {
      rows.push({ metric: 'standalone: `tsrun run` without a spare (TSRUN_SPARE_IDLE=0)', values: new Map([['native', noSpare], ['crun', cli.get('crun')!]]) });
    }
    if (floor && cli.has('crun')) {
      rows.push({ metric: "Node's start alone, `node -e 0` (tsrun's floor)", values: new Map([['native', floor], ['crun', cli.get('crun')!]]) });
    }

    const shimRunners = new Map<Runtime, Lifecycle>();
    for (const rt of LIFECYCLE_RUNTIMES) {
      try {
        const bundle = makeBundle(path.join(work, `shim-${rt}`), `${cgroupParent}/shim-${rt}`);
        const session = await throughShim(rt, bundle, sink.ttrpcPath);
        shims.push(session);
        shimRunners.set(rt, session.run);
      } catch (err) {
        failures.push(`through the shim, ${rt}: ${(err as Error).message}`);
      }
    }
    rows.push({ metric: 'through the shim: Create+Start+Wait+Delete', values: await measure(shimRunners, failures, 'through the shim') });
    const podman = await podmanRow(work, failures);
    if (podman) rows.push(podman);
  } finally {
    for (const s of shims) await s.close();
    await sink.close();
    removeCgroups(cgroupParent);
    for (const root of ['/run/containerd/runc', '/run/tsshim/native']) fs.rmSync(path.join(root, NAMESPACE), { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
  return { rows, failures };
}

const PODMAN_RUNS = Number(process.env.TSSHIM_BENCH_PODMAN_RUNS ?? 10);
/** this host's root cannot grant podman's default rlimits (see test/e2e/podman-tsrun.test.ts) */
const PODMAN_ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

/**
 * Debian's podman with each runtime as its OCI runtime (`--runtime`), private storage:
 * `podman run --rm busybox true`, which calls the runtime's create, start, state and delete
 * (each a tsrun command, each handed to a spare).
 */
async function podmanRow(work: string, failures: string[]): Promise<LifecycleRow | undefined> {
  if (!fs.existsSync('/usr/bin/podman')) {
    failures.push('podman run --rm: podman is not installed');
    return undefined;
  }
  const storage = ['--root', path.join(work, 'podman-root'), '--runroot', path.join(work, 'podman-run'), '--cgroup-manager', 'cgroupfs'];
  const hadLibpodParent = fs.existsSync('/sys/fs/cgroup/memory/libpod_parent');
  try {
    const { buildTestImages, BUSYBOX_IMAGE } = await import('../test/e2e/harness/test-images.js');
    const images = await buildTestImages();
    execFileSync('podman', [...storage, 'load', '-i', images.busybox.tarball], { stdio: 'ignore', timeout: 120_000 });
    const runners = new Map<Runtime, Lifecycle>();
    for (const rt of LIFECYCLE_RUNTIMES) {
      runners.set(rt, async () => {
        const t0 = process.hrtime.bigint();
        const r = spawnSync('podman', [...storage, '--runtime', CLI[rt], 'run', '--rm', ...PODMAN_ULIMITS, BUSYBOX_IMAGE, 'true'], { stdio: 'ignore', timeout: 60_000, env: WITH_SPARES });
        const ms = elapsedMs(t0);
        if (r.status !== 0) throw new Error(`podman --runtime ${rt} run exited ${r.status ?? r.signal}`);
        return ms;
      });
    }
    return { metric: 'podman run --rm busybox true (--runtime tsrun | crun | runc)', values: await measure(runners, failures, 'podman', PODMAN_RUNS), target: 1.0 };
  } catch (err) {
    failures.push(`podman run --rm: ${(err as Error).message}`);
    return undefined;
  } finally {
    spawnSync('podman', [...storage, 'rm', '--all', '--force'], { stdio: 'ignore', timeout: 60_000 });
    spawnSync('podman', [...storage, 'rmi', '--all', '--force'], { stdio: 'ignore', timeout: 60_000 });
    // podman's cgroupfs manager leaves its conmon cgroup behind (with any runtime)
    if (!hadLibpodParent) {
      for (const c of fs.readdirSync('/sys/fs/cgroup')) {
        for (const d of [path.join('/sys/fs/cgroup', c, 'libpod_parent/conmon'), path.join('/sys/fs/cgroup', c, 'libpod_parent')]) {
          try {
            fs.rmdirSync(d);
          } catch {
            // not there, or in use
          }
        }
      }
    }
  }
}

export function printLifecycleTable(result: LifecycleResult): void {
  console.log(`create+start+wait+delete of /bin/true, ${RUNS} runs each, interleaved (median / p90, ms)`);
  const header = ['', ...LIFECYCLE_RUNTIMES, 'native/crun'];
  const table = result.rows.map((row) => {
    const cell = (rt: Runtime) => {
      const v = row.values.get(rt);
      return v ? `${v[0].toFixed(2)} / ${v[1].toFixed(2)}` : 'n/a';
    };
    const n = row.values.get('native')?.[0];
    const c = row.values.get('crun')?.[0];
    return [row.metric, ...LIFECYCLE_RUNTIMES.map(cell), n !== undefined && c !== undefined ? `${(n / c).toFixed(2)}× (target ≤ ${row.target ?? 0.5})` : 'n/a'];
  });
  const widths = header.map((_, i) => Math.max(...[header, ...table].map((r) => r[i]!.length)));
  for (const r of [header, ...table]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  for (const f of result.failures) console.log(`NOT MEASURED: ${f}`);
}
