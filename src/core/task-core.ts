/**
 * The task core: containers, their init and exec processes, the state machine and the
 * one exit pipeline. Protocol-free (the ttrpc edge in src/shim translates), and
 * backend-agnostic (a Backend does the primitive work).
 *
 * Exit pipeline, in one place:
 *  - every backend's exit source is subscribed before that backend spawns anything, so an
 *    exit reaped before create/exec returns its pid is buffered (`earlyExits`), not lost;
 *  - an exit that arrives while Start runs is held until the start event is queued;
 *  - an init's exit is held until every running exec of its container has exited;
 *  - the OOM counter is checked synchronously at init exit, before TaskExit;
 *  - a terminal's output is drained (bounded) before the exit is published.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type {
  Backend,
  BackendContainer,
  CgroupMetrics,
  CheckpointInput,
  CreateResult,
  ExitEvent,
  Mount,
  ProcessStdio,
  RuncLikeOptions,
} from './backend.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, ShimError, unimplemented } from './errors.js';
import type { EventSink } from './events.js';
import { ExecProcess, InitProcess, ProcessRecord, TaskStatus } from './process.js';
import { validateId } from './identifiers.js';
import { SerialQueue } from './serial-queue.js';
import { SandboxMembership, placementOf } from './sandbox.js';

/** Go's zero time.Time: what containerd expects as exited_at of a live process */
export const ZERO_TIME = new Date(-62135596800000);

export interface StdioUris {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** What src/io gives the core for one process. */
export interface ProcessIo {
  readonly stdio: ProcessStdio;
  afterSpawn(): void;
  closeStdin(): void;
  /** setWinsize: how a resize reaches this console when it is not a pty master */
  attachConsole(masterFd: number, setWinsize?: (fd: number, rows: number, cols: number) => void): void;
  resize(width: number, height: number): void;
  /** the process exited: deliver what is left (bounded), then free every handle */
  release(): Promise<void>;
}

export interface IoFactory {
  open(uris: StdioUris, ctx: { id: string; namespace: string; ioUid?: number; ioGid?: number }): Promise<ProcessIo>;
}

export interface RootfsMounter {
  mount(mounts: Mount[], target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}

export interface OomMonitor {
  watch(containerId: string, pid: number): void;
  /** re-read the counter now; calls the OOM callback first if it went up */
  check(containerId: string): void;
  unwatch(containerId: string): void;
}

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface CreateTaskInput extends StdioUris {
  id: string;
  bundle: string;
  rootfs: Mount[];
  checkpoint: string;
  options: RuncLikeOptions;
  /** tsshim config named by the runtime options (CRI ConfigPath / 2.x config_body) */
  configPath?: string;
  configBody?: string;
}

export interface ProcessStateView {
  id: string;
  bundle: string;
  pid: number;
  status: TaskStatus;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt: Date;
  execId: string;
}

export interface ExitView {
  pid: number;
  exitStatus: number;
  exitedAt: Date;
}

/** The part of the OCI spec the core itself needs. */
interface BundleSpec {
  annotations: Record<string, string>;
  /**
   * No PID namespace of its own (the pod's or the host's): when its init dies, nothing
   * kills the rest, so the shim does, like the reference shim — otherwise an orphan
   * holding the stdio pipes keeps containerd ≥ 1.7 waiting for the container's IO.
   */
  sharedPidNamespace: boolean;
  /** config.json's process.terminal */
  terminal: boolean;
}

/**
 * The terminal rule, the same for every backend: the request's `terminal` decides whether
 * a process gets a pty, and the process spec a backend receives always says the same.
 *  - Exec: the request wins; the exec's process spec is given the request's value (the
 *    runc shim sets spec.Terminal = request.Terminal before `runc exec`).
 *  - Create: config.json is containerd's, and the runc shim runs it unchanged, so a
 *    request that disagrees with process.terminal fails there (runc refuses the console
 *    socket, or a terminal without one). Every backend refuses it the same way here,
 *    before anything is set up, instead of a runtime's error or (native) lost output.
 */
export function execSpecForRequest(spec: Record<string, unknown>, terminal: boolean): Record<string, unknown> {
  return spec.terminal === terminal ? spec : { ...spec, terminal };
}

function checkCreateTerminal(requested: boolean, spec: BundleSpec, bundle: string): void {
  if (requested === spec.terminal) return;
  const config = join(bundle, 'config.json');
  throw invalidArgument(
    requested
      ? `terminal: the Create request asks for a terminal but process.terminal is false in ${config}; they must agree`
      : `terminal: process.terminal is true in ${config} but the Create request asks for no terminal; they must agree`,
  );
}

export class Container {
  readonly execs = new Map<string, ExecProcess>();
  readonly ios = new Map<ProcessRecord, ProcessIo>();
  /** serialises lifecycle verbs of this container (create/start/delete/exec/pause/…) */
  readonly lifecycle = new SerialQueue();
  backendContainer: BackendContainer | undefined;
  rootfsMounted = false;
  /** init exit waiting for the container's execs to exit first */
  pendingInitExit: ExitEvent | undefined;
  /** the init's pid is its sandbox's: its exit comes by container id, not by pid */
  exitReportedById = false;
  /** the runtime takes the init's stdio at Start: our ends of it stay open until then */
  stdioTakenAtStart = false;

  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly backend: Backend,
    readonly init: InitProcess,
    readonly spec: BundleSpec,
  ) {}

