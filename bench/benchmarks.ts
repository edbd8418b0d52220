/**
 * What the bench measures. Each benchmark takes `samples` samples per runtime, interleaved
 * across runtimes (sample 1 of every runtime, then sample 2, ...) so that machine drift hits
 * all columns alike. A sample returns named values (e.g. rss/pss/anon); each becomes a row per
 * statistic. Add a Benchmark to BENCHMARKS to get new rows (pod start latency, ...).
 */
import type { PrivateContainerd } from '../test/e2e/harness/private-containerd.js';
import { readMemory, sumMemory, type MemoryUsage } from '../test/e2e/harness/proc-fs.js';
import { BUSYBOX_IMAGE } from '../test/e2e/harness/test-images.js';
import { waitUntil } from '../test/e2e/harness/wait-until.js';
import type { BenchRuntime } from './runtimes.js';

export interface BenchContext {
  cd: PrivateContainerd;
  /** Unique container id. */
  newId(tag: string): string;
  /** `ctr run` argv for runtime `rt` (flags go before the image). */
  runArgs(rt: BenchRuntime, flags: string[], id: string, command: string[]): string[];
}

export type Statistic = 'median' | 'p90';

export interface BenchValue {
  key: string;
  label: string;
  /** Defaults to the benchmark's unit. */
  unit?: string;
}

export interface Benchmark {
  title: string;
  unit: string;
  samples(): number;
  /** Samples per runtime thrown away first (caches, page cache, JIT). */
  warmup: number;
  statistics: Statistic[];
  /** Values a sample returns, in row order. */
  values: BenchValue[];
  sample(ctx: BenchContext, rt: BenchRuntime): Promise<Record<string, number>>;
  /** Whether the benchmark measures this runtime (default: every runtime). */
  measures?(rt: BenchRuntime): boolean;
  /** Called once after the last sample, also after a failure. */
  finish?(ctx: BenchContext): Promise<void>;
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? Number.NaN : Number.parseInt(raw, 10);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

async function ctrOrThrow(ctx: BenchContext, args: string[], timeoutMs = 60_000): Promise<void> {
  const result = await ctx.cd.ctr(args, { timeoutMs });
  if (result.exitCode !== 0) {
    throw new Error(`ctr ${args.join(' ')} exited ${result.exitCode}: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

async function startSleepers(ctx: BenchContext, rt: BenchRuntime, count: number): Promise<string[]> {
  const ids: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const id = ctx.newId('mem');
      ids.push(id);
      await ctrOrThrow(ctx, ctx.runArgs(rt, ['-d'], id, ['sleep', '3600']));
    }
  } catch (err) {
    await removeContainers(ctx, ids);
    throw err;
  }
  return ids;
}

async function removeContainers(ctx: BenchContext, ids: string[]): Promise<void> {
  for (const id of ids) {
    await ctx.cd.ctr(['task', 'delete', '--force', id], { timeoutMs: 30_000 });
    await ctx.cd.ctr(['container', 'rm', id], { timeoutMs: 30_000 });
  }
  await waitUntil(() => ctx.cd.shimProcesses().length === 0, { timeoutMs: 15_000, what: 'shims to exit' }).catch(() => {});
}

/** Memory of every shim process of the instance (only this runtime's containers run). */
async function shimMemory(ctx: BenchContext): Promise<MemoryUsage & { processes: number }> {
  // Let start-up garbage settle (lazy initialisation, freed buffers) before reading.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const shims = ctx.cd.shimProcesses();
  const usages = shims.map((s) => readMemory(s.pid)).filter((u): u is MemoryUsage => u !== undefined);
  return { ...sumMemory(usages), processes: shims.length };
}

/** runtime label → the container that keeps a `warm` runtime's shim up during the latency runs */
const residents = new Map<string, string>();

const runTrueLatency: Benchmark = {
  title: 'ctr run --rm /bin/true',
  unit: 'ms',
  samples: () => envInt('TSSHIM_BENCH_RUNS', 20),
  warmup: 2,
  statistics: ['median', 'p90'],
  values: [{ key: 'latency', label: 'latency' }],
  async sample(ctx, rt) {
    if (rt.warm && !residents.has(rt.label)) residents.set(rt.label, (await startSleepers(ctx, rt, 1))[0]!);
    const id = ctx.newId('true');
    const started = process.hrtime.bigint();
    await ctrOrThrow(ctx, ctx.runArgs(rt, ['--rm'], id, ['/bin/true']));
    return { latency: Number(process.hrtime.bigint() - started) / 1e6 };
  },
  async finish(ctx) {
    await removeContainers(ctx, [...residents.values()]);
    residents.clear();
  },
};

function memoryBenchmark(containers: number): Benchmark {
  return {
    title: containers === 1 ? 'shim memory, 1 container' : `shim memory total, ${containers} containers`,
    unit: 'MiB',
    samples: () => envInt('TSSHIM_BENCH_MEMORY_RUNS', 1),
    warmup: 0,
    statistics: ['median'],
    measures: (rt) => !rt.warm && !rt.containerdEnv,
    values: [
      { key: 'rss', label: 'RSS' },
      { key: 'pss', label: 'PSS' },
      { key: 'anon', label: 'anonymous' },
      { key: 'processes', label: 'shim processes', unit: 'count' },
    ],
    async sample(ctx, rt) {
      const ids = await startSleepers(ctx, rt, containers);
      try {
        const memory = await shimMemory(ctx);
        return {
          rss: memory.rssKb / 1024,
          pss: memory.pssKb / 1024,
          anon: memory.anonKb / 1024,
          processes: memory.processes,
        };
      } finally {
        await removeContainers(ctx, ids);
      }
    },
  };
}

/**
 * What a spare costs while it waits (src/shim/spare.ts): the memory of the one spare a
 * start of this runtime leaves booted. Only tsshim runtimes with spares have one.
 */
const spareMemory: Benchmark = {
  title: 'idle spare daemon memory',
  unit: 'MiB',
  samples: () => envInt('TSSHIM_BENCH_MEMORY_RUNS', 1),
  warmup: 0,
  statistics: ['median'],
  measures: (rt) => rt.runtime === 'io.containerd.tsshim.v2' && !rt.warm && !rt.containerdEnv,
  values: [
    { key: 'rss', label: 'RSS' },
    { key: 'pss', label: 'PSS' },
    { key: 'anon', label: 'anonymous' },
  ],
  async sample(ctx, rt) {
    // Spares of the other runtimes measured before (other configs: other keys) wait on the same
    // containerd: the one to measure is the spare this start leaves, the new one.
    const before = new Set(ctx.cd.spareProcesses().map((s) => s.pid));
    await ctrOrThrow(ctx, ctx.runArgs(rt, ['--rm'], ctx.newId('spare'), ['/bin/true']));
    const spare = await waitUntil(() => ctx.cd.spareProcesses().find((s) => !before.has(s.pid)), { timeoutMs: 20_000, what: 'a booted spare' });
    // settled, as shimMemory does
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const m = readMemory(spare.pid);
    if (!m) throw new Error(`spare ${spare.pid} vanished`);
    return { rss: m.rssKb / 1024, pss: m.pssKb / 1024, anon: m.anonKb / 1024 };
  },
};

export const BENCHMARKS: Benchmark[] = [runTrueLatency, memoryBenchmark(1), memoryBenchmark(10), spareMemory];
