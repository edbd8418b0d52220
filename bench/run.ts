/**
 * tsshim bench: `npm run bench` (after `npm run build`). Starts a private containerd and
 * compares each runtime in BENCH_RUNTIMES against the reference (containerd's runc shim):
 * `ctr run --rm` latency and shim memory. A runtime that is missing or fails is reported and
 * left out; the reference is always measured.
 *
 * Then the lifecycle benchmarks (bench/lifecycle-benchmarks.ts): create+start+wait+delete
 * of /bin/true, native executor vs crun vs runc, standalone CLIs and through the shim.
 *
 * Then the pod benchmarks (bench/pod-benchmarks.ts): pods through CRI, runc handler vs tsshim
 * handler in one CRI-enabled containerd (pod start latency, shim memory per pod).
 *
 * Then the gVisor rows (bench/gvisor-benchmarks.ts): tsshim's gvisor backend against runsc
 * behind containerd's runc shim.
 *
 * Then the kata rows (bench/kata-benchmarks.ts): tsshim's kata backend against the floor, the
 * same QEMU booting the same kernel to an init that powers off, measured in the same run.
 *
 * Environment: TSSHIM_BENCH_RUNS (latency samples, default 20), TSSHIM_BENCH_MEMORY_RUNS
 * (default 1), TSSHIM_BENCH_LIFECYCLE_RUNS (default 30), TSSHIM_BENCH_JSON=<file> (also
 * write the results as JSON), TSSHIM_BENCH_ONLY (`ctr`, `lifecycle`, `pods`, `gvisor` or `kata`: run
 * only that part), TSSHIM_BENCH_VARIANTS (ctr part: only the runtimes whose label contains one of
 * these comma-separated words, plus the reference), plus the pod benchmarks' own variables.
 */
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { PrivateContainerd } from '../test/e2e/harness/private-containerd.js';
import { BUSYBOX_IMAGE } from '../test/e2e/harness/test-images.js';
import { BENCHMARKS, type BenchContext, type Benchmark, type Statistic } from './benchmarks.js';
import { printLifecycleTable, runLifecycleBenchmarks } from './lifecycle-benchmarks.js';
import { printPodTable, runPodBenchmarks, type PodBenchResult } from './pod-benchmarks.js';
import { printGvisorTable, runGvisorBenchmarks, type GvisorBenchResult } from './gvisor-benchmarks.js';
import { printKataTable, runKataBenchmarks, type KataBenchResult } from './kata-benchmarks.js';
import { REFERENCE, selectRuntimes, type BenchRuntime } from './runtimes.js';
import { median, percentile } from './stats.js';
import { describeFloor, idleNodeServerMemory } from './node-floor.js';

/** samples[benchmark title][runtime label][value key] */
type Samples = Map<string, Map<string, Map<string, number[]>>>;

