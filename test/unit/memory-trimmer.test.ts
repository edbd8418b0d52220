import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryTrimmer, releaseIdleMemory } from '../../src/shim/memory-trimmer.js';
import { getHeapStatistics } from 'node:v8';
import { mallocTrim, v8LowMemoryNotification } from '../../src/sys/ffi.js';

describe('MemoryTrimmer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function make(opts: { quietMs?: number; minIntervalMs?: number } = {}) {
    const calls: number[] = [];
    const t = new MemoryTrimmer({
      trim: () => {
        calls.push(Date.now());
        return true;
      },
      now: () => Date.now(),
      ...opts,
    });
    return { t, calls };
  }

  it('trims once after a quiet spell, not while calls keep coming', () => {
    const { t, calls } = make({ quietMs: 250 });
    for (let i = 0; i < 10; i++) {
      t.activity();
      vi.advanceTimersByTime(100);
    }
    expect(calls).toHaveLength(0);
    vi.advanceTimersByTime(150);
    expect(calls).toHaveLength(1);
    // nothing happened since: no second trim
    vi.advanceTimersByTime(60_000);
    expect(calls).toHaveLength(1);
    expect(t.trims).toBe(1);
  });

  it('never trims twice within the minimum interval', () => {
    const { t, calls } = make({ quietMs: 100, minIntervalMs: 5000 });
    t.activity();
    vi.advanceTimersByTime(100);
    expect(calls).toHaveLength(1);
    t.activity();
    vi.advanceTimersByTime(100);
    expect(calls).toHaveLength(1);
    // the quiet spell ended 100 ms after the first trim: the second waits for 5 s after it
    vi.advanceTimersByTime(4800);
    expect(calls).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(calls).toHaveLength(2);
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(5000);
  });

  it('stops after close, and after a trim that throws (reported once)', () => {
    const { t, calls } = make({ quietMs: 10 });
    t.close();
    t.activity();
    vi.advanceTimersByTime(1000);
    expect(calls).toHaveLength(0);

    const errors: unknown[] = [];
    const broken = new MemoryTrimmer({
      trim: () => {
        throw new Error('no malloc_trim');
      },
      quietMs: 10,
      minIntervalMs: 0,
      onError: (e) => errors.push(e),
    });
    broken.activity();
    vi.advanceTimersByTime(20);
    broken.activity();
    vi.advanceTimersByTime(20);
    expect(errors).toHaveLength(1);
  });
});

describe('mallocTrim (glibc)', () => {
  it('calls malloc_trim and answers whether memory was released', () => {
    // allocate and free some C heap through Node (Buffers above the pool size are malloc'd)
    let bufs: Buffer[] | undefined = Array.from({ length: 64 }, () => Buffer.allocUnsafeSlow(64 * 1024).fill(1));
    expect(bufs.length).toBe(64);
    bufs = undefined;
    expect(typeof mallocTrim()).toBe('boolean');
  });
});

describe('v8LowMemoryNotification (the node executable\'s export)', () => {
  it('makes V8 collect garbage it would otherwise keep', () => {
    let garbage: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `item-${i}` }));
    expect(garbage.length).toBe(200_000);
    garbage = undefined;
    const before = getHeapStatistics().used_heap_size;
    v8LowMemoryNotification();
    const after = getHeapStatistics().used_heap_size;
    // 200k small objects and strings: well over 8 MB of old garbage
    expect(before - after).toBeGreaterThan(8 * 1024 * 1024);
  });
});

describe('releaseIdleMemory', () => {
  it('asks V8 first, then malloc, and answers malloc\'s result', () => {
    const calls: string[] = [];
    const release = releaseIdleMemory({ v8: () => void calls.push('v8'), malloc: () => (calls.push('malloc'), true) });
    expect(release()).toBe(true);
    expect(calls).toEqual(['v8', 'malloc']);
  });

  it('a V8 step that throws is reported once and not tried again; malloc still runs', () => {
    const calls: string[] = [];
    const errors: unknown[] = [];
    const release = releaseIdleMemory({
      v8: () => {
        calls.push('v8');
        throw new Error('no such symbol');
      },
      malloc: () => (calls.push('malloc'), false),
      onV8Error: (e) => errors.push(e),
    });
    expect(release()).toBe(false);
    expect(release()).toBe(false);
    expect(calls).toEqual(['v8', 'malloc', 'malloc']);
    expect(errors).toHaveLength(1);
  });
});
