/**
 * Runs the C executor (dist/native/tsshim-exec) for one create or exec: spawns it with
 * the container's stdio as fds 0-2, writes the plan on its control socket, and reads
 * frames back (see plan.ts for the protocol). Resolves with the container process's pid
 * once the helper says OK. On failure the helper has already killed and reaped what it
 * started; on our deadline we kill both the helper and the pid it reported.
 */
import type { StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ShimError, deadlineExceeded, failedPrecondition } from '../../core/errors.js';
import { childProcess } from '../../sys/lazy-builtins.js';
import { openPipeFd, type ByteStream } from '../../sys/uv-pipe.js';

export const HELPER_NAME = 'tsshim-exec';
/** env override for where the helper binary is */
export const HELPER_ENV = 'TSSHIM_NATIVE_HELPER';

const FRAME_PID = 1;
const FRAME_OK = 2;
const FRAME_ERROR = 3;
/** the container process waits before pivot_root: run prestart/createRuntime, then answer */
const FRAME_HOOKS = 4;
const HOOKS_DONE = 1;
const MAX_FRAME = 64 * 1024;

/** A failure the helper reported: its message names what failed; errno kept for callers. */
export class HelperError extends ShimError {
  constructor(
    readonly verb: 'create' | 'exec',
    readonly errno: number,
    readonly detail: string,
  ) {
    super('Unknown', `OCI runtime ${verb} failed: ${detail}`);
    this.name = 'HelperError';
  }
}

/**
 * dist/native/tsshim-exec of this package: found by walking up from this module, which
 * is src/backends/native/ in the tree and dist/shim/ once bundled.
 */
export function defaultHelperPath(): string {
  const fromEnv = process.env[HELPER_ENV];
  if (fromEnv) return fromEnv;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'dist', 'native', HELPER_NAME);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw failedPrecondition(`native backend: ${HELPER_NAME} is not built (run \`node scripts/build-native.mjs\`, or set ${HELPER_ENV})`);
}

/**
 * Starts helpers in another process: tsrun's C front end (src/launcher/tsrun-front.c),
 * for a tsrun spare that serves a command line of that front end. The helper, and the
 * container it starts, must be children of the process its caller ran (podman's conmon and
 * containerd's shim reap the container as its subreaper), not of the spare.
 */
export interface RemoteSpawner {
  /**
   * Spawns file with argv there; its fds 0..inherit-1 are that process's own fds of the
   * same numbers, fd `inherit` is `control` (sent along). Resolves with its pid.
   */
  spawn(file: string, argv: string[], inherit: number, control: number): Promise<number>;
}

export type HelperSpawner = 'child_process' | 'posix_spawn' | RemoteSpawner;

export interface HelperRun {
  helperPath: string;
  mode: 'create' | 'exec';
  plan: Buffer;
  /** container stdio; 'ignore' is /dev/null */
  stdio: [number | 'ignore', number | 'ignore', number | 'ignore'];
  /** fds passed on as 3, 4, ... (process.preserveFds) */
  extraFds?: number[];
  /** re-execute from a sealed memfd copy first (see plan.ts) */
  sealed: boolean;
  timeoutMs: number;
  /**
   * How the helper is started. 'child_process' (default): libuv forks and reaps it.
   * 'posix_spawn': vfork-style through FFI, ~1.5 ms faster than forking Node, but the
   * helper is then a plain child of ours, reaped by the process's Reaper; `spawned` is
   * told its pid first, so an exit source can hide it.
   */
  spawner?: HelperSpawner;
  spawned?: (helperPid: number) => void;
  /**
   * The plan's hook pause (PlanFlag.HookPause): called with the container process's pid
   * at the hooks point; the helper waits until it resolves. A rejection fails the run:
   * the control socket closes, and the helper kills and reaps the container process.
   */
  onHooks?: (pid: number) => Promise<void>;
  /**
   * Called with the helper's pid before it is sent the plan (it waits for it): for work
   * that needs a process to exist first, e.g. a systemd scope, which systemd refuses to
   * start empty. A rejection fails the run; the helper is killed.
   */
  beforePlan?: (helperPid: number) => Promise<void>;
}

/** A started helper: its control socket, and how to stop it. */
interface StartedHelper {
  pid: number;
  control: ByteStream;
  kill(): void;
  /** called once when the helper is known to be gone without an answer */
  onGone(cb: (why: string) => void): void;
}

function startWithChildProcess(o: HelperRun, args: string[], controlFd: number): StartedHelper {
  const stdio: StdioOptions = [...o.stdio, ...(o.extraFds ?? []), 'pipe'];
  const child = childProcess().spawn(o.helperPath, args, { stdio, env: {}, windowsHide: true });
  const control = child.stdio[controlFd] as ByteStream | null;
  let gone: ((why: string) => void) | undefined;
  child.on('error', (err) => {
    const code = (err as NodeJS.ErrnoException).code;
    gone?.(code === 'ENOENT' ? `helper ${o.helperPath} not found (run \`node scripts/build-native.mjs\`)` : `spawn ${o.helperPath}: ${err.message}`);
  });
  // 'close' comes after the control socket is drained: an OK or ERROR frame has settled
  // by then, so this is a crash or a misuse
  child.on('close', (code, signal) => gone?.(`${HELPER_NAME} ${o.mode} ended without an answer (${signal ? `signal ${signal}` : `exit status ${code}`})`));
  if (!control) throw new ShimError('Internal', `${HELPER_NAME}: no control socket`);
  return {
    pid: child.pid ?? 0,
    control,
    kill: () => child.kill('SIGKILL'),
    onGone: (cb) => (gone = cb),
  };
}

