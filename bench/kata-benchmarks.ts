/**
 * Kata rows: tsshim's kata backend against its floor, measured in the same run, samples
 * interleaved with the floor's:
 *  - the floor: the same QEMU (same arguments, helpers, memory and vCPUs as the backend's
 *    defaults) booting the same kernel with floor.img, an init that powers off at once
 *    (QemuHypervisor.runUntilExit): what any VM of this kernel costs here;
 *  - create to agent answering: hypervisor start with the real initrd until CONNECT is accepted
 *    on the agent's hybrid-vsock port, plus one /grpc.Health/Check over AgentClient;
 *  - `ctr run --rm busybox /bin/true` through tsshim with backend kata (a private containerd);
 *  - pod start through CRI (handler tsshim-kata): RunPodSandbox + two app containers started,
 *    and the pod's host memory (shim + QEMU + virtiofsd + vhost-device-vsock, smaps_rollup).
 * Every measured sample comes right after a floor sample of its own (the load on a shared machine
 * changes by the minute and a VM boot under software emulation is CPU-bound): the table gives
 * the median against the floor's median and each sample against the floor sample before it.
 * Load averages are recorded as each part starts.
 *
 * Environment: TSSHIM_BENCH_KATA_RUNS (samples of each row, default 2; no warm-up: each sample
 * is a cold VM boot anyway), TSSHIM_BENCH_KATA_ROWS (`vm`: floor + agent rows only, `ctr`, `pods`;
 * comma-separated; default all).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadavg, tmpdir } from 'node:os';
import { AgentClient } from '../src/backends/kata/agent-client.js';
import { defaultGuestAssets, type GuestAssets } from '../src/backends/kata/guest-assets.js';
import { cleanupVmState, hypervisorByName, type VmSpec } from '../src/backends/kata/hypervisor/hypervisor.js';
import type { QemuHypervisor } from '../src/backends/kata/hypervisor/qemu.js';
import { defaultConfig } from '../src/shim/config.js';
import { launchCriContainerd, type CriContainerd } from '../test/e2e/harness/cri-containerd.js';
import { containerConfig, podConfig, startContainer } from '../test/e2e/harness/cri-pods.js';
import { PrivateContainerd } from '../test/e2e/harness/private-containerd.js';
import { listPids, readCmdline, readMemory, sumMemory, type MemoryUsage } from '../test/e2e/harness/proc-fs.js';
import { repoRoot } from '../test/e2e/harness/repo-paths.js';
import { BUSYBOX_IMAGE } from '../test/e2e/harness/test-images.js';
import { waitUntil } from '../test/e2e/harness/wait-until.js';
import { median } from './stats.js';

export interface KataBenchRow {
  metric: string;
  unit: string;
  /** median of the samples */
  value: number;
  samples: number[];
  /** value / the floor's median (latency rows) */
  floorRatio?: number;
  /** each sample / the floor sample taken right before it */
  pairedRatios?: number[];
}

export interface KataBenchResult {
  accel: string;
  memoryMiB: number;
  vcpus: number;
  floorMs: number[];
  rows: KataBenchRow[];
  /** 1-minute load average when each part started and when the kata rows ended */
  load: { part: string; load1: number }[];
  /** row group → why it was not measured */
  failures: Record<string, string>;
}

function envInt(name: string, fallback: number): number {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const AGENT_PORT = defaultConfig().kata.agentPort;

/** processes whose command line names `dir` (QEMU, virtiofsd, vsock device of VMs under it) */
function vmPidsUnder(dir: string): number[] {
  return listPids().filter((pid) => pid !== process.pid && readCmdline(pid).some((a) => a.includes(dir)));
}

/** which host component a VM-side process is, by its program name */
function componentOf(pid: number): string {
  const argv = readCmdline(pid);
  // QEMU in a pod's network namespace is started through nsenter, which execs it (same pid)
  const prog = basename(argv[0] ?? '');
  if (prog.startsWith('qemu-system')) return 'QEMU';
  if (prog.includes('virtiofsd')) return 'virtiofsd';
  if (prog.includes('vhost-device-vsock')) return 'vhost-device-vsock';
  return prog || '?';
}

/** the part of QEMU's memory that is the guest's RAM: the memfd backing it (memory-backend-memfd) */
function guestRamOf(pid: number): MemoryUsage {
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return { rssKb: 0, pssKb: 0, anonKb: 0 };
  }
  const usage = { rssKb: 0, pssKb: 0, anonKb: 0 };
  let inGuestRam = false;
  for (const line of text.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inGuestRam = line.includes('/memfd:mem');
    else if (inGuestRam) {
      const m = /^(Rss|Pss|Anonymous):\s+(\d+) kB/.exec(line);
      if (m) usage[m[1] === 'Rss' ? 'rssKb' : m[1] === 'Pss' ? 'pssKb' : 'anonKb'] += Number(m[2]);
    }
  }
  return usage;
}

