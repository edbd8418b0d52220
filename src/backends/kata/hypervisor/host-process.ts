/**
 * The bookkeeping shared by the VM's host processes: pid files in the VM's state dir (so
 * cleanupVmState can find them after a SIGKILLed shim), waiting for a unix socket to appear,
 * stopping with SIGTERM then SIGKILL.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deadlineExceeded, failedPrecondition } from '../../../core/errors.js';
import type { LaunchedProcess, ProcessLauncher } from './launcher.js';

export const PID_SUFFIX = '.pid';

/** A host process of a VM, named after its pid file (`<name>.pid` in the state dir). */
export class HostProcess {
  private exitStatus: number | undefined;
  readonly exited: Promise<{ status: number }>;

  private constructor(
    readonly name: string,
    private readonly stateDir: string,
    private readonly proc: LaunchedProcess,
    readonly logFile: string,
  ) {
    this.exited = proc.exited.then((e) => {
      this.exitStatus = e.status;
      rmSync(join(stateDir, name + PID_SUFFIX), { force: true });
      return e;
    });
  }

  /** `program`: what the process runs once started, when `file` execs it (nsenter) */
  static launch(launcher: ProcessLauncher, stateDir: string, name: string, file: string, args: string[], program = file): HostProcess {
    const logFile = join(stateDir, `${name}.log`);
    const proc = launcher.launch(file, args, { logFile });
    // the pid and the program, so a cleanup never kills an unrelated process that reused the pid
    writeFileSync(join(stateDir, name + PID_SUFFIX), `${proc.pid}\n${program}\n`);
    return new HostProcess(name, stateDir, proc, logFile);
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is reaped */
  async stop(graceMs = 2000): Promise<void> {
    if (!this.running) return;
    signal(this.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        signal(this.pid, 'SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    await this.exited;
  }

  /** the last lines of its log, for error messages */
  logTail(lines = 15): string {
    return tailOf(this.logFile, lines);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export function tailOf(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '').trimEnd();
    return text.split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Resolves once `path` exists (a helper created its socket); rejects when the process exits
 * first or the deadline passes.
 */
export async function waitForSocket(path: string, proc: HostProcess, deadline: number, what: string): Promise<void> {
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    if (existsSync(path)) return;
    if (!proc.running) {
      throw failedPrecondition(`${what} exited before creating ${path}: ${proc.logTail(5) || 'no output'}`);
    }
    if (Date.now() > deadline) throw deadlineExceeded(`${what} did not create ${path} in time`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

function isZombieOrGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** true when /proc/<pid>/exe (or argv[0]) is the program the pid file names */
function runsProgram(pid: number, program: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline[0] === program || cmdline[0]?.endsWith('/' + program.split('/').pop()!) === true;
  } catch {
    return false;
  }
}

/**
 * Kills what the pid files in stateDir name (after a SIGKILLed shim nothing else will), waits
 * until they are gone (up to waitMs), and removes the pid files and unix sockets there.
 */
export async function killPidFiles(stateDir: string, waitMs = 5000): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(stateDir);
  } catch {
    return;
  }
  const victims: number[] = [];
  for (const name of entries.filter((e) => e.endsWith(PID_SUFFIX))) {
    const file = join(stateDir, name);
    let pid = 0;
    let program = '';
    try {
      [pid = 0, program = ''] = readFileSync(file, 'utf8').split('\n').map((s, i) => (i === 0 ? Number(s) : s)) as [number, string];
    } catch {
      // unreadable: removed below
    }
    if (Number.isInteger(pid) && pid > 1 && program && runsProgram(pid, program)) {
      signal(pid, 'SIGKILL');
      victims.push(pid);
    }
    rmSync(file, { force: true });
  }
  const until = Date.now() + waitMs;
  while (victims.some((p) => !isZombieOrGone(p)) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  removeSockets(stateDir);
}

export function removeSockets(stateDir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(stateDir);
  } catch {
    return;
  }
  for (const e of entries) if (e.endsWith('.sock')) rmSync(join(stateDir, e), { force: true });
}
