/**
 * The native backend: the Backend contract over NativeRuntime (runtime.ts), our own
 * executor instead of a runtime CLI. See plan.ts for the design.
 *
 * Exits come from the shim's reaper: the helper exits right after create/exec, so the
 * container processes are re-parented to the shim (a child subreaper); want(pid) tells
 * the reaper to look for them. A terminal's pty master arrives on a ConsoleSocket, the
 * same protocol as runc's --console-socket, so the shim side is identical.
 */
import { join, resolve } from 'node:path';
import type {
  Backend,
  BackendCapabilities,
  BackendContainer,
  CgroupMetrics,
  CheckpointInput,
  CreateInput,
  CreateResult,
  ExecInput,
  ExitSubscription,
  ProcessStdio,
  RuncLikeOptions,
} from '../../core/backend.js';
import { ShimError, internal, unimplemented } from '../../core/errors.js';
import { ConsoleSocket } from '../../sys/console-socket.js';
import { Reaper, killQuietly } from '../../sys/reaper.js';
import type { ConsoleSocketFactory, ConsoleSocketLike, WantingExitSource } from '../runc/backend.js';
import type { CgroupManager, CgroupSet } from './cgroup-manager.js';
import type { CompileWarning } from './compile.js';
import { NativeRuntime, signalError, type HostLsm, type NativeHandle, type NativeTimeouts, type Stdio3 } from './runtime.js';
import { parseProcess } from './spec.js';
import type { NativeState } from './state.js';

export const DEFAULT_NATIVE_ROOT = '/run/tsshim/native';

export interface NativeBackendOptions {
  /** state root, namespace included (e.g. /run/tsshim/native/default); options.root + namespace wins */
  root: string;
  exits: WantingExitSource;
  /** the executor binary; default: dist/native/tsshim-exec of this package (or $TSSHIM_NATIVE_HELPER) */
  helperPath?: string;
  /** the systemd cgroup driver (refused with a clear error: cgroupfs only for now) */
  systemdCgroup?: boolean;
  timeouts?: Partial<NativeTimeouts>;
  /** default: ConsoleSocket.create() (src/sys/console-socket.ts) */
  consoleSockets?: ConsoleSocketFactory;
  /** default: a manager for this host's cgroup layout */
  cgroups?: CgroupManager;
  /** config fields that were accepted with a caveat (e.g. a capability the host lacks) */
  onWarning?: (w: CompileWarning & { id: string }) => void;
  /**
   * How helpers are started: 'posix_spawn' (default when exits is the process's Reaper,
   * which then reaps them; their exits are hidden from this backend's subscribers) or
   * 'child_process' (libuv forks and reaps them; ~1.5 ms slower per create and exec).
   */
  helperSpawn?: 'child_process' | 'posix_spawn';
  /** which security modules apply process labels (default: detected from /sys) */
  lsm?: HostLsm;
}

/**
 * The exits of the Reaper minus those of our helpers: with posix_spawn a helper is a
 * plain child of the shim, reaped like a container process, and its exit must not reach
 * the core (which would hold it as an early exit of an unknown pid).
 */
class HelperExitFilter implements WantingExitSource {
  private readonly helpers = new Set<number>();
  private readonly own: ExitSubscription;

  constructor(private readonly inner: WantingExitSource) {
    // forget a helper's pid once every subscriber has been called for its exit
    this.own = inner.subscribe();
    this.own.onExit((e) => {
      this.own.take(e.pid);
      if (this.helpers.has(e.pid)) setImmediate(() => this.helpers.delete(e.pid));
    });
  }

  hide(pid: number): void {
    this.helpers.add(pid);
  }

  subscribe(): ExitSubscription {
    const sub = this.inner.subscribe();
    return {
      onExit: (cb) =>
        sub.onExit((e) => {
          if (!this.helpers.has(e.pid)) cb(e);
          else sub.take(e.pid); // not kept for a take() that will never come
        }),
      take: (pid) => (this.helpers.has(pid) ? undefined : sub.take(pid)),
      close: () => sub.close(),
    };
  }