class VmRows {
  private readonly hv = hypervisorByName('qemu', { log: (m) => this.logLines.push(m) }) as QemuHypervisor;
  private readonly work = mkdtempSync(join(tmpdir(), 'tsshim-bench-kata-'));
  readonly logLines: string[] = [];
  private n = 0;

  constructor(private readonly assets: GuestAssets) {}

  get accel(): string {
    const line = this.logLines.find((l) => / accel /.test(l));
    return line?.split(' accel ')[1] ?? '?';
  }

  private spec(initrd: string): VmSpec {
    const cfg = defaultConfig().kata;
    const id = `b${++this.n}`;
    const sharedDir = join(this.work, `${id}-shared`);
    mkdirSync(sharedDir, { recursive: true });
    return {
      id,
      stateDir: join(this.work, id),
      kernel: this.assets.kernel,
      initrd,
      kernelParams: [`agent.port=${AGENT_PORT}`],
      memoryMiB: cfg.memoryMiB,
      vcpus: cfg.vcpus,
      sharedDir,
      extraArgs: [],
      accel: cfg.accel,
      bootTimeoutMs: cfg.bootTimeoutSec * 1000,
    };
  }

  async floor(): Promise<number> {
    const s = this.spec(this.assets.floor);
    const t0 = process.hrtime.bigint();
    const r = await this.hv.runUntilExit(s);
    const ms = msSince(t0);
    if (r.status !== 0) throw new Error(`floor VM ended with QEMU status ${r.status}`);
    return ms;
  }

  async agentAnswering(): Promise<number> {
    const s = this.spec(this.assets.initrd);
    const t0 = process.hrtime.bigint();
    const vm = await this.hv.start(s);
    try {
      const agent = await AgentClient.connect({ hybridVsock: vm.agentSocket, port: AGENT_PORT }, { timeoutMs: 30_000 });
      try {
        await agent.check({}, { timeoutMs: 30_000 });
        return msSince(t0);
      } finally {
        await agent.close();
      }
    } finally {
      await vm.stop();
      await cleanupVmState(s.stateDir);
    }
  }

  dispose(): void {
    const left = vmPidsUnder(this.work);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(this.work, { recursive: true, force: true });
    if (left.length > 0) console.error(`kata bench: killed leftover VM processes ${left.join(', ')}`);
  }
}

/** one floor sample, taken right before each measured sample: the ratio is read per pair */
type FloorSample = () => Promise<number>;

interface Paired {
  ms: number[];
  /** each sample over the floor sample taken right before it */
  ratios: number[];
}