  runningExecs(): number {
    let n = 0;
    for (const e of this.execs.values()) if (e.state === 'running' || e.starting) n++;
    return n;
  }
}

export interface TaskCoreDeps {
  namespace: string;
  events: EventSink;
  /** picks (and lazily builds) the backend for a new container */
  selectBackend(input: CreateTaskInput, annotations: Record<string, string>): Backend | Promise<Backend>;
  io: IoFactory;
  rootfs: RootfsMounter;
  oom: OomMonitor | undefined;
  log: Logger;
  /** bound on waiting for a terminal's output at exit */
  drainTimeoutMs?: number;
  /** called (synchronously) once a container's Delete has succeeded, with its bundle */
  onDeleted?(bundle: string): void;
}

export class TaskCore {
  private readonly containers = new Map<string, Container>();
  /** per backend: host pid → process, for exits */
  private readonly byPid = new Map<Backend, Map<number, { container: Container; proc: ProcessRecord }>>();
  /** exits of pids not yet known, kept only while a spawn is in flight */
  private readonly earlyExits = new Map<Backend, Map<number, ExitEvent>>();
  private spawning = 0;
  private readonly emptyListeners: Array<() => void> = [];
  private readonly sandboxes = new SandboxMembership();

  constructor(private readonly deps: TaskCoreDeps) {}

  get size(): number {
    return this.containers.size;
  }

  onEmpty(cb: () => void): void {
    this.emptyListeners.push(cb);
  }

  /** subscribe to a backend's exits before its first spawn */
  private track(backend: Backend): Map<number, { container: Container; proc: ProcessRecord }> {
    let pids = this.byPid.get(backend);
    if (!pids) {
      pids = new Map();
      this.byPid.set(backend, pids);
      this.earlyExits.set(backend, new Map());
      const sub = backend.exits.subscribe();
      sub.onExit((e) => this.onExit(backend, e));
      backend.onOom?.((id) => this.reportOom(id));
    }
    return pids;
  }

  private onExit(backend: Backend, e: ExitEvent): void {
    if (e.containerId !== undefined) {
      const container = this.containers.get(e.containerId);
      if (container?.backend !== backend) return;
      if (e.execId !== undefined) {
        const exec = container.execs.get(e.execId);
        if (exec?.exitReportedById) this.handleExit(container, exec, e);
      } else if (container.exitReportedById) {
        this.handleExit(container, container.init, e);
      }
      return;
    }
    const owner = this.byPid.get(backend)?.get(e.pid);
    if (!owner) {
      // Reaped before create/exec told us the pid, or an orphan: keep it only while a
      // spawn could still claim it.
      if (this.spawning > 0) this.earlyExits.get(backend)?.set(e.pid, e);
      return;
    }
    this.byPid.get(backend)!.delete(e.pid);
    this.handleExit(owner.container, owner.proc, e);
  }

  private beginSpawn(): void {
    this.spawning++;
  }

  private endSpawn(): void {
    this.spawning--;
    if (this.spawning === 0) for (const m of this.earlyExits.values()) m.clear();
  }

