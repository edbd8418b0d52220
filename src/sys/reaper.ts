/**
 * The process-wide child reaper of the shim (what the Go shim's `reaper` package does),
 * living next to libuv without stealing its children.
 *
 * The shim is a child subreaper: container inits (after `runc create` exits), daemonized
 * processes and anything orphaned below us become our children and must be reaped here,
 * with their exit status delivered to whoever waits for them. libuv reaps the children it
 * spawned (child_process, execa) itself with waitpid(pid); if we reaped one of those, its
 * 'exit' would never fire and the caller's promise would hang. So:
 *
 * - pids spawned through child_process are recorded by wrapping ChildProcess#spawn once,
 *   when the module is loaded (src/sys/lazy-builtins.ts: a shim that never spawns through
 *   it does not pay for loading it);
 * - on SIGCHLD we peek at the first zombie with waitid(P_ALL, WNOWAIT). A zombie that
 *   libuv owns blocks that peek until libuv reaps it, so we then look at every child of
 *   ours (/proc/self/task/<tid>/children) and reap the others one by one with P_PID;
 * - pids a backend announces with want() are tried directly with P_PID on every pass.
 *
 * Subscribers see every exit reaped after they subscribed (subscribe before spawn).
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { ExitEvent, ExitSource, ExitSubscription } from '../core/backend.js';
import { CLD_EXITED, SysError, setChildSubreaper, waitidPeekAny, waitidReap } from './ffi.js';
import { whenChildProcessLoaded } from './lazy-builtins.js';

/** Exits a subscription keeps for take(); older ones are dropped first. */
const SUBSCRIPTION_BUFFER = 1024;
/** Delays (ms) of the follow-up passes after a pass was blocked by a libuv-owned zombie. */
const RETRY_DELAYS = [1, 10, 100, 1000];

export interface ReaperOptions {
  /** called when a subscriber callback throws or a pass fails; default: rethrow asynchronously */
  onError?: (err: unknown) => void;
}

class ReaperSubscription implements ExitSubscription {
  private readonly buffered = new Map<number, ExitEvent>();
  private readonly listeners: Array<(e: ExitEvent) => void> = [];
  private closed = false;

  constructor(
    private readonly reaper: Reaper,
    private readonly report: (err: unknown) => void,
  ) {}

  deliver(e: ExitEvent): void {
    if (this.closed) return;
    this.buffered.delete(e.pid); // a reused pid: the newest exit wins and moves to the end
    this.buffered.set(e.pid, e);
    if (this.buffered.size > SUBSCRIPTION_BUFFER) {
      const oldest = this.buffered.keys().next().value as number;
      this.buffered.delete(oldest);
    }
    for (const cb of this.listeners) this.call(cb, e);
  }

  /** Registers cb and replays, in order, the exits buffered since subscribe() and not taken. */
  onExit(cb: (e: ExitEvent) => void): void {
    if (this.closed) return;
    this.listeners.push(cb);
    for (const e of [...this.buffered.values()]) this.call(cb, e);
  }

  take(pid: number): ExitEvent | undefined {
    const e = this.buffered.get(pid);
    if (e) this.buffered.delete(pid);
    return e;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffered.clear();
    this.listeners.length = 0;
    this.reaper.unsubscribe(this);
  }

  private call(cb: (e: ExitEvent) => void, e: ExitEvent): void {
    try {
      cb(e);
    } catch (err) {
      this.report(err);
    }
  }
}

export class Reaper implements ExitSource {
  private static instance: Reaper | undefined;

  /** child_process children, reaped by libuv: pid → its ChildProcess */
  private readonly libuvChildren = new Map<number, ChildProcess>();
  /** children that existed before install(): whoever spawned them reaps them */
  private readonly preexisting = new Set<number>();
  private readonly wanted = new Set<number>();
  private readonly subscriptions = new Set<ReaperSubscription>();
  private readonly report: (err: unknown) => void;
  private sweeping = false;
  private sweepAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryIndex = 0;
  private reapedCount = 0;

  private constructor(opts: ReaperOptions) {
    this.report =
      opts.onError ??
      ((err) =>
        queueMicrotask(() => {
          throw err;
        }));
  }

  /**
   * Makes this process a child subreaper and starts reaping (idempotent; the first call's
   * options win). Call it before spawning anything through child_process: children spawned
   * earlier are never reaped here, and neither are children of worker threads.
   */
  static install(opts: ReaperOptions = {}): Reaper {
    if (Reaper.instance) return Reaper.instance;
    const r = new Reaper(opts);
    setChildSubreaper(true);
    for (const pid of listOwnChildren()) r.preexisting.add(pid);
    whenChildProcessLoaded((cp) => r.trackChildProcessSpawns(cp.ChildProcess));
    process.on('SIGCHLD', () => r.sweep());
    Reaper.instance = r;
    r.sweep();
    return r;
  }

  /** The installed reaper, if any. */
  static current(): Reaper | undefined {
    return Reaper.instance;
  }

