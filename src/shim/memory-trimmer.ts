/**
 * Gives the shim's free memory back to the kernel once the shim goes quiet.
 *
 * Why: a shim spends almost all its life idle, waiting for its containers to exit, and
 * what it holds then is what a node pays per container. Booting (reading and
 * deserialising the bundle and its code cache, loading the FFI library) and handling the
 * first calls leave garbage in V8's heap and freed malloc memory that glibc keeps in its
 * arenas (it returns only the top of a heap by itself; the holes stay resident).
 * Measured here, one shim with one container, anonymous memory: 10.8 MiB with malloc_trim
 * alone, 8.4 MiB when V8 is first told memory is low (releaseIdleMemory).
 *
 * The trim runs after `quietMs` without a call starting or finishing (a long call in
 * flight, like Wait, does not count as activity), at most once per quiet spell and never
 * twice within `minIntervalMs`, so a busy shim does not pay for it on every call. A call
 * only records the time (it is on every RPC's path); the one timer checks it when it
 * fires. The timer never keeps the process alive.
 */
export interface MemoryTrimmerOptions {
  /** returns true when memory was released (malloc_trim's answer) */
  trim: () => boolean;
  /** quiet time before a trim; default 250 ms */
  quietMs?: number;
  /** least time between two trims; default 5 s */
  minIntervalMs?: number;
  /** told of a trim that threw (the trimmer then stops: it would throw again) */
  onError?: (err: unknown) => void;
  now?: () => number;
}

export class MemoryTrimmer {
  private readonly trim: () => boolean;
  private readonly quietMs: number;
  private readonly minIntervalMs: number;
  private readonly onError?: (err: unknown) => void;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  /** a call started or finished since the last trim */
  private dirty = false;
  private lastActivity = 0;
  private lastTrim = Number.NEGATIVE_INFINITY;
  private stopped = false;
  /** trims run so far (diagnostics and tests) */
  trims = 0;

  constructor(options: MemoryTrimmerOptions) {
    this.trim = options.trim;
    this.quietMs = options.quietMs ?? 250;
    this.minIntervalMs = options.minIntervalMs ?? 5000;
    this.onError = options.onError;
    this.now = options.now ?? Date.now;
  }

  /** a call started or finished: (re)starts the quiet period */
  activity(): void {
    if (this.stopped) return;
    this.dirty = true;
    this.lastActivity = this.now();
    if (!this.timer) this.arm(this.quietMs);
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.fire(), ms);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    if (this.stopped || !this.dirty) return;
    const now = this.now();
    const wait = Math.max(this.lastActivity + this.quietMs, this.lastTrim + this.minIntervalMs) - now;
    if (wait > 0) {
      this.arm(wait);
      return;
    }
    this.dirty = false;
    this.lastTrim = now;
    try {
      this.trim();
      this.trims++;
    } catch (err) {
      this.close();
      this.onError?.(err);
    }
  }
}

export interface IdleMemoryRelease {
  /** V8: collect everything and give emptied pages back (v8LowMemoryNotification) */
  v8: () => void;
  /** glibc: give free pages back (mallocTrim); true when some were */
  malloc: () => boolean;
  /** V8's step threw: it is not tried again (the symbol will not appear later) */
  onV8Error?: (err: unknown) => void;
}

/**
 * The trim a shim does: V8 first, because its collections free C memory too (external
 * buffers, compiler and parser zones), then malloc. If V8's step is unavailable (a node
 * binary without that export) the shim still trims malloc.
 */
export function releaseIdleMemory(steps: IdleMemoryRelease): () => boolean {
  let v8Usable = true;
  return () => {
    if (v8Usable) {
      try {
        steps.v8();
      } catch (err) {
        v8Usable = false;
        steps.onV8Error?.(err);
      }
    }
    return steps.malloc();
  };
}
