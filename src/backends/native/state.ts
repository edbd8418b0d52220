/**
 * Where a native container's state lives: <root>/<id>/state.json (as runc keeps its
 * state.json), and <root>/<id>/exec.fifo from create until start. Enough to find and
 * clean up a container without the process that created it (the shim's `delete`
 * action, a second tsrun invocation): init pid and its start time (a recycled pid is
 * not our init), cgroup path, namespaces, the compiled seccomp program for execs.
 */
import type { CgroupPaths } from './cgroup-path.js';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alreadyExists, internal, invalidArgument, notFound } from '../../core/errors.js';
import type { NamespaceType } from './plan.js';
import type { OciDeviceRule, OciHook } from './spec.js';

export const STATE_FILE = 'state.json';
export const EXEC_FIFO = 'exec.fifo';

export interface NativeState {
  version: 1;
  id: string;
  bundle: string;
  rootfs: string;
  initPid: number;
  /** /proc/<pid>/stat field 22 (start time in clock ticks): tells our init from a recycled pid */
  initStartTime: string;
  created: string;
  started: boolean;
  cgroupPath: string;
  /** the cgroup in each hierarchy (a relative cgroupsPath differs per hierarchy); absent in older states */
  cgroupPaths?: CgroupPaths;
  /** the systemd cgroup driver's unit for this container (stopped on delete) */
  systemdUnit?: string;
  namespaces: Array<{ type: NamespaceType; path?: string }>;
  userNamespace: boolean;
  /** base64 BPF program and filter flags, applied to execs as to the init */
  seccomp?: { program: string; flags: number };
  annotations: Record<string, string>;
  ociVersion: string;
  /** linux.resources.devices at create: the cgroup2 device filter says these (update) */
  deviceRules?: OciDeviceRule[];
  /** the runtime-namespace hooks of later verbs (start, delete may run in another process) */
  hooks?: { poststart?: OciHook[]; poststop?: OciHook[] };
}

/** runc's rule for container ids: no path tricks, nothing a shell would mangle */
export function validateId(id: string): void {
  if (!/^[A-Za-z0-9_+\-.]+$/.test(id) || id === '.' || id === '..' || id.length > 1024) {
    throw invalidArgument(`invalid container id ${JSON.stringify(id)}: use letters, digits and _ + - . only`);
  }
}

export function containerDir(root: string, id: string): string {
  return join(root, id);
}

/** claims the id: creates <root>/<id> (0700), AlreadyExists if it is taken */
export function claimContainerDir(root: string, id: string): string {
  validateId(id);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const dir = containerDir(root, id);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(`container with id ${id} already exists`);
    throw internal(`create state directory ${dir}: ${(err as Error).message}`, err);
  }
  return dir;
}

/** written to a temp file and renamed: a reader never sees half a state */
export function writeState(root: string, s: NativeState): void {
  const dir = containerDir(root, s.id);
  const tmp = join(dir, `.${STATE_FILE}.${process.pid}`);
  writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
  renameSync(tmp, join(dir, STATE_FILE));
}

export function readState(root: string, id: string): NativeState {
  validateId(id);
  const file = join(containerDir(root, id), STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`container ${id} does not exist`);
    throw internal(`read ${file}: ${(err as Error).message}`, err);
  }
  try {
    const s = JSON.parse(text) as NativeState;
    if (s.version !== 1 || s.id !== id) throw new Error('unexpected content');
    return s;
  } catch (err) {
    throw internal(`${file} is corrupt: ${(err as Error).message}`, err);
  }
}

export function listIds(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(root, e.name, STATE_FILE)))
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * A container's state dir is flat (state.json, the exec FIFO): unlink and rmdir. fs.rmSync
 * would load Node's rimraf on its first call, ~0.5 ms on a new shim's first Delete; it is
 * kept for the unexpected (a subdirectory someone made).
 */
export function removeContainerDir(root: string, id: string): void {
  const dir = containerDir(root, id);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    for (const name of names) unlinkSync(join(dir, name));
    rmdirSync(dir);
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** start time of a process (field 22 of /proc/<pid>/stat), undefined when it is gone */
export function processStartTime(pid: number): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // the command name (field 2) may hold spaces and parentheses: fields resume after the last ')'
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return rest[19];
}

/** process state letter (field 3): 'Z' zombie, 'X' dead, ... */
function processStateLetter(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** our init still runs: same pid, same start time, not a zombie */
export function initAlive(s: Pick<NativeState, 'initPid' | 'initStartTime'>): boolean {
  if (processStartTime(s.initPid) !== s.initStartTime) return false;
  const st = processStateLetter(s.initPid);
  return st !== undefined && st !== 'Z' && st !== 'X';
}