async function ctrRunTrue(runs: number, floor: FloorSample, log: (l: string) => void): Promise<Paired> {
  const cd = await PrivateContainerd.launch();
  const stateRoot = join(cd.dir, 'kata');
  const config = join(cd.dir, 'tsshim-kata.toml');
  writeFileSync(config, `backend = "kata"\n[kata]\nstate_root = "${stateRoot}"\n`);
  const samples: Paired = { ms: [], ratios: [] };
  try {
    for (let i = 0; i < runs; i++) {
      const floorMs = await floor();
      const id = `kbtrue-${i}`;
      const t0 = process.hrtime.bigint();
      const r = await cd.ctr(['run', '--runtime', 'io.containerd.tsshim.v2', '--runtime-config-path', config, '--rm', BUSYBOX_IMAGE, id, '/bin/true'], {
        timeoutMs: 240_000,
      });
      const ms = msSince(t0);
      if (r.exitCode !== 0) throw new Error(`ctr run: exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      samples.ms.push(ms);
      samples.ratios.push(ms / floorMs);
      log(`  ctr run --rm /bin/true: ${ms.toFixed(0)} ms (${(ms / floorMs).toFixed(2)}x the floor before it)`);
      await waitUntil(() => cd.shimProcesses().length === 0 && vmPidsUnder(stateRoot).length === 0, { timeoutMs: 30_000, what: 'shim and VM to exit' });
    }
  } finally {
    const problems = await cd.destroy();
    if (problems.length > 0) console.error(`cleanup problems:\n  ${problems.join('\n  ')}`);
  }
  return samples;
}

interface PodSamples {
  start: Paired;
  /** component → usage, the first pod */
  memory: Map<string, MemoryUsage & { processes: number }>;
}

async function podStart(runs: number, floor: FloorSample, log: (l: string) => void): Promise<PodSamples> {
  const env: CriContainerd = await launchCriContainerd({ line: '1.6' });
  const stateRoot = join(env.cd.dir, 'kata');
  const out: PodSamples = { start: { ms: [], ratios: [] }, memory: new Map() };
  try {
    for (let i = 0; i < runs; i++) {
      const floorMs = await floor();
      const pod = podConfig(env, `kbpod${i}`);
      const t0 = process.hrtime.bigint();
      const sandboxId = await env.cri.runPodSandbox(pod, 'tsshim-kata', 240_000);
      try {
        for (const c of ['app1', 'app2']) await startContainer(env, sandboxId, pod, containerConfig(c, ['sleep', '3600']));
        const ms = msSince(t0);
        out.start.ms.push(ms);
        out.start.ratios.push(ms / floorMs);
        log(`  pod start: ${ms.toFixed(0)} ms (${(ms / floorMs).toFixed(2)}x the floor before it)`);
        if (i === 0) {
          await new Promise((r) => setTimeout(r, 2_000));
          const vmPids = new Set(vmPidsUnder(stateRoot));
          // the VM's helpers inherit the shim's environment: count them once, as themselves
          const shims = env.cd.shimProcesses().map((p) => p.pid).filter((p) => !vmPids.has(p));
          const groups = new Map<string, number[]>([['shim', shims]]);
          for (const pid of vmPids) groups.set(componentOf(pid), [...(groups.get(componentOf(pid)) ?? []), pid]);
          for (const [name, pids] of groups) {
            const usage = sumMemory(pids.map((p) => readMemory(p)).filter((u): u is MemoryUsage => u !== undefined));
            out.memory.set(name, { ...usage, processes: pids.length });
          }
          const qemus = groups.get('QEMU') ?? [];
          if (qemus.length > 0) out.memory.set('QEMU guest RAM', { ...sumMemory(qemus.map(guestRamOf)), processes: qemus.length });
        }
      } finally {
        await env.cri.stopPodSandbox(sandboxId, 60_000).catch(() => undefined);
        await env.cri.removePodSandbox(sandboxId, 60_000).catch(() => undefined);
      }
      await waitUntil(() => env.cd.shimProcesses().length === 0 && vmPidsUnder(stateRoot).length === 0, { timeoutMs: 30_000, what: 'pod shim and VM to exit' });
    }
  } finally {
    const problems = await env.cd.destroy();
    if (problems.length > 0) console.error(`cleanup problems:\n  ${problems.join('\n  ')}`);
  }
  return out;
}

export async function runKataBenchmarks(log: (line: string) => void = console.log): Promise<KataBenchResult> {
  const assets = defaultGuestAssets(repoRoot);
  const runs = envInt('TSSHIM_BENCH_KATA_RUNS', 2);
  const only = (process.env.TSSHIM_BENCH_KATA_ROWS ?? 'vm,ctr,pods').split(',').map((s) => s.trim());
  for (const o of only) if (!['vm', 'ctr', 'pods'].includes(o)) throw new Error(`TSSHIM_BENCH_KATA_ROWS: "${o}" is not one of vm, ctr, pods`);
  const cfg = defaultConfig().kata;
  const load: KataBenchResult['load'] = [];
  const mark = (part: string) => load.push({ part, load1: loadavg()[0]! });
  const failures: Record<string, string> = {};
  const vm = new VmRows(assets);
  const floorMs: number[] = [];
  // the load here changes by the minute: every sample comes right after a floor sample of its own
  const floor: FloorSample = async () => {
    const ms = await vm.floor();
    floorMs.push(ms);
    log(`  floor (boot to power-off): ${ms.toFixed(0)} ms`);
    return ms;
  };
  const agent: Paired = { ms: [], ratios: [] };
  let ctr: Paired | undefined;
  let pods: PodSamples | undefined;
  try {
    if (only.includes('vm')) {
      mark('agent');
      log(`measuring: create to agent answering (${runs} samples, each after a floor sample)`);
      try {
        for (let i = 0; i < runs; i++) {
          const f = await floor();
          const ms = await vm.agentAnswering();
          agent.ms.push(ms);
          agent.ratios.push(ms / f);
          log(`  create to agent answering: ${ms.toFixed(0)} ms (${(ms / f).toFixed(2)}x the floor before it)`);
        }
      } catch (err) {
        failures['create to agent answering'] = errorText(err);
      }
    }
    if (only.includes('ctr')) {
      mark('ctr');
      log(`measuring: ctr run --rm /bin/true, backend kata (${runs} samples, each after a floor sample)`);
      try {
        ctr = await ctrRunTrue(runs, floor, log);
      } catch (err) {
        failures['ctr run'] = errorText(err);
      }
    }
    if (only.includes('pods')) {
      mark('pods');
      log(`measuring: pod start, handler tsshim-kata (${runs} samples, each after a floor sample)`);
      try {
        pods = await podStart(runs, floor, log);
      } catch (err) {
        failures['pod start'] = errorText(err);
      }
    }
    if (floorMs.length === 0) await floor();
    mark('end');
  } finally {
    vm.dispose();
  }
  const floorMedian = median(floorMs);
  const latency = (metric: string, p: Paired | undefined): KataBenchRow[] =>
    !p || p.ms.length === 0 ? [] : [{ metric, unit: 'ms', value: median(p.ms), samples: p.ms, floorRatio: median(p.ms) / floorMedian, pairedRatios: p.ratios }];
  const rows: KataBenchRow[] = [
    { metric: 'floor: same QEMU + kernel, floor.img to power-off', unit: 'ms', value: floorMedian, samples: floorMs, floorRatio: 1 },
    ...latency('create to agent answering (VM start + Check)', agent),
    ...latency('ctr run --rm busybox /bin/true', ctr),
    ...latency('pod start (RunPodSandbox + 2 containers)', pods?.start),
  ];
  if (pods && pods.memory.size > 0) {
    let total: MemoryUsage = { rssKb: 0, pssKb: 0, anonKb: 0 };
    for (const [name, u] of pods.memory) {
      if (name === 'QEMU guest RAM') continue; // inside QEMU's figure
      total = sumMemory([total, u]);
    }
    for (const [name, u] of pods.memory) {
      rows.push({ metric: `pod host memory: ${name}${u.processes > 1 ? ` (${u.processes} processes)` : ''}`, unit: 'MiB', value: u.pssKb / 1024, samples: [u.rssKb / 1024] });
    }
    rows.push({ metric: 'pod host memory: total', unit: 'MiB', value: total.pssKb / 1024, samples: [total.rssKb / 1024] });
  }
  return { accel: vm.accel, memoryMiB: cfg.memoryMiB, vcpus: cfg.vcpus, floorMs, rows, load, failures };
}

export function printKataTable(result: KataBenchResult): void {
  console.log(`kata (QEMU, ${result.accel}, ${result.memoryMiB} MiB, ${result.vcpus} vCPU) against the floor measured in the same run`);
  const cells = result.rows.map((r) =>
    r.unit === 'MiB'
      ? [r.metric, `PSS ${r.value.toFixed(1)} MiB`, `RSS ${r.samples[0]!.toFixed(1)} MiB`, '', '']
      : [
          r.metric,
          `${r.value.toFixed(0)} ms`,
          r.samples.map((s) => s.toFixed(0)).join(', '),
          r.floorRatio === undefined ? '-' : `${r.floorRatio.toFixed(2)}x`,
          r.pairedRatios ? `${r.pairedRatios.map((x) => x.toFixed(2)).join(', ')} (median ${median(r.pairedRatios).toFixed(2)}x)` : '',
        ],
  );
  const header = ['metric', 'median', 'samples (ms)', 'median/floor median', 'each sample / the floor sample before it'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  for (const c of [header, ...cells]) console.log(c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd());
  console.log(`load average (1 min) as each part started: ${result.load.map((l) => `${l.part} ${l.load1.toFixed(2)}`).join(', ')}`);
  console.log('target: create to agent answering and pod start <= 1.3x the floor (issue 14); memory is noted, no target');
  for (const [what, why] of Object.entries(result.failures)) console.log(`NOT MEASURED: kata ${what}: ${why}`);
}
