/**
 * The runtime CLI through posix_spawn (src/sys/ffi.ts) instead of execa: no execa, no
 * child_process, no `net`, no Node streams on the path of a runtime call. stdout and stderr
 * are captured over socketpairs read with uv-pipe; the runtime's exit is reaped by the
 * process's Reaper and routed here by pid, and hidden from the backend's exit source
 * (it is not a container's exit). Only usable where a Reaper is installed: nothing else
 * would reap these children.
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { ExitEvent, ExitSubscription } from '../../core/backend.js';
import type { Reaper } from '../../sys/reaper.js';
import * as ffi from '../../sys/ffi.js';
import { openPipeFd, type ByteStream } from '../../sys/uv-pipe.js';
import { execaCommand, type RuntimeCommand, type RuntimeCommandRequest, type RuntimeCommandResult } from './cli.js';
import type { WantingExitSource } from './backend.js';

/** how long a call without a deadline may keep its pipes open after the runtime exited */
const UNBOUNDED_CALL_DRAIN_MS = 1_000;
/** an interval that only keeps the event loop alive (the longest Node takes) */
const KEEP_ALIVE_MS = 2 ** 31 - 1;

/** PATH lookup as execvp does it: the first executable regular file */
function resolveOnPath(file: string): string | undefined {
  if (file.includes('/')) return file;
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = `${dir || '.'}/${file}`;
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function signalName(signo: number): string {
  for (const [name, n] of Object.entries(osConstants.signals)) if (n === signo) return name;
  return `SIG${signo}`;
}

/** Reads a stream to its end, as a string; `stop()` ends the wait with what came so far. */
function collect(stream: ByteStream): { done: Promise<string>; stop(): void } {
  const chunks: Buffer[] = [];
  let finish!: () => void;
  const done = new Promise<string>((resolve) => {
    finish = () => resolve(Buffer.concat(chunks).toString('utf8'));
  });
  stream.on('data', (c) => chunks.push(c));
  stream.on('error', () => {
    // the close that follows ends the wait
  });
  stream.on('close', () => finish());
  return {
    done,
    stop: () => {
      stream.destroy();
      finish();
    },
  };
}

export class PosixSpawnCommand implements RuntimeCommand {
  /** runtime pids still running (or whose exit subscribers are being told now) */
  private readonly running = new Map<number, (e: ExitEvent) => void>();
  private readonly hidden = new Set<number>();
  private readonly subscription: ExitSubscription;
  private readonly resolved = new Map<string, string>();

  private static shared: PosixSpawnCommand | undefined;

  /** one per process: every backend's filter then hides every runtime exit */
  static for(reaper: Reaper): PosixSpawnCommand {
    if (PosixSpawnCommand.shared?.reaper !== reaper) PosixSpawnCommand.shared = new PosixSpawnCommand(reaper);
    return PosixSpawnCommand.shared;
  }

  private constructor(private readonly reaper: Reaper) {
    this.subscription = reaper.subscribe();
    this.subscription.onExit((e) => {
      this.subscription.take(e.pid);
      const route = this.running.get(e.pid);
      if (!route) return;
      this.running.delete(e.pid);
      // forgotten once every subscriber has been called for this exit
      setImmediate(() => this.hidden.delete(e.pid));
      route(e);
    });
  }

  /** `inner` without the exits of the runtime processes this command started */
  hideRuntimeExits(inner: WantingExitSource): WantingExitSource {
    return {
      subscribe: () => {
        const sub = inner.subscribe();
        return {
          onExit: (cb) =>
            sub.onExit((e) => {
              if (!this.hidden.has(e.pid)) cb(e);
              else sub.take(e.pid);
            }),
          take: (pid) => (this.hidden.has(pid) ? undefined : sub.take(pid)),
          close: () => sub.close(),
        };
      },
      want: (pid) => inner.want?.(pid),
    };
  }

  async run(req: RuntimeCommandRequest): Promise<RuntimeCommandResult> {
    let path = this.resolved.get(req.file);
    if (path === undefined) {
      path = resolveOnPath(req.file);
      if (path === undefined) return { timedOut: false, spawnErrno: 'ENOENT', stdout: '', stderr: '' };
      this.resolved.set(req.file, path);
    }
    const env = Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
    const fd = (f: number | 'ignore'): number | 'devnull' => (f === 'ignore' ? 'devnull' : f);
    const ours: number[] = [];
    const theirs: number[] = [];
    let fds: ffi.SpawnFd[];
    if (req.stdio) {
      fds = req.stdio.map((f, child) => ({ child, from: fd(f) }));
    } else {
      for (let i = 0; i < 2; i++) {
        const [a, b] = ffi.socketpair();
        ours.push(a);
        theirs.push(b);
      }
      fds = [
        { child: 0, from: 'devnull' },
        { child: 1, from: theirs[0]! },
        { child: 2, from: theirs[1]! },
      ];
    }
    let pid: number;
    try {
      pid = ffi.posixSpawn(path, [req.file, ...req.args], env, fds, { resetSignals: true });
    } catch (err) {
      for (const f of ours) ffi.closeFd(f);
      if (err instanceof ffi.SysError) {
        // arguments or environment past the spawn arena: the general path has no such limit
        if (err.errno === 'E2BIG') return execaCommand.run(req);
        if (err.syscall === 'posix_spawn') {
          this.resolved.delete(req.file);
          return { timedOut: false, spawnErrno: err.errno, stdout: '', stderr: '' };
        }
      }
      throw err;
    } finally {
      for (const f of theirs) ffi.closeFd(f);
    }
    // JS runs to completion: the Reaper cannot see this exit before the route is set
    this.hidden.add(pid);
    let exit: ExitEvent | undefined;
    const exited = new Promise<ExitEvent>((resolve) => this.running.set(pid, resolve)).then((e) => (exit = e));
    this.reaper.want(pid);
    const out = ours.length ? ours.map((f) => collect(openPipeFd(f))) : [];
    req.onSpawned?.(pid);

    let timedOut = false;
    const deadline = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const stopReading = () => {
        // the runtime is gone or killed: a grandchild holding our pipes does not hold us
        for (const o of out) o.stop();
        resolve();
      };
      if (req.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          timedOut = exit === undefined;
          if (timedOut) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // exited meanwhile
            }
          }
          stopReading();
        }, req.timeoutMs);
      } else {
        // no deadline (a call as long as a container's life). The exit arrives by SIGCHLD,
        // which keeps no event loop alive: an idle timer does, until the runtime has exited;
        // then what it wrote is in the pipes within moments
        const keepAlive = setInterval(() => undefined, KEEP_ALIVE_MS);
        void exited.then(() => {
          clearInterval(keepAlive);
          timer = setTimeout(stopReading, UNBOUNDED_CALL_DRAIN_MS);
        });
      }
      void Promise.all([exited, ...out.map((o) => o.done)]).then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await deadline;
    if (exit === undefined) {
      // killed just now: its exit comes with the next SIGCHLD, which alone keeps no event
      // loop alive; sweeping meanwhile also covers a coalesced signal
      const keepAlive = setInterval(() => this.reaper.sweep(), 50);
      try {
        exit = await exited;
      } finally {
        clearInterval(keepAlive);
      }
    }
    const [stdout = '', stderr = ''] = await Promise.all(out.map((o) => o.done));
    return {
      exitCode: exit.signal === undefined ? exit.status : undefined,
      signal: exit.signal === undefined ? undefined : signalName(exit.signal),
      timedOut,
      stdout,
      stderr,
    };
  }
}
