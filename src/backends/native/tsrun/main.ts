/**
 * tsrun: runc's command line over the native runtime (src/backends/native/runtime.ts),
 * so the native executor serves whatever drives runc: podman (--runtime), containerd's
 * runc shim (BinaryName), OCI conformance suites. Same verbs, flags, state JSON, exit
 * codes and JSON log lines (`--log <file> --log-format json`, which go-runc reads back
 * for the error message) as runc 1.1.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join, resolve as pathResolve } from 'node:path';
import { ShimError, failedPrecondition, invalidArgument, notFound, unimplemented } from '../../../core/errors.js';
import { NativeRuntime, type NativeHandle, type Stdio3 } from '../runtime.js';
import { parseProcess, type OciProcess } from '../spec.js';
import { nativeFeatures } from '../features.js';
import { type Command, GLOBAL_FLAGS, flag, flagList, parseCommandLine, parseSignal } from './args.js';
import { defaultSpec } from './default-spec.js';
import { goJson, runcStats } from './runc-stats.js';
import { memoryDir, v1Dir } from '../../../sys/cgroups.js';
import { childProcess } from '../../../sys/lazy-builtins.js';
import { SHIM_VERSION } from '../../../shim/version.js';
import type { FrontEnd } from './front-end.js';

export const DEFAULT_TSRUN_ROOT = '/run/tsrun';
const OCI_VERSION = '1.0.2-dev';

/** where errors and warnings go: --log in text or json, else stderr */
class RuntimeLog {
  constructor(
    private readonly file: string | undefined,
    private readonly json: boolean,
  ) {}

