/**
 * Pod benchmarks through CRI (what kubelet pays per pod), runc handler (containerd's runc shim,
 * the reference) against the tsshim handler in the same containerd, samples interleaved:
 *
 *   pod start latency   RunPodSandbox + 2 × (CreateContainer + StartContainer), and the
 *                       RunPodSandbox part alone; again with two CPU-bound processes loading
 *                       the machine (a node starting pods while busy: a drain, a rollout)
 *   shim memory per pod RSS / PSS / anonymous memory of the process(es) serving a pod with two
 *                       containers, averaged over TSSHIM_BENCH_PODS pods running at once (with
 *                       the tsshim-shared handler, shim.group = "namespace", they share one shim)
 *
 * Environment: TSSHIM_BENCH_POD_RUNS (latency samples, default 10; under load half as many),
 * TSSHIM_BENCH_PODS (pods at
 * once for memory, default 3), TSSHIM_BENCH_CONTAINERD (1.6 | 1.7 | 2.1, default 1.6).
 */
import { CONTAINERD_LINES, type ContainerdLine } from '../test/e2e/harness/containerd-versions.js';
import { launchCriContainerd, type CriContainerd } from '../test/e2e/harness/cri-containerd.js';
import { containerConfig, podConfig, podFacts, startContainer } from '../test/e2e/harness/cri-pods.js';
import { readMemory, sumMemory, type MemoryUsage } from '../test/e2e/harness/proc-fs.js';
import { waitUntil } from '../test/e2e/harness/wait-until.js';
import { startCpuLoad } from './cpu-load.js';
import { describeFloor, idleNodeServerMemory } from './node-floor.js';
import { median, percentile } from './stats.js';

export interface PodHandler {
  /** Column title. */
  label: string;
  /** CRI runtime handler (see test/e2e/harness/cri-containerd.ts). */
  handler: 'runc' | 'tsshim' | 'tsshim-native' | 'tsshim-shared';
}

export const POD_REFERENCE: PodHandler = { label: 'runc shim (ref)', handler: 'runc' };
export const POD_HANDLERS: PodHandler[] = [
  POD_REFERENCE,
  { label: 'tsshim+native', handler: 'tsshim-native' },
  { label: 'tsshim+runc', handler: 'tsshim' },
  // [shim] group = "namespace": the pods measured at once share one shim. Latency samples run
  // one pod at a time, so each still starts its shim (a cold start, as for the others).
  { label: 'tsshim+native, 1 shim for all pods', handler: 'tsshim-shared' },
];

export interface PodRow {
  metric: string;
  unit: string;
  /** value by handler label */
  values: Map<string, number>;
}

export interface PodBenchResult {
  containerd: string;
  rows: PodRow[];
  /** handler label → why it was not (fully) measured */
  failures: Map<string, string>;
  /** one idle Node process (bench/node-floor.ts): the least a pod's Node shim can cost */
  nodeFloor?: MemoryUsage;
}

function envInt(name: string, fallback: number): number {
  const value = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function benchLine(): ContainerdLine {
  const raw = process.env.TSSHIM_BENCH_CONTAINERD ?? '1.6';
  if (!(CONTAINERD_LINES as readonly string[]).includes(raw)) throw new Error(`TSSHIM_BENCH_CONTAINERD=${raw}: one of ${CONTAINERD_LINES.join(', ')}`);
  return raw as ContainerdLine;
}

const SLEEPER = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];

interface RunningPod {
  sandboxId: string;
  shimPid: number;
}

let podSeq = 0;

/** One pod with two containers; returns timings and what is needed to measure and remove it. */
async function startPod(env: CriContainerd, handler: string): Promise<{ pod: RunningPod; sandboxMs: number; totalMs: number }> {
  const name = `bench${++podSeq}`;
  const config = podConfig(env, name);
  const started = process.hrtime.bigint();
  const sandboxId = await env.cri.runPodSandbox(config, handler);
  const sandboxDone = process.hrtime.bigint();
  try {
    const ids: string[] = [];
    for (const container of ['app1', 'app2']) ids.push(await startContainer(env, sandboxId, config, containerConfig(container, SLEEPER)));
    const done = process.hrtime.bigint();
    const facts = await podFacts(env, sandboxId, ids);
    return {
      pod: { sandboxId, shimPid: facts.shimPid },
      sandboxMs: Number(sandboxDone - started) / 1e6,
      totalMs: Number(done - started) / 1e6,
    };
  } catch (err) {
    await removePod(env, sandboxId);
    throw err;
  }
}

