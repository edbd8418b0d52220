/**
 * The gVisor backend: containers in gVisor sandboxes through runsc. runsc speaks runc's
 * command line, so this is the runc-family backend with runsc's flags and what gVisor does
 * differently:
 *
 *  - Sandboxes: a container that creates its sandbox (plain ctr, or a CRI sandbox container)
 *    starts a `runsc-sandbox` process; a CRI app container joins its pod's sandbox (runsc does
 *    that itself from the CRI annotations in the spec). The core says which is which
 *    (CreateInput.sandbox) and when the last container of a sandbox is gone (closeSandbox).
 *  - Exits: the creator's exit is the sandbox process's exit (runsc-sandbox exits with the
 *    root container's status, 128 + signal when killed), which the shim's reaper reaps: runsc
 *    create leaves it to us, the subreaper. An app container's pid is the sandbox's, shared,
 *    so its exit comes from its sandbox's control socket (the call `runsc wait` makes,
 *    sandbox-control.ts; a `runsc wait <id>` child where the socket cannot be reached) and is
 *    reported by container id. Execs:
 *    `runsc exec --detach` leaves a host proxy process whose exit is the exec's.
 *  - Stats from `runsc events --stats`; no `update` (runsc has none); checkpoint and restore by
 *    runsc itself (no CRIU).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type {
  BackendContainer,
  CgroupMetrics,
  CheckpointInput,
  CreateInput,
  CreateResult,
  RuncLikeOptions,
} from '../../core/backend.js';
import { ShimError, unimplemented } from '../../core/errors.js';
import { MergedExitSource } from '../../core/merged-exit-source.js';
import { killQuietly } from '../../sys/reaper.js';
import { RuncBackend, asRunc, runtimeRoot, type RuncContainer, type WantingExitSource } from '../runc/backend.js';
import { execaCommand, type RuncCli, type RuntimeCommand, type RuntimeVerb, type StdioFds } from '../runc/cli.js';
import type { GvisorConfig, GvisorNetwork, GvisorPlatform } from '../../shim/config.js';
import { bestPlatform, runscRelease } from './runsc-facts.js';
import { RunscCli } from './runsc-cli.js';
import { controlSocketAddress, waitOnControlSocket } from './sandbox-control.js';
import { metricsFromRunscStats } from './stats.js';

export const DEFAULT_RUNSC_ROOT = '/run/containerd/runsc';
const SANDBOX_STOP_TIMEOUT_MS = 5_000;
/** 50 ms polls for a dead sandbox process to be reaped (see watchExit) */
const SANDBOX_REAP_POLLS = 40;
/** runsc 20221219 (bookworm) hangs in checkpoint --leave-running; 20240729 (backports) does not */
const LEAVE_RUNNING_WORKS_SINCE = 20230101;

export interface GvisorBackendOptions {
  config: GvisorConfig;
  /** runsc root with the namespace */
  root: string;
  exits: WantingExitSource;
}

/** runsc's flags from tsshim's [gvisor] table and the handler's [runsc_config], last wins */
export function composeRunscFlags(config: GvisorConfig, platform: GvisorPlatform, network: GvisorNetwork): string[] {
  const flags = new Map<string, string>();
  flags.set('platform', platform);
  flags.set('network', network);
  if (config.overlay !== undefined) flags.set('overlay2', config.overlay);
  if (config.debugLog !== undefined) {
    flags.set('debug', 'true');
    flags.set('debug-log', config.debugLog);
  }
  const out = () => [...flags].map(([k, v]) => `--${k}=${v}`);
  for (const [k, v] of Object.entries(config.runscConfig)) flags.set(k, v);
  // [gvisor] flags are passed as written, after the named ones
  const extra = config.flags.filter((f) => !flags.has(f.replace(/^--?/, '').split('=')[0]!));
  return [...out(), ...extra];
}

/** `host` when the spec joins an existing network namespace (a pod's), else `none` */
export function networkForSpec(bundle: string): GvisorNetwork {
  try {
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as {
      linux?: { namespaces?: Array<{ type?: string; path?: string }> };
    };
    const netns = spec.linux?.namespaces?.find((n) => n.type === 'network');
    if (!netns) return 'host'; // the host's network namespace: runsc must not set up its own
    return netns.path ? 'host' : 'none';
  } catch {
    return 'none';
  }
}

class GvisorContainer {
  constructor(
    /** an app container joining a pod's sandbox (not its creator) */
    readonly joinsSandbox: boolean,
    /** its stdio, which runsc takes at start for an app container */
    readonly stdio: StdioFds,
    /** the sandbox it runs in (its own id for the sandbox's creator) */
    readonly sandboxId: string,
  ) {}
  /** ends the wait for the app container's exit, while one runs */
  stopWaiting?: () => void;
  /** deleted: an exit that comes now is nobody's */
  deleted = false;
}