  /**
   * true when the line went to the --log file. Without one, warnings go to stderr unless
   * fileOnly (a caveat runc would not mention, like an ambient capability it cannot raise).
   */
  write(level: 'error' | 'warning', msg: string, fileOnly = false): boolean {
    const time = new Date().toISOString();
    const line = this.json ? `${JSON.stringify({ level, msg, time })}\n` : `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
    if (this.file) {
      try {
        appendFileSync(this.file, line);
        return true;
      } catch {
        // fall through to stderr
      }
    }
    if (level !== 'error' && !fileOnly) process.stderr.write(line);
    return false;
  }
}

/** pid files are replaced atomically: a reader never sees a partial pid */
function writePidFile(file: string, pid: number): void {
  const abs = pathResolve(file);
  const tmp = join(dirname(abs), `.${basename(abs)}.${process.pid}`);
  writeFileSync(tmp, String(pid));
  renameSync(tmp, abs);
}

function requireId(c: Command): string {
  const id = c.cmd.positional[0];
  if (!id) throw invalidArgument(`tsrun ${c.name}: requires a container id`);
  return id;
}

function extraFds(c: Command): number[] {
  const n = Number(flag(c.cmd, 'preserve-fds') ?? 0);
  if (!Number.isInteger(n) || n < 0) throw invalidArgument(`--preserve-fds: not a number: ${flag(c.cmd, 'preserve-fds')}`);
  return Array.from({ length: n }, (_, i) => 3 + i);
}

const STDIO: Stdio3 = [0, 1, 2];

function stateJson(rt: NativeRuntime, h: NativeHandle): Record<string, unknown> {
  const status = rt.status(h);
  return {
    ociVersion: h.state.ociVersion,
    id: h.state.id,
    pid: status === 'stopped' ? 0 : h.state.initPid,
    status,
    bundle: h.state.bundle,
    rootfs: h.state.rootfs,
    created: h.state.created,
    owner: '',
    // runc leaves the key out when the spec has no annotations
    ...(h.state.annotations && Object.keys(h.state.annotations).length > 0 ? { annotations: h.state.annotations } : {}),
  };
}

/** exits of processes that are re-parented to us once the helper is gone */
async function reaperForWaiting(): Promise<{ wait: (pid: number) => Promise<number>; close: () => void }> {
  const { Reaper } = await import('../../../sys/reaper.js');
  const reaper = Reaper.install();
  const sub = reaper.subscribe();
  // SIGCHLD alone does not keep Node's event loop alive
  const keepAlive = setInterval(() => undefined, 1 << 30);
  return {
    wait: (pid) =>
      new Promise((resolve) => {
        reaper.want(pid);
        const seen = sub.take(pid);
        if (seen) return resolve(seen.status);
        sub.onExit((e) => e.pid === pid && resolve(e.status));
      }),
    close: () => {
      clearInterval(keepAlive);
      sub.close();
    },
  };
}

/** runc forwards signals to the container's process while it waits in the foreground */
function forwardSignals(pid: number): () => void {
  const names: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];
  const handlers = names.map((s) => {
    const h = () => {
      try {
        process.kill(pid, s);
      } catch {
        // gone
      }
    };
    process.on(s, h);
    return [s, h] as const;
  });
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
}

/** the process of an exec: --process file, or the container's own with flag overrides */
function execProcess(c: Command, h: NativeHandle, args: string[]): OciProcess {
  const processFile = flag(c.cmd, 'process');
  if (processFile) {
    const text = processFile === '-' ? readFileSync(0, 'utf8') : readFileSync(processFile, 'utf8');
    return parseProcess(JSON.parse(text), 'process');
  }
  if (args.length === 0) throw invalidArgument('tsrun exec: requires a command (or --process)');
  let base: Record<string, unknown> = {};
  try {
    base = (JSON.parse(readFileSync(join(h.state.bundle, 'config.json'), 'utf8')) as { process?: Record<string, unknown> }).process ?? {};
  } catch {
    // bundle gone: flags alone
  }
  const p: Record<string, unknown> = { ...base, args, terminal: c.cmd.bools.has('tty') };
  p.env = [...((base.env as string[] | undefined) ?? []), ...flagList(c.cmd, 'env')];
  const cwd = flag(c.cmd, 'cwd');
  if (cwd) p.cwd = cwd;
  const user = flag(c.cmd, 'user');
  if (user) {
    const [uid, gid] = user.split(':');
    if (!/^\d+$/.test(uid ?? '') || (gid !== undefined && !/^\d+$/.test(gid))) throw invalidArgument(`--user: must be uid[:gid] (got ${user})`);
    p.user = { ...((base.user as object | undefined) ?? {}), uid: Number(uid), gid: Number(gid ?? 0) };
  }
  const gids = flagList(c.cmd, 'additional-gids').map(Number);
  if (gids.length) p.user = { ...((p.user as object | undefined) ?? { uid: 0, gid: 0 }), additionalGids: gids };
  const caps = flagList(c.cmd, 'cap');
  if (caps.length) {
    const cur = (base.capabilities as Record<string, string[]> | undefined) ?? {};
    const add = (k: string) => [...new Set([...(cur[k] ?? []), ...caps])];
    p.capabilities = { ...cur, bounding: add('bounding'), effective: add('effective'), permitted: add('permitted') };
  }
  if (c.cmd.bools.has('no-new-privs')) p.noNewPrivileges = true;
  return parseProcess(p, 'process');
}

function resourcesFromFlags(c: Command): Record<string, unknown> {
  const file = flag(c.cmd, 'resources');
  if (file) return JSON.parse(file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8')) as Record<string, unknown>;
  const num = (k: string) => {
    const v = flag(c.cmd, k);
    if (v === undefined) return undefined;
    const m = /^(-?\d+)([kmg]?)b?$/i.exec(v.trim());
    if (!m) throw invalidArgument(`--${k}: not a number: ${v}`);
    const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
    return Number(m[1]) * mult;
  };
  const r: Record<string, Record<string, unknown>> = { memory: {}, cpu: {}, pids: {}, blockIO: {} };
  if (num('memory') !== undefined) r.memory!.limit = num('memory');
  if (num('memory-reservation') !== undefined) r.memory!.reservation = num('memory-reservation');
  if (num('memory-swap') !== undefined) r.memory!.swap = num('memory-swap');
  if (num('pids-limit') !== undefined) r.pids!.limit = num('pids-limit');
  if (num('cpu-shares') !== undefined) r.cpu!.shares = num('cpu-shares');
  if (num('cpu-quota') !== undefined) r.cpu!.quota = num('cpu-quota');
  if (num('cpu-period') !== undefined) r.cpu!.period = num('cpu-period');
  if (flag(c.cmd, 'cpuset-cpus')) r.cpu!.cpus = flag(c.cmd, 'cpuset-cpus');
  if (flag(c.cmd, 'cpuset-mems')) r.cpu!.mems = flag(c.cmd, 'cpuset-mems');
  if (num('blkio-weight') !== undefined) r.blockIO!.weight = num('blkio-weight');
  for (const k of Object.keys(r)) if (Object.keys(r[k]!).length === 0) delete r[k];
  return r;
}

const USAGE = `tsrun: runc's command line over the tsshim native executor

usage: tsrun [global options] command [command options] [arguments...]

commands: create start state kill delete run exec ps list pause resume update events features spec
global options: --root <dir> (default ${DEFAULT_TSRUN_ROOT}), --log <file>, --log-format text|json, --systemd-cgroup, --debug
`;

async function dispatch(c: Command, log: RuntimeLog, frontEnd: FrontEnd | undefined): Promise<number> {
  const g = c.global;
  if (g.bools.has('version')) {
    process.stdout.write(`tsrun version ${SHIM_VERSION}\nspec: ${OCI_VERSION}\n`);
    return 0;
  }
  if (!c.name || g.bools.has('help') || c.cmd.bools.has('help')) {
    process.stdout.write(USAGE);
    return c.name || g.bools.has('help') || c.cmd.bools.has('help') ? 0 : 1;
  }
  // run and exec in the foreground wait for their process: the reaper they install for that
  // also reaps the helper, so it can be started with posix_spawn (a few ms less than libuv).
  // A spare has the front end wait: the process is the front end's child, not ours.
  const foreground = (c.name === 'run' || c.name === 'exec') && !c.cmd.bools.has('detach');
  let waiter: Waiter | undefined;
  if (foreground && frontEnd) {
    frontEnd.becomeSubreaper();
    waiter = { wait: (pid) => frontEnd.wait(pid), close: () => undefined, forwardsSignals: true };
  } else if (foreground) {
    waiter = await reaperForWaiting();
  }
  try {
    return await runCommand(c, log, waiter, frontEnd);
  } finally {
    waiter?.close();
  }
}

interface Waiter {
  wait: (pid: number) => Promise<number>;
  close: () => void;
  /** the front end forwards the signals it gets to the waited-for process */
  forwardsSignals?: boolean;
}

async function runCommand(c: Command, log: RuntimeLog, waiter: Waiter | undefined, frontEnd: FrontEnd | undefined): Promise<number> {
  const g = c.global;
  const rt = new NativeRuntime({
    root: pathResolve(flag(g, 'root') ?? DEFAULT_TSRUN_ROOT),
    systemdCgroup: g.bools.has('systemd-cgroup'),
    onWarning: (w) => log.write('warning', `${w.field}: ${w.message}`, true),
    ...(frontEnd ? { spawner: frontEnd, cgroupsOf: frontEnd.pid } : waiter ? { spawner: 'posix_spawn' as const } : {}),
  });
  const out = (s: string) => process.stdout.write(s);

  switch (c.name) {
    case 'create': {
      const h = await rt.create({
        id: requireId(c),
        bundle: pathResolve(flag(c.cmd, 'bundle') ?? process.cwd()),
        stdio: STDIO,
        consoleSocket: flag(c.cmd, 'console-socket'),
        noPivot: c.cmd.bools.has('no-pivot'),
        extraFds: extraFds(c),
      });
      const pidFile = flag(c.cmd, 'pid-file');
      if (pidFile) writePidFile(pidFile, h.state.initPid);
      return 0;
    }
    case 'run': {
      const id = requireId(c);
      const h = await rt.create({
        id,
        bundle: pathResolve(flag(c.cmd, 'bundle') ?? process.cwd()),
        stdio: STDIO,
        consoleSocket: flag(c.cmd, 'console-socket'),
        noPivot: c.cmd.bools.has('no-pivot'),
        extraFds: extraFds(c),
      });
      const pidFile = flag(c.cmd, 'pid-file');
      if (pidFile) writePidFile(pidFile, h.state.initPid);
      const exited = waiter?.wait(h.state.initPid);
      try {
        await rt.start(h);
      } catch (err) {
        await rt.destroy(h);
        throw err;
      }
      if (!waiter || !exited) return 0;
      const stop = waiter.forwardsSignals ? () => undefined : forwardSignals(h.state.initPid);
      const status = await exited;
      stop();
      if (!c.cmd.bools.has('keep')) await rt.destroy(h);
      return status;
    }
    case 'start':
      await rt.start(rt.load(requireId(c)));
      return 0;
    case 'state':
      out(`${JSON.stringify(stateJson(rt, rt.load(requireId(c))), null, 2)}\n`);
      return 0;
    case 'kill': {
      const h = rt.load(requireId(c));
      await rt.kill(h, parseSignal(c.cmd.positional[1], osConstants.signals as Record<string, number>), c.cmd.bools.has('all'));
      return 0;
    }
    case 'delete': {
      const id = requireId(c);
      let h: NativeHandle;
      try {
        h = rt.load(id);
      } catch (err) {
        // runc: deleting a container that does not exist is fine with --force
        if (err instanceof ShimError && err.code === 'NotFound' && c.cmd.bools.has('force')) return 0;
        throw err;
      }
      await rt.delete(h, c.cmd.bools.has('force'));
      return 0;
    }
    case 'exec': {
      const h = rt.load(requireId(c));
      const proc = execProcess(c, h, c.cmd.positional.slice(1));
      if (proc.terminal && !flag(c.cmd, 'console-socket')) throw invalidArgument('tsrun exec: a terminal (-t) needs --console-socket');
      const pid = await rt.exec(h, proc, { stdio: STDIO, consoleSocket: flag(c.cmd, 'console-socket'), extraFds: extraFds(c) });
      const pidFile = flag(c.cmd, 'pid-file');
      if (pidFile) writePidFile(pidFile, pid);
      if (!waiter) return 0;
      const stop = waiter.forwardsSignals ? () => undefined : forwardSignals(pid);
      const status = await waiter.wait(pid);
      stop();
      return status;
    }
    case 'ps': {
      const h = rt.load(requireId(c));
      const pids = rt.pids(h);
      const format = flag(c.cmd, 'format') ?? 'table';
      if (format === 'json') {
        out(`${JSON.stringify(pids)}\n`);
        return 0;
      }
      if (format !== 'table') throw invalidArgument(`--format: must be table or json (got ${format})`);
      // like runc: ps(1)'s table, with only this container's processes
      const lines = childProcess().execFileSync('ps', ['-ef', ...c.cmd.positional.slice(1)], { encoding: 'utf8', timeout: 10_000 }).split('\n');
      const pidCol = lines[0]!.trim().split(/\s+/).indexOf('PID');
      out(`${lines[0]}\n`);
      for (const l of lines.slice(1)) if (l && pids.includes(Number(l.trim().split(/\s+/)[pidCol]))) out(`${l}\n`);
      return 0;
    }
    case 'list': {
      const all = rt.list();
      const format = flag(c.cmd, 'format') ?? 'table';
      if (c.cmd.bools.has('quiet')) {
        for (const h of all) out(`${h.state.id}\n`);
      } else if (format === 'json') {
        out(`${JSON.stringify(all.map((h) => stateJson(rt, h)))}\n`);
      } else {
        const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
        for (const h of all) {
          const s = stateJson(rt, h);
          rows.push([s.id, s.pid, s.status, s.bundle, s.created, 'root'].map(String));
        }
        out(alignColumns(rows));
      }
      return 0;
    }
    case 'pause':
      await rt.pause(rt.load(requireId(c)));
      return 0;
    case 'resume':
      await rt.resume(rt.load(requireId(c)));
      return 0;
    case 'update':
      await rt.update(rt.load(requireId(c)), resourcesFromFlags(c));
      return 0;
    case 'events': {
      const h = rt.load(requireId(c));
      // runc's shape, not the shim's metrics: scripts written for `runc events` read it
      const cgroups = rt.cgroups.processCgroups(h.cgroup);
      const { layout } = rt.cgroups;
      const dirs = { memory: memoryDir(cgroups, layout), cpuset: v1Dir(cgroups, 'cpuset', layout), cpuacct: v1Dir(cgroups, 'cpuacct', layout) };
      const emit = () => out(`${goJson({ type: 'stats', id: h.state.id, data: runcStats(rt.stats(h), dirs) })}\n`);
      if (c.cmd.bools.has('stats')) {
        emit();
        return 0;
      }
      const interval = parseDuration(flag(c.cmd, 'interval') ?? '5s');
      while (rt.status(h) !== 'stopped') {
        emit();
        await new Promise((r) => setTimeout(r, interval));
      }
      return 0;
    }
    case 'features':
      out(`${JSON.stringify(nativeFeatures(), null, 2)}\n`);
      return 0;
    case 'spec': {
      const bundle = pathResolve(flag(c.cmd, 'bundle') ?? process.cwd());
      const file = join(bundle, 'config.json');
      if (existsSync(file)) throw failedPrecondition(`File ${file} exists. Remove it first`);
      writeFileSync(file, `${JSON.stringify(defaultSpec(c.cmd.bools.has('rootless')), null, '\t')}\n`);
      return 0;
    }
    case 'checkpoint':
    case 'restore':
      throw unimplemented(`tsrun ${c.name}: checkpoint/restore is not supported by the native executor`);
    default:
      throw notFound(`tsrun: no such command: ${c.name}`);
  }
}

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  if (!m) throw invalidArgument(`--interval: not a duration: ${s}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

/** the value of a global flag, found without parsing the command line */
function preScan(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) return undefined; // the command: global flags end here
    const [flagName, inline] = a.replace(/^--?/, '').split(/=(.*)/s, 2) as [string, string | undefined];
    if (flagName === name) return inline ?? argv[i + 1];
    const spec = GLOBAL_FLAGS.find((f) => f.names.includes(flagName));
    if (spec?.value && inline === undefined) i++; // skip its value
  }
  return undefined;
}

