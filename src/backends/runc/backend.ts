/**
 * The runc-compatible backend: runc, crun, or any CLI with runc's verbs, chosen by
 * binary name. It does what the reference shim's runc driving does (go-runc through
 * pkg/process), one CLI call per primitive; state and policy stay in the core.
 *
 * Exits come from the shim's reaper: runc's and crun's inits (and exec processes) are
 * re-parented to the shim, a child subreaper, once the runtime CLI exits.
 */
// sync fs, not node:fs/promises: loading that costs a new shim several ms on its first
// container (containerd's critical path), for pid files and other small local files
import { accessSync, constants, copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type {
  Backend,
  BackendCapabilities,
  BackendContainer,
  CgroupMetrics,
  CheckpointInput,
  CreateInput,
  CreateResult,
  ExecInput,
  ExitSource,
  ProcessStdio,
  RuncLikeOptions,
} from '../../core/backend.js';
import { ShimError, internal, notFound, unimplemented } from '../../core/errors.js';
import {
  type ProcessCgroups,
  listPids,
  memoryDir,
  readCgroupMetrics,
  readProcessCgroups,
} from '../../sys/cgroups.js';
import { ConsoleSocket } from '../../sys/console-socket.js';
import { DEFAULT_RUNTIME_ROOT, RuncCli, type RuntimeCommand, type RuntimeVerb, type StdioFds } from './cli.js';
import { PosixSpawnCommand } from './spawn-command.js';
import { Reaper } from '../../sys/reaper.js';

/** `<bundle>/init.pid`, the name the reference shim uses (containerd's `delete` reads it too) */
export const INIT_PID_FILE = 'init.pid';

/** Deadline for `delete --force` in the `delete` binary action, inside containerd's budget. */
const CRASH_CLEANUP_TIMEOUT_MS = 4_000;

/** A unix socket on which the runtime sends the pty master (runc `--console-socket`). */
export interface ConsoleSocketLike {
  readonly path: string;
  /** resolves with the received master fd; rejects on timeout or close */
  receiveMaster(timeoutMs: number): Promise<number>;
  close(): void | Promise<void>;
}
export type ConsoleSocketFactory = () => Promise<ConsoleSocketLike>;

/** The reaper's extra: pids that become our children without child_process (src/sys/reaper.ts). */
export interface WantingExitSource extends ExitSource {
  want?(pid: number): void;
}

export interface RuncBackendOptions {
  /** backend name as registered: "runc" or "crun" (default: from the binary's name) */
  name?: string;
  /** runtime binary (default "runc"); runtime options' BinaryName overrides it per container */
  binary?: string;
  /** runtime root, namespace included; default: options.root or /run/containerd/runc, + /<namespace> */
  root?: string;
  systemdCgroup?: boolean;
  exits: WantingExitSource;
  timeouts?: Partial<Record<RuntimeVerb, number>>;
  /** default: ConsoleSocket.create() (src/sys/console-socket.ts) */
  consoleSockets?: ConsoleSocketFactory;
  /** whether criu is usable; default: `criu` on PATH */
  criuAvailable?: boolean;
  /** how the runtime CLI is run; default posix_spawn when a Reaper is installed, else execa */
  command?: RuntimeCommand;
}

/** What the backend keeps per container. */
export class RuncContainer implements BackendContainer {
  cgroupPath?: string;
  initPid = 0;
  /** the init's cgroups per hierarchy, read once at create (they outlive the init) */
  cgroups?: ProcessCgroups;
  /** restored from a checkpoint at create: already running, so Start has nothing to do */
  restored = false;
  constructor(
    readonly id: string,
    readonly bundle: string,
    readonly namespace: string,
    readonly cli: RuncCli,
    readonly options: RuncLikeOptions,
  ) {}
}

/** `<root>/<namespace>` as the reference shim computes it */
export function runtimeRoot(options: Pick<RuncLikeOptions, 'root'>, namespace: string, fallback?: string): string {
  if (options.root) return join(options.root, namespace);
  return fallback ?? join(DEFAULT_RUNTIME_ROOT, namespace);
}

/** whether an executable named `name` is on PATH (sync: evaluated once at construction) */
export function onPath(name: string, envPath = process.env.PATH ?? ''): boolean {
  if (name.includes('/')) return isExecutable(name);
  return envPath
    .split(':')
    .filter(Boolean)
    .some((dir) => isExecutable(join(dir, name)));
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function readPidFile(file: string): Promise<number> {
  const text = readFileSync(file, 'utf8').trim();
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 0 || String(pid) !== text) {
    throw internal(`pid file ${file} holds no pid: ${JSON.stringify(text.slice(0, 40))}`);
  }
  return pid;
}

function stdioFds(stdio: ProcessStdio): StdioFds {
  // with a terminal the runtime gives the process the pty; our stdio would only leak
  if (stdio.terminal) return ['ignore', 'ignore', 'ignore'];
  return [stdio.stdin, stdio.stdout, stdio.stderr];
}

function isCode(err: unknown, code: ShimError['code']): boolean {
  return err instanceof ShimError && err.code === code;
}

export class RuncBackend implements Backend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  readonly exits: WantingExitSource;
  readonly binary: string;
  /** how the runtime CLI is run (undefined: execa) */
  protected readonly command: RuntimeCommand | undefined;
  protected readonly root: string | undefined;
  private readonly systemdCgroup: boolean;
  protected readonly timeouts: Partial<Record<RuntimeVerb, number>>;
  private readonly consoleSockets: ConsoleSocketFactory;
  private readonly criu: boolean;
  /** `<binary>:<verb>` → whether the runtime has that verb, probed once */
  private readonly verbSupport = new Map<string, boolean>();

  constructor(o: RuncBackendOptions) {
    this.binary = o.binary ?? 'runc';
    this.name = o.name ?? basename(this.binary);
    this.root = o.root;
    this.systemdCgroup = o.systemdCgroup ?? false;
    // with the process's Reaper installed, the runtime CLI is posix_spawned (no execa,
    // child_process or streams loaded); its exits are the command's, not containers'.
    // TSSHIM_RUNTIME_SPAWN=execa keeps execa (comparisons, a suspected regression)
    const reaper = Reaper.current();
    this.command = o.command ?? (reaper && process.env.TSSHIM_RUNTIME_SPAWN !== 'execa' ? PosixSpawnCommand.for(reaper) : undefined);
    this.exits = this.command instanceof PosixSpawnCommand ? this.command.hideRuntimeExits(o.exits) : o.exits;
    this.timeouts = o.timeouts ?? {};
    this.consoleSockets = o.consoleSockets ?? (() => ConsoleSocket.create());
    this.criu = o.criuAvailable ?? onPath('criu');
    this.capabilities = { checkpoint: this.criu, pause: true, update: true, terminal: true };
  }

  /** the CLI for one container: runtime options (BinaryName, Root, SystemdCgroup) win over ours */
  cliFor(options: RuncLikeOptions, namespace: string, timeouts = this.timeouts): RuncCli {
    return new RuncCli({
      binary: options.binaryName || this.binary,
      root: runtimeRoot(options, namespace, this.root),
      systemdCgroup: options.systemdCgroup || this.systemdCgroup,
      timeouts,
      command: this.command,
    });
  }

  /** `<binary> features` JSON (runc ≥ 1.1), or undefined when the runtime has none (crun 1.8) */
  features(): Promise<Record<string, unknown> | undefined> {
    return new RuncCli({ binary: this.binary, root: this.root ?? DEFAULT_RUNTIME_ROOT, timeouts: this.timeouts, command: this.command }).features();
  }

  /** the CLI a new container is driven with (runsc adds per-container flags from the spec) */
  protected cliForCreate(input: CreateInput): RuncCli {
    return this.cliFor(input.options, input.namespace);
  }

  async create(input: CreateInput): Promise<{ container: BackendContainer } & CreateResult> {
    const cli = this.cliForCreate(input);
    const c = new RuncContainer(input.id, input.bundle, input.namespace, cli, input.options);
    const pidFile = join(input.bundle, INIT_PID_FILE);
    if (input.checkpoint) await this.requireCriu(cli, 'restore');

    let created = false;
    try {
      const { consoleFd } = await this.withConsole(input.stdio.terminal, cli.timeoutOf('create'), async (consoleSocket) => {
        if (input.checkpoint) {
          // The reference shim restores at Start; the contract wants the pid from create,
          // so the restored process runs from here on (the core still reports "created")
          // and start() only acknowledges it.
          c.restored = true;
          await cli.restore(
            input.id,
            input.bundle,
            {
              imagePath: input.checkpoint,
              workPath: input.options.criuWorkPath,
              pidFile,
              consoleSocket,
              noPivot: input.options.noPivotRoot,
            },
            stdioFds(input.stdio),
          );
        } else {
          await cli.create(
            input.id,
            input.bundle,
            {
              pidFile,
              consoleSocket,
              noPivot: input.options.noPivotRoot,
              noNewKeyring: input.options.noNewKeyring,
            },
            stdioFds(input.stdio),
          );
        }
        created = true;
      });
      const pid = await readPidFile(pidFile);
      this.exits.want?.(pid);
      c.initPid = pid;
      learnCgroups(c);
      return { container: c, pid, consoleFd };
    } catch (err) {
      // nothing may stay behind a failed create: the core has no container to delete
      if (created) await cli.delete(input.id, input.bundle, true).catch(() => undefined);
      throw err;
    }
  }

  async start(bc: BackendContainer): Promise<void> {
    const c = asRunc(bc);
    if (c.restored) return;
    await c.cli.start(c.id, c.bundle);
  }

  async exec(bc: BackendContainer, input: ExecInput): Promise<CreateResult> {
    const c = asRunc(bc);
    // the process spec goes to the runtime as a file, like go-runc's temp file; kept in the
    // bundle so a crash leaves it where `delete` cleans up
    const processFile = join(c.bundle, `.exec-${input.execId}.json`);
    // not `<exec>.pid` as in the reference shim: an exec named "init" would clobber init.pid
    const pidFile = join(c.bundle, `.exec-${input.execId}.pid`);
    writeFileSync(processFile, JSON.stringify(input.spec), { mode: 0o600 });
    let started = false;
    try {
      const { consoleFd } = await this.withConsole(input.stdio.terminal, c.cli.timeoutOf('exec'), async (consoleSocket) => {
        await c.cli.exec(c.id, c.bundle, { processFile, pidFile, consoleSocket }, stdioFds(input.stdio));
        started = true;
      });
      const pid = await readPidFile(pidFile);
      this.exits.want?.(pid);
      return { pid, consoleFd };
    } catch (err) {
      // the process runs but we could not take it over (no console, no pid): stop it
      if (started) await killFromPidFile(pidFile);
      throw err;
    } finally {
      // the pid is ours now; exec probes would otherwise pile pid files up in the bundle
      rmSync(processFile, { force: true });
      rmSync(pidFile, { force: true });
    }
  }

  async kill(bc: BackendContainer, signal: number, all: boolean): Promise<void> {
    const c = asRunc(bc);
    await c.cli.kill(c.id, c.bundle, signal, all);
  }

  async killProcess(_bc: BackendContainer, pid: number, signal: number): Promise<void> {
    try {
      process.kill(pid, signal);
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).code;
      if (errno === 'ESRCH') throw notFound('process already finished', err);
      if (errno === 'EPERM') throw new ShimError('PermissionDenied', `signal ${signal} to pid ${pid}: EPERM`, { cause: err });
      if (errno === 'EINVAL' || (err as Error).name === 'TypeError') {
        throw new ShimError('InvalidArgument', `invalid signal ${signal}`, { cause: err });
      }
      throw new ShimError('Unknown', `signal ${signal} to pid ${pid}: ${(err as Error).message}`, { cause: err });
    }
  }

  async pause(bc: BackendContainer): Promise<void> {
    const c = asRunc(bc);
    await c.cli.pause(c.id, c.bundle);
  }

  async resume(bc: BackendContainer): Promise<void> {
    const c = asRunc(bc);
    await c.cli.resume(c.id, c.bundle);
  }

  async update(bc: BackendContainer, resources: Record<string, unknown>): Promise<void> {
    const c = asRunc(bc);
    await c.cli.update(c.id, c.bundle, resources);
  }

  async pids(bc: BackendContainer): Promise<number[]> {
    const c = asRunc(bc);
    try {
      return await c.cli.ps(c.id, c.bundle);
    } catch (err) {
      // crun 1.8.1 `ps` crashes (SIGSEGV) once the container has stopped (runc prints
      // `null`); what is left in the cgroup is the answer then
      if (isCode(err, 'Unknown') && c.cgroups) return listPids(c.cgroups);
      throw err;
    }
  }

  async stats(bc: BackendContainer): Promise<CgroupMetrics> {
    const c = asRunc(bc);
    const cgroups = c.cgroups ?? learnCgroups(c);
    const dir = cgroups && memoryDir(cgroups);
    // the reader returns zeros for a vanished cgroup; Stats of a cgroup-less task is NotFound
    if (!cgroups || !dir || !existsSync(dir)) throw notFound(`container ${c.id}: cgroup not found`);
    return readCgroupMetrics(cgroups);
  }

  async checkpoint(bc: BackendContainer, input: CheckpointInput): Promise<void> {
    const c = asRunc(bc);
    await this.requireCriu(c.cli, 'checkpoint');
    // a work dir we chose is ours to remove; one the client named is kept (reference shim)
    const ownWork = !input.workPath;
    const workPath = input.workPath || join(c.bundle, 'criu-work');
    try {
      await c.cli.checkpoint(c.id, c.bundle, {
        imagePath: input.path,
        workPath,
        parentPath: input.parentPath || undefined,
        leaveRunning: !input.exit,
        tcpEstablished: input.openTcp,
        externalUnixSockets: input.externalUnixSockets,
        shellJob: input.terminal,
        fileLocks: input.fileLocks,
        emptyNamespaces: input.emptyNamespaces,
        cgroupsMode: input.cgroupsMode || undefined,
      });
    } catch (err) {
      throw await withDumpLog(err, workPath, c.bundle);
    } finally {
      if (ownWork) {
        try {
          rmSync(workPath, { recursive: true, force: true });
        } catch {
          // best effort: the bundle goes away with the container
        }
      }
    }
  }

  async delete(bc: BackendContainer, opts: { force: boolean }): Promise<void> {
    const c = asRunc(bc);
    try {
      await c.cli.delete(c.id, c.bundle, opts.force);
    } catch (err) {
      // already gone (e.g. after a checkpoint with exit, or a second delete): done
      if (isCode(err, 'NotFound')) return;
      throw err;
    }
  }

  /**
   * The `delete` binary action after a dead shim: no in-memory state, a few seconds.
   * Throws what `delete --force` reports (other than NotFound) so the caller can log it;
   * the caller reads the init pid with readPidFile(<bundle>/init.pid) for its response.
   */
  async cleanupAfterCrash(input: { id: string; namespace: string; bundle: string; options: RuncLikeOptions }): Promise<void> {
    const cli = this.cliFor(input.options, input.namespace, { ...this.timeouts, delete: CRASH_CLEANUP_TIMEOUT_MS });
    let bundle: string | undefined = input.bundle;
    // the log goes to the bundle when it still exists; --log into a missing dir fails runc
    if (!existsSync(bundle)) bundle = undefined;
    try {
      await cli.delete(input.id, bundle, true);
    } catch (err) {
      if (isCode(err, 'NotFound')) return;
      throw err;
    }
  }

  /** criu on this host and the verb in this runtime (Debian's crun 1.8.1 has neither checkpoint nor restore) */
  protected async requireCriu(cli: RuncCli, verb: 'checkpoint' | 'restore'): Promise<void> {
    if (!this.criu) throw unimplemented(`${verb} requires criu, which is not installed`);
    let known = this.verbSupport.get(`${cli.binary}:${verb}`);
    if (known === undefined) {
      known = await cli.supports(verb);
      this.verbSupport.set(`${cli.binary}:${verb}`, known);
    }
    if (!known) throw unimplemented(`${cli.binary} does not support "${verb}" (built without criu support?)`);
  }

  /**
   * Runs fn with a console socket when a terminal is wanted; receives the pty master the
   * runtime sends during fn. The socket is always closed.
   */
  protected async withConsole(
    terminal: boolean,
    timeoutMs: number,
    fn: (consoleSocket: string | undefined) => Promise<void>,
  ): Promise<{ consoleFd?: number }> {
    if (!terminal) {
      await fn(undefined);
      return {};
    }
    const socket = await this.consoleSockets();
    try {
      // listen before the runtime connects; runc sends the fd during create/exec
      const master = socket.receiveMaster(timeoutMs);
      master.catch(() => undefined); // observed below, or irrelevant if fn failed
      await fn(socket.path);
      return { consoleFd: await master };
    } finally {
      await socket.close();
    }
  }
}