export class GvisorBackend extends RuncBackend {
  private readonly config: GvisorConfig;
  /** the reaper's exits plus those `runsc wait` reports */
  private readonly gvisorExits: MergedExitSource;
  private readonly extra = new WeakMap<RuncContainer, GvisorContainer>();
  /** sandbox id → host pid of its runsc-sandbox process */
  private readonly sandboxPids = new Map<string, number>();
  private platform: GvisorPlatform | undefined;

  constructor(o: GvisorBackendOptions) {
    const exits = new MergedExitSource(o.exits);
    // runsc checkpoints and restores without CRIU
    super({ name: 'gvisor', binary: o.config.binary, root: o.root, exits, criuAvailable: true });
    this.gvisorExits = exits;
    this.config = o.config;
    this.platform = o.config.platform;
    (this.capabilities as { update: boolean }).update = false;
  }

  private runscCli(
    options: RuncLikeOptions,
    namespace: string,
    network: GvisorNetwork,
    timeouts: Partial<Record<RuntimeVerb, number>> = this.timeouts,
  ): RunscCli {
    return new RunscCli({
      binary: options.binaryName || this.binary,
      root: runtimeRoot(options, namespace, this.root),
      // verbs other than create read the sandbox's own settings; the flags only need to parse
      flags: composeRunscFlags(this.config, this.platform ?? 'ptrace', network),
      timeouts,
      command: this.command,
    });
  }

  override cliFor(options: RuncLikeOptions, namespace: string, timeouts?: Partial<Record<RuntimeVerb, number>>): RuncCli {
    return this.runscCli(options, namespace, this.config.network ?? 'none', timeouts);
  }

  protected override cliForCreate(input: CreateInput): RuncCli {
    return this.runscCli(input.options, input.namespace, this.config.network ?? networkForSpec(input.bundle));
  }

  protected override async requireCriu(): Promise<void> {
    // gVisor saves and restores its own state
  }

  override async create(input: CreateInput): Promise<{ container: BackendContainer } & CreateResult> {
    if (!this.platform) {
      const runscRoot = runtimeRoot(input.options, input.namespace, this.root);
      this.platform = await bestPlatform(input.options.binaryName || this.binary, join(runscRoot, '..'), this.runtimeCommand());
    }
    const r = await super.create(input);
    const c = asRunc(r.container);
    const placement = input.sandbox ?? { sandboxId: input.id, creates: true };
    const stdio: StdioFds = input.stdio.terminal ? ['ignore', 'ignore', 'ignore'] : [input.stdio.stdin, input.stdio.stdout, input.stdio.stderr];
    this.extra.set(c, new GvisorContainer(!placement.creates, stdio, placement.sandboxId));
    if (placement.creates) {
      this.sandboxPids.set(placement.sandboxId, r.pid);
      return r;
    }
    // an app container of a pod: the pid is its sandbox's, its exit comes from `runsc wait`,
    // and runsc start (not create) hands it its stdio
    return { ...r, exitReportedById: true, stdioTakenAtStart: true };
  }

  override async start(bc: BackendContainer): Promise<void> {
    const c = asRunc(bc);
    try {
      const extra = this.extra.get(c);
      if (extra?.joinsSandbox && !c.restored) await (c.cli as RunscCli).start(c.id, c.bundle, extra.stdio);
      else await super.start(bc);
    } catch (err) {
      // runsc finds a missing executable only at start, with the sandbox up: a sandbox that
      // cannot run its container is useless, and a created task with a live pid is one
      // containerd's clients cannot delete. Its exit (held by the core while Start runs) makes
      // the task stopped.
      if (!this.isAppContainer(c)) await this.stopSandboxProcess(c.initPid);
      throw err;
    }
    if (this.isAppContainer(c)) this.watchExit(c);
  }