  want(pid: number): void {
    this.inner.want?.(pid);
  }
}

export class NativeContainer implements BackendContainer {
  cgroupPath?: string;
  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly runtime: NativeRuntime,
    readonly handle: NativeHandle,
  ) {
    this.cgroupPath = handle.cgroup.path;
  }

  get state(): NativeState {
    return this.handle.state;
  }

  get cgroup(): CgroupSet {
    return this.handle.cgroup;
  }
}

function asNative(c: BackendContainer): NativeContainer {
  if (c instanceof NativeContainer) return c;
  throw internal(`container ${c.id} was not created by the native backend`);
}

function stdioOf(s: ProcessStdio): Stdio3 {
  // with a terminal the process gets the pty; our stdio would only leak into it
  return s.terminal ? ['ignore', 'ignore', 'ignore'] : [s.stdin, s.stdout, s.stderr];
}

export class NativeBackend implements Backend {
  readonly name = 'native';
  readonly capabilities: BackendCapabilities = { checkpoint: false, pause: true, update: true, terminal: true };
  readonly exits: WantingExitSource;
  private readonly o: NativeBackendOptions;
  private readonly consoleSockets: ConsoleSocketFactory;
  /** one runtime per state root (options.root may name another per container) */
  private readonly runtimes = new Map<string, NativeRuntime>();
  private readonly spawner: 'child_process' | 'posix_spawn';
  private readonly helperExits: HelperExitFilter | undefined;

  constructor(o: NativeBackendOptions) {
    this.o = o;
    this.spawner = o.helperSpawn ?? (o.exits instanceof Reaper ? 'posix_spawn' : 'child_process');
    this.helperExits = this.spawner === 'posix_spawn' ? new HelperExitFilter(o.exits) : undefined;
    this.exits = this.helperExits ?? o.exits;
    this.consoleSockets = o.consoleSockets ?? (() => ConsoleSocket.create());
  }

  private runtimeFor(options: RuncLikeOptions, namespace: string): NativeRuntime {
    const root = options.root ? join(options.root, namespace) : this.o.root;
    let rt = this.runtimes.get(root);
    if (!rt) {
      rt = new NativeRuntime({
        root,
        helperPath: this.o.helperPath,
        systemdCgroup: this.o.systemdCgroup,
        timeouts: this.o.timeouts,
        cgroups: this.o.cgroups,
        onWarning: this.o.onWarning,
        spawner: this.spawner,
        onHelperSpawned: this.helperExits && ((pid) => this.helperExits!.hide(pid)),
        lsm: this.o.lsm,
      });
      this.runtimes.set(root, rt);
    }
    return rt;
  }

  async create(input: CreateInput): Promise<{ container: BackendContainer } & CreateResult> {
    if (input.checkpoint) throw unimplemented('native backend: restoring a checkpoint is not supported');
    const rt = this.runtimeFor(input.options, input.namespace);
    const spec = rt.loadSpec(resolve(input.bundle));
    let made: NativeHandle | undefined;
    try {
      const { value: h, consoleFd } = await this.withConsole(spec.process.terminal, async (consoleSocket) => {
        made = await rt.create(
          {
            id: input.id,
            bundle: input.bundle,
            stdio: stdioOf(input.stdio),
            consoleSocket,
            noPivot: input.options.noPivotRoot,
            systemdCgroup: input.options.systemdCgroup,
          },
          spec,
        );
        return { value: made, pid: made.state.initPid, size: spec.process.consoleSize };
      });
      this.exits.want?.(h.state.initPid);
      return { container: new NativeContainer(input.id, h.state.bundle, rt, h), pid: h.state.initPid, consoleFd };
    } catch (err) {
      // created, but the pty master never came: nothing may stay behind
      if (made) await rt.destroy(made).catch(() => undefined);
      throw err;
    }
  }

