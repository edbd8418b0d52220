/**
 * Reads of /proc used by the e2e tests and the bench: process table, zombies, mounts, memory.
 * Every read tolerates the process vanishing in between (ENOENT/ESRCH are normal here).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  /** One-letter state from /proc/<pid>/stat: R, S, D, Z, T, ... */
  state: string;
  ppid: number;
}

export function listPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: it ends at the LAST ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  return { pid, comm: text.slice(open + 1, close), state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

export function listProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const pid of listPids()) {
    const stat = readStat(pid);
    if (stat) out.push(stat);
  }
  return out;
}

/** Exists and is not a zombie (this machine's pid 1 never reaps orphans, so zombies pile up). */
export function isLive(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

export function readCmdline(pid: number): string[] {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    // a command line rewritten in place (setproctitle-style, as tsshim's daemon does) ends
    // in NUL padding: trailing empty strings are not arguments
    const args = raw.split('\0');
    while (args.length > 0 && args[args.length - 1] === '') args.pop();
    return args;
  } catch {
    return [];
  }
}

export function readEnviron(pid: number): Map<string, string> {
  const env = new Map<string, string>();
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return env;
  }
  for (const entry of raw.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

export function readCwd(pid: number): string | undefined {
  return readLink(`/proc/${pid}/cwd`);
}

export function readExe(pid: number): string | undefined {
  return readLink(`/proc/${pid}/exe`);
}

export function childrenOf(pid: number, processes: ProcStat[] = listProcesses()): ProcStat[] {
  return processes.filter((p) => p.ppid === pid);
}

export function zombieChildrenOf(pid: number, processes: ProcStat[] = listProcesses()): ProcStat[] {
  return childrenOf(pid, processes).filter((p) => p.state === 'Z');
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points (as seen by this process) equal to or below `prefix`, deepest first. */
export function mountPointsUnder(prefix: string): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const points = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const point = unescapeMountPath(field);
    if (point === base || point.startsWith(`${base}/`)) points.add(point);
  }
  return [...points].sort((a, b) => b.length - a.length);
}

export interface MemoryUsage {
  /** Resident set size, KiB. */
  rssKb: number;
  /** Proportional set size (shared pages split between their users), KiB. */
  pssKb: number;
  /** Anonymous (heap/stack) memory, KiB. */
  anonKb: number;
}

export function readMemory(pid: number): MemoryUsage | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) : 0;
  };
  return { rssKb: field('Rss'), pssKb: field('Pss'), anonKb: field('Anonymous') };
}

export function sumMemory(usages: MemoryUsage[]): MemoryUsage {
  return usages.reduce(
    (acc, u) => ({ rssKb: acc.rssKb + u.rssKb, pssKb: acc.pssKb + u.pssKb, anonKb: acc.anonKb + u.anonKb }),
    { rssKb: 0, pssKb: 0, anonKb: 0 },
  );
}
