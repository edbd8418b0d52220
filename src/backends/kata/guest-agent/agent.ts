/**
 * The guest agent's state and verbs: one sandbox, its containers and their processes, run
 * by the project's native executor (src/backends/native) inside the VM. The RPC layer
 * (service.ts) decodes Kata's messages and calls in here.
 *
 * Semantics follow kata-agent where the host can observe them:
 * - the init process is addressed by exec id "" or the container id; SignalProcess with exec
 *   id "" signals the init and then every process of the container;
 * - SIGTERM to an init that does not handle it becomes SIGKILL (a pid namespace's init
 *   ignores unhandled signals, and the host expects SIGTERM to stop a container);
 * - stdio: pipes for stdin/stdout/stderr (stdin always: the host closes it when it has none),
 *   or a pty whose master carries both directions; output waits for the host's reads;
 * - WaitProcess answers the exit status (code, or 128 + signal) and may be called again;
 * - a container's process exits are reaped by this agent (a child subreaper).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendContainer, CgroupMetrics, ExitEvent, ExitSubscription, ProcessStdio } from '../../../core/backend.js';
import { ShimError, alreadyExists, failedPrecondition, internal, invalidArgument, notFound } from '../../../core/errors.js';
import { closeQuietly } from '../../../io/owned-fds.js';
import { OomWatcher } from '../../../sys/oom.js';
import type { NativeBackend } from '../../native/backend.js';
import { InputPipe, OutputQueue } from './streams.js';
import { GuestPaths, validId } from './paths.js';
import { mountStorage, unmountAll, type MountedStorage, type StorageRequest } from './storage.js';

export const AGENT_NAMESPACE = 'kata';

const SIGKILL = 9;
/** how long RemoveContainer waits for the exits of the processes it killed */
const EXIT_AFTER_REMOVE_MS = 2000;
/** how long a terminal's output may still arrive after its process exited */
const TERMINAL_SETTLE_MS = 100;
const SIGTERM = 15;

export type Log = (msg: string, fields?: Record<string, unknown>) => void;

export interface GuestAgentOptions {
  paths: GuestPaths;
  backend: NativeBackend;
  log: Log;
  /** every container's cgroup goes below this parent (host-test mode: a test cgroup) */
  cgroupParent?: string;
  /** setting the hostname and mounting storages: only in a VM (not in host-test mode) */
  ownsTheMachine: boolean;
}

interface ExitInfo {
  status: number;
  signal?: number;
}

class AgentProcess {
  pid = 0;
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  private resolveExit!: (e: ExitInfo) => void;
  stdout: OutputQueue | undefined;
  stderr: OutputQueue | undefined;
  stdin: InputPipe | undefined;
  /** pty master (terminal processes); stdout reads it, stdin writes it */
  consoleFd: number | undefined;

  constructor(
    readonly containerId: string,
    readonly execId: string,
    readonly terminal: boolean,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  get isInit(): boolean {
    return this.execId === '';
  }

  deliver(e: ExitEvent): void {
    if (this.exit) return;
    this.exit = { status: e.status, signal: e.signal };
    // a terminal has no EOF of its own while a background process keeps the slave open:
    // kata-agent ends its output at the process's exit too
    // (after a moment: the pty hands the slave's last writes to the master asynchronously)
    if (this.terminal) setTimeout(() => this.stdout?.finishAfterExit(), TERMINAL_SETTLE_MS).unref();
    this.resolveExit(this.exit);
  }

  closeStreams(): void {
    this.stdout?.close();
    this.stderr?.close();
    this.stdin?.destroy();
    // the master fd belongs to the stdout queue's stream, closed above
    this.consoleFd = undefined;
  }
}

class AgentContainer {
  status: 'created' | 'running' | 'paused' | 'stopped' = 'created';
  readonly execs = new Map<string, AgentProcess>();
  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly handle: BackendContainer,
    readonly init: AgentProcess,
    readonly storages: MountedStorage[],
  ) {}
}

/** A stdio set being made for a process: our ends, the process's ends (closed after spawn). */
interface StdioPlan {
  stdio: ProcessStdio;
  mine: { stdin?: number; stdout?: number; stderr?: number };
  theirs: number[];
}

