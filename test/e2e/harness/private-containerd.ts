/**
 * A containerd daemon private to one test file or bench run: its own root, state, sockets,
 * namespace and config, with <repo>/bin first on its PATH so it finds containerd-shim-tsshim-v2.
 * Several can run side by side with each other and with a system containerd. `version` picks
 * the release line: 1.6 (the system's) or 1.7 / 2.1 (fetched into .cache, see
 * containerd-versions.ts); the config is written in that line's format (2.x: version 3 with
 * the CRI plugin split into io.containerd.cri.v1.runtime / .images).
 */
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'smol-toml';
import { ContainerdApi } from './containerd-api.js';
import { configVersionOf, containerdBinaries, type ContainerdBinaries, type ContainerdLine } from './containerd-versions.js';
import { prepareHost } from './host-setup.js';
import { isLive, listPids, mountPointsUnder, readCmdline, readCwd, readEnviron, readExe, readStat, type ProcStat } from './proc-fs.js';
import { shimBinDir } from './repo-paths.js';
import { buildTestImages, type TestImages } from './test-images.js';
import { waitUntil } from './wait-until.js';

/** One CRI runtime handler ([plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>]). */
export interface CriRuntime {
  runtimeType: string;
  /** Absolute shim path (containerd 1.6+ `runtime_path`); otherwise found on PATH. */
  runtimePath?: string;
  /** The handler's `options` table: Go field names of the runtime's options message. */
  options?: Record<string, string | number | boolean>;
  podAnnotations?: string[];
  containerAnnotations?: string[];
  /** Other keys of the runtime table, written as given (e.g. 2.x `sandboxer`, `io_type`). */
  extra?: Record<string, unknown>;
}

export interface CriOptions {
  /**
   * Handlers by name; default: `runc` = io.containerd.runc.v2 rooted in runtimeRoot. A function
   * is called with the instance (its dirs exist) when the config is written.
   */
  runtimes?: Record<string, CriRuntime> | ((cd: PrivateContainerd) => Record<string, CriRuntime>);
  defaultRuntime?: string;
  /** Defaults to the locally built pause image. */
  sandboxImage?: string;
  cniBinDir?: string;
  /** Defaults to <dir>/cni (empty: pods get no network unless a test writes a conflist). */
  cniConfDir?: string;
  /**
   * Put pod network namespaces under containerd's state dir instead of /var/run/netns, so that
   * destroy() finds every one of them (default true).
   */
  netnsUnderState?: boolean;
}

export interface PrivateContainerdOptions {
  /** containerd release line; default '1.6' (the system's containerd). */
  version?: ContainerdLine;
  /** containerd namespace used by ctr() and api(); default tse-<random> (CRI tests: k8s.io). */
  namespace?: string;
  /**
   * Top cgroup (relative to each hierarchy's root) that this instance's containers live under:
   * ctr puts tasks under /<namespace>, CRI tests pass it as the pods' cgroup_parent. destroy()
   * kills what is left there and removes it. Default: the namespace.
   */
  cgroupRoot?: string;
  /**
   * Run containerd (and so its shims and the runtimes they start) in <cgroupRoot>/containerd
   * in every hierarchy, instead of the test process's cgroup: a relative linux.cgroupsPath
   * (the runtime's own cgroup is its base) then lands under cgroupRoot too, and destroy()
   * removes it with the rest.
   */
  daemonCgroup?: boolean;
  /** Enable the CRI plugin with this configuration; by default CRI is disabled (faster start). */
  cri?: CriOptions;
  /**
   * Directories put first on containerd's PATH; default [<repo>/bin] (see shimBinDir). The version's own bin
   * dir (1.7/2.1: its containerd-shim-runc-v2) follows, then the caller's PATH.
   */
  pathPrefix?: string[];
  /**
   * What follows pathPrefix (and the version's bin dir) on containerd's PATH; default the
   * caller's PATH. SYSTEM_PATH is what containerd's service gets on a node, e.g. to test an
   * install whose bin dir is the only place tsshim can come from.
   */
  basePath?: string;
  containerdBinary?: string;
  ctrBinary?: string;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Last word on the generated config (a parsed config.toml object) before it is written. */
  editConfig?: (config: Record<string, unknown>) => void;
  startTimeoutMs?: number;
  /** Extra environment for containerd, which its shims inherit (e.g. TSSHIM_CONFIG). */
  env?: Record<string, string>;
}

