import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { idleNodeServerMemory, nodeStartMs } from '../../bench/node-floor.js';

// The bench's floor figures must be real measurements of a Node process that is gone after.
describe("bench: Node's floor", () => {
  it('reads an idle Node server memory and leaves no process behind', async () => {
    const before = new Set(listNodeFloorPids());
    const m = await idleNodeServerMemory(100);
    expect(m.anonKb).toBeGreaterThan(1024);
    expect(m.rssKb).toBeGreaterThan(m.anonKb);
    expect(m.pssKb).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(listNodeFloorPids().filter((p) => !before.has(p))).toEqual([]);
  });

  it('times node -e 0', () => {
    const ms = nodeStartMs();
    expect(ms).toBeGreaterThan(1);
    expect(ms).toBeLessThan(30_000);
  });
});

function listNodeFloorPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('tsshim-bench-floor-');
      } catch {
        return false;
      }
    })
    .map(Number);
}
