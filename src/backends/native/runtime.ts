/**
 * The native runtime's verbs over a state root, shared by the shim's backend
 * (backend.ts) and the runc-compatible CLI (bin/tsrun). Everything here works from
 * <root>/<id>/state.json, so any process can pick a container up where another left it.
 *
 * TypeScript validates the config, places the cgroup and compiles the plan; the helper
 * (dist/native/tsshim-exec) makes the namespaces and the process. Verbs that need no
 * namespace work (start, kill, pause/resume, update, ps, delete) are done here directly:
 * a FIFO write, a signal, cgroup files.
 */
import { closeSync, constants, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ShimError, failedPrecondition, notFound, unimplemented } from '../../core/errors.js';
import { readCgroupMetrics, readProcessCgroups, type CgroupMetricsData } from '../../sys/cgroups.js';
import { mountsUnder } from '../../sys/mountinfo.js';
import { killQuietly } from '../../sys/reaper.js';
import { CgroupManager, type CgroupSet } from './cgroup-manager.js';
import { resolveCgroupfsPaths, resolveSystemdUnit, uniformCgroupPaths, type CgroupPaths, type SystemdUnitPlace } from './cgroup-path.js';
import { SystemdCgroupDriver } from './systemd-cgroup.js';
import { compileCreate, compileExec, type CompileWarning } from './compile.js';
import { defaultHelperPath, runHelper, type HelperSpawner } from './helper-client.js';
import { runHooks, runHooksReportingFailures, type HookState } from './hooks.js';
import { encodePlan, type ProcessPlan } from './plan.js';
import { parseResources, parseSpecText, type OciProcess, type OciSpec } from './spec.js';
import {
  EXEC_FIFO,
  type NativeState,
  claimContainerDir,
  containerDir,
  initAlive,
  listIds,
  processStartTime,
  readState,
  removeContainerDir,
  writeState,
} from './state.js';

export type Stdio3 = [number | 'ignore', number | 'ignore', number | 'ignore'];

export interface NativeTimeouts {
  /** helper run for create (ms) */
  create: number;
  exec: number;
  /** waiting for a killed container's processes to leave its cgroup */
  delete: number;
}

const DEFAULT_TIMEOUTS: NativeTimeouts = { create: 30_000, exec: 30_000, delete: 10_000 };

export type ContainerStatus = 'created' | 'running' | 'paused' | 'stopped';

export interface NativeRuntimeOptions {
  /** state root: <root>/<id>/state.json */
  root: string;
  /** default: dist/native/tsshim-exec of this package (or $TSSHIM_NATIVE_HELPER) */
  helperPath?: string;
  /** the systemd cgroup driver for every container (else per create, CreateOptions) */
  systemdCgroup?: boolean;
  /** how systemd is reached (tests); default: SystemdCgroupDriver's */
  systemd?: SystemdCgroupDriver;
  timeouts?: Partial<NativeTimeouts>;
  cgroups?: CgroupManager;
  onWarning?: (w: CompileWarning & { id: string }) => void;
  /** how helpers are started (see HelperRun.spawner); default child_process */
  spawner?: HelperSpawner;
  /**
   * The process whose cgroups a relative cgroupsPath starts from, as runc's start from its
   * own: this one by default; a tsrun spare names the front end it runs a command for.
   */
  cgroupsOf?: number;
  /** told each helper's pid when spawner is posix_spawn (its exit is not a container's) */
  onHelperSpawned?: (pid: number) => void;
  /** which security modules apply process labels (default: detected from /sys) */
  lsm?: HostLsm;
}

/** Linux security modules whose per-process labels a spec can name */
export interface HostLsm {
  apparmor: boolean;
  selinux: boolean;
}

export interface CreateOptions {
  id: string;
  bundle: string;
  stdio: Stdio3;
  /** a unix socket path: the helper sends the pty master there (runc's --console-socket) */
  consoleSocket?: string;
  noPivot?: boolean;
  systemdCgroup?: boolean;
  /** the caller's fds passed on to the container as 3, 4, ... (runc's --preserve-fds) */
  extraFds?: number[];
}

export interface ExecOptions {
  stdio: Stdio3;
  consoleSocket?: string;
  extraFds?: number[];
}

/** One container as found in the state root. */
export interface NativeHandle {
  root: string;
  state: NativeState;
  cgroup: CgroupSet;
}