export interface CtrOptions {
  timeoutMs?: number;
  /** Bytes for ctr's stdin, then EOF; without it stdin is /dev/null. */
  input?: string | Buffer;
  /**
   * Hold `input` back until this resolves. ctr 1.6 `run` only forwards stdin's EOF (CloseIO) if
   * it reads EOF after the task was created; input that is already complete when ctr starts
   * leaves the task's stdin open forever (a ctr race, the same with every shim).
   */
  inputAfter?: () => Promise<unknown>;
  /** Run ctr on a pseudo-terminal (needed by `-t`), through util-linux `script`. */
  tty?: boolean;
  env?: Record<string, string>;
}

export interface CtrResult<T = string> {
  stdout: T;
  stderr: string;
  /** -1 when ctr was killed (see timedOut). */
  exitCode: number;
  timedOut: boolean;
  command: string;
}

export type CleanupPhase = 'beforeStop' | 'afterStop';

export interface TaskListEntry {
  id: string;
  pid: number;
  status: string;
}

const CRI_PLUGIN = 'io.containerd.grpc.v1.cri';
// containerd 2.x splits CRI: the grpc plugin keeps streaming, runtime and images have their own.
const CRI_RUNTIME_PLUGIN_V2 = 'io.containerd.cri.v1.runtime';
const CRI_IMAGES_PLUGIN_V2 = 'io.containerd.cri.v1.images';
const CRI_PLUGINS_V2 = [
  CRI_PLUGIN,
  CRI_RUNTIME_PLUGIN_V2,
  CRI_IMAGES_PLUGIN_V2,
  'io.containerd.podsandbox.controller.v1.podsandbox',
  'io.containerd.sandbox.controller.v1.shim',
];
// NRI (on by default in 2.x) listens on the fixed /var/run/nri/nri.sock: instances would clash.
const NRI_PLUGIN = 'io.containerd.nri.v1.nri';
// Snapshotters that cannot work here; disabling them only keeps the log quiet.
const UNUSED_PLUGINS = [
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
];
const UNUSED_PLUGINS_V2 = ['io.containerd.snapshotter.v1.blockfile', 'io.containerd.snapshotter.v1.erofs'];
const SHIM_SOCKET_DIR = '/run/containerd/s';
// Default state roots of runc (runc shim) and crun (tsshim's default); both append the namespace.
const DEFAULT_RUNTIME_ROOTS = ['/run/containerd/runc', '/run/containerd/crun'];
// runsc: its runsc-sandbox and gofer processes inherit the shim's environment and cwd
const NON_SHIM_EXES = new Set(['ctr', 'runc', 'crun', 'runsc', 'containerd', 'script']);
/** argv[0] of a waiting spare daemon (SPARE_PROCESS_NAME in src/shim/spare.ts) */
const SPARE_PROCESS_NAME = 'tsshim-spare';
/** argv[0] of a waiting tsrun spare (TSRUN_SPARE_NAME in src/backends/native/tsrun/front-end.ts) */
const TSRUN_SPARE_NAME = 'tsrun-spare';

/** the default PATH of a service on a node (systemd's; containerd's unit sets none) */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const running = new Set<PrivateContainerd>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test run dies without destroy(): never leave a daemon behind.
  process.on('exit', () => {
    for (const instance of running) instance.killSync();
  });
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function chooseBaseDir(): string {
  // Unix socket paths must stay short (108 bytes, containerd adds ".ttrpc" and more).
  const base = tmpdir();
  return base.length <= 40 ? base : '/tmp';
}

export class PrivateContainerd {
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly configPath: string;
  readonly logPath: string;
  /** runc/crun `--root` for tasks of this instance (pass with `--runc-root` / CRI `Root`). */
  readonly runtimeRoot: string;
  /** ctr's FIFO dir (injected into `ctr run` / `ctr task exec`), so nothing lands in /run/containerd/fifo. */
  readonly fifoDir: string;
  readonly namespace: string;
  readonly line: ContainerdLine;
  /** the level containerd logs at (at debug it passes -debug to its shims) */
  get logLevel(): NonNullable<PrivateContainerdOptions['logLevel']> {
    return this.options.logLevel ?? 'info';
  }
  readonly cgroupRoot: string;
  readonly options: PrivateContainerdOptions;

  private child: ChildProcess | undefined;
  private childExit: Promise<void> | undefined;
  private apiClient: ContainerdApi | undefined;
  private binaries: ContainerdBinaries | undefined;
  private readonly cleanups: Array<{ phase: CleanupPhase; run: () => Promise<string[] | void> }> = [];
  /** Every argument ever passed to ctr: candidate container ids for shim socket cleanup. */
  private readonly ctrArgsSeen = new Set<string>();