export class GuestAgent {
  private sandboxId = '';
  private sandboxStorages: MountedStorage[] = [];
  private readonly containers = new Map<string, AgentContainer>();
  private readonly byPid = new Map<number, AgentProcess>();
  private readonly exits: ExitSubscription;
  private readonly oom: OomWatcher;
  private readonly oomEvents: string[] = [];
  private readonly oomWaiters: Array<(id: string) => void> = [];
  private destroyed = false;

  constructor(private readonly o: GuestAgentOptions) {
    // subscribed before anything is spawned: an exit that comes before create/exec returns
    // its pid is kept by the subscription and taken when the pid is known
    this.exits = o.backend.exits.subscribe();
    this.exits.onExit((e) => {
      const p = this.byPid.get(e.pid);
      if (!p) return;
      this.exits.take(e.pid);
      this.byPid.delete(e.pid);
      p.deliver(e);
      if (p.isInit) {
        const c = this.containers.get(p.containerId);
        if (c) c.status = 'stopped';
      }
    });
    this.oom = new OomWatcher((id) => this.onOom(id), { onError: (err) => o.log('oom watcher failed', { err: String(err) }) });
  }

  get sandbox(): string {
    return this.sandboxId;
  }

  get paths(): GuestPaths {
    return this.o.paths;
  }

  /* ---------------------------------------------------------------- sandbox */

  async createSandbox(req: { sandboxId: string; hostname: string; storages: StorageRequest[] }): Promise<void> {
    if (this.sandboxId) throw alreadyExists(`sandbox ${this.sandboxId} already created`);
    if (!req.sandboxId) throw invalidArgument('CreateSandbox: sandbox_id is empty');
    const mounted: MountedStorage[] = [];
    try {
      for (const s of req.storages) mounted.push(await mountStorage(s, this.o.paths, this.o.ownsTheMachine));
    } catch (err) {
      await unmountAll(mounted);
      throw err;
    }
    if (req.hostname && this.o.ownsTheMachine) {
      try {
        writeFileSync('/proc/sys/kernel/hostname', req.hostname);
      } catch (err) {
        await unmountAll(mounted);
        throw internal(`CreateSandbox: set hostname ${req.hostname}: ${(err as Error).message}`, err);
      }
    }
    this.sandboxStorages = mounted;
    this.sandboxId = req.sandboxId;
    this.o.log('sandbox created', { sandboxId: req.sandboxId, storages: mounted.length });
  }

  /** stops every container and unmounts the sandbox's storages */
  async destroySandbox(): Promise<void> {
    this.destroyed = true;
    const errors: string[] = [];
    for (const id of [...this.containers.keys()]) {
      await this.removeContainer(id).catch((err: Error) => errors.push(`${id}: ${err.message}`));
    }
    await unmountAll(this.sandboxStorages).catch((err: Error) => errors.push(`storages: ${err.message}`));
    this.sandboxStorages = [];
    this.oom.close?.();
    for (const w of this.oomWaiters.splice(0)) w('');
    if (errors.length > 0) throw internal(`DestroySandbox: ${errors.join('; ')}`);
  }

  /* ---------------------------------------------------------------- containers */

