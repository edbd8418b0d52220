/**
 * A runc-compatible runtime CLI (runc, crun, or anything with the same verbs), driven the
 * way the reference shim drives it (go-runc): global `--root --log --log-format json
 * [--systemd-cgroup]`, then one verb. Every call has a deadline and every failure goes
 * through classifyRuntimeError, so callers only ever see ShimErrors with stable codes.
 */
// sync fs, not node:fs/promises nor node:crypto: loading those costs a new shim several ms
// each on its first runtime call (containerd's critical path), for a few small local files
import { closeSync, fstatSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Options, StdinOption, StdoutStderrOption } from 'execa';
import { internal } from '../../core/errors.js';
import { classifyRuntimeError, lastLogError, type RuntimeVerb } from './runtime-error.js';
import { childProcess } from '../../sys/lazy-builtins.js';

export type { RuntimeVerb } from './runtime-error.js';

let execaModule: Promise<typeof import('execa')> | undefined;

/**
 * execa, imported on the first runtime call. A shim on the native backend never makes
 * one, and the daemon's bundle keeps execa in a chunk of its own that only this import
 * loads (scripts/build-cached-bundle.mjs says what that saves).
 */
function loadExeca(): Promise<typeof import('execa')> {
  // child_process through its accessor first, so the Reaper tracks execa's spawns
  childProcess();
  return (execaModule ??= import('execa'));
}

/** Where runc keeps container state under containerd, as the reference shim (plus `/<namespace>`). */
export const DEFAULT_RUNTIME_ROOT = '/run/containerd/runc';

/** Deadlines per verb, in ms. create/restore include the runtime's hooks and rootfs setup. */
export const DEFAULT_TIMEOUTS: Readonly<Record<RuntimeVerb, number>> = {
  create: 30_000,
  restore: 300_000,
  start: 10_000,
  exec: 30_000,
  kill: 10_000,
  delete: 10_000,
  state: 5_000,
  ps: 5_000,
  pause: 10_000,
  resume: 10_000,
  update: 10_000,
  checkpoint: 300_000,
  features: 5_000,
  // runsc: `events --stats` answers at once
  events: 10_000,
};

export interface RuncCliConfig {
  /** binary name (looked up on PATH) or path: "runc", "crun", ... */
  binary: string;
  /** --root, already including the namespace */
  root: string;
  systemdCgroup?: boolean;
  timeouts?: Partial<Record<RuntimeVerb, number>>;
  /** how the CLI is run; default execa (see RuntimeCommand) */
  command?: RuntimeCommand;
}

/** fds for the process's 0,1,2 ('ignore' = /dev/null), passed through the runtime to the container */
export type StdioFds = readonly [number | 'ignore', number | 'ignore', number | 'ignore'];

export interface CreateArgs {
  pidFile: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
}

export interface RestoreArgs {
  imagePath: string;
  workPath?: string;
  parentPath?: string;
  pidFile: string;
  consoleSocket?: string;
  noPivot?: boolean;
}

export interface ExecArgs {
  processFile: string;
  pidFile: string;
  consoleSocket?: string;
}

export interface CheckpointArgs {
  imagePath: string;
  workPath?: string;
  parentPath?: string;
  /** keep the container running after the dump (i.e. not CheckpointOptions.exit) */
  leaveRunning: boolean;
  tcpEstablished?: boolean;
  externalUnixSockets?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
  emptyNamespaces?: readonly string[];
  cgroupsMode?: string;
}

/** What `state <id>` reports (OCI runtime state; runc and crun both print this shape). */
export interface RuntimeState {
  id: string;
  pid: number;
  status: string;
  bundle: string;
}

/** `<bundle>/log.json`: the runtime's JSON log, as the reference shim names it */
export function runtimeLogPath(bundle: string): string {
  return join(bundle, 'log.json');
}

export function globalArgs(config: Pick<RuncCliConfig, 'root' | 'systemdCgroup'>, bundle?: string): string[] {
  const args = ['--root', config.root];
  if (bundle !== undefined) args.push('--log', runtimeLogPath(bundle), '--log-format', 'json');
  if (config.systemdCgroup) args.push('--systemd-cgroup');
  return args;
}

