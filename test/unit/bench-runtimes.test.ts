import { describe, expect, it } from 'vitest';
import { BENCH_RUNTIMES, REFERENCE, selectRuntimes } from '../../bench/runtimes.js';

describe('bench: TSSHIM_BENCH_VARIANTS', () => {
  it('unset or empty: every runtime', () => {
    expect(selectRuntimes(undefined)).toBe(BENCH_RUNTIMES);
    expect(selectRuntimes(' , ')).toBe(BENCH_RUNTIMES);
  });

  it('keeps the reference first and the runtimes whose label contains a part', () => {
    const chosen = selectRuntimes('crun, warm');
    expect(chosen[0]).toBe(REFERENCE);
    expect(chosen.map((rt) => rt.label)).toEqual([REFERENCE.label, 'tsshim+crun', 'tsshim (native), 1 shim for all, warm']);
  });

  it('a filter matching nothing is an error naming the labels', () => {
    expect(() => selectRuntimes('nosuch')).toThrow(/matches no runtime.*tsshim\+crun/);
  });
});