  /**
   * spec: the OCI config (JSON) as the host sent it. The rootfs and mount sources under
   * the shared dir are mapped (host-test mode), the cgroup path made a guest one, and the
   * bundle written to <runDir>/<id>/config.json for the native executor.
   */
  async createContainer(id: string, spec: Record<string, unknown> | undefined, storages: StorageRequest[], opts: { sandboxPidns: boolean } = { sandboxPidns: false }): Promise<void> {
    this.checkId(id, 'container id');
    if (this.containers.has(id)) throw alreadyExists(`container ${id} already exists`);
    if (this.destroyed) throw failedPrecondition('the sandbox is being destroyed');
    if (!spec) throw invalidArgument(`container ${id}: no OCI spec in the request`);
    const process = spec.process as Record<string, unknown> | undefined;
    if (!process || typeof process !== 'object') throw invalidArgument(`container ${id}: the OCI spec has no process`);
    if (!Array.isArray(process.args) || process.args.length === 0) throw invalidArgument(`container ${id}: process.args is empty`);

    const mounted: MountedStorage[] = [];
    let bundle: string | undefined;
    let plan: StdioPlan | undefined;
    try {
      for (const s of storages) mounted.push(await mountStorage(s, this.o.paths, this.o.ownsTheMachine));
      const config = this.guestConfig(id, spec, opts);
      bundle = this.o.paths.bundle(id);
      mkdirSync(bundle, { recursive: true, mode: 0o700 });
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
      const terminal = process.terminal === true;
      plan = makeStdio(terminal);
      const init = new AgentProcess(id, '', terminal);
      const made = await this.o.backend.create({
        id,
        namespace: AGENT_NAMESPACE,
        bundle,
        stdio: plan.stdio,
        // pivot_root cannot leave the initramfs (the initial rootfs has no parent mount):
        // there the executor moves the container's root over / and chroots, as runc --no-pivot
        options: rootIsInitramfs() ? { noPivotRoot: true } : {},
      });
      closeAll(plan.theirs);
      const c = new AgentContainer(id, bundle, made.container, init, mounted);
      try {
        this.attachStdio(init, plan, made.consoleFd);
      } catch (err) {
        // created, but its stdio cannot be served: it must not stay behind
        await this.o.backend.delete(made.container, { force: true }).catch(() => undefined);
        throw err;
      }
      this.containers.set(id, c);
      this.track(init, made.pid);
      this.o.log('container created', { id, pid: made.pid });
    } catch (err) {
      if (plan) {
        closeAll(plan.theirs);
        closeAll(Object.values(plan.mine));
      }
      if (bundle) rmSync(bundle, { recursive: true, force: true });
      await unmountAll(mounted).catch(() => undefined);
      throw specError(err, id);
    }
  }

  async startContainer(id: string): Promise<void> {
    const c = this.container(id);
    if (c.status !== 'created') throw failedPrecondition(`container ${id} is ${c.status}, not created`);
    await this.o.backend.start(c.handle);
    c.status = 'running';
    // the sandbox's own container (the pause process) is not watched, as in kata-agent
    if (id !== this.sandboxId && c.init.pid && !c.init.exit) {
      try {
        this.oom.watch(id, c.init.pid);
      } catch (err) {
        this.o.log('no OOM watch', { id, err: (err as Error).message });
      }
    }
  }

  async execProcess(id: string, execId: string, process: Record<string, unknown> | undefined): Promise<void> {
    const c = this.container(id);
    this.checkId(execId, 'exec id');
    if (execId === id || c.execs.has(execId)) throw alreadyExists(`exec ${execId} already exists in container ${id}`);
    if (c.status !== 'running') throw failedPrecondition(`container ${id} is ${c.status}, not running`);
    if (!process) throw invalidArgument(`exec ${execId}: no process in the request`);
    if (!Array.isArray(process.args) || process.args.length === 0) throw invalidArgument(`exec ${execId}: process.args is empty`);
    const terminal = process.terminal === true;
    const p = new AgentProcess(id, execId, terminal);
    const plan = makeStdio(terminal);
    try {
      const r = await this.o.backend.exec(c.handle, { containerId: id, execId, bundle: c.bundle, spec: process, stdio: plan.stdio });
      closeAll(plan.theirs);
      try {
        this.attachStdio(p, plan, r.consoleFd);
      } catch (err) {
        await this.o.backend.killProcess(c.handle, r.pid, SIGKILL).catch(() => undefined);
        throw err;
      }
      c.execs.set(execId, p);
      this.track(p, r.pid);
    } catch (err) {
      closeAll(plan.theirs);
      closeAll(Object.values(plan.mine));
      throw specError(err, `${id}/${execId}`);
    }
  }