  /** SIGKILL a sandbox process and wait (bounded) until the reaper has reported its exit */
  private async stopSandboxProcess(pid: number): Promise<void> {
    if (!pid) return;
    const sub = this.gvisorExits.subscribe();
    let timer: NodeJS.Timeout | undefined;
    try {
      const reaped = new Promise<void>((resolve) => sub.onExit((e) => e.pid === pid && resolve()));
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return; // already reaped
      }
      await Promise.race([reaped, new Promise<void>((resolve) => (timer = setTimeout(resolve, SANDBOX_STOP_TIMEOUT_MS)))]);
    } finally {
      clearTimeout(timer);
      sub.close();
    }
  }

  private isAppContainer(c: RuncContainer): boolean {
    return this.extra.get(c)?.joinsSandbox === true;
  }

  /** how runsc is run outside a container's CLI (probes): as every runtime call is */
  private runtimeCommand(): RuntimeCommand {
    return this.command ?? execaCommand;
  }

  /**
   * Waits for the app container's exit on its sandbox's control socket, or with `runsc wait
   * <id>` where that socket cannot be reached; the status is the container's.
   */
  private watchExit(c: RuncContainer): void {
    const extra = this.extra.get(c);
    const report = async (reported: number | undefined) => {
      if (extra) extra.stopWaiting = undefined;
      if (extra?.deleted) return;
      let status = reported;
      if (status === undefined) {
        // No status: the sandbox died under it (killed pod), and its containers with it. The
        // control socket closes as the sandbox dies, before the reaper has collected it: give
        // the reaper a moment before telling a killed sandbox from one that lost track.
        for (let i = 0; i < SANDBOX_REAP_POLLS && isAlive(c.initPid); i++) await new Promise((r) => setTimeout(r, 50));
        status = isAlive(c.initPid) ? 255 : 128 + 9;
      }
      this.gvisorExits.emit({ pid: c.initPid, containerId: c.id, status, at: new Date() });
    };
    const withRunscWait = () => {
      (c.cli as RunscCli)
        .wait(c.id, (pid) => {
          if (extra) extra.stopWaiting = () => killQuietly(pid);
        })
        .then(report, () => report(undefined));
    };
    if (!extra) return withRunscWait();
    let wait;
    try {
      wait = waitOnControlSocket(controlSocketAddress(c.cli.root, extra.sandboxId), c.id);
    } catch {
      return withRunscWait();
    }
    extra.stopWaiting = wait.cancel;
    void wait.status.then(report);
  }

  /**
   * runsc 2022 refuses to signal a container that is created but not started. A sandbox that
   * was never started runs nothing of the user's: the signal goes to the sandbox process, whose
   * death is the container's exit (128 + signal). An app container cannot be signalled then.
   */
  override async kill(bc: BackendContainer, signal: number, all: boolean): Promise<void> {
    try {
      await super.kill(bc, signal, all);
    } catch (err) {
      const c = asRunc(bc);
      if (!(err instanceof ShimError) || err.code !== 'FailedPrecondition' || !/in state created/.test(err.message)) throw err;
      if (this.isAppContainer(c)) throw err;
      try {
        process.kill(c.initPid, signal);
      } catch {
        throw err;
      }
    }
  }

  override async update(): Promise<void> {
    throw unimplemented('gvisor backend: runsc cannot change the resources of a running sandbox (it has no update command)');
  }

  override async stats(bc: BackendContainer): Promise<CgroupMetrics> {
    const c = asRunc(bc);
    const stats = await (c.cli as RunscCli).stats(c.id, c.bundle);
    return { version: 1, data: metricsFromRunscStats(stats) };
  }

  /**
   * containerd pauses a task around a container checkpoint; runsc 2022 panics checkpointing a
   * paused container ("invalid state transition: paused => stopped"), so the sandbox is resumed
   * for the dump (gVisor stops its own kernel while saving) and paused again after.
   */
  override async checkpoint(bc: BackendContainer, input: CheckpointInput): Promise<void> {
    const c = asRunc(bc);
    if (!input.exit) {
      const release = await runscRelease(c.cli.binary, join(c.cli.root, '..'), this.runtimeCommand());
      if (release !== undefined && release < LEAVE_RUNNING_WORKS_SINCE) {
        throw unimplemented(
          `gvisor backend: runsc ${release} hangs in "checkpoint --leave-running" after writing the image; use a newer runsc (e.g. bookworm-backports') or checkpoint with exit`,
        );
      }
    }
    const paused = (await c.cli.state(c.id, c.bundle)).status === 'paused';
    if (paused) await c.cli.resume(c.id, c.bundle);
    try {
      await c.cli.checkpoint(c.id, c.bundle, { imagePath: input.path, leaveRunning: !input.exit });
    } finally {
      if (paused && !input.exit) await c.cli.pause(c.id, c.bundle).catch(() => undefined);
    }
  }

  override async delete(bc: BackendContainer, opts: { force: boolean }): Promise<void> {
    const c = asRunc(bc);
    await super.delete(bc, opts);
    // the container is gone: there is nothing left to wait for
    const extra = this.extra.get(c);
    if (extra) extra.deleted = true;
    extra?.stopWaiting?.();
  }

  /** whether runsc holds state for the container (the `delete` action skips runsc otherwise) */
  hasState(root: string, containerId: string): boolean {
    return hasRunscState(root, containerId);
  }

  /**
   * The pod's last container is gone. runsc delete of the sandbox's creator already stopped
   * the sandbox; if it still runs (its creator was deleted first, or a delete failed), stop it
   * with `runsc delete --force`, then make sure its process is gone.
   */
  async closeSandbox(sandboxId: string, namespace: string): Promise<void> {
    const pid = this.sandboxPids.get(sandboxId);
    this.sandboxPids.delete(sandboxId);
    const cli = this.cliFor({}, namespace);
    if (hasRunscState(cli.root, sandboxId)) await cli.delete(sandboxId, undefined, true).catch(() => undefined);
    if (pid && isAlive(pid) && isRunscProcess(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
}

/** runsc keeps `<id>_sandbox:<sandbox id>.state` per container under its root */
function hasRunscState(root: string, containerId: string): boolean {
  try {
    return readdirSync(root).some((f) => f.startsWith(`${containerId}_sandbox:`) || f === containerId);
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isRunscProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('runsc');
  } catch {
    return false;
  }
}