export function asRunc(c: BackendContainer): RuncContainer {
  if (c instanceof RuncContainer) return c;
  throw internal(`container ${c.id} was not created by the runc backend`);
}

async function killFromPidFile(pidFile: string): Promise<void> {
  try {
    process.kill(await readPidFile(pidFile), 'SIGKILL');
  } catch {
    // no pid, or already gone
  }
}

/** reads the init's cgroups into c (cgroupPath: the memory cgroup, for stats and OOM) */
function learnCgroups(c: RuncContainer): ProcessCgroups | undefined {
  if (!c.initPid) return undefined;
  try {
    c.cgroups = readProcessCgroups(c.initPid);
  } catch {
    return undefined; // the init is already gone
  }
  c.cgroupPath = c.cgroups.v1.memory ?? c.cgroups.unified;
  return c.cgroups;
}

/**
 * Keeps criu's dump.log next to the bundle (the work dir may be removed) and names it in
 * the error, as the reference shim does: "<first line of the error> path= <log>", plus
 * criu's first own error line, which is what a reader needs.
 */
async function withDumpLog(err: unknown, workPath: string, bundle: string): Promise<unknown> {
  if (!(err instanceof ShimError)) return err;
  const dumpLog = join(bundle, 'criu-dump.log');
  try {
    copyFileSync(join(workPath, 'dump.log'), dumpLog);
  } catch {
    return err; // no criu log: the runtime failed before criu ran
  }
  const firstLine = err.message.split('\n')[0];
  let dumpText = '';
  try {
    dumpText = readFileSync(dumpLog, 'utf8');
  } catch {
    // read below as no criu error line
  }
  const criuError = dumpText
    .split('\n')
    .find((l) => l.includes('Error ('))
    ?.replace(/^\([\d.]+\)\s*/, '')
    .trim();
  const detail = criuError ? ` (criu: ${criuError})` : '';
  return new ShimError(err.code, `${firstLine} path= ${dumpLog}${detail}`, { cause: err });
}