  async signalProcess(id: string, execId: string, signal: number): Promise<void> {
    const c = this.container(id);
    const p = this.process(c, execId);
    if (signal < 0 || signal > 64) throw invalidArgument(`signal ${signal} out of range`);
    let sig = signal;
    if (p.isInit && sig === SIGTERM && p.pid && !handlesSignal(p.pid, SIGTERM)) sig = SIGKILL;
    // a process that is gone (or going) is no error: kata-agent ignores ESRCH too
    const gone = (err: unknown) => p.exit !== undefined || (err instanceof ShimError && err.code === 'NotFound');
    if (p.isInit) {
      if (!p.exit) {
        try {
          await this.o.backend.kill(c.handle, sig, false);
        } catch (err) {
          if (!gone(err)) throw err;
        }
      }
      // exec id "": the init and every other process of the container
      if (execId === '') await this.o.backend.kill(c.handle, sig, true).catch(() => undefined);
      return;
    }
    if (p.exit) return;
    try {
      await this.o.backend.killProcess(c.handle, p.pid, sig);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }

  async waitProcess(id: string, execId: string): Promise<number> {
    const p = this.process(this.container(id), execId);
    return (await p.exited).status;
  }

  async readOutput(id: string, execId: string, which: 'stdout' | 'stderr', len: number): Promise<Buffer> {
    const p = this.process(this.container(id), execId);
    const q = which === 'stdout' ? p.stdout : p.stderr;
    if (!q) {
      // a terminal has one stream, read as stdout (its "stderr" is at its end at once)
      if (p.terminal) throw new ShimError('Internal', 'read meet eof');
      throw failedPrecondition(`${id}/${execId || 'init'}: no ${which}`);
    }
    return q.read(len);
  }

  async writeStdin(id: string, execId: string, data: Uint8Array): Promise<number> {
    const p = this.process(this.container(id), execId);
    if (p.terminal) {
      if (!p.stdout) throw failedPrecondition(`${id}/${execId || 'init'}: the terminal is closed`);
      await p.stdout.write(data);
    } else {
      if (!p.stdin) throw failedPrecondition(`${id}/${execId || 'init'}: no stdin`);
      await p.stdin.write(data);
    }
    return data.length;
  }

  closeStdin(id: string, execId: string): void {
    const p = this.process(this.container(id), execId);
    // a terminal's master also carries the output: it stays open
    if (!p.terminal) p.stdin?.close();
  }

  async ttyWinResize(id: string, execId: string, rows: number, cols: number): Promise<void> {
    const p = this.process(this.container(id), execId);
    if (!p.terminal || p.consoleFd === undefined) throw failedPrecondition(`${id}/${execId || 'init'}: no terminal`);
    if (p.exit) return;
    const { setWinsize } = await import('../../../sys/ffi.js');
    setWinsize(p.consoleFd, rows, cols);
  }

  async stats(id: string): Promise<CgroupMetrics> {
    const c = this.container(id);
    return this.o.backend.stats(c.handle);
  }

  async update(id: string, resources: Record<string, unknown>): Promise<void> {
    await this.o.backend.update(this.container(id).handle, resources);
  }

  async pause(id: string): Promise<void> {
    const c = this.container(id);
    if (c.status !== 'running') throw failedPrecondition(`container ${id} is ${c.status}, not running`);
    await this.o.backend.pause(c.handle);
    c.status = 'paused';
  }

  async resume(id: string): Promise<void> {
    const c = this.container(id);
    if (c.status !== 'paused') throw failedPrecondition(`container ${id} is ${c.status}, not paused`);
    await this.o.backend.resume(c.handle);
    c.status = 'running';
  }

  /** kills what still runs, removes cgroup, state, bundle and the container's storages */
  async removeContainer(id: string): Promise<void> {
    const c = this.container(id);
    if (c.status === 'paused') await this.o.backend.resume(c.handle).catch(() => undefined);
    await this.o.backend.delete(c.handle, { force: true });
    this.oom.unwatch(id);
    this.containers.delete(id);
    // a WaitProcess still pending gets the exit of the killed process; should the exit not
    // come (reaped elsewhere), it gets SIGKILL's status rather than hang
    const processes = [c.init, ...c.execs.values()];
    const running = processes.filter((p) => p.pid && !p.exit);
    if (running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(running.map((p) => p.exited)), new Promise((r) => (timer = setTimeout(r, EXIT_AFTER_REMOVE_MS)))]);
      clearTimeout(timer);
      for (const p of running) if (!p.exit) p.deliver({ pid: p.pid, status: 128 + SIGKILL, signal: SIGKILL, at: new Date() });
    }
    // output already queued stays readable until the host hits EOF; the fds go now
    for (const p of processes) {
      if (p.pid) this.byPid.delete(p.pid);
      p.closeStreams();
    }
    rmSync(c.bundle, { recursive: true, force: true });
    await unmountAll(c.storages);
    this.o.log('container removed', { id });
  }

  /** blocks until a container is OOM-killed; its id ("" when the sandbox goes away) */
  nextOomEvent(): Promise<string> {
    const queued = this.oomEvents.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.destroyed) return Promise.resolve('');
    return new Promise((resolve) => this.oomWaiters.push(resolve));
  }

  /* ---------------------------------------------------------------- internals */

  private onOom(id: string): void {
    this.o.log('oom', { id });
    const w = this.oomWaiters.shift();
    if (w) w(id);
    else this.oomEvents.push(id);
  }

  private checkId(id: string, what: string): void {
    if (!validId(id)) throw invalidArgument(`invalid ${what}: ${JSON.stringify(id)}`);
  }

  private container(id: string): AgentContainer {
    const c = this.containers.get(id);
    if (!c) throw notFound(`container ${JSON.stringify(id)}`);
    return c;
  }

  private process(c: AgentContainer, execId: string): AgentProcess {
    if (execId === '' || execId === c.id) return c.init;
    const p = c.execs.get(execId);
    if (!p) throw notFound(`exec ${JSON.stringify(execId)} in container ${c.id}`);
    return p;
  }

  private track(p: AgentProcess, pid: number): void {
    p.pid = pid;
    const early = this.exits.take(pid);
    if (early) {
      p.deliver(early);
      if (p.isInit) {
        const c = this.containers.get(p.containerId);
        if (c) c.status = 'stopped';
      }
      return;
    }
    this.byPid.set(pid, p);
  }

  private attachStdio(p: AgentProcess, plan: StdioPlan, consoleFd: number | undefined): void {
    if (p.terminal) {
      if (consoleFd === undefined) throw internal(`${p.containerId}: no pty master for a terminal process`);
      p.consoleFd = consoleFd;
      p.stdout = new OutputQueue(consoleFd, true);
      return;
    }
    if (plan.mine.stdout !== undefined) p.stdout = new OutputQueue(plan.mine.stdout, false);
    if (plan.mine.stderr !== undefined) p.stderr = new OutputQueue(plan.mine.stderr, false);
    if (plan.mine.stdin !== undefined) p.stdin = new InputPipe(plan.mine.stdin);
  }

  /** the host's spec made a guest one (see createContainer) */
  private guestConfig(id: string, spec: Record<string, unknown>, opts: { sandboxPidns: boolean }): Record<string, unknown> {
    const paths = this.o.paths;
    const config = structuredClone(spec) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const rootPath = typeof config.root?.path === 'string' && config.root.path !== '' ? String(config.root.path) : '';
    const rootfs = rootPath.startsWith('/') ? paths.map(rootPath) : paths.defaultRootfs(id);
    if (!existsSync(rootfs)) throw invalidArgument(`container ${id}: rootfs ${rootfs} does not exist`);
    config.root = { ...(config.root ?? {}), path: rootfs };
    if (Array.isArray(config.mounts)) {
      config.mounts = config.mounts.map((m: Record<string, unknown>) =>
        typeof m?.source === 'string' && m.source.startsWith('/') ? { ...m, source: paths.map(m.source) } : m,
      );
    }
    // host hooks name host binaries: none of them exists in the guest (kata-agent drops them too)
    delete config.hooks;
    const linux = (config.linux ??= {});
    if (Array.isArray(linux.namespaces)) {
      const sandbox = this.sandboxId && this.sandboxId !== id ? this.containers.get(this.sandboxId) : undefined;
      const podPid = sandbox?.init.pid && !sandbox.init.exit ? sandbox.init.pid : undefined;
      const asked = linux.namespaces as Array<{ type?: string; path?: string }>;
      // kata-agent's rules: the VM's network is the pod's (containers stay in it); IPC and UTS
      // are the pod's (the sandbox container's) whether or not the host named a path, since
      // Kata's runtime clears those paths; PID is the pod's with sandbox_pidns (or a host
      // path, which means "the pod's"), else a new one even when the spec has no entry
      // (Kata's runtime removes it).
      const sharedPid = opts.sandboxPidns || asked.some((ns) => ns?.type === 'pid' && !!ns.path);
      linux.namespaces = asked
        .filter((ns) => ns?.type !== 'network' && ns?.type !== 'pid')
        .map((ns) => {
          if ((ns.type === 'ipc' || ns.type === 'uts') && podPid) return { type: ns.type, path: `/proc/${podPid}/ns/${ns.type}` };
          return { type: ns.type };
        });
      linux.namespaces.push(sharedPid && podPid ? { type: 'pid', path: `/proc/${podPid}/ns/pid` } : { type: 'pid' });
    }
    linux.cgroupsPath = this.cgroupPath(id, typeof linux.cgroupsPath === 'string' ? linux.cgroupsPath : '');
    return config;
  }

  /**
   * A guest cgroup path. The host's may be systemd's "slice:prefix:name" form, and the guest
   * has no systemd: such paths become /kata/<id>. Host-test mode puts every container
   * under the test's parent.
   */
  private cgroupPath(id: string, fromHost: string): string {
    if (this.o.cgroupParent) return `${this.o.cgroupParent.replace(/\/+$/, '')}/${id}`;
    if (!fromHost || fromHost.includes(':')) return `/kata/${id}`;
    return fromHost;
  }
}

