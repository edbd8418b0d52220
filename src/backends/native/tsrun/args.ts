/**
 * tsrun's command line, parsed the way runc's (urfave/cli) is: global flags before the
 * command, command flags before positional arguments (`--` ends them), `--flag value`,
 * `--flag=value`, one-dash long names (`-bundle`), single-letter aliases (`-b`), and
 * boolean flags that take no value. An unknown flag is an error naming it.
 */
import { invalidArgument } from '../../../core/errors.js';

export interface FlagSpec {
  /** names without dashes: the first is canonical, the others aliases */
  names: string[];
  /** takes a value (else boolean) */
  value?: boolean;
  /** may be given more than once (values collected in order) */
  repeat?: boolean;
}

export interface Parsed {
  flags: Map<string, string[]>;
  /** boolean flags that were given */
  bools: Set<string>;
  positional: string[];
}

export const GLOBAL_FLAGS: FlagSpec[] = [
  { names: ['root'], value: true },
  { names: ['log'], value: true },
  { names: ['log-format'], value: true },
  { names: ['log-level'], value: true },
  { names: ['debug'] },
  { names: ['systemd-cgroup'] },
  { names: ['criu'], value: true },
  { names: ['rootless'], value: true },
  { names: ['help', 'h'] },
  { names: ['version', 'v'] },
];

const CREATE_FLAGS: FlagSpec[] = [
  { names: ['bundle', 'b'], value: true },
  { names: ['console-socket'], value: true },
  { names: ['pid-file'], value: true },
  { names: ['no-pivot'] },
  { names: ['no-new-keyring'] },
  { names: ['preserve-fds'], value: true },
];

export const COMMAND_FLAGS: Record<string, FlagSpec[]> = {
  create: CREATE_FLAGS,
  run: [...CREATE_FLAGS, { names: ['detach', 'd'] }, { names: ['keep'] }],
  start: [],
  state: [],
  kill: [{ names: ['all', 'a'] }],
  delete: [{ names: ['force', 'f'] }],
  exec: [
    { names: ['process', 'p'], value: true },
    { names: ['console-socket'], value: true },
    { names: ['pid-file'], value: true },
    { names: ['detach', 'd'] },
    { names: ['tty', 't'] },
    { names: ['env', 'e'], value: true, repeat: true },
    { names: ['cwd'], value: true },
    { names: ['user', 'u'], value: true },
    { names: ['additional-gids', 'g'], value: true, repeat: true },
    { names: ['cap', 'c'], value: true, repeat: true },
    { names: ['no-new-privs'] },
    { names: ['preserve-fds'], value: true },
    { names: ['process-label'], value: true },
    { names: ['apparmor'], value: true },
    { names: ['ignore-paused'] },
  ],
  ps: [{ names: ['format', 'f'], value: true }],
  list: [{ names: ['format', 'f'], value: true }, { names: ['quiet', 'q'] }],
  pause: [],
  resume: [],
  update: [
    { names: ['resources', 'r'], value: true },
    { names: ['memory'], value: true },
    { names: ['memory-reservation'], value: true },
    { names: ['memory-swap'], value: true },
    { names: ['pids-limit'], value: true },
    { names: ['cpu-shares'], value: true },
    { names: ['cpu-quota'], value: true },
    { names: ['cpu-period'], value: true },
    { names: ['cpuset-cpus'], value: true },
    { names: ['cpuset-mems'], value: true },
    { names: ['blkio-weight'], value: true },
  ],
  events: [{ names: ['stats'] }, { names: ['interval'], value: true }],
  features: [],
  spec: [{ names: ['bundle', 'b'], value: true }, { names: ['rootless'] }],
  checkpoint: [],
  restore: [],
};

function lookup(specs: FlagSpec[], name: string): FlagSpec | undefined {
  return specs.find((s) => s.names.includes(name));
}

/**
 * Parses flags from args[from], stopping at the first positional argument when
 * stopAtPositional (global flags end at the command name). Returns the index after.
 */
export function parseFlags(args: string[], specs: FlagSpec[], where: string, stopAtPositional: boolean): Parsed & { next: number } {
  const flags = new Map<string, string[]>();
  const bools = new Set<string>();
  const positional: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      i = args.length;
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (stopAtPositional) break;
      // runc stops flag parsing at the first positional argument (exec's command follows)
      positional.push(...args.slice(i));
      i = args.length;
      break;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = lookup(specs, name);
    if (!spec) throw invalidArgument(`${where}: flag provided but not defined: -${name}`);
    const key = spec.names[0]!;
    if (!spec.value) {
      if (eq >= 0 && !/^(true|false)$/.test(body.slice(eq + 1))) throw invalidArgument(`${where}: invalid boolean value for -${name}`);
      if (eq < 0 || body.slice(eq + 1) === 'true') bools.add(key);
      continue;
    }
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else {
      if (i + 1 >= args.length) throw invalidArgument(`${where}: flag needs an argument: -${name}`);
      value = args[++i]!;
    }
    const list = flags.get(key) ?? [];
    if (!spec.repeat) list.length = 0;
    list.push(value);
    flags.set(key, list);
  }
  return { flags, bools, positional, next: i };
}

export interface Command {
  global: Parsed;
  name: string;
  cmd: Parsed;
}

export function parseCommandLine(argv: string[]): Command {
  const g = parseFlags(argv, GLOBAL_FLAGS, 'tsrun', true);
  const name = argv[g.next] ?? '';
  if (!name) return { global: g, name: '', cmd: { flags: new Map(), bools: new Set(), positional: [] } };
  const specs = COMMAND_FLAGS[name];
  if (!specs) throw invalidArgument(`tsrun: no such command: ${name}`);
  const cmd = parseFlags(argv.slice(g.next + 1), [...specs, { names: ['help', 'h'] }], `tsrun ${name}`, false);
  return { global: g, name, cmd };
}

export function flag(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return v?.[v.length - 1];
}

export function flagList(p: Parsed, name: string): string[] {
  return p.flags.get(name) ?? [];
}

/** signal by number or name (KILL, SIGKILL); runc's default is SIGTERM */
export function parseSignal(s: string | undefined, signals: Record<string, number>): number {
  if (s === undefined || s === '') return signals.SIGTERM!;
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n <= 0 || n > 64) throw invalidArgument(`invalid signal ${s}`);
    return n;
  }
  const name = s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`;
  const n = signals[name];
  if (n === undefined) throw invalidArgument(`unknown signal "${s}"`);
  return n;
}