export function createArgs(id: string, bundle: string, o: CreateArgs): string[] {
  const args = ['create', '--bundle', bundle, '--pid-file', o.pidFile];
  if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
  if (o.noPivot) args.push('--no-pivot');
  if (o.noNewKeyring) args.push('--no-new-keyring');
  args.push(id);
  return args;
}

function criuArgs(o: { imagePath: string; workPath?: string; parentPath?: string }): string[] {
  const args = ['--image-path', o.imagePath];
  if (o.workPath) args.push('--work-path', o.workPath);
  if (o.parentPath) args.push('--parent-path', o.parentPath);
  return args;
}

export function restoreArgs(id: string, bundle: string, o: RestoreArgs): string[] {
  // --no-subreaper: the shim is the subreaper; --detach: restore returns once the process runs
  const args = ['restore', ...criuArgs(o), '--pid-file', o.pidFile];
  if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
  if (o.noPivot) args.push('--no-pivot');
  args.push('--no-subreaper', '--detach', '--bundle', bundle, id);
  return args;
}

export function execArgs(id: string, o: ExecArgs): string[] {
  const args = ['exec', '--process', o.processFile, '--detach', '--pid-file', o.pidFile];
  if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
  args.push(id);
  return args;
}

export function killArgs(id: string, signal: number, all: boolean): string[] {
  return all ? ['kill', '--all', id, String(signal)] : ['kill', id, String(signal)];
}

export function deleteArgs(id: string, force: boolean): string[] {
  return force ? ['delete', '--force', id] : ['delete', id];
}

export function checkpointArgs(id: string, o: CheckpointArgs): string[] {
  const args = ['checkpoint', ...criuArgs(o)];
  if (o.leaveRunning) args.push('--leave-running');
  if (o.tcpEstablished) args.push('--tcp-established');
  if (o.externalUnixSockets) args.push('--ext-unix-sk');
  if (o.shellJob) args.push('--shell-job');
  if (o.fileLocks) args.push('--file-locks');
  if (o.cgroupsMode) args.push('--manage-cgroups-mode', o.cgroupsMode);
  for (const ns of o.emptyNamespaces ?? []) args.push('--empty-ns', ns);
  args.push(id);
  return args;
}

/** `ps --format json` prints `[pid, ...]`, or `null` for a container without processes (runc). */
export function parsePsOutput(stdout: string): number[] {
  const text = stdout.trim();
  if (text === '' || text === 'null') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw internal(`unexpected ps output: ${text.slice(0, 200)}`, err);
  }
  if (parsed === null) return [];
  if (!Array.isArray(parsed) || !parsed.every((p) => Number.isInteger(p))) {
    throw internal(`unexpected ps output: ${text.slice(0, 200)}`);
  }
  return parsed as number[];
}

/**
 * An fd handed to the child as one of its stdio. execa's types only list fds 0-9, but a
 * plain integer goes straight to child_process.spawn, which dup2()s any open fd.
 */
function passFd<T>(fd: number | 'ignore'): T {
  return fd as unknown as T;
}

/** One runtime invocation, as the two ways of running it (execa, posix_spawn) see it. */
export interface RuntimeCommandRequest {
  file: string;
  args: string[];
  /**
   * deadline; undefined: none, for a call that lasts as long as a container (`runsc wait`),
   * whose caller ends it through onSpawned's pid
   */
  timeoutMs: number | undefined;
  /** the container's stdio passed through; undefined: stdin /dev/null, stdout and stderr captured */
  stdio?: StdioFds;
  /** told the runtime process's pid once it runs */
  onSpawned?(pid: number): void;
}

export interface RuntimeCommandResult {
  /** exit code; undefined when killed by a signal or never started */
  exitCode?: number;
  /** signal name ('SIGKILL') when killed by one */
  signal?: string;
  timedOut: boolean;
  /** errno name when the runtime could not be started at all (ENOENT, EACCES, ...) */
  spawnErrno?: string;
  stdout: string;
  stderr: string;
}