async function removePod(env: CriContainerd, sandboxId: string): Promise<void> {
  await env.cri.stopPodSandbox(sandboxId, 30_000);
  await env.cri.removePodSandbox(sandboxId, 30_000);
}

async function settle(env: CriContainerd): Promise<void> {
  // The next sample should not pay for the previous pod's teardown.
  await waitUntil(() => env.cd.shimProcesses().length === 0, { timeoutMs: 15_000, what: 'pod shims to exit' }).catch(() => {});
}

/** Runs the pod benchmarks in a CRI-enabled private containerd of its own. */
export async function runPodBenchmarks(log: (line: string) => void = console.log): Promise<PodBenchResult> {
  const runs = envInt('TSSHIM_BENCH_POD_RUNS', 10);
  const podsAtOnce = envInt('TSSHIM_BENCH_PODS', 3);
  const warmup = 1;
  const env = await launchCriContainerd({ line: benchLine(), logLevel: 'info' });
  const failures = new Map<string, string>();
  const latency = new Map<string, { sandbox: number[]; total: number[] }>();
  const loadedLatency = new Map<string, { sandbox: number[]; total: number[] }>();
  const memory = new Map<string, MemoryUsage & { processes: number }>();
  let containerd = '?';
  try {
    containerd = (await env.cri.version()).runtimeVersion;
    const active = (): PodHandler[] => POD_HANDLERS.filter((h) => !failures.has(h.label));

    const measureLatency = async (samples: number, into: typeof latency, what: string): Promise<void> => {
      for (let i = 0; i < warmup + samples; i++) {
        for (const h of active()) {
          try {
            const { pod, sandboxMs, totalMs } = await startPod(env, h.handler);
            await removePod(env, pod.sandboxId);
            await settle(env);
            if (i < warmup) continue;
            const entry = into.get(h.label) ?? { sandbox: [], total: [] };
            entry.sandbox.push(sandboxMs);
            entry.total.push(totalMs);
            into.set(h.label, entry);
          } catch (err) {
            if (h === POD_REFERENCE) throw err;
            failures.set(h.label, `${what}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      }
    };
    log(`measuring: pod start latency (${runs} samples per handler, ${warmup} warm-up)`);
    await measureLatency(runs, latency, 'pod start');
    const loadedRuns = Math.max(1, Math.floor(runs / 2));
    log(`measuring: pod start latency with 2 CPU-bound processes running (${loadedRuns} samples per handler)`);
    const stopLoad = startCpuLoad();
    try {
      await measureLatency(loadedRuns, loadedLatency, 'pod start under load');
    } finally {
      stopLoad();
    }

    log(`measuring: shim memory per pod (${podsAtOnce} pods with 2 containers each, per handler)`);
    for (const h of active()) {
      const pods: RunningPod[] = [];
      try {
        for (let i = 0; i < podsAtOnce; i++) pods.push((await startPod(env, h.handler)).pod);
        // Let start-up garbage settle (lazy initialisation, freed buffers) before reading.
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const shims = [...new Set(pods.map((p) => p.shimPid))];
        const usage = sumMemory(shims.map((pid) => readMemory(pid)).filter((u): u is MemoryUsage => u !== undefined));
        memory.set(h.label, {
          rssKb: usage.rssKb / pods.length,
          pssKb: usage.pssKb / pods.length,
          anonKb: usage.anonKb / pods.length,
          processes: shims.length / pods.length,
        });
      } catch (err) {
        if (h === POD_REFERENCE) throw err;
        failures.set(h.label, `pod memory: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        for (const pod of pods) await removePod(env, pod.sandboxId).catch(() => undefined);
        await settle(env);
      }
    }
  } finally {
    const problems = await env.cd.destroy();
    if (problems.length > 0) log(`pod bench cleanup problems:\n  ${problems.join('\n  ')}`);
  }

  const rows: PodRow[] = [];
  const latencyRow = (metric: string, pick: (l: { sandbox: number[]; total: number[] }) => number[], stat: 'median' | 'p90', from = latency): void => {
    const values = new Map<string, number>();
    for (const [label, samples] of from) values.set(label, stat === 'median' ? median(pick(samples)) : percentile(pick(samples), 90));
    rows.push({ metric: `${metric} ${stat}`, unit: 'ms', values });
  };
  latencyRow('pod start (RunPodSandbox + 2 containers)', (l) => l.total, 'median');
  latencyRow('pod start (RunPodSandbox + 2 containers)', (l) => l.total, 'p90');
  latencyRow('RunPodSandbox', (l) => l.sandbox, 'median');
  latencyRow('pod start, 2 busy CPU loops', (l) => l.total, 'median', loadedLatency);
  latencyRow('RunPodSandbox, 2 busy CPU loops', (l) => l.sandbox, 'median', loadedLatency);
  const memoryRow = (metric: string, pick: (m: MemoryUsage & { processes: number }) => number, unit: string): void => {
    rows.push({ metric, unit, values: new Map([...memory].map(([label, m]) => [label, pick(m)])) });
  };
  memoryRow('shim memory per pod: RSS', (m) => m.rssKb / 1024, 'MiB');
  memoryRow('shim memory per pod: PSS', (m) => m.pssKb / 1024, 'MiB');
  memoryRow('shim memory per pod: anonymous', (m) => m.anonKb / 1024, 'MiB');
  memoryRow('shim processes per pod', (m) => m.processes, 'count');
  let nodeFloor: MemoryUsage | undefined;
  try {
    nodeFloor = await idleNodeServerMemory();
  } catch (err) {
    failures.set("Node's floor", err instanceof Error ? err.message : String(err));
  }
  return { containerd, rows, failures, nodeFloor };
}

export function printPodTable(result: PodBenchResult, log: (line: string) => void = console.log): void {
  const others = POD_HANDLERS.filter((h) => h !== POD_REFERENCE);
  const header = ['pod metric (CRI)', ...POD_HANDLERS.map((h) => h.label), ...others.map((h) => `${h.label}/ref`)];
  const format = (value: number | undefined, unit: string): string =>
    value === undefined || Number.isNaN(value) ? '-' : unit === 'count' ? value.toFixed(1) : value >= 100 ? value.toFixed(0) : value.toFixed(1);
  const body = result.rows.map((row) => {
    const ref = row.values.get(POD_REFERENCE.label);
    return [
      `${row.metric} (${row.unit})`,
      ...POD_HANDLERS.map((h) => format(row.values.get(h.label), row.unit)),
      ...others.map((h) => {
        const value = row.values.get(h.label);
        return value !== undefined && ref !== undefined && ref > 0 ? `${(value / ref).toFixed(2)}x` : '-';
      }),
    ];
  });
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((cells) => cells[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  log(`CRI pods on containerd ${result.containerd}; samples interleaved across handlers`);
  log(line(header));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const cells of body) log(line(cells));
  const floor = result.nodeFloor;
  if (floor) {
    const ref = (label: string): number | undefined =>
      result.rows.find((r) => r.metric === `shim memory per pod: ${label}`)?.values.get(POD_REFERENCE.label);
    const cells = describeFloor([
      { label: 'PSS', mib: floor.pssKb / 1024, refMib: ref('PSS') },
      { label: 'anonymous', mib: floor.anonKb / 1024, refMib: ref('anonymous') },
    ]);
    log(`Node's floor, one idle Node process with the daemon's flags: ${cells}`);
  }
  for (const [label, reason] of result.failures) log(`NOT MEASURED: ${label}: ${reason}`);
}