  subscribe(): ExitSubscription {
    const s = new ReaperSubscription(this, this.report);
    this.subscriptions.add(s);
    return s;
  }

  /** @internal */
  unsubscribe(s: ReaperSubscription): void {
    this.subscriptions.delete(s);
  }

  /**
   * Announces a pid that is (or will become) our child and is not a child_process child,
   * e.g. a container init read from runc's pid file. It is tried directly with
   * waitid(P_PID) on every pass, so a libuv zombie at the head of the queue never delays
   * it. Runs a pass at once: an exit that happened before want() is delivered now.
   */
  want(pid: number): void {
    this.wanted.add(pid);
    this.sweep();
  }

  /** Stops trying pid directly (its exit is still reaped by the general pass). */
  unwant(pid: number): void {
    this.wanted.delete(pid);
  }

  /** Whether libuv (child_process) owns pid, i.e. whether this reaper leaves it alone. */
  isLibuvChild(pid: number): boolean {
    const cp = this.libuvChildren.get(pid);
    if (cp) {
      if (cp.exitCode === null && cp.signalCode === null) return true;
      this.libuvChildren.delete(pid); // exited but its 'exit' listener was removed
    }
    return this.preexisting.has(pid);
  }

  /** Number of exits reaped so far (diagnostics, tests). */
  get reaped(): number {
    return this.reapedCount;
  }

  /** Reaps every exited child that is ours to reap. Safe to call at any time. */
  sweep(): void {
    if (this.sweeping) {
      this.sweepAgain = true; // a subscriber called back into us
      return;
    }
    this.sweeping = true;
    try {
      do {
        this.sweepAgain = false;
        this.sweepOnce();
      } while (this.sweepAgain);
    } catch (err) {
      this.report(err);
    } finally {
      this.sweeping = false;
    }
  }

  private sweepOnce(): void {
    for (const pid of [...this.wanted]) this.tryReap(pid, true);
    let blocked = false;
    for (;;) {
      const head = waitidPeekAny();
      if (!head) break;
      if (this.isLibuvChild(head.pid)) {
        blocked = true;
        break;
      }
      if (!this.tryReap(head.pid, false)) break; // raced with someone: look again on next signal
    }
    if (!blocked) {
      this.retryIndex = 0;
      return;
    }
    // the peek is stuck behind a zombie libuv will reap: reap every other child directly
    const children = listOwnChildren();
    const current = new Set(children);
    for (const pid of this.preexisting) if (!current.has(pid)) this.preexisting.delete(pid);
    for (const pid of children) if (!this.isLibuvChild(pid)) this.tryReap(pid, false);
    this.scheduleRetry();
  }

  /** Reaps pid if it exited; true if it did. */
  private tryReap(pid: number, wanted: boolean): boolean {
    let r: ReturnType<typeof waitidReap>;
    try {
      r = waitidReap(pid);
    } catch (err) {
      if (err instanceof SysError && err.errno === 'ECHILD') {
        // not (or no longer) our child: someone else reaped it, or runc still owns it
        if (wanted && !processExists(pid)) this.wanted.delete(pid);
        return false;
      }
      throw err;
    }
    if (!r) return false;
    this.wanted.delete(pid);
    this.reapedCount++;
    const e: ExitEvent = { pid: r.pid, status: r.exitStatus, at: new Date() };
    if (r.exit.code !== CLD_EXITED) e.signal = r.exit.status;
    for (const s of [...this.subscriptions]) s.deliver(e);
    return true;
  }

  private scheduleRetry(): void {
    // insurance only (the children scan already reaped what is ours); the next SIGCHLD
    // starts a new pass anyway, so retries stop after the last delay
    if (this.retryTimer || this.retryIndex >= RETRY_DELAYS.length) return;
    const delay = RETRY_DELAYS[this.retryIndex]!;
    this.retryIndex++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.sweep();
    }, delay);
    this.retryTimer.unref();
  }

  private trackChildProcessSpawns(ChildProcessClass: typeof ChildProcess): void {
    const proto = ChildProcessClass.prototype as unknown as { spawn: (...args: unknown[]) => unknown };
    const original = proto.spawn;
    const children = this.libuvChildren;
    proto.spawn = function spawnTracked(this: ChildProcess, ...args: unknown[]): unknown {
      const result = original.apply(this, args);
      // JS runs to completion: no SIGCHLD pass can run between fork and this line
      const pid = this.pid;
      if (pid !== undefined) {
        children.set(pid, this);
        this.once('exit', () => {
          if (children.get(pid) === this) children.delete(pid);
        });
      }
      return result;
    };
  }
}

/** Our children, from every thread's children list (orphans land on any thread). */
function listOwnChildren(): number[] {
  const pids: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return pids;
  }
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/self/task/${tid}/children`, 'latin1');
    } catch {
      continue; // thread exited meanwhile
    }
    for (const s of text.split(' ')) {
      const pid = Number(s);
      if (pid > 0) pids.push(pid);
    }
  }
  return pids;
}

/** SIGKILL for a process that may be gone already (then nothing happens) */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