  private constructor(dir: string, options: PrivateContainerdOptions) {
    this.options = options;
    this.dir = dir;
    this.root = join(dir, 'root');
    this.state = join(dir, 'state');
    this.address = join(dir, 'c.sock');
    this.ttrpcAddress = `${this.address}.ttrpc`;
    this.configPath = join(dir, 'config.toml');
    this.logPath = join(dir, 'containerd.log');
    this.runtimeRoot = join(dir, 'runc');
    this.fifoDir = join(dir, 'fifo');
    this.namespace = options.namespace ?? `tse-${basename(dir).slice('tse-'.length).toLowerCase()}`;
    this.line = options.version ?? '1.6';
    this.cgroupRoot = options.cgroupRoot ?? this.namespace;
  }

  /** Makes the directories and config.toml; does not start the daemon. */
  static create(options: PrivateContainerdOptions = {}): PrivateContainerd {
    const dir = mkdtempSync(join(chooseBaseDir(), 'tse-'));
    const instance = new PrivateContainerd(dir, options);
    for (const sub of [instance.root, instance.state, instance.runtimeRoot, instance.fifoDir]) mkdirSync(sub, { recursive: true });
    writeFileSync(instance.configPath, stringify(instance.buildConfig()));
    return instance;
  }

  /** create() + start() + import the test images. */
  static async launch(options: PrivateContainerdOptions = {}): Promise<PrivateContainerd> {
    const instance = PrivateContainerd.create(options);
    try {
      await instance.start();
      await instance.importTestImages();
    } catch (err) {
      await instance.destroy();
      throw err;
    }
    return instance;
  }

  /** Directory containerd gives a task (cwd of its shim). */
  bundleDir(id: string): string {
    return join(this.state, 'io.containerd.runtime.v2.task', this.namespace, id);
  }