  async start(bc: BackendContainer): Promise<void> {
    const c = asNative(bc);
    await c.runtime.start(c.handle);
  }

  async exec(bc: BackendContainer, input: ExecInput): Promise<CreateResult> {
    const c = asNative(bc);
    const proc = parseProcess(input.spec, 'process');
    const { value: pid, consoleFd } = await this.withConsole(proc.terminal, async (consoleSocket) => {
      const pid = await c.runtime.exec(c.handle, proc, { stdio: stdioOf(input.stdio), consoleSocket });
      this.exits.want?.(pid);
      return { value: pid, pid, size: proc.consoleSize };
    });
    return { pid, consoleFd };
  }

  async kill(bc: BackendContainer, signal: number, all: boolean): Promise<void> {
    const c = asNative(bc);
    await c.runtime.kill(c.handle, signal, all);
  }

  async killProcess(_bc: BackendContainer, pid: number, signal: number): Promise<void> {
    try {
      process.kill(pid, signal);
    } catch (err) {
      throw signalError(err, pid, signal);
    }
  }

  async pause(bc: BackendContainer): Promise<void> {
    const c = asNative(bc);
    await c.runtime.pause(c.handle);
  }

  async resume(bc: BackendContainer): Promise<void> {
    const c = asNative(bc);
    await c.runtime.resume(c.handle);
  }

  async update(bc: BackendContainer, resources: Record<string, unknown>): Promise<void> {
    const c = asNative(bc);
    await c.runtime.update(c.handle, resources);
  }

  async pids(bc: BackendContainer): Promise<number[]> {
    const c = asNative(bc);
    return c.runtime.pids(c.handle);
  }

  async stats(bc: BackendContainer): Promise<CgroupMetrics> {
    const c = asNative(bc);
    return c.runtime.stats(c.handle);
  }

  async checkpoint(_bc: BackendContainer, _input: CheckpointInput): Promise<void> {
    throw unimplemented('native backend: checkpoint is not supported');
  }

  async delete(bc: BackendContainer, opts: { force: boolean }): Promise<void> {
    const c = asNative(bc);
    await c.runtime.delete(c.handle, opts.force);
  }

  async cleanupAfterCrash(input: { id: string; namespace: string; bundle: string; options: RuncLikeOptions }): Promise<void> {
    const rt = this.runtimeFor(input.options, input.namespace);
    let h: NativeHandle;
    try {
      h = rt.load(input.id);
    } catch (err) {
      if (err instanceof ShimError && err.code === 'NotFound') return;
      throw err;
    }
    await rt.destroy(h);
  }

  /**
   * Runs fn with a console socket when a terminal is wanted and returns the pty master
   * the helper sent there (sized as the process asked). The socket is always closed; a
   * process whose master never came is killed.
   */
  private async withConsole<T>(
    terminal: boolean,
    fn: (consoleSocket: string | undefined) => Promise<{ value: T; pid: number; size?: { height: number; width: number } }>,
  ): Promise<{ value: T; consoleFd?: number }> {
    if (!terminal) return { value: (await fn(undefined)).value };
    const socket: ConsoleSocketLike = await this.consoleSockets();
    try {
      // listening before the helper connects; it sends the master during create/exec
      const master = socket.receiveMaster(this.o.timeouts?.create ?? 30_000);
      master.catch(() => undefined); // observed below, or moot when fn failed
      const r = await fn(socket.path);
      let consoleFd: number;
      try {
        consoleFd = await master;
      } catch (err) {
        killQuietly(r.pid);
        throw err;
      }
      if (r.size?.height && r.size.width) {
        const { setWinsize } = await import('../../sys/ffi.js');
        setWinsize(consoleFd, r.size.height, r.size.width);
      }
      return { value: r.value, consoleFd };
    } finally {
      await socket.close();
    }
  }
}
