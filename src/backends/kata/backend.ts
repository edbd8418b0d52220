/**
 * The Kata backend: each pod in its own VM, driven over Kata's agent API.
 *
 *  - Sandboxes: the container that creates its sandbox (plain ctr, or a CRI sandbox
 *    container) boots a VM (src/backends/kata/hypervisor) and tells its agent about the pod
 *    (CreateSandbox, with the virtio-fs share); a CRI app container is created in its pod's VM.
 *    When the core says a sandbox lost its last container (closeSandbox) the VM goes.
 *  - Files: a container's rootfs and bind mounts are bind-mounted into the sandbox's shared
 *    directory, which virtiofsd exports; the guest sees them under
 *    /run/kata-containers/shared/containers/ (src/backends/kata/guest-spec.ts).
 *  - Exits: every process's exit comes from the agent's WaitProcess, by container and exec
 *    id (the only host pid is the VM's, shared by the whole pod). A VM that dies makes every
 *    process in it exit with 255; nothing waits forever.
 *  - Stdio: ReadStdout/ReadStderr/WriteStdin through src/backends/kata/process-streams.ts;
 *    the exit is published after the output has been copied out.
 *
 * Exec ids: the agent knows a container's init by the exec id it was created with, the
 * container id (as Kata's runtime does it); an empty exec id in SignalProcess means every
 * process of the container.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type {
  Backend,
  BackendCapabilities,
  BackendContainer,
  CgroupMetrics,
  CreateInput,
  CreateResult,
  ExecInput,
  ProcessStdio,
  RuncLikeOptions,
} from '../../core/backend.js';
import { ShimError, failedPrecondition, internal, invalidArgument, notFound, unimplemented } from '../../core/errors.js';
import { MergedExitSource, type ReaperLike } from '../../core/merged-exit-source.js';
import type { KataConfig } from '../../shim/config.js';
import { readBundleState, writeBundleState } from '../../shim/bundle-state.js';
import * as ffi from '../../sys/ffi.js';
import { mountsUnder } from '../../sys/mountinfo.js';
import { AgentClient } from './agent-client.js';
import { GUEST_SHARED_DIR, guestSpecOf, type HostShare } from './guest-spec.js';
import { tailOf } from './hypervisor/host-process.js';
import { cleanupVmState, hypervisorByName, type Hypervisor, type RunningVm } from './hypervisor/hypervisor.js';
import { guestAssetsFrom } from './guest-assets.js';
import { Reaper } from '../../sys/reaper.js';
import { ociProcessToProto, ociResourcesToProto, ociSpecToProto } from './oci-spec.js';
import { setUpPodNetwork, tearDownPodNetwork, type PodNetwork } from './pod-network.js';
import { ProcessStreams } from './process-streams.js';
import { metricsFromAgentStats } from './stats.js';

/** Kata's name for the virtio-fs share the agent mounts */
const SHARED_FS_TAG = 'kataShared';
/** calls that should be quick in a healthy VM (software emulation is slow: generous) */
const AGENT_CALL_MS = 30_000;
const TEARDOWN_CALL_MS = 5_000;
/** how long an exit waits for its output to be copied out */
const OUTPUT_DRAIN_MS = 5_000;
/** the status of a process whose VM died under it (Kata's shim reports 255 too) */
const VM_GONE_STATUS = 255;
/** lines of the guest console quoted in an error */
const CONSOLE_TAIL_LINES = 15;

export interface KataBackendOptions {
  config: KataConfig;
  namespace: string;
  exits: ReaperLike;
  /** tests: another hypervisor than the one the config names */
  hypervisor?: Hypervisor;
}

class KataSandbox {
  readonly members = new Set<string>();
  dead = false;
  constructor(
    readonly id: string,
    readonly stateDir: string,
    readonly sharedDir: string,
    readonly vm: RunningVm,
    readonly agent: AgentClient,
    readonly network: PodNetwork | undefined,
  ) {}
}

interface GuestProcess {
  streams: ProcessStreams;
  exited: boolean;
}