  /** register a freshly spawned pid and replay an exit that beat us to it */
  private adopt(container: Container, proc: ProcessRecord, pid: number): void {
    const backend = container.backend;
    proc.pid = pid;
    if (proc === container.init && container.exitReportedById) return;
    if (proc instanceof ExecProcess && proc.exitReportedById) return;
    const early = this.earlyExits.get(backend)?.get(pid);
    if (early) {
      this.earlyExits.get(backend)!.delete(pid);
      this.handleExit(container, proc, early);
    } else {
      this.byPid.get(backend)!.set(pid, { container, proc });
    }
  }

  private handleExit(container: Container, proc: ProcessRecord, e: ExitEvent): void {
    if (proc.state === 'deleted' || proc.exit) return;
    if (proc.starting) {
      proc.heldExit = { status: e.status, at: e.at };
      return;
    }
    if (proc instanceof ExecProcess) {
      void this.finishExec(container, proc, e);
      return;
    }
    // No runtime kill-all here (the reference shim does one): in a private PID namespace
    // the kernel already killed every process when its init died, and `runc kill --all`
    // freezes the cgroup, racing with containerd's Delete right after the exit event.
    container.pendingInitExit = e;
    if (container.runningExecs() === 0) void this.finishInit(container);
  }

  private async finishExec(container: Container, proc: ExecProcess, e: ExitEvent): Promise<void> {
    await this.drainIo(container, proc);
    this.publishExit(container, proc, e);
    if (container.pendingInitExit && !container.init.exit && container.runningExecs() === 0) {
      void this.finishInit(container);
    }
  }

  private async finishInit(container: Container): Promise<void> {
    const e = container.pendingInitExit;
    const init = container.init;
    if (!e || init.exit) return;
    if (container.spec.sharedPidNamespace && container.backendContainer) {
      // before the exit event: containerd deletes right after it, and a kill-all (which
      // freezes the cgroup) must not overlap with that Delete
      await withDeadline(container.backend.kill(container.backendContainer, 9, true), 5000).catch((err) => {
        this.deps.log.debug({ err: (err as Error).message, id: container.id }, 'kill-all at init exit');
      });
      if (init.exit) return;
    }
    try {
      this.deps.oom?.check(container.id);
    } catch (err) {
      this.deps.log.warn({ err, id: container.id }, 'oom check failed');
    }
    await this.drainIo(container, init);
    if (init.exit) return;
    this.publishExit(container, init, e);
  }

  /** the exit is final: release Wait, then tell containerd (TaskExit.id is the process id) */
  private publishExit(container: Container, proc: ProcessRecord, e: ExitEvent): void {
    proc.markExited(e.status, e.at);
    this.deps.events.publish({
      topic: '/tasks/exit',
      containerId: container.id,
      id: proc.processId,
      pid: proc.pid,
      exitStatus: e.status,
      exitedAt: e.at,
    });
  }