interface Row {
  metric: string;
  unit: string;
  values: Map<string, number>;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function statistic(samples: number[], stat: Statistic): number {
  return stat === 'median' ? median(samples) : percentile(samples, 90);
}

function record(samples: Samples, bench: Benchmark, rt: BenchRuntime, values: Record<string, number>): void {
  let byRuntime = samples.get(bench.title);
  if (!byRuntime) samples.set(bench.title, (byRuntime = new Map()));
  let byValue = byRuntime.get(rt.label);
  if (!byValue) byRuntime.set(rt.label, (byValue = new Map()));
  for (const [key, value] of Object.entries(values)) {
    const list = byValue.get(key) ?? [];
    list.push(value);
    byValue.set(key, list);
  }
}

function buildRows(samples: Samples, runtimes: BenchRuntime[]): Row[] {
  const rows: Row[] = [];
  for (const bench of BENCHMARKS) {
    for (const value of bench.values) {
      for (const stat of bench.statistics) {
        const values = new Map<string, number>();
        for (const rt of runtimes) {
          const list = samples.get(bench.title)?.get(rt.label)?.get(value.key);
          if (list && list.length > 0) values.set(rt.label, statistic(list, stat));
        }
        const statLabel = bench.statistics.length > 1 || stat !== 'median' ? ` ${stat}` : '';
        rows.push({ metric: `${bench.title}: ${value.label}${statLabel}`, unit: value.unit ?? bench.unit, values });
      }
    }
  }
  return rows;
}

function formatNumber(value: number | undefined, unit: string): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (unit === 'count') return String(Math.round(value));
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function printTable(rows: Row[], runtimes: BenchRuntime[]): void {
  const others = runtimes.filter((rt) => rt !== REFERENCE);
  const header = ['metric', ...runtimes.map((rt) => rt.label), ...others.map((rt) => `${rt.label}/ref`)];
  const body = rows.map((row) => {
    const ref = row.values.get(REFERENCE.label);
    return [
      `${row.metric} (${row.unit})`,
      ...runtimes.map((rt) => formatNumber(row.values.get(rt.label), row.unit)),
      ...others.map((rt) => {
        const value = row.values.get(rt.label);
        return value !== undefined && ref !== undefined && ref > 0 ? `${(value / ref).toFixed(2)}x` : '-';
      }),
    ];
  });
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((cells) => cells[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const cells of body) console.log(line(cells));
}

/** Tries one `ctr run --rm /bin/true`; returns why the runtime is unusable, if it is. */
async function probe(ctx: BenchContext, rt: BenchRuntime): Promise<string | undefined> {
  const reason = rt.unavailableReason();
  if (reason) return reason;
  const result = await ctx.cd.ctr(ctx.runArgs(rt, ['--rm'], ctx.newId('probe'), ['/bin/true']), { timeoutMs: 60_000 });
  if (result.exitCode === 0) return undefined;
  const stderr = result.stderr.trim().split('\n').slice(-2).join(' | ');
  return `ctr run failed (exit ${result.exitCode}${result.timedOut ? ', timed out' : ''}): ${stderr}`;
}

async function main(): Promise<number> {
  const only = process.env.TSSHIM_BENCH_ONLY;
  if (only === 'pods') return podsOnly();
  if (only === 'lifecycle') return lifecycleOnly();
  if (only === 'gvisor') return gvisorOnly();
  if (only === 'kata') return kataOnly();
  const code = await ctrBenchmarks();
  if (code !== 0 || only === 'ctr') return code;
  const lifecycle = await lifecycleOnly();
  if (lifecycle !== 0) return lifecycle;
  const pods = await podsOnly();
  if (pods !== 0) return pods;
  const gvisor = await gvisorOnly();
  if (gvisor !== 0) return gvisor;
  return kataOnly();
}

async function kataOnly(): Promise<number> {
  console.log('');
  console.log('tsshim bench: kata, tsshim kata backend vs the floor (same QEMU + kernel, an init that powers off)...');
  let result: KataBenchResult;
  try {
    result = await runKataBenchmarks();
  } catch (err) {
    console.log(`NOT MEASURED: kata: ${errorText(err)}`);
    return 0;
  }
  console.log('');
  printKataTable(result);
  jsonResult.kata = result;
  writeJson();
  return 0;
}

async function gvisorOnly(): Promise<number> {
  console.log('');
  console.log('tsshim bench: gVisor, tsshim gvisor backend vs runsc behind the runc shim...');
  let result: GvisorBenchResult;
  try {
    result = await runGvisorBenchmarks();
  } catch (err) {
    console.log(`NOT MEASURED: gVisor: ${errorText(err)}`);
    return 0;
  }
  console.log('');
  printGvisorTable(result);
  jsonResult.gvisor = result;
  writeJson();
  return 0;
}

async function lifecycleOnly(): Promise<number> {
  console.log('');
  console.log('tsshim bench: container lifecycle, native executor vs crun vs runc...');
  const result = await runLifecycleBenchmarks();
  console.log('');
  printLifecycleTable(result);
  jsonResult.lifecycle = {
    failures: result.failures,
    rows: result.rows.map((row) => ({ metric: row.metric, unit: 'ms', values: Object.fromEntries([...row.values].map(([rt, [med, p90]]) => [rt, { median: med, p90 }])) })),
  };
  writeJson();
  return 0;
}

let jsonResult: Record<string, unknown> = {};

function writeJson(): void {
  const jsonPath = process.env.TSSHIM_BENCH_JSON;
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(jsonResult, null, 2)}\n`);
}

async function podsOnly(): Promise<number> {
  console.log('');
  console.log('tsshim bench: pods through CRI (runc handler vs tsshim handler)...');
  const result: PodBenchResult = await runPodBenchmarks();
  console.log('');
  printPodTable(result);
  jsonResult.pods = {
    containerd: result.containerd,
    failures: Object.fromEntries(result.failures),
    rows: result.rows.map((row) => ({ metric: row.metric, unit: row.unit, values: Object.fromEntries(row.values) })),
  };
  writeJson();
  return 0;
}

async function ctrBenchmarks(): Promise<number> {
  console.log('tsshim bench: starting a private containerd...');
  const cd = await PrivateContainerd.launch();
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let counter = 0;
  const runtimes = selectRuntimes(process.env.TSSHIM_BENCH_VARIANTS);
  // a runtime that needs containerd's environment set gets a containerd of its own
  const ownContainerd = new Map<BenchRuntime, PrivateContainerd>();
  const contextFor = (rt: BenchRuntime | undefined): BenchContext => {
    const c = (rt && ownContainerd.get(rt)) ?? cd;
    return {
      cd: c,
      newId: (tag) => `${tag}-${++counter}`,
      runArgs: (r, flags, id, command) => ['run', '--runtime', r.runtime, ...r.runFlags(c), ...flags, BUSYBOX_IMAGE, id, ...command],
    };
  };
  const ctx = contextFor(undefined);
  const failures = new Map<string, string>();
  const samples: Samples = new Map();
  let version = '?';
  try {
    version = (await cd.api().version()).version;
    for (const rt of runtimes) {
      if (rt.containerdEnv) ownContainerd.set(rt, await PrivateContainerd.launch({ env: rt.containerdEnv() }));
    }
    for (const rt of runtimes) {
      const reason = await probe(contextFor(rt), rt);
      if (reason) failures.set(rt.label, reason);
    }
    if (failures.has(REFERENCE.label)) throw new Error(`reference runtime unusable: ${failures.get(REFERENCE.label)}`);

    for (const bench of BENCHMARKS) {
      const active = (): BenchRuntime[] => runtimes.filter((rt) => !failures.has(rt.label) && (bench.measures?.(rt) ?? true));
      const count = bench.samples();
      console.log(`measuring: ${bench.title} (${count} sample${count > 1 ? 's' : ''} per runtime${bench.warmup ? `, ${bench.warmup} warm-up` : ''})`);
      try {
        for (let i = 0; i < bench.warmup + count && !interrupted; i++) {
          for (const rt of active()) {
            try {
              const values = await bench.sample(contextFor(rt), rt);
              if (i >= bench.warmup) record(samples, bench, rt, values);
            } catch (err) {
              if (rt === REFERENCE) throw err;
              failures.set(rt.label, `${bench.title}: ${errorText(err)}`);
            }
          }
        }
      } finally {
        await bench.finish?.(ctx);
        for (const own of ownContainerd.values()) await bench.finish?.({ ...ctx, cd: own });
      }
    }
  } finally {
    const problems: string[] = [];
    for (const c of [cd, ...ownContainerd.values()]) {
      problems.push(...(await c.destroy()));
      // tsshim without runtime options keeps runtime state under the default root
      rmSync(join('/run/containerd/runc', c.namespace), { recursive: true, force: true });
    }
    if (problems.length > 0) console.error(`cleanup problems:\n  ${problems.join('\n  ')}`);
  }
  if (interrupted) {
    console.error('interrupted');
    return 130;
  }

  const rows = buildRows(samples, runtimes);
  console.log('');
  console.log(`containerd ${version}, kernel ${release()}, ${availableParallelism()} CPUs; runs interleaved across runtimes`);
  printTable(rows, runtimes);
  console.log('PSS splits shared pages among all processes mapping them (other Node processes included).');
  for (const [label, reason] of failures) console.log(`NOT MEASURED: ${label}: ${reason}`);
  const floor = await printNodeFloor(rows);

  jsonResult = {
    ...jsonResult,
    containerd: version,
    runtimes: runtimes.map((rt) => ({ label: rt.label, runtime: rt.runtime, error: failures.get(rt.label) ?? null })),
    rows: rows.map((row) => ({ metric: row.metric, unit: row.unit, values: Object.fromEntries(row.values) })),
    nodeFloor: floor,
  };
  writeJson();
  return 0;
}

/**
 * Node's memory floor (bench/node-floor.ts) against the reference shim with one
 * container, from the same run: how far down a Node shim could go at best.
 */
async function printNodeFloor(rows: Row[]): Promise<Record<string, number> | undefined> {
  let usage;
  try {
    usage = await idleNodeServerMemory();
  } catch (err) {
    console.log(`NOT MEASURED: Node's floor: ${errorText(err)}`);
    return undefined;
  }
  const floor = { rss: usage.rssKb / 1024, pss: usage.pssKb / 1024, anon: usage.anonKb / 1024 };
  const ref = (label: string): number | undefined => rows.find((r) => r.metric === `shim memory, 1 container: ${label}`)?.values.get(REFERENCE.label);
  const cells = describeFloor([
    { label: 'RSS', mib: floor.rss, refMib: ref('RSS') },
    { label: 'PSS', mib: floor.pss, refMib: ref('PSS') },
    { label: 'anonymous', mib: floor.anon, refMib: ref('anonymous') },
  ]);
  console.log(`Node's floor, an idle Node unix-socket server with the daemon's flags: ${cells}`);
  return floor;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