/**
 * How a runtime CLI is run. Every implementation kills the process (SIGKILL, no grace: it
 * holds locks other verbs wait for) at the deadline, captures stdout and stderr unless the
 * container's stdio is passed through, and passes on our environment and cwd.
 */
export interface RuntimeCommand {
  run(req: RuntimeCommandRequest): Promise<RuntimeCommandResult>;
}

/**
 * Through execa (child_process): loads execa, child_process and Node's streams on first
 * use. The fallback where posix_spawn and the Reaper are not available.
 */
export const execaCommand: RuntimeCommand = {
  async run(req) {
    const passStdio = req.stdio !== undefined;
    const options: Options = {
      reject: false,
      timeout: req.timeoutMs,
      killSignal: 'SIGKILL',
      stdin: passStdio ? passFd<StdinOption>(req.stdio![0]) : 'ignore',
      stdout: passStdio ? passFd<StdoutStderrOption>(req.stdio![1]) : 'pipe',
      stderr: passStdio ? passFd<StdoutStderrOption>(req.stdio![2]) : 'pipe',
      stripFinalNewline: false,
    };
    const { execa } = await loadExeca();
    const child = execa(req.file, req.args, options);
    if (child.pid !== undefined) req.onSpawned?.(child.pid);
    const result = await child;
    // no exit code, no signal, no timeout: the runtime never ran (ENOENT, EACCES, ...)
    const neverRan = result.failed && result.exitCode === undefined && !result.timedOut && result.signal === undefined;
    return {
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      spawnErrno: neverRan ? (result.code ?? 'EUNKNOWN') : undefined,
      stdout: typeof result.stdout === 'string' ? result.stdout : '',
      stderr: typeof result.stderr === 'string' ? result.stderr : '',
    };
  },
};

export interface RunOptions {
  bundle?: string;
  /** container process stdio passed through (create/exec/restore); otherwise stderr is captured */
  stdio?: StdioFds;
}

/** size of a file, 0 if missing: the offset after which this invocation's log lines start */
function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = fstatSync(fd);
    // runc logs are small per call; cap what we read in case something floods it
    const start = Math.max(offset, size - 1024 * 1024);
    if (size <= start) return '';
    const buf = Buffer.alloc(size - start);
    const n = readSync(fd, buf, 0, buf.length, start);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** names the temporary files of concurrent update calls apart (no crypto needed for that) */
let updateFileCounter = 0;

export class RuncCli {
  readonly binary: string;
  readonly root: string;
  readonly systemdCgroup: boolean;
  protected readonly timeouts: Record<RuntimeVerb, number>;
  protected readonly command: RuntimeCommand;