class KataContainer implements BackendContainer {
  readonly processes = new Map<string, GuestProcess>();
  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly sandbox: KataSandbox,
    /** host mount points this container added to the shared directory, in mount order */
    readonly shareMounts: string[],
  ) {}
}

function asKata(c: BackendContainer): KataContainer {
  if (!(c instanceof KataContainer)) throw internal(`container ${c.id} is not a kata container`);
  return c;
}

function bounded<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** the last lines of the guest console (escapes stripped), for an error that says why the VM did not come up */
function consoleTail(file: string): string {
  const tail = tailOf(file, CONSOLE_TAIL_LINES);
  return tail ? `; guest console (last lines): ${tail.split('\n').join(' | ')}` : '';
}

/** unmount everything at or below `dir` (deepest first), then remove it */
function unmountAndRemove(dir: string): void {
  for (const m of mountsUnder(dir)) {
    try {
      ffi.umount2(m, ffi.MNT_DETACH);
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The VM's directory name: the sandbox id, shortened when long (CRI ids are 64 hex digits) so
 * that the unix sockets inside stay within sun_path's 108 bytes under any state root.
 */
export function vmDirName(sandboxId: string): string {
  if (sandboxId.length <= 24) return sandboxId;
  return `${sandboxId.slice(0, 12)}-${createHash('sha256').update(sandboxId).digest('hex').slice(0, 8)}`;
}

function readSpec(bundle: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw invalidArgument(`cannot read the OCI spec of ${bundle}: ${(err as Error).message}`, err);
  }
}

function netnsOf(spec: Record<string, unknown>): string | undefined {
  const ns = (spec.linux as { namespaces?: Array<{ type?: string; path?: string }> } | undefined)?.namespaces;
  const net = ns?.find((n) => n.type === 'network');
  return net?.path || undefined;
}

export class KataBackend implements Backend {
  readonly name = 'kata';
  readonly capabilities: BackendCapabilities = { checkpoint: false, pause: true, update: true, terminal: true };
  readonly exits: MergedExitSource;
  private readonly hypervisor: Hypervisor;
  private readonly sandboxes = new Map<string, KataSandbox>();
  /** sandboxes being booted: a joining container waits for its pod's VM */
  private readonly booting = new Map<string, Promise<KataSandbox>>();
  private readonly oomListeners: Array<(containerId: string) => void> = [];

  constructor(private readonly o: KataBackendOptions) {
    this.exits = new MergedExitSource(o.exits);
    // inside the shim the Reaper reaps QEMU and its helpers; the `delete` action has none
    const reaper = Reaper.current();
    this.hypervisor =
      o.hypervisor ??
      hypervisorByName(o.config.hypervisor, {
        ...(reaper ? { reaper } : {}),
        ...(o.config.virtiofsd ? { virtiofsd: o.config.virtiofsd } : {}),
        ...(o.config.vsockDevice ? { vhostDeviceVsock: o.config.vsockDevice } : {}),
      });
  }

  private stateDirOf(sandboxId: string): string {
    return join(this.o.config.stateRoot, this.o.namespace, vmDirName(sandboxId));
  }

  async create(input: CreateInput): Promise<{ container: BackendContainer } & CreateResult> {
    if (this.o.config.image) {
      throw unimplemented(`kata: guest disk images (kata.image = ${this.o.config.image}) are not supported by this backend; give an initrd`);
    }
    const hostSpec = readSpec(input.bundle);
    const placement = input.sandbox ?? { sandboxId: input.id, creates: true };
    let sandbox: KataSandbox;
    if (placement.creates) {
      const boot = this.boot(placement.sandboxId, hostSpec);
      this.booting.set(placement.sandboxId, boot);
      try {
        sandbox = await boot;
      } finally {
        this.booting.delete(placement.sandboxId);
      }
    } else {
      const found = this.sandboxes.get(placement.sandboxId) ?? (await this.booting.get(placement.sandboxId)?.catch(() => undefined));
      if (!found || found.dead) {
        throw failedPrecondition(`kata: sandbox ${placement.sandboxId} of container ${input.id} has no running VM in this shim`);
      }
      sandbox = found;
    }
    writeBundleState(input.bundle, { backend: 'kata', binary: '', root: sandbox.stateDir, systemdCgroup: false, sandboxId: sandbox.id });

    const container = new KataContainer(input.id, input.bundle, sandbox, []);
    sandbox.members.add(input.id);
    try {
      const { spec, shares, sandboxPidns } = guestSpecOf(hostSpec, input.id, join(input.bundle, 'rootfs'));
      this.share(sandbox, shares, container.shareMounts);
      await sandbox.agent.createContainer(
        {
          containerId: input.id,
          execId: input.id,
          OCI: ociSpecToProto(spec),
          storages: [],
          devices: [],
          sandboxPidns,
        },
        { timeoutMs: AGENT_CALL_MS },
      );
      const io = this.attachStreams(sandbox, input.id, input.id, input.stdio);
      container.processes.set(input.id, { streams: io.streams, exited: false });
      return {
        container,
        pid: sandbox.vm.pid,
        exitReportedById: true,
        ...(io.consoleFd !== undefined ? { consoleFd: io.consoleFd, consoleResize: io.resize } : {}),
      };
    } catch (err) {
      await this.delete(container, { force: true }).catch(() => undefined);
      if (placement.creates) await this.closeSandbox(sandbox.id).catch(() => undefined);
      throw err;
    }
  }

  /** boots the VM of a sandbox and introduces the pod to its agent; nothing is left on failure */
  private async boot(sandboxId: string, hostSpec: Record<string, unknown>): Promise<KataSandbox> {
    if (this.sandboxes.has(sandboxId)) throw failedPrecondition(`kata: sandbox ${sandboxId} already has a VM`);
    const cfg = this.o.config;
    const assets = guestAssetsFrom();
    const kernel = cfg.kernel ?? assets.kernel;
    const initrd = cfg.initrd ?? assets.initrd;
    for (const [what, file] of [
      ['kernel', kernel],
      ['initrd', initrd],
    ] as const) {
      if (!existsSync(file)) {
        throw failedPrecondition(`kata: guest ${what} ${file} does not exist (set kata.${what}, or build the guest with scripts/build-kata-guest.sh)`);
      }
    }
    const stateDir = this.stateDirOf(sandboxId);
    const sharedDir = join(stateDir, 'shared');
    unmountAndRemove(stateDir);
    mkdirSync(sharedDir, { recursive: true, mode: 0o700 });
    let vm: RunningVm | undefined;
    let agent: AgentClient | undefined;
    let network: PodNetwork | undefined;
    try {
      // A mount of its own, shared: what is bind-mounted under it after virtiofsd started
      // (the rootfs of each container) propagates into virtiofsd's mount namespace.
      ffi.mount(sharedDir, sharedDir, undefined, ffi.MS_BIND | ffi.MS_REC);
      ffi.mount(undefined, sharedDir, undefined, ffi.MS_SHARED | ffi.MS_REC);
      const bootTimeoutMs = cfg.bootTimeoutSec * 1000;
      const netns = netnsOf(hostSpec);
      // a pod's network namespace: the VM gets a tap joined to the pod's interface
      network = netns ? await setUpPodNetwork(netns) : undefined;
      vm = await this.hypervisor.start({
        id: sandboxId,
        stateDir,
        kernel,
        initrd,
        kernelParams: [`agent.port=${cfg.agentPort}`, ...cfg.kernelParams],
        memoryMiB: cfg.memoryMiB,
        vcpus: cfg.vcpus,
        sharedDir,
        ...(network ? { network: { netns: network.netns, tap: network.tap, mac: network.mac } } : {}),
        ...(cfg.hypervisorPath ? { hypervisorPath: cfg.hypervisorPath } : {}),
        extraArgs: cfg.extraArgs,
        accel: cfg.accel,
        bootTimeoutMs,
      });
      agent = await AgentClient.connect({ hybridVsock: vm.agentSocket, port: cfg.agentPort }, { timeoutMs: bootTimeoutMs, defaultTimeoutMs: AGENT_CALL_MS });
      const hostname = typeof hostSpec.hostname === 'string' ? hostSpec.hostname : '';
      await agent.createSandbox({
        hostname,
        dns: [],
        storages: [
          { driver: 'virtio-fs', source: SHARED_FS_TAG, fstype: 'virtiofs', mountPoint: GUEST_SHARED_DIR, options: [], driverOptions: [], shared: true },
        ],
        sandboxPidns: false,
        sandboxId,
        guestHookPath: '',
        kernelModules: [],
      });
      if (network) {
        await agent.updateInterface({ interface: network.guestInterface });
        await agent.updateRoutes({ routes: { Routes: network.guestRoutes } });
      }
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      // the hypervisor quotes the console itself when the guest died before its agent answered
      const tail = why.includes('guest console') ? '' : consoleTail(vm?.consoleLog ?? join(stateDir, 'console.log'));
      await agent?.close().catch(() => undefined);
      await vm?.stop().catch(() => undefined);
      if (network) await tearDownPodNetwork(network).catch(() => undefined);
      await cleanupVmState(stateDir).catch(() => undefined);
      unmountAndRemove(stateDir);
      const code = err instanceof ShimError ? err.code : 'Internal';
      throw new ShimError(code, `kata: the VM of sandbox ${sandboxId} did not come up: ${why}${tail}`, { cause: err });
    }
    const sandbox = new KataSandbox(sandboxId, stateDir, sharedDir, vm, agent, network);
    this.sandboxes.set(sandboxId, sandbox);
    this.watchOom(sandbox);
    void vm.exited.then(() => {
      // every call in flight fails now: WaitProcess calls report the processes as exited
      sandbox.dead = true;
      void agent.close().catch(() => undefined);
    });
    return sandbox;
  }

  onOom(cb: (containerId: string) => void): void {
    this.oomListeners.push(cb);
  }

  /**
   * GetOOMEvent blocks in the agent until a container of the VM is OOM-killed: one call in
   * flight per VM, for as long as it runs. The kill's exit comes through WaitProcess after it.
   */
  private watchOom(sandbox: KataSandbox): void {
    const next = (): void => {
      if (sandbox.dead || sandbox.agent.closed) return;
      sandbox.agent.getOomEvent({}).then(
        (r) => {
          if (r.containerId && sandbox.members.has(r.containerId)) for (const cb of this.oomListeners) cb(r.containerId);
          // an empty id: the agent is going away
          if (r.containerId) next();
        },
        (err) => {
          // an agent without OOM events answers Unimplemented once; a lost VM ends the loop too
          if (err instanceof ShimError && err.code === 'Unimplemented') return;
        },
      );
    };
    next();
  }

  /** bind-mounts what the guest needs from the host into the shared directory */
  private share(sandbox: KataSandbox, shares: HostShare[], mounted: string[]): void {
    for (const s of shares) {
      const target = join(sandbox.sharedDir, s.name);
      // statSync follows symlinks, as the bind mount will; a missing source fails at mount
      let isDir = true;
      try {
        isDir = statSync(s.hostPath).isDirectory();
      } catch {
        // left to the mount to report
      }
      if (isDir) mkdirSync(target, { recursive: true });
      else {
        mkdirSync(dirname(target), { recursive: true });
        if (!existsSync(target)) writeFileSync(target, '');
      }
      try {
        ffi.mount(s.hostPath, target, undefined, ffi.MS_BIND | ffi.MS_REC);
        mounted.push(target);
        if (s.readonly) ffi.mount(undefined, target, undefined, ffi.MS_BIND | ffi.MS_REMOUNT | ffi.MS_RDONLY);
      } catch (err) {
        throw invalidArgument(`kata: cannot share ${s.hostPath} with the VM: ${(err as Error).message}`, err);
      }
    }
  }

  /** the host side of a guest process's stdio (see process-streams.ts) */
  private attachStreams(
    sandbox: KataSandbox,
    containerId: string,
    execId: string,
    stdio: ProcessStdio,
  ): { streams: ProcessStreams; consoleFd?: number; resize?: (rows: number, cols: number) => void } {
    const agent = sandbox.agent;
    if (stdio.terminal) {
      // the core copies between containerd's FIFOs and `ours`, as it would with a pty master
      const [theirs, ours] = ffi.socketpair();
      const ours2 = ffi.dupCloseOnExec(ours);
      const streams = new ProcessStreams({ agent, containerId, execId, stdin: ours2, stdout: ours, stderr: 'none' });
      const resize = (rows: number, cols: number) => {
        void agent.ttyWinResize({ containerId, execId, row: rows, column: cols }).catch(() => undefined);
      };
      return { streams, consoleFd: theirs, resize };
    }
    // the core closes its fds once the process is created: these copies are ours
    const own = (fd: number | 'ignore') => (fd === 'ignore' ? ('none' as const) : ffi.dupCloseOnExec(fd));
    const streams = new ProcessStreams({ agent, containerId, execId, stdin: own(stdio.stdin), stdout: own(stdio.stdout), stderr: own(stdio.stderr) });
    return { streams };
  }

  /** waits for a process in the guest and reports its exit once its output is out */
  private watchExit(c: KataContainer, execId: string): void {
    const sandbox = c.sandbox;
    void sandbox.agent
      .waitProcess({ containerId: c.id, execId })
      .then(
        (r) => r.status,
        () => VM_GONE_STATUS,
      )
      .then(async (status) => {
        const proc = c.processes.get(execId);
        if (!proc || proc.exited) return;
        proc.exited = true;
        await bounded(proc.streams.outputDone, OUTPUT_DRAIN_MS);
        proc.streams.stop();
        this.exits.emit({
          pid: sandbox.vm.pid,
          containerId: c.id,
          ...(execId === c.id ? {} : { execId }),
          status,
          at: new Date(),
        });
      });
  }

  async start(bc: BackendContainer): Promise<void> {
    const c = asKata(bc);
    await c.sandbox.agent.startContainer({ containerId: c.id });
    this.watchExit(c, c.id);
  }

  async exec(bc: BackendContainer, input: ExecInput): Promise<CreateResult> {
    const c = asKata(bc);
    await c.sandbox.agent.execProcess({ containerId: c.id, execId: input.execId, process: ociProcessToProto(input.spec) });
    const io = this.attachStreams(c.sandbox, c.id, input.execId, input.stdio);
    c.processes.set(input.execId, { streams: io.streams, exited: false });
    this.watchExit(c, input.execId);
    return {
      pid: c.sandbox.vm.pid,
      exitReportedById: true,
      ...(io.consoleFd !== undefined ? { consoleFd: io.consoleFd, consoleResize: io.resize } : {}),
    };
  }

  async kill(bc: BackendContainer, signal: number, all: boolean): Promise<void> {
    const c = asKata(bc);
    const init = c.processes.get(c.id);
    if (init?.exited && !all) throw notFound(`process ${c.id} already finished`);
    await c.sandbox.agent.signalProcess({ containerId: c.id, execId: all ? '' : c.id, signal });
  }

  async killProcess(bc: BackendContainer, _pid: number, signal: number, execId: string): Promise<void> {
    const c = asKata(bc);
    if (c.processes.get(execId)?.exited) throw notFound(`process ${execId} already finished`);
    await c.sandbox.agent.signalProcess({ containerId: c.id, execId, signal });
  }

  async pause(bc: BackendContainer): Promise<void> {
    const c = asKata(bc);
    await c.sandbox.agent.pauseContainer({ containerId: c.id });
  }

  async resume(bc: BackendContainer): Promise<void> {
    const c = asKata(bc);
    await c.sandbox.agent.resumeContainer({ containerId: c.id });
  }

  async update(bc: BackendContainer, resources: Record<string, unknown>): Promise<void> {
    const c = asKata(bc);
    // device rules name host devices, which mean nothing in the guest (as at create)
    const { devices: _hostDevices, ...forGuest } = resources;
    await c.sandbox.agent.updateContainer({ containerId: c.id, resources: ociResourcesToProto(forGuest) });
  }

  async pids(bc: BackendContainer): Promise<number[]> {
    // the guest's pids mean nothing on the host; Kata's shim answers with the VM's pid too
    return [asKata(bc).sandbox.vm.pid];
  }

  async stats(bc: BackendContainer): Promise<CgroupMetrics> {
    const c = asKata(bc);
    const r = await c.sandbox.agent.statsContainer({ containerId: c.id });
    return { version: 1, data: metricsFromAgentStats(r.cgroupStats, r.networkStats) };
  }

  async checkpoint(): Promise<void> {
    throw unimplemented('kata: checkpoint of a container in a VM is not supported');
  }

  async delete(bc: BackendContainer, opts: { force: boolean }): Promise<void> {
    const c = asKata(bc);
    const sandbox = c.sandbox;
    if (!sandbox.dead) {
      if (opts.force) {
        await sandbox.agent.signalProcess({ containerId: c.id, execId: '', signal: 9 }, { timeoutMs: TEARDOWN_CALL_MS }).catch(() => undefined);
      }
      await sandbox.agent.removeContainer({ containerId: c.id, timeout: TEARDOWN_CALL_MS / 1000 }, { timeoutMs: TEARDOWN_CALL_MS * 2 }).catch((err) => {
        // gone already, or the VM with it (its connection is lost before QEMU is reaped)
        const vmGone = sandbox.dead || sandbox.agent.closed || (err instanceof ShimError && err.code === 'Unavailable');
        if (!(err instanceof ShimError && err.code === 'NotFound') && !opts.force && !vmGone) throw err;
      });
    }
    for (const p of c.processes.values()) p.streams.stop();
    for (const m of [...c.shareMounts].reverse()) {
      try {
        ffi.umount2(m, ffi.MNT_DETACH);
      } catch {
        // already gone
      }
    }
    rmSync(join(sandbox.sharedDir, c.id), { recursive: true, force: true });
    for (const m of c.shareMounts) rmSync(m, { recursive: true, force: true });
    sandbox.members.delete(c.id);
  }

  async closeSandbox(sandboxId: string): Promise<void> {
    const sandbox = this.sandboxes.get(sandboxId);
    if (!sandbox) return;
    this.sandboxes.delete(sandboxId);
    if (!sandbox.dead) await sandbox.agent.destroySandbox({}, { timeoutMs: TEARDOWN_CALL_MS }).catch(() => undefined);
    await sandbox.agent.close().catch(() => undefined);
    await sandbox.vm.stop();
    if (sandbox.network) await tearDownPodNetwork(sandbox.network).catch(() => undefined);
    unmountAndRemove(sandbox.stateDir);
  }

  async cleanupAfterCrash(input: { id: string; namespace: string; bundle: string; options: RuncLikeOptions }): Promise<void> {
    const st = readBundleState(input.bundle);
    const stateDir = st?.backend === 'kata' && st.root ? st.root : this.stateDirOf(input.id);
    const sandboxId = st?.sandboxId ?? input.id;
    if (sandboxId === input.id) {
      // the VM's creator: the VM and everything it held go
      await cleanupVmState(stateDir);
      unmountAndRemove(stateDir);
      return;
    }
    // an app container: only its shares in its pod's shared directory
    const shared = join(stateDir, 'shared');
    for (const m of mountsUnder(shared)) {
      const rel = m.slice(shared.length + 1);
      if (rel === input.id || rel.startsWith(`${input.id}/`) || rel.startsWith(`${input.id}-`)) {
        try {
          ffi.umount2(m, ffi.MNT_DETACH);
        } catch {
          // already gone
        }
      }
    }
    rmSync(join(shared, input.id), { recursive: true, force: true });
  }
}