  /** terminal output has to be copied out before the exit is published */
  private async drainIo(container: Container, proc: ProcessRecord): Promise<void> {
    if (!proc.stdio.terminal) return;
    const io = container.ios.get(proc);
    if (!io) return;
    const bound = this.deps.drainTimeoutMs ?? 2000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      io.release().catch(() => undefined),
      new Promise<void>((r) => (timer = setTimeout(r, bound))),
    ]);
    clearTimeout(timer);
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw notFound(`container ${id}: container not created`);
    return c;
  }

  private process(id: string, execId: string): { container: Container; proc: ProcessRecord } {
    const container = this.get(id);
    if (!execId) return { container, proc: container.init };
    const proc = container.execs.get(execId);
    if (!proc) throw notFound(`process does not exist ${execId}`);
    return { container, proc };
  }

  private readSpec(bundle: string): BundleSpec {
    let raw: string;
    try {
      raw = readFileSync(join(bundle, 'config.json'), 'utf8');
    } catch (err) {
      throw invalidArgument(`cannot read ${join(bundle, 'config.json')}: ${(err as Error).message}`, err);
    }
    let spec: { annotations?: unknown; linux?: { namespaces?: unknown }; process?: { terminal?: unknown } };
    try {
      spec = JSON.parse(raw);
    } catch (err) {
      throw invalidArgument(`invalid config.json in bundle ${bundle}: ${(err as Error).message}`, err);
    }
    if (typeof spec !== 'object' || spec === null) throw invalidArgument(`invalid config.json in bundle ${bundle}: not an object`);
    const annotations: Record<string, string> = {};
    if (spec.annotations && typeof spec.annotations === 'object') {
      for (const [k, v] of Object.entries(spec.annotations as Record<string, unknown>)) {
        if (typeof v === 'string') annotations[k] = v;
      }
    }
    const namespaces = Array.isArray(spec.linux?.namespaces) ? (spec.linux!.namespaces as Array<{ type?: unknown; path?: unknown }>) : [];
    const pidNs = namespaces.find((n) => n && n.type === 'pid');
    return {
      annotations,
      sharedPidNamespace: !pidNs || (typeof pidNs.path === 'string' && pidNs.path !== ''),
      terminal: spec.process?.terminal === true,
    };
  }

  async create(input: CreateTaskInput): Promise<{ pid: number }> {
    validateId(input.id);
    if (this.containers.has(input.id)) throw alreadyExists(`container ${input.id}: already exists`);
    if (!isAbsolute(input.bundle)) throw invalidArgument(`bundle path ${input.bundle} must be absolute`);
    const spec = this.readSpec(input.bundle);
    checkCreateTerminal(input.terminal, spec, input.bundle);
    const backend = await this.deps.selectBackend(input, spec.annotations);
    // checked again: selecting may load a backend module, and a Create for the same id may
    // have come in meanwhile
    if (this.containers.has(input.id)) throw alreadyExists(`container ${input.id}: already exists`);
    const init = new InitProcess(input.id, '', {
      stdin: input.stdin,
      stdout: input.stdout,
      stderr: input.terminal ? '' : input.stderr,
      terminal: input.terminal,
    });
    const container = new Container(input.id, input.bundle, backend, init, spec);
    this.containers.set(input.id, container);
    this.track(backend);
    return container.lifecycle.run(async () => {
      let io: ProcessIo | undefined;
      this.beginSpawn();
      try {
        if (input.rootfs.length > 0) {
          await this.deps.rootfs.mount(input.rootfs, join(input.bundle, 'rootfs'));
          container.rootfsMounted = true;
        }
        if (input.checkpoint && !backend.capabilities.checkpoint) {
          throw unimplemented(`backend ${backend.name} cannot restore checkpoints`);
        }
        io = await this.deps.io.open(init.stdio, {
          id: input.id,
          namespace: this.deps.namespace,
          ioUid: input.options.ioUid,
          ioGid: input.options.ioGid,
        });
        container.ios.set(init, io);
        const sandbox = placementOf(input.id, spec.annotations);
        const r = await backend.create({
          id: input.id,
          namespace: this.deps.namespace,
          bundle: input.bundle,
          stdio: io.stdio,
          options: input.options,
          checkpoint: input.checkpoint || undefined,
          sandbox,
        });
        this.sandboxes.join(input.id, sandbox);
        container.exitReportedById = r.exitReportedById === true;
        container.stdioTakenAtStart = r.stdioTakenAtStart === true;
        if (!container.stdioTakenAtStart) io.afterSpawn();
        if (r.consoleFd !== undefined) io.attachConsole(r.consoleFd, consoleResizer(r));
        container.backendContainer = r.container;
        this.deps.events.publish({
          topic: '/tasks/create',
          containerId: input.id,
          bundle: input.bundle,
          rootfs: input.rootfs,
          io: { stdin: input.stdin, stdout: input.stdout, stderr: input.stderr, terminal: input.terminal },
          checkpoint: input.checkpoint,
          pid: r.pid,
        });
        this.adopt(container, init, r.pid);
        try {
          this.deps.oom?.watch(input.id, r.pid);
        } catch (err) {
          this.deps.log.warn({ err, id: input.id }, 'cannot watch for OOM');
        }
        return { pid: r.pid };
      } catch (err) {
        await this.discard(container, io);
        throw err;
      } finally {
        this.endSpawn();
      }
    });
  }

  /** undo a failed Create: nothing may be left behind */
  private async discard(container: Container, io: ProcessIo | undefined): Promise<void> {
    this.containers.delete(container.id);
    container.init.state = 'deleted';
    this.forgetInitPid(container);
    this.sandboxes.leave(container.id);
    if (container.backendContainer) {
      await container.backend.delete(container.backendContainer, { force: true }).catch((err) => {
        this.deps.log.warn({ err, id: container.id }, 'cleanup after failed create');
      });
    } else {
      // the runtime may have registered the container before failing
      await container.backend
        .cleanupAfterCrash({ id: container.id, namespace: this.deps.namespace, bundle: container.bundle, options: {} })
        .catch(() => undefined);
    }
    await io?.release().catch(() => undefined);
    if (container.rootfsMounted) {
      await this.deps.rootfs.unmount(join(container.bundle, 'rootfs')).catch((err) => {
        this.deps.log.warn({ err, id: container.id }, 'unmount after failed create');
      });
    }
    this.deps.oom?.unwatch(container.id);
    this.checkEmpty();
  }

  async start(id: string, execId: string): Promise<{ pid: number }> {
    const { container, proc } = this.process(id, execId);
    return container.lifecycle.run(() => (proc instanceof ExecProcess ? this.startExec(container, proc) : this.startInit(container)));
  }

  private async startInit(container: Container): Promise<{ pid: number }> {
    const init = container.init;
    init.require('start');
    init.starting = true;
    try {
      await container.backend.start(container.backendContainer!);
    } catch (err) {
      if (container.stdioTakenAtStart) container.ios.get(init)?.afterSpawn();
      init.starting = false;
      const held = init.heldExit;
      // no start event went out, so no exit event may follow; just release waiters
      if (held) init.markExited(held.status, held.at);
      throw err;
    }
    if (container.stdioTakenAtStart) container.ios.get(init)?.afterSpawn();
    init.state = 'running';
    this.deps.events.publish({ topic: '/tasks/start', containerId: container.id, pid: init.pid });
    init.starting = false;
    const held = init.heldExit;
    if (held) this.handleExit(container, init, { pid: init.pid, ...held });
    return { pid: init.pid };
  }

  private async startExec(container: Container, exec: ExecProcess): Promise<{ pid: number }> {
    exec.require('start');
    const initState = container.init.state;
    if (initState !== 'running' && initState !== 'created') {
      throw failedPrecondition(`container ${container.id} init process is not running`);
    }
    exec.starting = true;
    let io: ProcessIo | undefined;
    this.beginSpawn();
    try {
      io = await this.deps.io.open(exec.stdio, { id: `${container.id}-${exec.execId}`, namespace: this.deps.namespace });
      container.ios.set(exec, io);
      const r = await container.backend.exec(container.backendContainer!, {
        containerId: container.id,
        execId: exec.execId,
        bundle: container.bundle,
        spec: exec.spec,
        stdio: io.stdio,
      });
      io.afterSpawn();
      if (r.consoleFd !== undefined) io.attachConsole(r.consoleFd, consoleResizer(r));
      exec.exitReportedById = r.exitReportedById === true;
      exec.state = 'running';
      exec.pid = r.pid;
      this.deps.events.publish({ topic: '/tasks/exec-started', containerId: container.id, execId: exec.execId, pid: r.pid });
      exec.starting = false;
      this.adopt(container, exec, r.pid);
      const held = exec.heldExit;
      if (held) this.handleExit(container, exec, { pid: r.pid, ...held });
      return { pid: r.pid };
    } catch (err) {
      exec.starting = false;
      // The reference shim releases pending Waits with status 0 and the zero time and
      // publishes no exit for an exec that never started.
      exec.markExited(0, ZERO_TIME);
      container.ios.delete(exec);
      await io?.release().catch(() => undefined);
      if (container.pendingInitExit && container.runningExecs() === 0) void this.finishInit(container);
      throw err;
    } finally {
      this.endSpawn();
    }
  }

  async exec(id: string, execId: string, uris: StdioUris, spec: Record<string, unknown>): Promise<void> {
    const container = this.get(id);
    validateId(execId);
    await container.lifecycle.run(async () => {
      if (container.execs.has(execId)) throw alreadyExists(`id ${execId}: already exists`);
      container.init.require('exec');
      const exec = new ExecProcess(id, execId, { ...uris, stderr: uris.terminal ? '' : uris.stderr }, execSpecForRequest(spec, uris.terminal));
      container.execs.set(execId, exec);
      this.deps.events.publish({ topic: '/tasks/exec-added', containerId: id, execId });
    });
  }

  async delete(id: string, execId: string): Promise<ExitView> {
    const { container, proc } = this.process(id, execId);
    return container.lifecycle.run(async () => {
      if (proc instanceof ExecProcess) {
        if (proc.state === 'running' || proc.starting) throw failedPrecondition(`cannot delete a running process`);
        proc.require('delete');
        proc.state = 'deleted';
        container.execs.delete(proc.execId);
        await container.ios.get(proc)?.release().catch(() => undefined);
        container.ios.delete(proc);
        return this.exitView(proc);
      }
      const init = container.init;
      init.require('delete');
      const wasCreated = init.state === 'created';
      // From here on an exit of the init (e.g. the runtime killing a never-started
      // container) must not produce a TaskExit after the TaskDelete.
      this.forgetInitPid(container);
      init.state = 'deleted';
      if (container.backendContainer) {
        try {
          await container.backend.delete(container.backendContainer, { force: wasCreated });
        } catch (err) {
          if (!(err instanceof ShimError && err.code === 'NotFound')) {
            init.state = wasCreated ? 'created' : 'stopped';
            if (init.pid && !init.exit && !container.exitReportedById) {
              this.byPid.get(container.backend)?.set(init.pid, { container, proc: init });
            }
            throw err;
          }
        }
      }
      for (const exec of container.execs.values()) exec.state = 'deleted';
      await Promise.all([...container.ios.values()].map((io) => io.release().catch(() => undefined)));
      container.ios.clear();
      if (container.rootfsMounted) {
        await this.deps.rootfs.unmount(join(container.bundle, 'rootfs')).catch((err) => {
          this.deps.log.warn({ err, id }, 'unmount rootfs');
        });
        container.rootfsMounted = false;
      }
      this.deps.oom?.unwatch(id);
      this.containers.delete(id);
      await this.leaveSandbox(container);
      this.deps.onDeleted?.(container.bundle);
      const view = this.exitView(init);
      this.deps.events.publish({
        topic: '/tasks/delete',
        containerId: id,
        id: '',
        pid: view.pid,
        exitStatus: view.exitStatus,
        exitedAt: view.exitedAt,
      });
      this.checkEmpty();
      return view;
    });
  }

  /** an init pid shared with other containers (its sandbox's) belongs to the sandbox's creator */
  private forgetInitPid(container: Container): void {
    if (container.init.pid && !container.exitReportedById) this.byPid.get(container.backend)?.delete(container.init.pid);
  }

  /** the one place that decides a sandbox lost its last container */
  private async leaveSandbox(container: Container): Promise<void> {
    const left = this.sandboxes.leave(container.id);
    if (!left?.last || !container.backend.closeSandbox) return;
    await container.backend.closeSandbox(left.sandboxId, this.deps.namespace).catch((err) => {
      this.deps.log.warn({ err, id: container.id, sandbox: left.sandboxId }, 'close sandbox');
    });
  }

  private exitView(proc: ProcessRecord): ExitView {
    return { pid: proc.pid, exitStatus: proc.exit?.status ?? 0, exitedAt: proc.exit?.at ?? ZERO_TIME };
  }

  private checkEmpty(): void {
    if (this.containers.size === 0) for (const cb of this.emptyListeners) cb();
  }

  state(id: string, execId: string): ProcessStateView {
    const { container, proc } = this.process(id, execId);
    return {
      id: proc.processId,
      bundle: container.bundle,
      pid: proc.pid,
      status: proc.status,
      stdin: proc.stdio.stdin,
      stdout: proc.stdio.stdout,
      stderr: proc.stdio.stderr,
      terminal: proc.stdio.terminal,
      exitStatus: proc.exit?.status ?? 0,
      exitedAt: proc.exit?.at ?? ZERO_TIME,
      execId: proc.execId,
    };
  }

  async wait(id: string, execId: string, signal?: AbortSignal): Promise<ExitView> {
    const { proc } = this.process(id, execId);
    if (!signal) {
      await proc.exited;
    } else {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new ShimError('Canceled', 'wait canceled'));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        proc.exited.then(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
    return this.exitView(proc);
  }

  async kill(id: string, execId: string, signal: number, all: boolean): Promise<void> {
    const { container, proc } = this.process(id, execId);
    if (all && proc === container.init && proc.state === 'stopped' && container.backendContainer) {
      // the init is gone but its cgroup may still hold processes (shared PID namespace)
      await container.backend.kill(container.backendContainer, signal, true).catch(() => undefined);
      return;
    }
    proc.require('kill');
    if (!container.backendContainer) throw failedPrecondition(`container ${id} is not created yet`);
    if (proc instanceof ExecProcess) {
      if (!proc.pid) throw failedPrecondition(`process ${execId} not created`);
      await container.backend.killProcess(container.backendContainer, proc.pid, signal, proc.processId);
      return;
    }
    await container.backend.kill(container.backendContainer, signal, all);
  }

  async pause(id: string): Promise<void> {
    const container = this.get(id);
    await container.lifecycle.run(async () => {
      const init = container.init;
      init.require('pause');
      init.state = 'pausing';
      try {
        await container.backend.pause(container.backendContainer!);
      } catch (err) {
        if (init.state === 'pausing') init.state = 'running';
        throw err;
      }
      if (init.state === 'pausing') init.state = 'paused';
      this.deps.events.publish({ topic: '/tasks/paused', containerId: id });
    });
  }

  async resume(id: string): Promise<void> {
    const container = this.get(id);
    await container.lifecycle.run(async () => {
      const init = container.init;
      init.require('resume');
      await container.backend.resume(container.backendContainer!);
      if (init.state === 'paused') init.state = 'running';
      this.deps.events.publish({ topic: '/tasks/resumed', containerId: id });
    });
  }

  async pids(id: string): Promise<Array<{ pid: number; execId?: string }>> {
    const container = this.get(id);
    if (!container.backendContainer) return [];
    const pids = await container.backend.pids(container.backendContainer);
    const execByPid = new Map<number, string>();
    for (const e of container.execs.values()) if (e.pid) execByPid.set(e.pid, e.execId);
    return pids.map((pid) => ({ pid, execId: execByPid.get(pid) }));
  }

  closeIO(id: string, execId: string): void {
    const { container, proc } = this.process(id, execId);
    container.ios.get(proc)?.closeStdin();
  }

  resizePty(id: string, execId: string, width: number, height: number): void {
    const { container, proc } = this.process(id, execId);
    if (proc.state === 'stopped' || proc.state === 'deleted') return;
    container.ios.get(proc)?.resize(width, height);
  }

  async update(id: string, resources: Record<string, unknown>): Promise<void> {
    const container = this.get(id);
    container.init.require('update');
    if (!container.backend.capabilities.update) throw unimplemented(`backend ${container.backend.name} cannot update resources`);
    await container.backend.update(container.backendContainer!, resources);
  }

  async stats(id: string): Promise<CgroupMetrics> {
    const container = this.get(id);
    if (!container.backendContainer) throw notFound(`container ${id} has no cgroup yet`);
    return container.backend.stats(container.backendContainer);
  }

  async checkpoint(id: string, input: CheckpointInput): Promise<void> {
    const container = this.get(id);
    await container.lifecycle.run(async () => {
      container.init.require('checkpoint');
      if (!container.backend.capabilities.checkpoint) {
        throw unimplemented(`checkpoint is not supported by backend ${container.backend.name} on this host`);
      }
      await container.backend.checkpoint(container.backendContainer!, input);
    });
  }

  /** Connect: the init pid, or 0 for an unknown id (not an error) */
  taskPid(id: string): number {
    return this.containers.get(id)?.init.pid ?? 0;
  }

  /** called on OOM: forwarded as /tasks/oom */
  reportOom(containerId: string): void {
    if (!this.containers.has(containerId)) return;
    this.deps.events.publish({ topic: '/tasks/oom', containerId });
  }

  ids(): string[] {
    return [...this.containers.keys()];
  }
}

/** a backend's own resize for a console that is not a pty master (Kata), as the IO layer takes it */
function consoleResizer(r: CreateResult): ((fd: number, rows: number, cols: number) => void) | undefined {
  const resize = r.consoleResize;
  return resize ? (_fd, rows, cols) => resize(rows, cols) : undefined;
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}
