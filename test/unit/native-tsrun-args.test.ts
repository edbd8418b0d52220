/**
 * tsrun's command line parsing, against the shapes go-runc, podman/conmon and people
 * use with runc.
 */
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { flag, flagList, parseCommandLine, parseSignal } from '../../src/backends/native/tsrun/args.js';

describe('parseCommandLine', () => {
  it('reads go-runc create', () => {
    const c = parseCommandLine(['--root', '/run/r', '--log', '/b/log.json', '--log-format', 'json', '--systemd-cgroup', 'create', '--bundle', '/b', '--pid-file', '/b/init.pid', '--console-socket', '/tmp/s', '--no-pivot', 'c1']);
    expect(c.name).toBe('create');
    expect(flag(c.global, 'root')).toBe('/run/r');
    expect(flag(c.global, 'log-format')).toBe('json');
    expect(c.global.bools.has('systemd-cgroup')).toBe(true);
    expect(flag(c.cmd, 'bundle')).toBe('/b');
    expect(flag(c.cmd, 'console-socket')).toBe('/tmp/s');
    expect(c.cmd.bools.has('no-pivot')).toBe(true);
    expect(c.cmd.positional).toEqual(['c1']);
  });

  it('accepts =values, one-dash long names and short aliases', () => {
    const c = parseCommandLine(['--root=/r', 'run', '-bundle', '/b', '-d', '--pid-file=/p', 'c1']);
    expect(flag(c.global, 'root')).toBe('/r');
    expect(flag(c.cmd, 'bundle')).toBe('/b');
    expect(c.cmd.bools.has('detach')).toBe(true);
    expect(flag(c.cmd, 'pid-file')).toBe('/p');
  });

  it('stops at the container id: the exec command keeps its own flags', () => {
    const c = parseCommandLine(['exec', '-t', '-e', 'A=1', '--env', 'B=2', 'c1', 'ls', '-la', '--color']);
    expect(c.cmd.bools.has('tty')).toBe(true);
    expect(flagList(c.cmd, 'env')).toEqual(['A=1', 'B=2']);
    expect(c.cmd.positional).toEqual(['c1', 'ls', '-la', '--color']);
  });

  it('names an unknown flag or command', () => {
    expect(() => parseCommandLine(['kill', '--bogus', 'c1'])).toThrow('tsrun kill: flag provided but not defined: -bogus');
    expect(() => parseCommandLine(['--nope', 'state', 'c1'])).toThrow('tsrun: flag provided but not defined: -nope');
    expect(() => parseCommandLine(['frobnicate'])).toThrow('tsrun: no such command: frobnicate');
    expect(() => parseCommandLine(['create', '--bundle'])).toThrow('tsrun create: flag needs an argument: -bundle');
  });
});

describe('parseSignal', () => {
  const sigs = constants.signals as Record<string, number>;
  it('reads names and numbers, SIGTERM by default', () => {
    expect(parseSignal(undefined, sigs)).toBe(15);
    expect(parseSignal('KILL', sigs)).toBe(9);
    expect(parseSignal('SIGKILL', sigs)).toBe(9);
    expect(parseSignal('hup', sigs)).toBe(1);
    expect(parseSignal('9', sigs)).toBe(9);
    expect(() => parseSignal('SIGNOPE', sigs)).toThrow('unknown signal "SIGNOPE"');
    expect(() => parseSignal('0', sigs)).toThrow('invalid signal 0');
  });
});
