/**
 * gVisor rows: tsshim's gvisor backend against the reference, runsc behind containerd's runc
 * shim (a `--runc-binary` wrapper with the same runsc flags), in the same run, samples
 * interleaved:
 *  - `ctr run --rm /bin/true` latency;
 *  - host memory for one container: the shim plus the sandbox and its gofer (runsc processes);
 *  - pod start through CRI: RunPodSandbox + create/start of two containers, and the pod's host
 *    memory (shim + runsc-sandbox + gofers);
 *  - both latencies again with two busy CPU loops running (bench/cpu-load.ts).
 *
 * Environment: TSSHIM_BENCH_GVISOR_RUNS (latency samples, default 10),
 * TSSHIM_BENCH_GVISOR_PODS (pod samples, default 5), TSSHIM_BENCH_RUNSC (`backports` for
 * bookworm-backports' runsc; default bookworm's), TSSHIM_BENCH_GVISOR_ROWS (`ctr`: only the
 * ctr rows, `pods`: only the pod rows; default both).
 */
import { launchCriContainerd, type CriContainerd } from '../test/e2e/harness/cri-containerd.js';
import { containerConfig, podConfig, startContainer } from '../test/e2e/harness/cri-pods.js';
import { PrivateContainerd } from '../test/e2e/harness/private-containerd.js';
import { readMemory, sumMemory, type MemoryUsage } from '../test/e2e/harness/proc-fs.js';
import { BUSYBOX_IMAGE } from '../test/e2e/harness/test-images.js';
import { waitUntil } from '../test/e2e/harness/wait-until.js';
import { RUNSC_BACKPORTS, RUNSC_DEBIAN, gvisorRunFlags, runscReferenceRunFlags, type RunscBuild } from '../test/e2e/gvisor-flags.js';
import { killQuietly } from '../src/sys/reaper.js';
import { startCpuLoad } from './cpu-load.js';
import { median } from './stats.js';

export interface GvisorBenchRow {
  metric: string;
  unit: string;
  reference: number;
  tsshim: number;
}

export interface GvisorBenchResult {
  runsc: string;
  rows: GvisorBenchRow[];
}