export class NativeRuntime {
  readonly root: string;
  readonly cgroups: CgroupManager;
  private readonly helperPathOption: string | undefined;
  private readonly systemdCgroup: boolean;
  private readonly timeouts: NativeTimeouts;
  private readonly onWarning: NativeRuntimeOptions['onWarning'];
  private readonly spawner: NativeRuntimeOptions['spawner'];
  private readonly onHelperSpawned: NativeRuntimeOptions['onHelperSpawned'];
  private readonly lsm: Partial<HostLsm>;
  private readonly cgroupsOf: number | 'self';
  private readonly systemdOption: SystemdCgroupDriver | undefined;
  private systemdDriver: SystemdCgroupDriver | undefined;

  constructor(o: NativeRuntimeOptions) {
    this.systemdOption = o.systemd;
    this.root = o.root;
    this.helperPathOption = o.helperPath;
    this.systemdCgroup = o.systemdCgroup ?? false;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
    this.cgroups = o.cgroups ?? new CgroupManager();
    this.onWarning = o.onWarning;
    this.spawner = o.spawner;
    this.onHelperSpawned = o.onHelperSpawned;
    this.lsm = o.lsm ?? {};
    this.cgroupsOf = o.cgroupsOf ?? 'self';
  }

  private get systemd(): SystemdCgroupDriver {
    // half the create deadline: a hung systemd is then reported as such, not as a helper timeout
    this.systemdDriver ??= this.systemdOption ?? new SystemdCgroupDriver({ timeoutMs: Math.floor(this.timeouts.create / 2) });
    return this.systemdDriver;
  }

  /**
   * Where the container's cgroup goes (cgroup-path.ts says how runc reads cgroupsPath).
   * The systemd driver needs systemd as the init of this host, as runc checks.
   */
  private placeCgroup(cgroupsPath: string | undefined, id: string, systemd: boolean): { paths: CgroupPaths; unit?: SystemdUnitPlace } {
    const layout = this.cgroups.layout;
    if (!systemd) return { paths: resolveCgroupfsPaths(cgroupsPath, id, layout, () => readProcessCgroups(this.cgroupsOf)) };
    // runc's test for systemd as init
    if (!existsSync('/run/systemd/system')) {
      throw failedPrecondition('the systemd cgroup driver is configured (SystemdCgroup), but systemd is not running on this host (no /run/systemd/system): use the cgroupfs driver');
    }
    const unit = resolveSystemdUnit(cgroupsPath, id);
    return { paths: uniformCgroupPaths(unit.path, layout), unit };
  }

  get helperPath(): string {
    return this.helperPathOption ?? defaultHelperPath();
  }

