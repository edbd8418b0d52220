/**
 * The backend contract: what the task core needs from an executor (runc/crun CLI,
 * the native executor, runsc, kata). Backends never see protobuf types; the core never
 * talks to a runtime binary or the kernel directly.
 *
 * Sandboxes: the core decides which sandbox a container creates or joins and when a sandbox
 * lost its last container (src/core/sandbox.ts); sandbox backends act on it.
 *
 * Exits: a backend declares where its process exits come from (`exits`). The core
 * subscribes BEFORE asking the backend to spawn anything, so an exit that happens before
 * create/exec returns is buffered, never lost (the Go shim's "subscribe before spawn").
 */

import type { SandboxPlacement } from './sandbox.js';

export type { SandboxPlacement } from './sandbox.js';

/** One exit, as the reaper (or runsc wait, or a VM agent) saw it. */
export interface ExitEvent {
  pid: number;
  /**
   * Set when the exit is a container's init whose host pid other containers share (an app
   * container in a gVisor pod reports the sandbox's pid): the core routes it by this id.
   */
  containerId?: string;
  /**
   * With `containerId`: the exit is this exec's of that container (a Kata exec reports the
   * VM's pid, shared by every process of the pod, so only its ids name it).
   */
  execId?: string;
  /** exit code, or 128 + signal number when killed by a signal */
  status: number;
  /** the signal number when killed by one (status alone cannot tell 137 from SIGKILL) */
  signal?: number;
  at: Date;
}

export interface ExitSubscription {
  /** called for every exit reaped after subscribe() until close() */
  onExit(cb: (e: ExitEvent) => void): void;
  /** exits already seen by this subscription (for pids learned after the fact) */
  take(pid: number): ExitEvent | undefined;
  close(): void;
}

export interface ExitSource {
  subscribe(): ExitSubscription;
}

/** containerd.types.Mount, without protobuf */
export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

/**
 * What the init/exec process gets as stdio. Either plain fds that the runtime passes
 * through to the process (non-terminal: FIFO/file/pipe ends opened by src/io), or a
 * terminal, in which case the backend returns the pty master fd.
 */
export interface ProcessStdio {
  terminal: boolean;
  /** fds for 0,1,2; 'ignore' means /dev/null. Ignored when terminal is true. */
  stdin: number | 'ignore';
  stdout: number | 'ignore';
  stderr: number | 'ignore';
}

/** Runtime options that the runc-compatible backends understand (containerd.runc.v1.Options subset). */
export interface RuncLikeOptions {
  noPivotRoot?: boolean;
  noNewKeyring?: boolean;
  ioUid?: number;
  ioGid?: number;
  binaryName?: string;
  root?: string;
  systemdCgroup?: boolean;
  criuImagePath?: string;
  criuWorkPath?: string;
}

export interface CreateInput {
  id: string;
  namespace: string;
  bundle: string;
  stdio: ProcessStdio;
  options: RuncLikeOptions;
  /** restore from a checkpoint image at start (empty: plain create) */
  checkpoint?: string;
  /** the sandbox this container creates or joins, as the core decided (absent: its own) */
  sandbox?: SandboxPlacement;
}

export interface CreateResult {
  pid: number;
  /** pty master fd, when stdio.terminal */
  consoleFd?: number;
  /**
   * The pid is not this container's own (it is its sandbox's, shared with other containers):
   * the backend reports this init's exit as an ExitEvent with `containerId` set.
   */
  exitReportedById?: boolean;
  /**
   * The runtime takes the process's stdio at start, not at create (runsc app containers): the
   * core keeps its ends of the stdio open until Start has run.
   */
  stdioTakenAtStart?: boolean;
  /**
   * With consoleFd: how a resize reaches the terminal when consoleFd is not a pty master
   * (a Kata process's terminal is in the guest: the fd is a socket, the resize an agent call).
   */
  consoleResize?: (rows: number, cols: number) => void;
}

export interface ExecInput {
  containerId: string;
  execId: string;
  bundle: string;
  /** OCI runtime-spec Process, as JSON-compatible object */
  spec: Record<string, unknown>;
  stdio: ProcessStdio;
}

export interface CheckpointInput {
  path: string;
  exit: boolean;
  openTcp: boolean;
  externalUnixSockets: boolean;
  terminal: boolean;
  fileLocks: boolean;
  emptyNamespaces: string[];
  cgroupsMode: string;
  workPath: string;
  parentPath: string;
}

/** cgroup metrics in one of the two shapes containerd knows (see src/sys/cgroups.ts) */
export type CgroupMetrics =
  | { version: 1; data: unknown }
  | { version: 2; data: unknown };

export interface BackendCapabilities {
  checkpoint: boolean;
  pause: boolean;
  update: boolean;
  terminal: boolean;
}

/**
 * A container as the backend knows it. The core creates one per task and keeps it; the
 * backend may keep private state in it (cgroup path, runtime root, ...).
 */
export interface BackendContainer {
  readonly id: string;
  readonly bundle: string;
  /** cgroup path (as /proc/<pid>/cgroup shows it) once known, for stats and OOM */
  cgroupPath?: string;
}

export interface Backend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  readonly exits: ExitSource;

  /** create the container; init exists but user code does not run yet */
  create(input: CreateInput): Promise<{ container: BackendContainer } & CreateResult>;
  start(c: BackendContainer): Promise<void>;
  /** start an exec process in the container (runc exec --detach); returns its pid */
  exec(c: BackendContainer, input: ExecInput): Promise<CreateResult>;
  /** signal the init (all=false) or every process in the container (all=true) */
  kill(c: BackendContainer, signal: number, all: boolean): Promise<void>;
  /** signal one exec process of the container, by host pid (and exec id, for backends whose pids are shared) */
  killProcess(c: BackendContainer, pid: number, signal: number, execId: string): Promise<void>;
  pause(c: BackendContainer): Promise<void>;
  resume(c: BackendContainer): Promise<void>;
  /** OCI LinuxResources JSON */
  update(c: BackendContainer, resources: Record<string, unknown>): Promise<void>;
  pids(c: BackendContainer): Promise<number[]>;
  stats(c: BackendContainer): Promise<CgroupMetrics>;
  checkpoint(c: BackendContainer, input: CheckpointInput): Promise<void>;
  /** remove the container from the runtime; force also kills what still runs */
  delete(c: BackendContainer, opts: { force: boolean }): Promise<void>;
  /**
   * The last container of a sandbox (design idiom 5) has been deleted: tear down what the
   * sandbox still holds. Absent for backends whose sandbox is trivial (one per container,
   * gone with it).
   */
  closeSandbox?(sandboxId: string, namespace: string): Promise<void>;
  /**
   * OOM kills the backend learns itself (a Kata guest's agent), by container id; the core
   * publishes them as TaskOOM. Backends whose containers are in host cgroups leave this out:
   * the shim's own OOM monitor watches those.
   */
  onOom?(cb: (containerId: string) => void): void;
  /** `delete` binary action after a dead shim: must work from the bundle alone */
  cleanupAfterCrash(input: { id: string; namespace: string; bundle: string; options: RuncLikeOptions }): Promise<void>;
}