  constructor(config: RuncCliConfig) {
    this.command = config.command ?? execaCommand;
    this.binary = config.binary;
    this.root = config.root;
    this.systemdCgroup = config.systemdCgroup ?? false;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...config.timeouts };
  }

  timeoutOf(verb: RuntimeVerb): number {
    return this.timeouts[verb];
  }

  /** flags before the verb; runtimes with flags of their own (runsc) add them here */
  protected globalArgs(bundle?: string): string[] {
    return globalArgs(this, bundle);
  }

  async create(id: string, bundle: string, o: CreateArgs, stdio: StdioFds): Promise<void> {
    await this.run('create', createArgs(id, bundle, o), { bundle, stdio });
  }

  async restore(id: string, bundle: string, o: RestoreArgs, stdio: StdioFds): Promise<void> {
    await this.run('restore', restoreArgs(id, bundle, o), { bundle, stdio });
  }

  async start(id: string, bundle: string): Promise<void> {
    await this.run('start', ['start', id], { bundle });
  }

  async exec(id: string, bundle: string, o: ExecArgs, stdio: StdioFds): Promise<void> {
    await this.run('exec', execArgs(id, o), { bundle, stdio });
  }

  async kill(id: string, bundle: string, signal: number, all: boolean): Promise<void> {
    await this.run('kill', killArgs(id, signal, all), { bundle });
  }

  async delete(id: string, bundle: string | undefined, force: boolean): Promise<void> {
    await this.run('delete', deleteArgs(id, force), { bundle });
  }

  async pause(id: string, bundle: string): Promise<void> {
    await this.run('pause', ['pause', id], { bundle });
  }

  async resume(id: string, bundle: string): Promise<void> {
    await this.run('resume', ['resume', id], { bundle });
  }

  /**
   * OCI LinuxResources JSON. The reference shim pipes it to `--resources=-`; crun reads
   * `-` by opening /dev/stdin, which fails (ENXIO) when stdin is a socket, as Node's
   * pipes are. A file in the bundle works for both runtimes.
   */
  async update(id: string, bundle: string, resources: Record<string, unknown>): Promise<void> {
    const file = join(bundle, `.update-${process.pid}-${++updateFileCounter}.json`);
    writeFileSync(file, JSON.stringify(resources), { mode: 0o600 });
    try {
      await this.run('update', ['update', '--resources', file, id], { bundle });
    } finally {
      rmSync(file, { force: true });
    }
  }

  async ps(id: string, bundle: string): Promise<number[]> {
    return parsePsOutput(await this.run('ps', ['ps', '--format', 'json', id], { bundle }));
  }

  async state(id: string, bundle?: string): Promise<RuntimeState> {
    const out = await this.run('state', ['state', id], { bundle });
    const s = JSON.parse(out) as Partial<RuntimeState>;
    return { id: String(s.id ?? id), pid: Number(s.pid ?? 0), status: String(s.status ?? 'unknown'), bundle: String(s.bundle ?? '') };
  }

  async checkpoint(id: string, bundle: string, o: CheckpointArgs): Promise<void> {
    await this.run('checkpoint', checkpointArgs(id, o), { bundle });
  }

  /**
   * Whether the runtime has a verb at all (`<verb> --help` succeeds). crun reports an
   * unknown verb only on stderr, before it opens --log, so for verbs that get the
   * container's stdio (restore) the failure would otherwise be wordless.
   */
  async supports(verb: RuntimeVerb): Promise<boolean> {
    const result = await this.command.run({
      file: this.binary,
      args: [verb, '--help'],
      timeoutMs: this.timeouts.features,
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    return result.exitCode === 0;
  }

  /** `features` JSON (runc ≥ 1.1); undefined when the runtime has no such verb (crun 1.8) */
  async features(): Promise<Record<string, unknown> | undefined> {
    try {
      const out = await this.run('features', ['features'], {});
      return JSON.parse(out) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof Error && 'code' in err && (err.code === 'Unimplemented' || err.code === 'Unknown')) return undefined;
      if (err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  /** what the runtime's log says of this invocation's failure: its last error, as the reference shim reads it */
  protected errorFromLog(_verb: RuntimeVerb, logText: string): string | undefined {
    return lastLogError(logText);
  }

  /**
   * One invocation. Returns stdout; throws the classified ShimError on any failure.
   * Processes that get the container's stdio (create/exec/restore) cannot have their
   * stderr captured (it is the container's), so the log file is the error source there.
   */
  protected async run(verb: RuntimeVerb, verbArgs: string[], o: RunOptions): Promise<string> {
    const logPath = o.bundle !== undefined ? runtimeLogPath(o.bundle) : undefined;
    const logOffset = logPath ? sizeOf(logPath) : 0;
    const timeout = this.timeouts[verb];
    const result = await this.command.run({
      file: this.binary,
      args: [...this.globalArgs(o.bundle), ...verbArgs],
      timeoutMs: timeout,
      stdio: o.stdio,
    });
    if (result.exitCode === 0 && !result.timedOut) return result.stdout;

    const neverRan = result.spawnErrno !== undefined;
    const logMsg = logPath && !neverRan ? this.errorFromLog(verb, readFrom(logPath, logOffset)) : undefined;
    const stderr = result.stderr;
    throw classifyRuntimeError(verb, stderr, logMsg, result.exitCode, {
      binary: this.binary,
      timedOut: result.timedOut,
      timeoutMs: timeout,
      spawnErrno: result.spawnErrno,
      signal: result.timedOut ? undefined : result.signal,
    });
  }
}