/** Runs tsrun with argv (without node and script); resolves with the exit code. */
export async function main(argv: string[], frontEnd?: FrontEnd): Promise<number> {
  // known before parsing, so that a command line error reaches the log too
  let log = new RuntimeLog(preScan(argv, 'log'), preScan(argv, 'log-format') === 'json');
  let verb: string | undefined;
  try {
    const c = parseCommandLine(argv);
    verb = c.name;
    const format = flag(c.global, 'log-format') ?? 'text';
    if (format !== 'text' && format !== 'json') throw invalidArgument(`--log-format: must be text or json (got ${format})`);
    log = new RuntimeLog(flag(c.global, 'log'), format === 'json');
    return await dispatch(c, log, frontEnd);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // with --log the error is in the file, which callers (go-runc) read; runc also says it on stderr
    log.write('error', msg);
    process.stderr.write(msg.startsWith('tsrun') ? `${msg}\n` : `tsrun: ${msg}\n`);
    // as runc: an exec that could not run its process exits 255, every other code being the
    // process's own
    return verb === 'exec' ? 255 : 1;
  }
}

/**
 * runc's table layout (Go's tabwriter with minimum width 12 and padding 3): every column but
 * the last is as wide as its longest cell plus 3, at least 12; the last is not padded.
 * Scripts that cut runc's `list` output by columns work on ours.
 */
export function alignColumns(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(12, ...rows.map((r) => (r[col] ?? '').length + 3)));
  return rows.map((r) => r.map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col]!))).join('') + '\n').join('');
}