async function startWithPosixSpawn(o: HelperRun, args: string[], controlFd: number): Promise<StartedHelper> {
  const ffi = await import('../../sys/ffi.js');
  return startOnSocketpair(o, ffi, (theirs) => {
    const fds = [...o.stdio, ...(o.extraFds ?? [])].map((from, child) => ({ child, from: from === 'ignore' ? ('devnull' as const) : from }));
    fds.push({ child: controlFd, from: theirs });
    return ffi.posixSpawn(o.helperPath, [o.helperPath, ...args], [], fds);
  });
}

async function startRemotely(o: HelperRun, args: string[], controlFd: number, remote: RemoteSpawner): Promise<StartedHelper> {
  // the remote process gives the helper its own fds 0..controlFd-1: only the identity
  // mapping (tsrun's stdio and --preserve-fds) can be started there
  const fds = [...o.stdio, ...(o.extraFds ?? [])];
  if (fds.some((fd, i) => fd !== i)) throw new ShimError('Internal', `${HELPER_NAME}: a remote spawn passes fds 0-${controlFd - 1} as they are, not ${fds.join(',')}`);
  const ffi = await import('../../sys/ffi.js');
  return startOnSocketpair(o, ffi, (theirs) => remote.spawn(o.helperPath, [o.helperPath, ...args], controlFd, theirs));
}

/** a helper spawned with the far end of a new socketpair as its control socket */
async function startOnSocketpair(
  o: HelperRun,
  ffi: typeof import('../../sys/ffi.js'),
  spawn: (theirs: number) => number | Promise<number>,
): Promise<StartedHelper> {
  const [ours, theirs] = ffi.socketpair();
  let pid: number;
  try {
    pid = await spawn(theirs);
  } catch (err) {
    ffi.closeFd(ours);
    throw err instanceof ShimError && (err as { errno?: string }).errno === 'ENOENT'
      ? failedPrecondition(`native backend: helper ${o.helperPath} not found (run \`node scripts/build-native.mjs\`)`)
      : err;
  } finally {
    ffi.closeFd(theirs);
  }
  o.spawned?.(pid);
  const control = openPipeFd(ours);
  let gone: ((why: string) => void) | undefined;
  // the helper holds the only other end: EOF means it exited (its parent has its status)
  control.on('close', () => gone?.(`${HELPER_NAME} ${o.mode} (pid ${pid}) ended without an answer`));
  return {
    pid,
    control,
    kill: () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    },
    onGone: (cb) => (gone = cb),
  };
}

/** Incremental frame decoder over the control socket. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Array<{ type: number; payload: Buffer }> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Array<{ type: number; payload: Buffer }> = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32LE(0);
      if (len < 1 || len > MAX_FRAME) throw new ShimError('Internal', `native helper sent a malformed frame (length ${len})`);
      if (this.buf.length < 4 + len) break;
      out.push({ type: this.buf[4]!, payload: this.buf.subarray(5, 4 + len) });
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

export async function runHelper(o: HelperRun): Promise<{ pid: number }> {
  const extra = o.extraFds ?? [];
  const controlFd = 3 + extra.length;
  const args = [o.mode, '--control-fd', String(controlFd)];
  if (o.sealed) args.push('--sealed');
  const spawner = o.spawner ?? 'child_process';
  const helper =
    spawner === 'posix_spawn'
      ? await startWithPosixSpawn(o, args, controlFd)
      : spawner === 'child_process'
        ? startWithChildProcess(o, args, controlFd)
        : await startRemotely(o, args, controlFd, spawner);
  const { control } = helper;
  return new Promise((resolve, reject) => {
    let settled = false;
    let pid = 0;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      control.destroy();
      if (err) reject(err);
      else resolve({ pid });
    };
    const timer = setTimeout(() => {
      helper.kill();
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      finish(deadlineExceeded(`OCI runtime ${o.mode} timed out after ${o.timeoutMs} ms: ${HELPER_NAME} was killed`));
    }, o.timeoutMs);
    helper.onGone((why) => finish(why.includes('not found') ? failedPrecondition(`native backend: ${why}`) : new ShimError('Internal', why)));
    const reader = new FrameReader();
    control.on('error', () => undefined); // the gone handler reports
    control.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        finish(err as Error);
        return;
      }
      for (const f of frames) {
        if (f.type === FRAME_PID && f.payload.length >= 4) {
          pid = f.payload.readInt32LE(0);
        } else if (f.type === FRAME_OK && f.payload.length >= 4) {
          pid = f.payload.readInt32LE(0);
          finish(undefined);
        } else if (f.type === FRAME_ERROR && f.payload.length >= 4) {
          finish(new HelperError(o.mode, f.payload.readInt32LE(0), f.payload.subarray(4).toString('utf8')));
        } else if (f.type === FRAME_HOOKS && f.payload.length >= 4) {
          pid = f.payload.readInt32LE(0);
          const hooks = o.onHooks ?? (() => Promise.reject(new ShimError('Internal', 'native helper paused for hooks nobody runs')));
          hooks(pid).then(
            () => {
              if (!settled) control.write(Buffer.from([HOOKS_DONE]));
            },
            (err: Error) => finish(err),
          );
        }
      }
    });
    if (!o.beforePlan) {
      control.write(o.plan);
      return;
    }
    const before = helper.pid > 0 ? o.beforePlan(helper.pid) : Promise.reject(new ShimError('Internal', `${HELPER_NAME}: spawned without a pid`));
    before.then(
      () => {
        if (!settled) control.write(o.plan);
      },
      (err: Error) => {
        helper.kill();
        finish(err);
      },
    );
  });
}
