/**
 * runsc, gVisor's runtime CLI. Its verbs are runc's (create/start/state/kill/delete/exec/ps/
 * pause/resume/checkpoint/restore), so it is RuncCli with runsc's global flags
 * (`--platform`, `--network`, `--overlay2`, `--debug-log`, ...) and the verbs whose flags
 * differ (create/restore/checkpoint) or that runc lacks (`wait`, `events --stats`).
 */
import { RuncCli, type CheckpointArgs, type CreateArgs, type RestoreArgs, type RuncCliConfig, type StdioFds } from '../runc/cli.js';
import { internal } from '../../core/errors.js';
import { logErrors, type RuntimeVerb } from '../runc/runtime-error.js';

export interface RunscCliConfig extends RuncCliConfig {
  /** runsc global flags after --root/--log, already composed (`--platform=ptrace`, ...) */
  flags: readonly string[];
}

/** What `runsc events --stats <id>` prints: one JSON object (gVisor's runsc/cmd/events.go). */
export interface RunscStats {
  cpu?: { usage?: { total?: number; kernel?: number; user?: number; percpu?: number[] } };
  memory?: {
    cache?: number;
    usage?: { limit?: number; usage?: number; max?: number; failcnt?: number };
    swap?: { limit?: number; usage?: number; max?: number; failcnt?: number };
    kernel?: { limit?: number; usage?: number; max?: number; failcnt?: number };
    kernelTCP?: { limit?: number; usage?: number; max?: number; failcnt?: number };
    raw?: Record<string, number>;
  };
  pids?: { current?: number; limit?: number };
}

/** the verbs that boot a sandbox: its own errors (the sentry's, the gofer's) come before runsc's last one */
const BOOTING_VERBS: ReadonlySet<RuntimeVerb> = new Set(['create', 'restore', 'start']);
/** how many of the sandbox's errors a message carries */
const MAX_CAUSES = 3;

/**
 * The error of a runsc call from its log. When a sandbox fails to boot, runsc's last error is
 * only "cannot create sandbox: cannot read client sync file: waiting for sandbox to start:
 * EOF"; the cause is what the sandbox and its gofer logged before it, into the same file
 * (e.g. "error setting up FS: mounting …: stat /src: no such file or directory"). Those come
 * along, first ones first.
 */
export function runscErrorFromLog(verb: RuntimeVerb, logText: string): string | undefined {
  const errors = logErrors(logText);
  const last = errors.pop();
  if (last === undefined || !BOOTING_VERBS.has(verb)) return last;
  const causes = [...new Set(errors)].filter((e) => e !== last).slice(0, MAX_CAUSES).map((e) => e.replace(/\s+/g, ' ').trim());
  return causes.length > 0 ? `${last} (the sandbox logged: ${causes.join(' | ')})` : last;
}

/** runsc's words for a sandbox that went away under a call (see RunscCli.delete) */
const SANDBOX_WENT_AWAY = /connecting to control server at PID \d+: connection refused|urpc method "[^"]+" failed: (EOF|[^\n]*connection reset)/;

export class RunscCli extends RuncCli {
  readonly flags: readonly string[];

  constructor(config: RunscCliConfig) {
    super(config);
    this.flags = config.flags;
  }

  protected override errorFromLog(verb: RuntimeVerb, logText: string): string | undefined {
    return runscErrorFromLog(verb, logText);
  }

  protected override globalArgs(bundle?: string): string[] {
    return [...super.globalArgs(bundle), ...this.flags];
  }

  /** runsc create has no --no-pivot/--no-new-keyring (gVisor has no pivot_root nor keyrings to skip) */
  override async create(id: string, bundle: string, o: CreateArgs, stdio: StdioFds): Promise<void> {
    const args = ['create', '--bundle', bundle, '--pid-file', o.pidFile];
    if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
    args.push(id);
    await this.run('create', args, { bundle, stdio });
  }

  /**
   * runsc start of an app container hands its own stdio to the container (runsc create of a
   * sub-container only records it) and spawns the container's gofer, which inherits start's
   * stdio and outlives it: never pipes there, or the call would last as long as the container.
   * Errors come from the --log file.
   */
  override async start(id: string, bundle: string, stdio: StdioFds = ['ignore', 'ignore', 'ignore']): Promise<void> {
    await this.run('start', ['start', id], { bundle, stdio });
  }

  /** `restore` creates the sandbox from the image and runs it (--detach: returns once it runs) */
  override async restore(id: string, bundle: string, o: RestoreArgs, stdio: StdioFds): Promise<void> {
    const args = ['restore', '--image-path', o.imagePath, '--bundle', bundle, '--pid-file', o.pidFile];
    if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
    args.push('--detach', id);
    await this.run('restore', args, { bundle, stdio });
  }

  /**
   * A sandbox that is dying as runsc deletes one of its containers (a shim killed with its
   * pod: containerd cleans up every container of the pod at once, and deleting the creator
   * stops the sandbox) refuses runsc's control connection; runsc then leaves the container's
   * state. Once the sandbox process is gone runsc treats it as stopped and deletes the state:
   * try again for up to 2 s (seen in the CRI suite: "connecting to control server at PID N:
   * connection refused", and a call cut off: `urpc method "…DestroySubcontainer" failed: EOF`).
   */
  override async delete(id: string, bundle: string | undefined, force: boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await super.delete(id, bundle, force);
        return;
      } catch (err) {
        if (attempt >= 20 || !SANDBOX_WENT_AWAY.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** gVisor saves its own state: none of CRIU's options apply */
  override async checkpoint(id: string, bundle: string, o: CheckpointArgs): Promise<void> {
    const args = ['checkpoint', '--image-path', o.imagePath];
    if (o.leaveRunning) args.push('--leave-running');
    args.push(id);
    await this.run('checkpoint', args, { bundle });
  }

  async stats(id: string, bundle: string): Promise<RunscStats> {
    const out = await this.run('events', ['events', '--stats', id], { bundle });
    try {
      const event = JSON.parse(out) as { type?: string; data?: RunscStats };
      return event.data ?? {};
    } catch (err) {
      throw internal(`unexpected runsc events output: ${out.slice(0, 200)}`, err);
    }
  }

  /**
   * `runsc wait <id>`, for as long as the container lives (no deadline; the caller ends it
   * through the pid onSpawned gives): the container's exit status, or undefined when runsc
   * said none (the sandbox died under it, or the call was killed).
   */
  async wait(id: string, onSpawned: (pid: number) => void): Promise<number | undefined> {
    const r = await this.command.run({ file: this.binary, args: [...this.globalArgs(undefined), 'wait', id], timeoutMs: undefined, onSpawned });
    return parseWaitOutput(r.stdout);
  }
}

/** `{"id":"c1","exitStatus":137}` → 137 (runsc already maps a signal to 128 + signo) */
export function parseWaitOutput(stdout: string): number | undefined {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as { exitStatus?: unknown };
    return typeof parsed.exitStatus === 'number' && Number.isInteger(parsed.exitStatus) ? parsed.exitStatus : undefined;
  } catch {
    return undefined;
  }
}