function envInt(name: string, fallback: number): number {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function memoryOf(pids: number[]): MemoryUsage {
  return sumMemory(pids.map((pid) => readMemory(pid)).filter((u): u is MemoryUsage => u !== undefined));
}

interface CtrVariant {
  label: 'reference' | 'tsshim';
  runtime: string;
  flags: (cd: PrivateContainerd) => string[];
}

async function ctrOrThrow(cd: PrivateContainerd, args: string[]): Promise<void> {
  const r = await cd.ctr(args, { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`ctr ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
}

async function ctrRows(build: RunscBuild): Promise<GvisorBenchRow[]> {
  const variants: CtrVariant[] = [
    { label: 'reference', runtime: 'io.containerd.runc.v2', flags: runscReferenceRunFlags(build) },
    { label: 'tsshim', runtime: 'io.containerd.tsshim.v2', flags: gvisorRunFlags(build) },
  ];
  const cd = await PrivateContainerd.launch();
  const latency = new Map<string, number[]>();
  const loadedLatency = new Map<string, number[]>();
  const memory = new Map<string, MemoryUsage[]>();
  let counter = 0;
  try {
    const sampleLatency = async (samples: number, into: Map<string, number[]>): Promise<void> => {
      for (let i = 0; i < samples + 1; i++) {
        for (const v of variants) {
          const id = `gvtrue-${++counter}`;
          const started = process.hrtime.bigint();
          await ctrOrThrow(cd, ['run', '--runtime', v.runtime, ...v.flags(cd), '--rm', BUSYBOX_IMAGE, id, '/bin/true']);
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          if (i > 0) into.set(v.label, [...(into.get(v.label) ?? []), ms]); // first: warm-up
        }
      }
    };
    const runs = envInt('TSSHIM_BENCH_GVISOR_RUNS', 10);
    await sampleLatency(runs, latency);
    const stopLoad = startCpuLoad();
    try {
      await sampleLatency(Math.max(1, Math.ceil(runs / 2)), loadedLatency);
    } finally {
      stopLoad();
    }
    for (const v of variants) {
      const id = `gvmem-${++counter}`;
      await ctrOrThrow(cd, ['run', '--runtime', v.runtime, ...v.flags(cd), '-d', BUSYBOX_IMAGE, id, 'sleep', '3600']);
      await new Promise((r) => setTimeout(r, 1_000));
      const pids = [...cd.shimProcesses(), ...cd.runscProcesses()].map((p) => p.pid);
      memory.set(v.label, [memoryOf(pids)]);
      await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await cd.api().wait(id).catch(() => undefined);
      await cd.ctr(['task', 'delete', id]);
      await cd.ctr(['container', 'rm', id]);
      await waitUntil(() => cd.shimProcesses().length === 0 && cd.runscProcesses().length === 0, { timeoutMs: 15_000, what: 'shim and sandbox to exit' }).catch(() => undefined);
    }
  } finally {
    const problems = await cd.destroy();
    if (problems.length > 0) console.error(`cleanup problems:\n  ${problems.join('\n  ')}`);
  }
  const mem = (label: string, key: keyof MemoryUsage) => (memory.get(label)?.[0]?.[key] ?? Number.NaN) / 1024;
  return [
    { metric: 'ctr run --rm /bin/true, median', unit: 'ms', reference: median(latency.get('reference') ?? []), tsshim: median(latency.get('tsshim') ?? []) },
    {
      metric: 'ctr run --rm /bin/true, 2 busy CPU loops, median',
      unit: 'ms',
      reference: median(loadedLatency.get('reference') ?? []),
      tsshim: median(loadedLatency.get('tsshim') ?? []),
    },
    { metric: 'shim + sandbox + gofer, 1 container: RSS', unit: 'MiB', reference: mem('reference', 'rssKb'), tsshim: mem('tsshim', 'rssKb') },
    { metric: 'shim + sandbox + gofer, 1 container: PSS', unit: 'MiB', reference: mem('reference', 'pssKb'), tsshim: mem('tsshim', 'pssKb') },
  ];
}

/**
 * The pod reference is containerd's runc shim with runscPodReferenceWrapper (without it the runc
 * shim cannot even start a gVisor pod's app containers). It still cannot stop one: an app
 * container's exit never reaches it (it waits on the sandbox's pid) and StopPodSandbox hits
 * CRI's deadline. So after each reference sample the pod's shim and runsc processes are
 * SIGKILLed, after which containerd stops and removes it; tsshim's pods are stopped as kubelet
 * does. Only the start is timed.
 */
const POD_VARIANTS = [
  { label: 'reference', handler: 'runsc-pod' },
  { label: 'tsshim', handler: 'tsshim-gvisor' },
] as const;

async function podRows(build: RunscBuild): Promise<GvisorBenchRow[]> {
  const env: CriContainerd = await launchCriContainerd({ line: '1.6', runsc: build });
  const start = new Map<string, number[]>();
  const loadedStart = new Map<string, number[]>();
  const memory = new Map<string, number[]>();
  let counter = 0;
  const samplePods = async (runs: number, into: Map<string, number[]>, measureMemory: boolean): Promise<void> => {
    for (let i = 0; i < runs + 1; i++) {
      for (const { label, handler } of POD_VARIANTS) {
        const pod = podConfig(env, `gvpod-${++counter}`);
        const t0 = process.hrtime.bigint();
        const sandboxId = await env.cri.runPodSandbox(pod, handler);
        try {
          for (const c of ['a', 'b']) await startContainer(env, sandboxId, pod, containerConfig(c, ['sleep', '3600']));
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          if (i > 0) into.set(label, [...(into.get(label) ?? []), ms]); // first: warm-up
          if (measureMemory && i === 1) {
            await new Promise((r) => setTimeout(r, 1_000));
            const pids = [...env.cd.shimProcesses(), ...env.cd.runscProcesses()].map((p) => p.pid);
            memory.set(label, [memoryOf(pids).pssKb / 1024, memoryOf(pids).rssKb / 1024]);
          }
        } finally {
          if (label === 'reference') {
            // one pod at a time: every shim and runsc process is this pod's
            for (const p of [...env.cd.shimProcesses(), ...env.cd.runscProcesses()]) killQuietly(p.pid);
          }
          await env.cri.stopPodSandbox(sandboxId).catch(() => undefined);
          await env.cri.removePodSandbox(sandboxId).catch(() => undefined);
        }
        await waitUntil(() => env.cd.shimProcesses().length === 0 && env.cd.runscProcesses().length === 0, { timeoutMs: 15_000, what: 'pod processes to exit' }).catch(() => undefined);
      }
    }
  };
  try {
    const pods = envInt('TSSHIM_BENCH_GVISOR_PODS', 5);
    await samplePods(pods, start, true);
    const stopLoad = startCpuLoad();
    try {
      await samplePods(Math.max(1, Math.ceil(pods / 2)), loadedStart, false);
    } finally {
      stopLoad();
    }
  } finally {
    const problems = await env.cd.destroy();
    if (problems.length > 0) console.error(`cleanup problems:\n  ${problems.join('\n  ')}`);
  }
  const medianOf = (from: Map<string, number[]>, label: string) => median(from.get(label) ?? []);
  return [
    { metric: 'pod start (RunPodSandbox + 2 containers), median', unit: 'ms', reference: medianOf(start, 'reference'), tsshim: medianOf(start, 'tsshim') },
    { metric: 'pod start, 2 busy CPU loops, median', unit: 'ms', reference: medianOf(loadedStart, 'reference'), tsshim: medianOf(loadedStart, 'tsshim') },
    { metric: 'pod host memory (shim + sandbox + gofers): PSS', unit: 'MiB', reference: memory.get('reference')?.[0] ?? Number.NaN, tsshim: memory.get('tsshim')?.[0] ?? Number.NaN },
    { metric: 'pod host memory (shim + sandbox + gofers): RSS', unit: 'MiB', reference: memory.get('reference')?.[1] ?? Number.NaN, tsshim: memory.get('tsshim')?.[1] ?? Number.NaN },
  ];
}

export async function runGvisorBenchmarks(): Promise<GvisorBenchResult> {
  const build = process.env.TSSHIM_BENCH_RUNSC === 'backports' ? RUNSC_BACKPORTS : RUNSC_DEBIAN;
  if (build.missing) throw new Error(build.missing);
  const only = process.env.TSSHIM_BENCH_GVISOR_ROWS;
  if (only !== undefined && only !== 'ctr' && only !== 'pods') throw new Error(`TSSHIM_BENCH_GVISOR_ROWS must be "ctr" or "pods" (got "${only}")`);
  const rows: GvisorBenchRow[] = [];
  if (only !== 'pods') rows.push(...(await ctrRows(build)));
  if (only !== 'ctr') rows.push(...(await podRows(build)));
  return { runsc: build.label, rows };
}

export function printGvisorTable(result: GvisorBenchResult): void {
  console.log(`gVisor (${result.runsc}): tsshim gvisor backend vs runsc behind containerd's runc shim`);
  const rows = result.rows.map((r) => [
    r.metric,
    Number.isNaN(r.reference) ? 'cannot (see note)' : `${r.reference.toFixed(1)} ${r.unit}`,
    `${r.tsshim.toFixed(1)} ${r.unit}`,
    Number.isNaN(r.reference) ? '-' : `${(r.tsshim / r.reference).toFixed(2)}x`,
  ]);
  const header = ['metric', 'runc shim + runsc (ref)', 'tsshim + gvisor', 'ratio'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  if (result.rows.some((r) => r.metric.startsWith('pod ')))
    console.log(
      "note: the pod reference runs runsc through a wrapper that keeps the app containers' gofers off the runc shim's pipes, and its pods are SIGKILLed after each sample (the runc shim cannot stop a gVisor pod)",
    );
}
