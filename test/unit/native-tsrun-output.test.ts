/**
 * tsrun's output formats that scripts parse the way they parse runc's: the `list` table
 * (Go tabwriter layout) and `created` timestamps (Go's RFC3339Nano).
 */
import { describe, expect, it } from 'vitest';
import { rfc3339Nano } from '../../src/backends/native/runtime.js';
import { alignColumns } from '../../src/backends/native/tsrun/main.js';

describe('tsrun list table', () => {
  it('pads every column but the last to its longest cell plus 3, at least 12, as runc does', () => {
    const out = alignColumns([
      ['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'],
      ['c1', '8363', 'created', '/srv/ctr/c1', '2026-11-22T22:40:24.008310151Z', 'root'],
    ]);
    // what runc 1.1 printed for the same container
    expect(out).toBe(
      'ID          PID         STATUS      BUNDLE        CREATED                          OWNER\n' +
        'c1          8363        created     /srv/ctr/c1   2026-11-22T22:40:24.008310151Z   root\n',
    );
  });
});

describe('created timestamps', () => {
  it('are UTC with the fraction trimmed of trailing zeros, none when whole', () => {
    expect(rfc3339Nano(Date.UTC(2023, 10, 14, 22, 13, 20))).toBe('2023-11-14T22:13:20Z');
    expect(rfc3339Nano(Date.UTC(2023, 10, 14, 22, 13, 20, 123) + 0.456)).toBe('2023-11-14T22:13:20.123456Z');
    expect(rfc3339Nano(Date.UTC(2023, 10, 14, 22, 13, 20, 120) + 0.5)).toBe('2023-11-14T22:13:20.1205Z');
    expect(rfc3339Nano(Date.UTC(2023, 10, 14, 22, 13, 20, 999) + 0.999)).toBe('2023-11-14T22:13:20.999999Z');
  });

  it('parse back to the same millisecond', () => {
    const now = Date.now() + 0.25;
    expect(Date.parse(rfc3339Nano(now))).toBe(Math.floor(now));
  });
});
