/**
 * OOM-kill notification per container: calls back each time the memory cgroup's
 * `oom_kill` counter goes up (memory.oom_control on v1, memory.events on v2), keeping
 * the last value seen per container.
 *
 * Mechanism, and why:
 * - The reference v1 mechanism is an eventfd registered in cgroup.event_control, watched
 *   by epoll. Node cannot watch an eventfd from JS (net.Socket refuses it), and a
 *   blocking epoll_wait through ffi-rs's `runInNewThread` runs on the libuv thread pool
 *   (measured: five concurrent calls delayed an fs.readFile by ~900 ms), so it would pin
 *   one of the 4 pool threads that fs and dns need, for the life of the shim.
 * - So v1 polls the counter: one small sysfs read per container per tick, only while
 *   containers are watched (the timer is stopped otherwise and never keeps the process
 *   alive). The delay this adds to an OOM that does not end the init is one tick; the one
 *   that matters for CRI ("OOMKilled" must arrive before the exit) is closed by check(),
 *   which the core calls synchronously at init exit before publishing TaskExit: the kernel
 *   counts the kill before the victim dies, so the counter is already up by then.
 * - v2 also gets fs.watch (inotify) on memory.events, which cgroupfs does notify, for
 *   low latency; the poll stays as a safety net.
 * Counting kills (not eventfd wakeups) also means an OOM with oom_kill_disable=1, where
 * nothing is killed, is not reported.
 */
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { ShimError } from '../core/errors.js';
import {
  cgroupLayout,
  memoryDir,
  oomKillCounterFile,
  readOomKillCounter,
  readProcessCgroups,
  type CgroupLayout,
} from './cgroups.js';

export interface OomWatcherOptions {
  /** how often the counters are re-read (ms); default 1000 */
  pollIntervalMs?: number;
  layout?: CgroupLayout;
  /** called when the callback throws; default: rethrow asynchronously */
  onError?: (err: unknown) => void;
}

export interface WatchOptions {
  /**
   * 'zero' (default): kills counted before watch() are reported too, right for a cgroup
   * the runtime just created (an OOM between create and watch is not lost).
   * 'current': only kills after watch() count (a cgroup that may have history).
   */
  baseline?: 'zero' | 'current';
}

interface Watched {
  counterFile: string;
  last: bigint;
  inotify: FSWatcher | undefined;
}

export class OomWatcher {
  private readonly watched = new Map<string, Watched>();
  private readonly pollIntervalMs: number;
  private readonly layout: CgroupLayout | undefined;
  private readonly report: (err: unknown) => void;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onOom: (containerId: string) => void,
    opts: OomWatcherOptions = {},
  ) {
    this.pollIntervalMs = opts.pollIntervalMs ?? 1000;
    this.layout = opts.layout;
    this.report =
      opts.onError ??
      ((err) =>
        queueMicrotask(() => {
          throw err;
        }));
  }

  /**
   * Watches the memory cgroup of `pid` (a container's init) under `containerId`.
   * Throws ShimError NotFound if the process is gone or has no memory cgroup with an
   * OOM counter. Watching an id again replaces the previous watch.
   */
  watch(containerId: string, pid: number, opts: WatchOptions = {}): void {
    let dir: string | undefined;
    try {
      dir = memoryDir(readProcessCgroups(pid), this.layout ?? cgroupLayout());
    } catch (err) {
      throw new ShimError('NotFound', `oom watch ${containerId}: process ${pid} not found`, { cause: err });
    }
    if (dir === undefined) throw new ShimError('NotFound', `oom watch ${containerId}: process ${pid} has no memory cgroup`);
    this.watchCgroup(containerId, dir, opts);
  }

  /** Watches a memory cgroup directory directly (v1 memory hierarchy dir or cgroup2 dir). */
  watchCgroup(containerId: string, memDir: string, opts: WatchOptions = {}): void {
    const counterFile = oomKillCounterFile(memDir);
    if (counterFile === undefined) {
      throw new ShimError('NotFound', `oom watch ${containerId}: no memory.events or memory.oom_control in ${memDir}`);
    }
    this.unwatch(containerId);
    const w: Watched = {
      counterFile,
      last: opts.baseline === 'current' ? (readOomKillCounter(counterFile) ?? 0n) : 0n,
      inotify: undefined,
    };
    if (counterFile.endsWith('memory.events')) {
      try {
        w.inotify = fsWatch(counterFile, { persistent: false }, () => this.check(containerId));
        w.inotify.on('error', () => {
          w.inotify?.close(); // the cgroup went away; the poll covers the rest
          w.inotify = undefined;
        });
      } catch {
        // no inotify: the poll alone will do
      }
    }
    this.watched.set(containerId, w);
    this.ensureTimer();
    // a kill counted before watch() (baseline 'zero') is reported without waiting a tick
    setImmediate(() => this.check(containerId));
  }

  /**
   * Re-reads the counter now and calls back if it went up; true if it did. The core calls
   * this at init exit, before publishing TaskExit, so /tasks/oom comes first.
   */
  check(containerId: string): boolean {
    const w = this.watched.get(containerId);
    if (!w) return false;
    const n = readOomKillCounter(w.counterFile);
    if (n === undefined || n <= w.last) return false;
    w.last = n;
    try {
      this.onOom(containerId);
    } catch (err) {
      this.report(err);
    }
    return true;
  }

  unwatch(containerId: string): void {
    const w = this.watched.get(containerId);
    if (!w) return;
    w.inotify?.close();
    this.watched.delete(containerId);
    if (this.watched.size === 0) this.stopTimer();
  }

  /** Ids currently watched. */
  get containerIds(): string[] {
    return [...this.watched.keys()];
  }

  close(): void {
    for (const id of [...this.watched.keys()]) this.unwatch(id);
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const id of [...this.watched.keys()]) this.check(id);
    }, this.pollIntervalMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
