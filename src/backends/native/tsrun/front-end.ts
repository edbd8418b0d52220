/**
 * tsrun as a spare: Node booted ahead of time by tsrun's C front end
 * (src/launcher/tsrun-front.c, which bin/tsrun is), idle until a front end hands it one
 * command line, which it then runs as tsrun and exits. Node's boot (~50 ms here, more on a
 * loaded node) is then paid off the caller's critical path.
 *
 * The container must stay in the caller's process tree: podman's conmon and containerd's
 * runc shim are the subreapers that reap it. So the front end, the process the caller
 * ran, spawns the native helper (which starts the container) when the spare asks, and
 * waits for the processes a foreground `run`/`exec` waits for; the spare does the rest
 * (state, cgroups, hooks, output) with the caller's stdio, cwd, umask and environment.
 * The spare stays in the root cgroup, where it waited: moving a process between cgroups
 * costs ~10 ms here (the kernel's cgroup_threadgroup_rwsem), more than the rest of the
 * hand-over. A relative cgroupsPath starts from the front end's cgroups, as runc's from
 * its own; hooks the spare runs run in the root cgroup.
 *
 * After the hand-over (src/shim/spare.ts: version "tsrun-spare-1", header cwd, umask and
 * the front end's pid, argv, environment, the caller's fds 0-2), on the same connection:
 *   spare → front end
 *     "S\n"                     become the child subreaper (before any spawn)
 *     "P<len>\n" <len bytes>    spawn: NUL-separated inherit count, file, argv…; the fd sent
 *                               with it (SCM_RIGHTS) becomes the child's fd <inherit>, its
 *                               fds 0..inherit-1 are the front end's own
 *     "W<pid>\n"                report when pid exits; signals the front end gets meanwhile
 *                               go to pid (as runc forwards them)
 *     "X<code>\n"               exit with code
 *   front end → spare
 *     "p<pid>\n" | "e<errno>\n" the answers to P, in order
 *     "w<pid> <code>\n"         pid exited: its exit code, or 128 + signal
 * The connection closing early (the front end killed) ends the spare at once, as killing
 * runc ends runc.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { ShimError } from '../../../core/errors.js';
import { dup2, sendFdMessage, waitWritable } from '../../../sys/ffi.js';
import { openPipeFd, type ByteStream } from '../../../sys/uv-pipe.js';
import { setCommandLine } from '../../../shim/process-name.js';
import { replaceEnvironment, waitForHandOver, type SpareArgs } from '../../../shim/spare.js';
import type { RemoteSpawner } from '../helper-client.js';

export const TSRUN_SPARE_PAYLOAD = 'tsrun-spare-1';
/** what `ps` shows for a waiting tsrun spare */
export const TSRUN_SPARE_NAME = 'tsrun-spare';

interface Pending<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

/** The front end whose command line this spare runs: spawns there, waits there. */
export class FrontEnd implements RemoteSpawner {
  private readonly reader: ByteStream;
  private text = '';
  private readonly spawns: Array<Pending<number>> = [];
  private readonly waits = new Map<number, Array<(code: number) => void>>();
  private gone = false;

  constructor(
    private readonly fd: number,
    /** the front end's pid: a relative cgroupsPath starts from its cgroups */
    readonly pid: number,
    onGone: () => void,
  ) {
    // the read side through libuv (answers come while the event loop runs); writes go out
    // with sendmsg on the same fd, since a spawn request carries an fd
    this.reader = openPipeFd(fd);
    this.reader.on('data', (chunk) => this.read(chunk));
    this.reader.on('error', () => undefined);
    this.reader.on('close', () => {
      this.gone = true;
      const err = new ShimError('Unavailable', 'tsrun: the front end went away');
      for (const p of this.spawns.splice(0)) p.reject(err);
      onGone();
    });
  }

  private send(line: string, fds: number[] = []): void {
    if (this.gone) throw new ShimError('Unavailable', 'tsrun: the front end went away');
    sendFdMessage(this.fd, Buffer.from(line, 'utf8'), fds);
  }

