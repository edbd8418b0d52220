/**
 * Process records and their state machine. The core owns state; backends only do the
 * primitive operations. An illegal verb is a FailedPrecondition naming the state, a
 * finished process that is signalled is NotFound ("process already finished"), which is
 * what containerd and its clients branch on.
 */
import { failedPrecondition, notFound } from './errors.js';

export type ProcessState = 'created' | 'running' | 'pausing' | 'paused' | 'stopped' | 'deleted';

/** Verbs whose legality depends on the state (see the table in shim-v2-protocol.md §3.4). */
export type Verb = 'start' | 'delete' | 'kill' | 'pause' | 'resume' | 'exec' | 'update' | 'checkpoint';

const ALLOWED: Record<ProcessState, ReadonlySet<Verb>> = {
  created: new Set<Verb>(['start', 'delete', 'kill', 'exec', 'update']),
  running: new Set<Verb>(['kill', 'pause', 'exec', 'update', 'checkpoint']),
  pausing: new Set<Verb>(['kill']),
  paused: new Set<Verb>(['kill', 'resume', 'update', 'checkpoint']),
  stopped: new Set<Verb>(['delete']),
  deleted: new Set<Verb>([]),
};

/** Status values of containerd.v1.types.Status */
export const enum TaskStatus {
  Unknown = 0,
  Created = 1,
  Running = 2,
  Stopped = 3,
  Paused = 4,
  Pausing = 5,
}

export interface ExitInfo {
  status: number;
  at: Date;
}

/**
 * Common part of InitProcess and ExecProcess: pid, state, exit and the waiters of
 * Wait. `exited` resolves exactly once, when the core has decided the exit is final
 * (for an init: after its execs' exits and the OOM check).
 */
export abstract class ProcessRecord {
  pid = 0;
  state: ProcessState = 'created';
  exit: ExitInfo | undefined;
  /** set while Start runs: an exit that arrives meanwhile is held until the start event is out */
  starting = false;
  heldExit: { status: number; at: Date } | undefined;
  private resolveExited!: (e: ExitInfo) => void;
  readonly exited: Promise<ExitInfo>;

  constructor(
    readonly containerId: string,
    /** exec id, or '' for the init process */
    readonly execId: string,
    readonly stdio: { stdin: string; stdout: string; stderr: string; terminal: boolean },
  ) {
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
  }

  /** the id containerd uses for this process: container id for init, exec id for execs */
  get processId(): string {
    return this.execId || this.containerId;
  }

  get kind(): string {
    return this.execId ? 'exec' : 'init';
  }

  require(verb: Verb): void {
    if (this.state === 'deleted') throw notFound(`process ${this.processId} does not exist`);
    if (verb === 'kill' && this.state === 'stopped') throw notFound('process already finished');
    if (!ALLOWED[this.state].has(verb)) {
      throw failedPrecondition(`cannot ${verb} ${this.kind} process ${this.processId} in state ${this.state}`);
    }
  }

  /** record the final exit and release every Wait */
  markExited(status: number, at: Date): void {
    if (this.exit) return;
    this.exit = { status, at };
    this.state = 'stopped';
    this.resolveExited(this.exit);
  }

  get status(): TaskStatus {
    switch (this.state) {
      case 'created':
        return TaskStatus.Created;
      case 'running':
        return TaskStatus.Running;
      case 'pausing':
        return TaskStatus.Pausing;
      case 'paused':
        return TaskStatus.Paused;
      case 'stopped':
      case 'deleted':
        return TaskStatus.Stopped;
    }
  }
}

export class InitProcess extends ProcessRecord {}

export class ExecProcess extends ProcessRecord {
  constructor(
    containerId: string,
    execId: string,
    stdio: { stdin: string; stdout: string; stderr: string; terminal: boolean },
    /** OCI Process spec for this exec */
    readonly spec: Record<string, unknown>,
  ) {
    super(containerId, execId, stdio);
  }
  /** its pid is shared (a Kata VM's): its exit comes by container and exec id, not by pid */
  exitReportedById = false;
}