  /**
   * Socket path of the shim serving task `id`, from its bundle: `address` (written by the shim
   * at `start`, 1.6/1.7) or `bootstrap.json` (written by containerd 2.x); undefined if neither.
   */
  shimSocketOf(id: string): string | undefined {
    const bundle = this.bundleDir(id);
    let address: string | undefined;
    try {
      address = readFileSync(join(bundle, 'address'), 'utf8').trim();
    } catch {
      try {
        address = (JSON.parse(readFileSync(join(bundle, 'bootstrap.json'), 'utf8')) as { address?: string }).address;
      } catch {
        return undefined;
      }
    }
    return address?.replace(/^(ttrpc\+)?unix:\/\//, '');
  }

  /** Socket path the runc shim (and tsshim, same scheme) uses for a task group key. */
  shimSocketPath(groupKey: string): string {
    const hash = createHash('sha256').update(`${this.address}/${this.namespace}/${groupKey}`).digest('hex');
    return join(SHIM_SOCKET_DIR, hash);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private buildConfig(): Record<string, unknown> {
    const configVersion = configVersionOf(this.line);
    const plugins: Record<string, unknown> = {
      // Keep containerd's "opt" plugin from creating /opt/containerd.
      'io.containerd.internal.v1.opt': { path: join(this.dir, 'opt') },
    };
    const disabled = [...UNUSED_PLUGINS];
    if (this.line !== '1.6') plugins[NRI_PLUGIN] = { disable: true };
    const cri = this.options.cri;
    if (configVersion === 3) {
      disabled.push(...UNUSED_PLUGINS_V2);
      plugins['io.containerd.image-verifier.v1.bindir'] = { bin_dir: join(this.dir, 'image-verifier') };
      if (cri) Object.assign(plugins, this.buildCriConfigV3(cri));
      else disabled.push(...CRI_PLUGINS_V2);
    } else if (cri) {
      plugins[CRI_PLUGIN] = this.buildCriConfig(cri);
    } else {
      disabled.push(CRI_PLUGIN);
    }
    const config: Record<string, unknown> = {
      version: configVersion,
      root: this.root,
      state: this.state,
      disabled_plugins: disabled,
      grpc: { address: this.address },
      ttrpc: { address: this.ttrpcAddress },
      debug: { level: this.options.logLevel ?? 'info' },
      plugins,
    };
    this.options.editConfig?.(config);
    return config;
  }

  private criRuntimeTables(cri: CriOptions): { defaultRuntime: string; tables: Record<string, unknown> } {
    const runtimes = (typeof cri.runtimes === 'function' ? cri.runtimes(this) : cri.runtimes) ?? {
      runc: { runtimeType: 'io.containerd.runc.v2', options: { Root: this.runtimeRoot } },
    };
    const tables: Record<string, unknown> = {};
    for (const [name, runtime] of Object.entries(runtimes)) {
      const table: Record<string, unknown> = { runtime_type: runtime.runtimeType };
      if (runtime.runtimePath) table.runtime_path = runtime.runtimePath;
      if (runtime.podAnnotations) table.pod_annotations = runtime.podAnnotations;
      if (runtime.containerAnnotations) table.container_annotations = runtime.containerAnnotations;
      if (runtime.options) table.options = runtime.options;
      Object.assign(table, runtime.extra ?? {});
      tables[name] = table;
    }
    return { defaultRuntime: cri.defaultRuntime ?? Object.keys(runtimes)[0] ?? 'runc', tables };
  }

  /** containerd 1.6/1.7 (config version 2): everything under io.containerd.grpc.v1.cri. */
  private buildCriConfig(cri: CriOptions): Record<string, unknown> {
    const { defaultRuntime, tables } = this.criRuntimeTables(cri);
    return {
      sandbox_image: cri.sandboxImage ?? 'localhost/pause:tsshim',
      // root here lacks CAP_SYS_RESOURCE: sandboxes' oom_score_adj -998 cannot be set otherwise.
      restrict_oom_score_adj: true,
      netns_mounts_under_state_dir: cri.netnsUnderState ?? true,
      // Random port: several instances may run at once.
      stream_server_address: '127.0.0.1',
      stream_server_port: '0',
      enable_selinux: false,
      containerd: {
        snapshotter: 'overlayfs',
        default_runtime_name: defaultRuntime,
        runtimes: tables,
      },
      cni: {
        bin_dir: cri.cniBinDir ?? '/usr/lib/cni',
        conf_dir: cri.cniConfDir ?? join(this.dir, 'cni'),
      },
    };
  }

  /** containerd 2.x (config version 3): CRI split into runtime, images and the grpc service. */
  private buildCriConfigV3(cri: CriOptions): Record<string, unknown> {
    const { defaultRuntime, tables } = this.criRuntimeTables(cri);
    return {
      [CRI_IMAGES_PLUGIN_V2]: {
        snapshotter: 'overlayfs',
        pinned_images: { sandbox: cri.sandboxImage ?? 'localhost/pause:tsshim' },
      },
      [CRI_RUNTIME_PLUGIN_V2]: {
        enable_selinux: false,
        restrict_oom_score_adj: true,
        netns_mounts_under_state_dir: cri.netnsUnderState ?? true,
        containerd: { default_runtime_name: defaultRuntime, runtimes: tables },
        cni: {
          bin_dirs: [cri.cniBinDir ?? '/usr/lib/cni'],
          conf_dir: cri.cniConfDir ?? join(this.dir, 'cni'),
        },
      },
      [CRI_PLUGIN]: { stream_server_address: '127.0.0.1', stream_server_port: '0' },
    };
  }

  private daemonEnv(): Record<string, string> {
    const prefix = this.options.pathPrefix ?? [shimBinDir];
    const versionDir = this.binaries?.binDir;
    return {
      ...this.options.env,
      PATH: [...prefix, ...(versionDir ? [versionDir] : []), this.options.basePath ?? process.env.PATH ?? SYSTEM_PATH].join(':'),
    };
  }

  /** Resolves (fetching on first use) the binaries of this instance's containerd line. */
  async resolveBinaries(): Promise<ContainerdBinaries> {
    this.binaries ??= await containerdBinaries(this.line);
    return this.binaries;
  }

  /** The ctr binary of this instance's line (resolved at start()). */
  get ctrPath(): string {
    return this.options.ctrBinary ?? this.binaries?.ctr ?? 'ctr';
  }

  /**
   * Registers teardown work for destroy(): 'beforeStop' runs while containerd still answers
   * (e.g. removing CRI pods through CRI), 'afterStop' once it is gone (e.g. deleting a bridge).
   * Each returns the problems it could not fix.
   */
  addCleanup(phase: CleanupPhase, run: () => Promise<string[] | void>): void {
    this.cleanups.push({ phase, run });
  }

  private async runCleanups(phase: CleanupPhase, note: (what: string, err: unknown) => void, problems: string[]): Promise<void> {
    for (const cleanup of this.cleanups.filter((c) => c.phase === phase).reverse()) {
      try {
        problems.push(...((await cleanup.run()) ?? []));
      } catch (err) {
        note(`${phase} cleanup`, err);
      }
    }
  }

  /** Starts containerd and waits until it answers `ctr version`. */
  async start(): Promise<void> {
    if (this.isRunning) return;
    await prepareHost();
    const binaries = await this.resolveBinaries();
    installExitHook();
    const logFd = openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      const containerd = this.options.containerdBinary ?? binaries.containerd;
      const [file, args] = this.options.daemonCgroup
        ? // the shell moves itself into every hierarchy's cgroup, then becomes containerd
          ['/bin/sh', ['-c', 'for f in $TSSHIM_E2E_PROCS; do echo $$ > "$f" || exit 1; done; exec "$0" "$@"', containerd, '--config', this.configPath]]
        : [containerd, ['--config', this.configPath]];
      child = spawn(file, args, {
        stdio: ['ignore', logFd, logFd],
        env: { ...process.env, ...this.daemonEnv(), ...(this.options.daemonCgroup ? { TSSHIM_E2E_PROCS: this.makeDaemonCgroup().join(' ') } : {}) },
        // Own process group: a terminal's Ctrl-C must not take it down mid-test.
        detached: true,
      });
    } finally {
      closeSync(logFd);
    }
    child.unref();
    this.child = child;
    this.childExit = new Promise((resolve) => child.once('exit', () => resolve()));
    running.add(this);
    const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
    spawnError.catch(() => {});
    try {
      await Promise.race([
        spawnError,
        waitUntil(
          async () => {
            if (!this.isRunning) throw new Error(`containerd exited (${child.exitCode ?? child.signalCode})`);
            const probe = await this.ctr(['version'], { timeoutMs: 3_000 });
            return probe.exitCode === 0;
          },
          { timeoutMs: this.options.startTimeoutMs ?? 20_000, intervalMs: 100, what: 'containerd to answer' },
        ),
      ]);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await this.stop();
      throw new Error(`containerd did not start: ${message}\n--- ${this.logPath} (tail) ---\n${this.logTail()}`);
    }
  }

  /** Stops containerd like a service restart would: SIGTERM, then SIGKILL; shims keep running. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.isRunning) {
      running.delete(this);
      return;
    }
    child.kill('SIGTERM');
    const exited = await Promise.race([
      this.childExit!.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs)),
    ]);
    if (!exited) {
      child.kill('SIGKILL');
      await this.childExit;
    }
    running.delete(this);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** @internal synchronous kill for the process exit hook. */
  killSync(): void {
    if (this.child?.pid && this.isRunning) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /**
   * TSSHIM_E2E_KEEP_LOGS=<dir>: destroy() copies containerd's log (shim logs included: containerd
   * copies each shim's log FIFO into it) to <dir>/<instance>-containerd-<line>.log first.
   */
  private keepLog(): void {
    const keepDir = process.env.TSSHIM_E2E_KEEP_LOGS;
    if (!keepDir) return;
    try {
      mkdirSync(keepDir, { recursive: true });
      copyFileSync(this.logPath, join(keepDir, `${basename(this.dir)}-containerd-${this.line}.log`));
    } catch {
      // no log to keep
    }
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Adds ctr's FIFO dir to commands that create FIFOs, unless the caller chose one. */
  private withFifoDir(args: string[]): string[] {
    if (args.includes('--fifo-dir')) return args;
    const [first, second] = args;
    if (first === 'run') return ['run', '--fifo-dir', this.fifoDir, ...args.slice(1)];
    if ((first === 'task' || first === 'tasks' || first === 't') && second === 'exec') {
      return [first, 'exec', '--fifo-dir', this.fifoDir, ...args.slice(2)];
    }
    return args;
  }

  private ctrArgv(args: string[]): string[] {
    for (const arg of args) this.ctrArgsSeen.add(arg);
    return ['--address', this.address, '--namespace', this.namespace, ...this.withFifoDir(args)];
  }

  private async runCtr(args: string[], options: CtrOptions, binary: boolean): Promise<CtrResult<string | Buffer>> {
    const ctr = this.ctrPath;
    const argv = this.ctrArgv(args);
    let file = ctr;
    let fileArgs = argv;
    if (options.tty) {
      // `script` gives ctr a pty; -e returns the child's exit code.
      file = 'script';
      fileArgs = ['-qec', [ctr, ...argv].map(shellQuote).join(' '), '/dev/null'];
    }
    const delayed = options.input !== undefined && options.inputAfter !== undefined;
    const stdinOption =
      options.input === undefined ? { stdin: 'ignore' as const } : delayed ? { stdin: 'pipe' as const } : { input: options.input };
    const subprocess = execa(file, fileArgs, {
      reject: false,
      timeout: options.timeoutMs ?? 30_000,
      ...stdinOption,
      env: { ...this.daemonEnv(), SHELL: '/bin/sh', ...options.env },
      encoding: binary ? 'buffer' : 'utf8',
      stripFinalNewline: false,
      maxBuffer: 512 * 1024 * 1024,
    });
    if (delayed) {
      const feed = async (): Promise<void> => {
        try {
          await options.inputAfter!();
        } finally {
          subprocess.stdin?.end(options.input);
        }
      };
      feed().catch(() => {});
    }
    const result = await subprocess;
    const stderr = typeof result.stderr === 'string' ? result.stderr : Buffer.from(result.stderr ?? []).toString('utf8');
    const stdout = binary ? Buffer.from(result.stdout as Uint8Array) : String(result.stdout ?? '');
    return {
      stdout,
      stderr,
      exitCode: result.exitCode ?? -1,
      timedOut: result.timedOut ?? false,
      command: [file, ...fileArgs].join(' '),
    };
  }

  /** Runs ctr against this instance (address and namespace preset). Never throws on exit codes. */
  async ctr(args: string[], options: CtrOptions = {}): Promise<CtrResult> {
    return (await this.runCtr(args, options, false)) as CtrResult<string>;
  }

  /** ctr() with stdout as raw bytes (for byte-exact output checks). */
  async ctrBytes(args: string[], options: CtrOptions = {}): Promise<CtrResult<Buffer>> {
    return (await this.runCtr(args, options, true)) as CtrResult<Buffer>;
  }

  /** ctr() that throws with full diagnostics unless ctr exits 0. */
  async ctrOk(args: string[], options: CtrOptions = {}): Promise<CtrResult> {
    const result = await this.ctr(args, options);
    if (result.exitCode !== 0) {
      throw new Error(`ctr ${args.join(' ')} exited ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
    }
    return result;
  }

  async importImage(tarball: string): Promise<void> {
    await this.ctrOk(['images', 'import', tarball], { timeoutMs: 60_000 });
  }

  /** Builds (cached) and imports the busybox and pause images. */
  async importTestImages(): Promise<TestImages> {
    const images = await buildTestImages();
    await this.importImage(images.busybox.tarball);
    await this.importImage(images.pause.tarball);
    return images;
  }

  /** `ctr task ls`, parsed. */
  async listTasks(): Promise<TaskListEntry[]> {
    const result = await this.ctrOk(['task', 'ls']);
    return result.stdout
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields.length >= 3 && fields[0] !== '')
      .map(([id, pid, status]) => ({ id: id!, pid: Number(pid), status: status! }));
  }

  /** gRPC client to this instance's API (namespace preset); closed by destroy(). */
  api(): ContainerdApi {
    this.apiClient ??= new ContainerdApi(this.address, this.namespace);
    return this.apiClient;
  }

  /**
   * Live shim processes of this instance: containerd gives every shim TTRPC_ADDRESS=<our ttrpc
   * socket> and starts it in a bundle under our state dir; the runc shim also carries
   * `-address <our socket>` in argv. runc/crun invocations inherit all that and are not shims.
   */
  shimProcesses(): ProcStat[] {
    const out: ProcStat[] = [];
    const taskDir = join(this.state, 'io.containerd.runtime.v2.task');
    for (const pid of listPids()) {
      if (pid === process.pid || pid === this.pid || !isLive(pid)) continue;
      const argv = readCmdline(pid);
      if (argv[0] === SPARE_PROCESS_NAME) continue; // not serving anything: see spareProcesses()
      // a tsrun spare (bin/tsrun as the runc shim's BinaryName) booted with the runc shim's
      // environment: not serving anything either, and gone with its runc root
      if (argv[0] === TSRUN_SPARE_NAME) continue;
      const addressIndex = argv.findIndex((a) => a === '-address' || a === '--address');
      const byArgv = addressIndex >= 0 && argv[addressIndex + 1] === this.address;
      const byEnv = !byArgv && readEnviron(pid).get('TTRPC_ADDRESS') === this.ttrpcAddress;
      const cwd = byArgv || byEnv ? undefined : readCwd(pid);
      const byCwd = cwd !== undefined && cwd.startsWith(`${taskDir}/`) && !cwd.includes('/rootfs');
      if (!byArgv && !byEnv && !byCwd) continue;
      const exe = readExe(pid);
      if (exe && NON_SHIM_EXES.has(basename(exe))) continue;
      const stat = readStat(pid);
      if (stat) out.push(stat);
    }
    return out;
  }

  /**
   * gVisor's processes started for this instance (runsc-sandbox, gofers, `runsc wait`/exec
   * proxies): exe runsc, and the shim's TTRPC_ADDRESS in their environment or a bundle as cwd.
   */
  runscProcesses(): ProcStat[] {
    const out: ProcStat[] = [];
    const taskDir = join(this.state, 'io.containerd.runtime.v2.task');
    for (const pid of listPids()) {
      if (pid === process.pid || !isLive(pid)) continue;
      const exe = readExe(pid);
      if (!basename(exe ?? '').startsWith('runsc') && !basename(readCmdline(pid)[0] ?? '').startsWith('runsc')) continue;
      // runsc-sandbox runs with a clean environment in its own root: its --root names ours
      const ours =
        readCmdline(pid).some((a) => a.startsWith(`--root=${this.dir}/`) || a.startsWith(`${this.dir}/`)) ||
        readEnviron(pid).get('TTRPC_ADDRESS') === this.ttrpcAddress ||
        (readCwd(pid) ?? '').startsWith(`${taskDir}/`);
      const stat = ours ? readStat(pid) : undefined;
      if (stat) out.push(stat);
    }
    return out;
  }

  /**
   * Spare daemons booted for this instance (src/shim/spare.ts): waiting, named
   * `tsshim-spare -address <our socket> -control <their socket>`. Not shims until adopted.
   */
  spareProcesses(): Array<{ pid: number; control: string }> {
    const out: Array<{ pid: number; control: string }> = [];
    for (const pid of listPids()) {
      if (pid === process.pid || !isLive(pid)) continue;
      const argv = readCmdline(pid);
      if (argv[0] === SPARE_PROCESS_NAME && argv[2] === this.address) out.push({ pid, control: argv[4] ?? '' });
    }
    return out;
  }

  /**
   * Shim processes serving task `id`: its cwd is the task's bundle, or its argv names the id, or
   * it is the parent of `initPid` (the container's init is reparented to its shim).
   */
  shimProcessesFor(id: string, initPid?: number): ProcStat[] {
    const bundle = this.bundleDir(id);
    const initParent = initPid !== undefined ? readStat(initPid)?.ppid : undefined;
    return this.shimProcesses().filter((p) => {
      if (p.pid === initParent) return true;
      const cwd = readCwd(p.pid);
      if (cwd === bundle || cwd === `${bundle} (deleted)`) return true;
      const argv = readCmdline(p.pid);
      const idIndex = argv.indexOf('-id');
      return idIndex >= 0 && argv[idIndex + 1] === id;
    });
  }

  /** <cgroupRoot>/containerd in every hierarchy; returns their cgroup.procs files */
  private makeDaemonCgroup(): string[] {
    const unified = existsSync('/sys/fs/cgroup/cgroup.controllers');
    const bases = unified ? ['/sys/fs/cgroup'] : readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h)).filter((d) => existsSync(join(d, 'cgroup.procs')));
    return bases.map((base) => {
      const dir = join(base, this.cgroupRoot, 'containerd');
      mkdirSync(dir, { recursive: true });
      if (existsSync(join(dir, 'cpuset.cpus'))) {
        // v1 cpuset cgroups start empty: every new level copies its parent's
        for (const d of [join(base, this.cgroupRoot), dir]) {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) {
            if (readFileSync(join(d, f), 'utf8').trim() === '') writeFileSync(join(d, f), readFileSync(join(dirname(d), f), 'utf8').trim());
          }
        }
      }
      return join(dir, 'cgroup.procs');
    });
  }

  /** cgroup directories (all hierarchies) under this instance's cgroupRoot, deepest first. */
  cgroupDirs(): string[] {
    const found: string[] = [];
    const visit = (dir: string): void => {
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        return;
      }
      for (const entry of entries) {
        const path = join(dir, entry);
        try {
          if (statSync(path).isDirectory()) visit(path);
        } catch {
          // vanished
        }
      }
      found.push(dir);
    };
    let hierarchies: string[] = [];
    try {
      hierarchies = readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
    } catch {
      return [];
    }
    const unified = existsSync('/sys/fs/cgroup/cgroup.controllers');
    for (const base of unified ? ['/sys/fs/cgroup'] : hierarchies) {
      const rootDir = join(base, this.cgroupRoot);
      if (existsSync(rootDir)) visit(rootDir);
    }
    return found;
  }

  private killCgroupProcesses(): number[] {
    const pids: number[] = [];
    for (const dir of this.cgroupDirs()) {
      // A frozen (paused) task does not act on SIGKILL until thawed.
      for (const [file, value] of [['freezer.state', 'THAWED'], ['cgroup.freeze', '0']] as const) {
        if (existsSync(join(dir, file))) {
          try {
            writeFileSync(join(dir, file), value);
          } catch {
            // not a freezer cgroup after all
          }
        }
      }
      let procs: string[] = [];
      try {
        procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      } catch {
        continue;
      }
      for (const pid of procs.map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
          pids.push(pid);
        } catch {
          // gone
        }
      }
    }
    return pids;
  }

  /**
   * Tears everything down: tasks, containers, the daemon, leftover shims and container processes
   * of this instance, mounts under its dirs, its cgroups, runc state and shim sockets, the dirs.
   * Best effort: never throws, returns what could not be cleaned.
   */
  async destroy(): Promise<string[]> {
    const problems: string[] = [];
    const note = (what: string, err: unknown): void => {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    };
    if (this.isRunning) {
      await this.runCleanups('beforeStop', note, problems);
      try {
        const tasks = await this.ctr(['task', 'ls', '-q'], { timeoutMs: 10_000 });
        for (const id of tasks.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
          await this.ctr(['task', 'delete', '--force', id], { timeoutMs: 15_000 });
        }
        const containers = await this.ctr(['container', 'ls', '-q'], { timeoutMs: 10_000 });
        for (const id of containers.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
          await this.ctr(['container', 'rm', id], { timeoutMs: 15_000 });
        }
      } catch (err) {
        note('deleting tasks', err);
      }
    }
    this.apiClient?.close();
    this.apiClient = undefined;
    try {
      await this.stop();
    } catch (err) {
      note('stopping containerd', err);
    }

    // Bundles still present name tasks whose shims may have left sockets.
    const candidateIds = new Set(this.ctrArgsSeen);
    try {
      for (const id of readdirSync(join(this.state, 'io.containerd.runtime.v2.task', this.namespace))) candidateIds.add(id);
    } catch {
      // no task state at all
    }

    // Spares leave by themselves within a second of containerd's socket going away (and
    // remove their control socket); any still there are killed and their sockets removed.
    const spares = this.spareProcesses();
    try {
      await waitUntil(() => spares.every((s) => !isLive(s.pid)), { timeoutMs: 3_000, what: 'spare daemons to leave' });
    } catch {
      // killed below
    }
    for (const s of spares) if (isLive(s.pid) && s.control.startsWith('/')) rmSync(s.control, { force: true });
    const leftovers = [...this.shimProcesses().map((p) => p.pid), ...spares.map((s) => s.pid), ...this.killCgroupProcesses()];
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      await waitUntil(() => leftovers.every((pid) => !isLive(pid)), { timeoutMs: 5_000, what: 'leftover processes to die' });
    } catch (err) {
      note('killing leftovers', err);
    }

    for (const point of mountPointsUnder(this.dir)) {
      const result = await execa('umount', ['-l', point], { reject: false, timeout: 10_000 });
      if (result.exitCode !== 0) note(`umount ${point}`, result.stderr);
    }
    for (const dir of this.cgroupDirs()) {
      try {
        rmdirSync(dir);
      } catch (err) {
        note(`rmdir ${dir}`, err);
      }
    }
    for (const id of candidateIds) {
      const socket = this.shimSocketPath(id);
      if (existsSync(socket)) rmSync(socket, { force: true });
    }
    // Only namespaces private to this instance: k8s.io (CRI) is shared with any other containerd.
    if (this.namespace.startsWith('tse-')) {
      for (const root of DEFAULT_RUNTIME_ROOTS) rmSync(join(root, this.namespace), { recursive: true, force: true });
    }
    await this.runCleanups('afterStop', note, problems);
    this.keepLog();
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch (err) {
      note(`rm ${this.dir}`, err);
    }
    return problems;
  }
}