  /**
   * Reads and validates <bundle>/config.json. Synchronously: a config is a few KB, and a
   * thread-pool round trip costs more than the read on this latency path.
   */
  loadSpec(bundle: string): OciSpec {
    const file = join(bundle, 'config.json');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw notFound(`bundle ${bundle}: cannot read config.json: ${(err as Error).message}`, err);
    }
    return parseSpecText(text);
  }

  /** create: the init exists, set up, blocked until start. Nothing stays behind a failure. */
  async create(o: CreateOptions, spec?: OciSpec): Promise<NativeHandle> {
    const bundle = resolve(o.bundle);
    spec ??= this.loadSpec(bundle);
    const { paths: cgPaths, unit } = this.placeCgroup(spec.linux.cgroupsPath, o.id, this.systemdCgroup || !!o.systemdCgroup);
    const dir = claimContainerDir(this.root, o.id);
    let cgroup: CgroupSet | undefined;
    let scopeStarted = false;
    let pid = 0;
    // the container process's pid as the hooks point reports it, before the run resolves
    let pausedPid = 0;
    const hookState = (status: HookState['status'], p: number): HookState => ({ ociVersion: spec!.ociVersion, id: o.id, status, pid: p, bundle, annotations: spec!.annotations });
    try {
      if (unit) {
        // made once the helper exists (beforePlan): the scope starts with its pid
        cgroup = this.cgroups.setFor(cgPaths);
      } else {
        cgroup = this.cgroups.create(cgPaths);
        if (spec.linux.resources) this.cgroups.apply(cgroup, spec.linux.resources);
      }
      const set = cgroup;
      const { plan, warnings } = compileCreate(spec, {
        id: o.id,
        bundle,
        cgroup,
        cgroupLayout: this.cgroups.layout,
        // a new user namespace's root cannot write the host's cgroup files
        placement: this.cgroups.placement(cgroup, !spec.linux.namespaces.some((n) => n.type === 'user')),
        execFifo: join(dir, EXEC_FIFO),
        consoleSocket: o.consoleSocket,
        apparmorEnabled: this.lsm.apparmor,
        selinuxEnabled: this.lsm.selinux,
      });
      plan.noPivot = !!o.noPivot;
      plan.process.preserveFds = o.extraFds?.length ?? 0;
      for (const w of warnings) this.onWarning?.({ ...w, id: o.id });
      const newPidNs = spec.linux.namespaces.some((n) => n.type === 'pid' && !n.path);
      ({ pid } = await runHelper({
        helperPath: this.helperPath,
        mode: 'create',
        plan: encodePlan(plan),
        stdio: o.stdio,
        extraFds: o.extraFds,
        // nothing else in a new pid namespace can see the init before it execs
        sealed: !newPidNs,
        timeoutMs: this.timeouts.create,
        spawner: this.spawner,
        spawned: this.onHelperSpawned,
        beforePlan: unit
          ? async (helperPid) => {
              await this.systemd.start({
                id: o.id,
                place: unit,
                pid: helperPid,
                resources: spec!.linux.resources,
                mode: this.cgroups.mode,
                onWarning: (message) => this.onWarning?.({ field: 'linux.resources', message, id: o.id }),
              });
              scopeStarted = true;
              // the hierarchies systemd does not manage (cpuset, hugetlb, ... on v1)
              set.created = this.cgroups.create(cgPaths, { adopt: true }).created;
              if (spec!.linux.resources) this.cgroups.apply(set, spec!.linux.resources);
            }
          : undefined,
        // mounts done, before pivot_root, in the runtime's namespaces (runtime spec order)
        onHooks: async (p) => {
          pausedPid = p;
          await runHooks('prestart', spec!.hooks.prestart, hookState('creating', p));
          await runHooks('createRuntime', spec!.hooks.createRuntime, hookState('creating', p));
        },
      }));
      const later = { poststart: spec.hooks.poststart, poststop: spec.hooks.poststop };
      const state: NativeState = {
        version: 1,
        id: o.id,
        bundle,
        rootfs: plan.rootfs!,
        initPid: pid,
        initStartTime: processStartTime(pid) ?? '',
        created: rfc3339Nano(),
        started: false,
        cgroupPath: cgPaths.path,
        cgroupPaths: cgPaths,
        systemdUnit: unit?.unit,
        namespaces: spec.linux.namespaces.map((n) => ({ type: n.type, path: n.path })),
        userNamespace: spec.linux.namespaces.some((n) => n.type === 'user'),
        seccomp: plan.process.seccomp && { program: plan.process.seccomp.program.toString('base64'), flags: plan.process.seccomp.flags },
        annotations: spec.annotations,
        ociVersion: spec.ociVersion,
        hooks: later.poststart?.length || later.poststop?.length ? later : undefined,
        deviceRules: spec.linux.resources?.devices.length ? spec.linux.resources.devices : undefined,
      };
      writeState(this.root, state);
      return { root: this.root, state, cgroup };
    } catch (err) {
      const victim = pid || pausedPid;
      if (victim > 0) killQuietly(victim);
      if (cgroup) {
        if (victim > 0) await this.cgroups.waitEmpty(cgroup, 2_000).catch(() => undefined);
        await this.cgroups.destroyCreated(cgroup);
      }
      if (unit && scopeStarted) await this.systemd.stop(unit.unit).catch(() => undefined);
      removeContainerDir(this.root, o.id);
      throw err;
    }
  }

  /** the container of an id, from its state file; NotFound when there is none */
  load(id: string): NativeHandle {
    const state = readState(this.root, id);
    return { root: this.root, state, cgroup: this.cgroups.setFor(state.cgroupPaths ?? state.cgroupPath) };
  }

  list(): NativeHandle[] {
    const out: NativeHandle[] = [];
    for (const id of listIds(this.root)) {
      try {
        out.push(this.load(id));
      } catch {
        // removed meanwhile, or corrupt: not listed
      }
    }
    return out;
  }

  status(h: NativeHandle): ContainerStatus {
    if (!initAlive(h.state)) return 'stopped';
    if (!h.state.started && existsSync(join(containerDir(h.root, h.state.id), EXEC_FIFO))) return 'created';
    return this.cgroups.isFrozenQuiet(h.cgroup) ? 'paused' : 'running';
  }

  /** releases the init blocked on the exec fifo, then runs the poststart hooks */
  async start(h: NativeHandle): Promise<void> {
    const fifo = join(containerDir(h.root, h.state.id), EXEC_FIFO);
    let fd: number;
    try {
      // O_NONBLOCK: ENXIO at once when no init waits on the other end
      fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENXIO') {
        const what = h.state.started ? 'it was already started' : 'its init is gone';
        throw failedPrecondition(`cannot start container ${h.state.id}: not in the created state (${what})`);
      }
      throw new ShimError('Internal', `start ${h.state.id}: open ${fifo}: ${(err as Error).message}`, { cause: err });
    }
    try {
      writeSync(fd, '0');
    } finally {
      closeSync(fd);
    }
    // not fs.rmSync: its first call loads Node's rimraf, on the Start path
    try {
      unlinkSync(fifo);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    h.state = { ...h.state, started: true };
    writeState(h.root, h.state);
    await this.runLaterHooks(h, 'poststart', 'running');
  }

  /** poststart, poststop: a failure is a warning, the lifecycle goes on (runtime spec) */
  private async runLaterHooks(h: NativeHandle, kind: 'poststart' | 'poststop', status: HookState['status']): Promise<void> {
    const hooks = h.state.hooks?.[kind];
    if (!hooks?.length) return;
    const { state } = h;
    const { ociVersion, id, bundle, annotations } = state;
    const failures = await runHooksReportingFailures(kind, hooks, { ociVersion, id, status, pid: state.initPid, bundle, annotations });
    for (const message of failures) this.onWarning?.({ field: `hooks.${kind}`, message, id: state.id });
  }

  async exec(h: NativeHandle, proc: OciProcess, o: ExecOptions): Promise<number> {
    if (!initAlive(h.state)) throw failedPrecondition(`cannot exec in container ${h.state.id}: container not running`);
    if (this.cgroups.isFrozenQuiet(h.cgroup)) throw failedPrecondition(`cannot exec in container ${h.state.id}: container is paused`);
    const { plan, warnings } = compileExec(proc, {
      initPid: h.state.initPid,
      namespaces: h.state.namespaces.map((n) => n.type),
      userNamespace: h.state.userNamespace,
      // the exec child moves itself before it joins the container's namespaces
      placement: this.cgroups.placement(h.cgroup, true),
      consoleSocket: o.consoleSocket,
      apparmorEnabled: this.lsm.apparmor,
      selinuxEnabled: this.lsm.selinux,
    });
    // the container's seccomp filter applies to every process in it
    const sc = h.state.seccomp;
    if (sc) plan.process.seccomp = { program: Buffer.from(sc.program, 'base64'), flags: sc.flags } satisfies ProcessPlan['seccomp'];
    plan.process.preserveFds = o.extraFds?.length ?? 0;
    for (const w of warnings) this.onWarning?.({ ...w, id: h.state.id });
    const { pid } = await runHelper({
      helperPath: this.helperPath,
      mode: 'exec',
      plan: encodePlan(plan),
      stdio: o.stdio,
      extraFds: o.extraFds,
      sealed: true,
      timeoutMs: this.timeouts.exec,
      spawner: this.spawner,
      spawned: this.onHelperSpawned,
    });
    return pid;
  }

  /** signals the init (all=false) or every process of the container */
  async kill(h: NativeHandle, signal: number, all: boolean): Promise<void> {
    if (all) {
      const n = await this.cgroups.signalAll(h.cgroup, signal);
      if (n === 0 && !initAlive(h.state)) throw notFound('process already finished: container not running');
      return;
    }
    if (!initAlive(h.state)) throw notFound('process already finished: container not running');
    try {
      process.kill(h.state.initPid, signal);
    } catch (err) {
      throw signalError(err, h.state.initPid, signal);
    }
  }

  async pause(h: NativeHandle): Promise<void> {
    if (!initAlive(h.state)) throw failedPrecondition(`cannot pause container ${h.state.id}: container not running`);
    await this.cgroups.freeze(h.cgroup);
  }

  async resume(h: NativeHandle): Promise<void> {
    if (!initAlive(h.state)) throw failedPrecondition(`cannot resume container ${h.state.id}: container not running`);
    if (!this.cgroups.isFrozen(h.cgroup)) throw failedPrecondition(`cannot resume container ${h.state.id}: container not paused`);
    await this.cgroups.thaw(h.cgroup);
  }

  async update(h: NativeHandle, resources: unknown): Promise<void> {
    if (!initAlive(h.state)) throw failedPrecondition(`cannot update container ${h.state.id}: container not running`);
    let r = parseResources(resources, 'resources');
    if (r.devices.length > 0) {
      // the device filter is attached once, at create. The same rules again (containerd's
      // CRI sends the whole resources on every update) change nothing and are not
      // rewritten: rewriting v1 rules starts with "deny all", a window where the
      // container's devices fail. Other rules would leave filter and v1 disagreeing.
      if (JSON.stringify(r.devices) !== JSON.stringify(h.state.deviceRules ?? [])) {
        throw unimplemented('resources.devices: changing the device rules of a running container is not supported by the native backend');
      }
      r = { ...r, devices: [] };
    }
    // systemd first: it writes the files again from its properties, ours then win
    if (h.state.systemdUnit) await this.systemd.update(h.state.systemdUnit, r, this.cgroups.mode);
    this.cgroups.apply(h.cgroup, r, 'resources');
  }

  pids(h: NativeHandle): number[] {
    return this.cgroups.pids(h.cgroup);
  }

  stats(h: NativeHandle): CgroupMetricsData {
    const anyDir = Object.values(h.cgroup.v1)[0] ?? h.cgroup.unified;
    if (!anyDir || !existsSync(anyDir)) throw notFound(`container ${h.state.id}: cgroup not found`);
    return readCgroupMetrics(this.cgroups.processCgroups(h.cgroup), this.cgroups.layout);
  }

  /**
   * Removes the container: a created (never started) or stopped one as is, a running or
   * paused one only with force (its processes are killed). Gone already is success.
   */
  async delete(h: NativeHandle, force: boolean): Promise<void> {
    if (!existsSync(containerDir(h.root, h.state.id))) return;
    const status = this.status(h);
    if ((status === 'running' || status === 'paused') && !force) {
      throw failedPrecondition(`cannot delete container ${h.state.id} that is not stopped: ${status}`);
    }
    await this.destroy(h);
  }

  /** kills what is left, removes the cgroup, mounts leaked to the host and the state */
  async destroy(h: NativeHandle): Promise<void> {
    const { state, cgroup } = h;
    if (initAlive(state)) killQuietly(state.initPid);
    const killAll = async () => {
      await this.cgroups.signalAll(cgroup, 9).catch(() => 0);
      await this.cgroups.waitEmpty(cgroup, this.timeouts.delete);
    };
    // the common case, a container whose processes are all gone, costs one file read here
    if (!this.cgroups.isEmpty(cgroup)) await killAll();
    // as runc: the unit is stopped, then what systemd does not remove is
    if (state.systemdUnit) await this.systemd.stop(state.systemdUnit);
    try {
      await this.cgroups.destroy(cgroup);
    } catch {
      // processes in cgroups the container made below its own
      await killAll();
      await this.cgroups.destroy(cgroup);
    }
    // with shared rootfs propagation, the container's mounts also appear under the
    // bundle's rootfs on the host; the rootfs itself (mounted by the shim) stays
    const leaked = mountsUnder(state.rootfs).filter((m) => m !== resolve(state.rootfs));
    if (leaked.length > 0) {
      const { umount2, MNT_DETACH } = await import('../../sys/ffi.js');
      for (const m of leaked) {
        try {
          umount2(m, MNT_DETACH);
        } catch {
          // gone already
        }
      }
    }
    removeContainerDir(h.root, state.id);
    await this.runLaterHooks(h, 'poststop', 'stopped');
  }
}