  private read(chunk: Buffer): void {
    this.text += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.text.indexOf('\n')) >= 0) {
      const line = this.text.slice(0, nl);
      this.text = this.text.slice(nl + 1);
      const kind = line[0];
      if (kind === 'p' || kind === 'e') {
        const p = this.spawns.shift();
        const n = Number(line.slice(1));
        if (kind === 'p') p?.resolve(n);
        else {
          const err = new ShimError('Internal', `tsrun front end: spawn failed (errno ${n})`);
          (err as { errno?: string }).errno = n === 2 ? 'ENOENT' : String(n);
          p?.reject(err);
        }
      } else if (kind === 'w') {
        const [pid, code] = line.slice(1).split(' ').map(Number) as [number, number];
        for (const cb of this.waits.get(pid) ?? []) cb(code);
        this.waits.delete(pid);
      }
    }
  }

  /** before the first spawn of a foreground run/exec: the container process is reparented to the front end */
  becomeSubreaper(): void {
    this.send('S\n');
  }

  spawn(file: string, argv: string[], inherit: number, control: number): Promise<number> {
    const body = Buffer.from([String(inherit), file, ...argv].join('\0'), 'utf8');
    return new Promise<number>((resolve, reject) => {
      this.spawns.push({ resolve, reject });
      try {
        this.send(`P${body.length}\n${body.toString('utf8')}`, [control]);
      } catch (err) {
        this.spawns.pop();
        reject(err as Error);
      }
    });
  }

  /** the exit code of pid, a child of the front end (or reparented to it) */
  wait(pid: number): Promise<number> {
    return new Promise((resolve) => {
      const list = this.waits.get(pid) ?? [];
      list.push(resolve);
      this.waits.set(pid, list);
      this.send(`W${pid}\n`);
    });
  }

  /** the command's exit code: the front end exits with it */
  exit(code: number): void {
    this.send(`X${code}\n`);
  }
}

/** what every command needs and costs the same in any process, done while nobody waits: the time zone (the state's timestamps) */
function prepare(): void {
  new Date().toString();
}

/**
 * process.stdout and process.stderr of a spare: synchronous writes to fds 1 and 2, and no
 * Node stream over them. The caller's fds share their open file descriptions with whatever
 * else the caller gave them to (a container's stdout: containerd's runc shim passes the
 * container's pipes to `create`), and Node's stream for a pipe would make that description
 * non-blocking: the container's writes then fail with EAGAIN once the pipe is full (seen
 * here: `seq` through the runc shim stopping after ~1 MB). A bin/tsrun booted for the
 * command has the same streams, but ends before the container runs; a spare would not.
 */
class SyncFdWriter {
  constructor(readonly fd: number) {}

  write(chunk: string | Uint8Array, encoding?: unknown, cb?: unknown): boolean {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
    let off = 0;
    while (off < buf.length) {
      try {
        off += writeSync(this.fd, buf, off);
      } catch (err) {
        // a caller that gave us a non-blocking fd: wait for room, as a blocking write would
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        waitWritable(this.fd, 1000);
      }
    }
    const done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') (done as () => void)();
    return true;
  }

  on(): this {
    return this;
  }

  once(): this {
    return this;
  }
}

function useSyncStdio(): void {
  for (const [name, fd] of [
    ['stdout', 1],
    ['stderr', 2],
  ] as const) {
    Object.defineProperty(process, name, { value: new SyncFdWriter(fd), configurable: true, enumerable: true, writable: true });
  }
}

/**
 * fds 0-2 back to /dev/null before we exit: Node puts the stdio fds' flags back as they
 * were when it started (O_NONBLOCK, the terminal's mode), and the caller's are not ours to
 * change.
 */
function letGoOfStdio(): void {
  const nul = openSync('/dev/null', 'r+');
  for (let fd = 0; fd <= 2; fd++) dup2(nul, fd);
  closeSync(nul);
}

/**
 * Waits for a front end's hand-over, becomes the process it would have exec'd (its stdio,
 * cwd, umask, environment and command line) and runs `run` with it. Resolves with false
 * when no hand-over came (idle time over, socket removed): the caller exits quietly.
 */
export async function serveAsSpare(spare: SpareArgs, run: (argv: string[], frontEnd: FrontEnd) => Promise<number>): Promise<boolean> {
  prepare();
  const h = waitForHandOver(spare, { version: TSRUN_SPARE_PAYLOAD, headerFields: 3, waitingCommandLine: [TSRUN_SPARE_NAME, '-control', spare.controlPath] });
  if (!h) return false;
  const [cwd, umask, pidText] = h.header as [string, string, string];
  const frontEndPid = Number(pidText);
  if (h.fds.length !== 3 || !/^[0-7]{1,4}$/.test(umask) || !Number.isInteger(frontEndPid) || frontEndPid <= 1) {
    for (const fd of h.fds) closeSync(fd);
    closeSync(h.connection);
    return false;
  }
  useSyncStdio();
  h.fds.forEach((fd, i) => {
    dup2(fd, i);
    closeSync(fd);
  });
  process.chdir(cwd);
  process.umask(parseInt(umask, 8));
  replaceEnvironment(h.env);
  setCommandLine(['tsrun', ...h.argv]);
  writeSync(h.connection, 'A');
  // killed front end, killed tsrun: nothing of this command goes on
  const frontEnd = new FrontEnd(h.connection, frontEndPid, () => process.kill(process.pid, 'SIGKILL'));
  let code: number;
  try {
    code = await run(h.argv, frontEnd);
  } catch (err) {
    process.stderr.write(`tsrun: ${err instanceof Error ? err.message : String(err)}\n`);
    code = 1;
  }
  letGoOfStdio();
  frontEnd.exit(code);
  return true;
}