/** pipes for a non-terminal process (ours: stdin write end, stdout/stderr read ends) */
function makeStdio(terminal: boolean): StdioPlan {
  if (terminal) return { stdio: { terminal: true, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }, mine: {}, theirs: [] };
  // loaded here: ffi (libc) is opened on first use only
  const { pipe } = ffiSync();
  const made: number[] = [];
  try {
    const [inR, inW] = pipe();
    made.push(inR, inW);
    const [outR, outW] = pipe();
    made.push(outR, outW);
    const [errR, errW] = pipe();
    made.push(errR, errW);
    return {
      stdio: { terminal: false, stdin: inR, stdout: outW, stderr: errW },
      mine: { stdin: inW, stdout: outR, stderr: errR },
      theirs: [inR, outW, errW],
    };
  } catch (err) {
    closeAll(made);
    throw err;
  }
}

let ffiModule: typeof import('../../../sys/ffi.js') | undefined;
function ffiSync(): typeof import('../../../sys/ffi.js') {
  if (!ffiModule) throw internal('ffi not loaded');
  return ffiModule;
}
/** loads src/sys/ffi (the agent calls this once at start) */
export async function loadFfi(): Promise<void> {
  ffiModule = await import('../../../sys/ffi.js');
}

function closeAll(fds: Array<number | undefined>): void {
  for (const fd of fds) if (fd !== undefined) closeQuietly(fd);
}

/** true if pid has a handler for sig (SigCgt in /proc/<pid>/status) */
function handlesSignal(pid: number, sig: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (!m) return false;
    return ((BigInt(`0x${m[1]}`) >> BigInt(sig - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** a spec the native executor refused is the caller's mistake: InvalidArgument */
function specError(err: unknown, what: string): unknown {
  if (err instanceof ShimError) return err;
  if (err instanceof SyntaxError || err instanceof TypeError) return invalidArgument(`${what}: ${err.message}`, err);
  return err;
}

let initramfsRoot: boolean | undefined;
/** whether / is the kernel's initial rootfs (an initramfs), read once from mountinfo */
function rootIsInitramfs(): boolean {
  if (initramfsRoot === undefined) {
    try {
      const line = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === '/');
      const fstype = line?.split(' - ')[1]?.split(' ')[0];
      initramfsRoot = fstype === 'rootfs' || (fstype === 'ramfs' && line?.split(' ')[3] === '/');
    } catch {
      initramfsRoot = false;
    }
  }
  return initramfsRoot;
}