export function signalError(err: unknown, pid: number, signal: number): ShimError {
  const errno = (err as NodeJS.ErrnoException).code;
  if (errno === 'ESRCH') return notFound('process already finished', err);
  if (errno === 'EPERM') return new ShimError('PermissionDenied', `signal ${signal} to pid ${pid}: EPERM`, { cause: err });
  if (errno === 'EINVAL' || (err as Error).name === 'TypeError') return new ShimError('InvalidArgument', `invalid signal ${signal}`, { cause: err });
  return new ShimError('Unknown', `signal ${signal} to pid ${pid}: ${(err as Error).message}`, { cause: err });
}

/**
 * A time as Go's RFC3339Nano, as runc writes `created`: UTC, up to 9 fraction digits without
 * trailing zeros. Date.now() gives milliseconds (the `performance` clock would give more,
 * but its first use loads perf_hooks, ~1.5 ms on every create); the digits after are zeros.
 */
export function rfc3339Nano(ms = Date.now()): string {
  const whole = Math.floor(ms);
  const nanos = Math.min(999, Math.round((ms - whole) * 1e3)) * 1e3 + (whole % 1000) * 1e6;
  const seconds = new Date(whole - (whole % 1000)).toISOString().slice(0, 19);
  const fraction = nanos > 0 ? `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}` : '';
  return `${seconds}${fraction}Z`;
}
