/**
 * src/sys/lazy-builtins.ts and the rule it depends on: the daemon bundle must not load
 * `net`, `stream` or `child_process` while it boots, and every spawn through child_process
 * must be visible to the Reaper. Both hold only if no source file imports those modules
 * directly, so this checks the sources.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtin, childProcess, isLoaded, whenChildProcessLoaded } from '../../src/sys/lazy-builtins.js';

const SRC = join(import.meta.dirname, '../../src');
/** the modules that hand these built-ins out */
const ALLOWED = new Set(['sys/lazy-builtins.ts', 'sys/uv-pipe.ts']);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'gen') out.push(...sources(p));
    } else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('lazy built-ins', () => {
  it('no source file imports net, stream or child_process except through src/sys/lazy-builtins.ts', () => {
    const offenders: string[] = [];
    const staticValueImport = /^import\s+(?!type\s)[^;]*?from\s+'node:(net|stream|child_process)'/m;
    const dynamicOrRequire = /(?:import|require)\(\s*'(?:node:)?(net|stream|child_process)'\s*\)/;
    for (const file of sources(SRC)) {
      const rel = relative(SRC, file);
      if (ALLOWED.has(rel)) continue;
      const text = readFileSync(file, 'utf8');
      const m = staticValueImport.exec(text) ?? dynamicOrRequire.exec(text);
      if (m) offenders.push(`${rel}: ${m[0]}`);
    }
    expect(offenders).toEqual([]);
  });

  it('the scan catches what it must (it is not vacuous)', () => {
    const staticValueImport = /^import\s+(?!type\s)[^;]*?from\s+'node:(net|stream|child_process)'/m;
    expect(staticValueImport.test("import { spawn } from 'node:child_process';")).toBe(true);
    expect(staticValueImport.test("import { type Socket, connect } from 'node:net';")).toBe(true);
    expect(staticValueImport.test("import type { Socket } from 'node:net';")).toBe(false);
  });

  it('builtin() and childProcess() return the real modules', async () => {
    expect(builtin('node:net')).toBe(await import('node:net').then((m) => m.default));
    expect(childProcess().spawn).toBe((await import('node:child_process')).spawn);
    expect(builtin('node:child_process')).toBe(childProcess());
  });

  it('whenChildProcessLoaded runs at once when the module is already loaded', () => {
    // vitest itself has loaded child_process in this process
    expect(isLoaded('child_process')).toBe(true);
    let seen: unknown;
    whenChildProcessLoaded((cp) => (seen = cp));
    expect(seen).toBe(childProcess());
  });

  it('isLoaded reads what Node has loaded', () => {
    expect(isLoaded('fs')).toBe(true);
    expect(isLoaded('no-such-builtin')).toBe(false);
  });
});
