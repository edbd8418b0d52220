/**
 * A private Docker engine for the e2e tests: Debian trixie's dockerd and docker CLI (fetched,
 * never installed, by scripts/fetch-docker.sh) on top of a private containerd 1.7
 * (private-containerd.ts; Docker 26 is built against containerd 1.7's client).
 *
 * Everything the engine writes stays in the containerd instance's dir: data root, exec root
 * (netns, runtime state roots), pidfile, API socket, daemon.json, the CLI's config dir.
 * dockerd runs with `--iptables=false --ip6tables=false --bridge=none`, so it touches no
 * firewall rule and creates no bridge, and with `cgroup-parent` = the containerd instance's
 * cgroupRoot, so containerd's destroy() finds every container cgroup. It uses the external
 * containerd (`--containerd`), in containerd namespace "moby", instead of starting its own:
 * then the one teardown path (PrivateContainerd.destroy) covers shims, mounts and cgroups,
 * and a dockerd restart (live restore) leaves the containers' containerd untouched.
 *
 * Outside that dir dockerd makes only /run/docker/plugins (its plugin discovery dir, a fixed
 * path): removed again at teardown when it was not there before and is still empty.
 *
 * Runtimes in daemon.json: `runc` (Docker's default: containerd's runc shim, the reference),
 * `tsshim` (runtimeType io.containerd.tsshim.v2, options.ConfigPath = a TOML rooting the native
 * backend in the instance dir) and `tsrun` (path = bin/tsrun: the runc shim driving our CLI).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { configCachePath } from '../../../src/shim/config-cache.js';
import { PrivateContainerd } from './private-containerd.js';
import { isLive } from './proc-fs.js';
import { cacheDir, repoBinDir, scriptsDir } from './repo-paths.js';
import { BUSYBOX_IMAGE, buildTestImages } from './test-images.js';
import { waitUntil } from './wait-until.js';

export interface DockerResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  timedOut: boolean;
}

export interface DockerBinaries {
  dockerd: string;
  docker: string;
}

let fetched: Promise<DockerBinaries> | undefined;

/** dockerd's fixed plugin discovery dir (pkg/plugins: /run/docker/plugins) */
export const DOCKER_PLUGIN_DIRS = ['/run/docker/plugins', '/run/docker'];

/** Where dockerd and docker are; fetches them into the cache on first use (idempotent). */
export function dockerBinaries(): Promise<DockerBinaries> {
  fetched ??= (async () => {
    const result = await execa('bash', [join(scriptsDir, 'fetch-docker.sh')], { timeout: 300_000, reject: false });
    const dir = result.stdout.trim().split('\n').pop() ?? '';
    if (result.exitCode !== 0 || dir === '') {
      fetched = undefined;
      throw new Error(`scripts/fetch-docker.sh failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
    }
    return { dockerd: join(dir, 'bin', 'dockerd'), docker: join(dir, 'bin', 'docker') };
  })();
  return fetched;
}

/**
 * The busybox test image as a docker-archive for `docker load` (skopeo converts the OCI
 * tarball scripts/build-image.sh makes), cached next to the Docker binaries and keyed by the
 * OCI tarball's cache key.
 */
async function busyboxDockerArchive(): Promise<string> {
  const { busybox } = await buildTestImages();
  let key: string;
  try {
    key = readFileSync(`${busybox.tarball}.key`, 'utf8');
  } catch {
    key = readFileSync(busybox.tarball).length.toString();
  }
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 12);
  const dir = join(cacheDir, 'docker', 'images');
  const archive = join(dir, `busybox-${hash}.docker.tar`);
  if (existsSync(archive)) return archive;
  mkdirSync(dir, { recursive: true });
  const partial = `${archive}.${process.pid}.partial`;
  const result = await execa('skopeo', ['copy', '--quiet', `oci-archive:${busybox.tarball}`, `docker-archive:${partial}:${BUSYBOX_IMAGE}`], {
    reject: false,
    timeout: 120_000,
  });
  if (result.exitCode !== 0) throw new Error(`skopeo could not convert ${busybox.tarball} (scripts/install-deps.sh installs skopeo): ${result.stderr}`);
  renameSync(partial, archive);
  return archive;
}

export interface PrivateDockerdOptions {
  /** daemon.json `live-restore` (default false) */
  liveRestore?: boolean;
}

export class PrivateDockerd {
  readonly dir: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly pidFile: string;
  readonly socket: string;
  readonly configFile: string;
  readonly logPath: string;
  readonly cliConfigDir: string;
  /** tsshim's config for the `tsshim` runtime (native backend rooted here) */
  readonly tsshimConfig: string;
  /** absolute cgroup parent of every container (the containerd instance's cgroupRoot) */
  readonly cgroupParent: string;

  private child: ChildProcess | undefined;
  private childExit: Promise<void> | undefined;
  private binaries: DockerBinaries | undefined;
  /** the fixed dirs dockerd creates that were not there before it (removed at teardown) */
  private readonly fixedDirsMade = DOCKER_PLUGIN_DIRS.filter((d) => !existsSync(d));

  private constructor(
    readonly containerd: PrivateContainerd,
    private readonly options: PrivateDockerdOptions,
  ) {
    this.dir = join(containerd.dir, 'docker');
    this.dataRoot = join(this.dir, 'data');
    this.execRoot = join(this.dir, 'x'); // short: libnetwork puts sockets under it
    this.pidFile = join(this.dir, 'dockerd.pid');
    this.socket = join(this.dir, 'docker.sock');
    this.configFile = join(this.dir, 'daemon.json');
    this.logPath = join(this.dir, 'dockerd.log');
    this.cliConfigDir = join(this.dir, 'cli');
    this.tsshimConfig = join(this.dir, 'tsshim.toml');
    this.cgroupParent = `/${containerd.cgroupRoot}`;
  }

  /** A private containerd 1.7, then dockerd on it with the busybox image loaded. */
  static async launch(options: PrivateDockerdOptions = {}): Promise<PrivateDockerd> {
    const containerd = PrivateContainerd.create({
      version: '1.7',
      namespace: 'moby',
      cgroupRoot: `tsd-${randomBytes(3).toString('hex')}`,
      logLevel: 'debug',
    });
    const engine = new PrivateDockerd(containerd, options);
    // before containerd stops: no container left, dockerd gone (its own teardown, in order)
    containerd.addCleanup('beforeStop', () => engine.teardown());
    // the fingerprint tsshim's start leaves in the socket dir goes with the config file
    containerd.addCleanup('afterStop', async () => rmSync(configCachePath(engine.tsshimConfig), { force: true }));
    try {
      for (const d of [engine.dir, engine.dataRoot, engine.execRoot, engine.cliConfigDir, join(engine.dir, 'native')]) mkdirSync(d, { recursive: true });
      writeFileSync(engine.tsshimConfig, `backend = "native"\n[native]\nroot = "${join(engine.dir, 'native')}"\n`);
      writeFileSync(engine.configFile, `${JSON.stringify(engine.daemonConfig(), null, 2)}\n`);
      await containerd.start();
      await engine.start();
      const load = await engine.docker(['load', '-i', await busyboxDockerArchive()], { timeoutMs: 120_000 });
      if (load.exitCode !== 0) throw new Error(`docker load failed: ${load.stderr}`);
    } catch (err) {
      await containerd.destroy();
      throw err;
    }
    return engine;
  }

  /** daemon.json: the README's snippet plus what keeps this engine private. */
  daemonConfig(): Record<string, unknown> {
    return {
      runtimes: {
        tsshim: { runtimeType: 'io.containerd.tsshim.v2', options: { ConfigPath: this.tsshimConfig } },
        tsrun: { path: join(repoBinDir, 'tsrun') },
      },
      'live-restore': this.options.liveRestore ?? false,
      'cgroup-parent': this.cgroupParent,
      'exec-opts': ['native.cgroupdriver=cgroupfs'],
      'storage-driver': 'overlay2',
    };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.isRunning) return;
    this.binaries ??= await dockerBinaries();
    const logFd = openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(
        this.binaries.dockerd,
        [
          '--config-file', this.configFile,
          '--data-root', this.dataRoot,
          '--exec-root', this.execRoot,
          '--pidfile', this.pidFile,
          '--host', `unix://${this.socket}`,
          '--containerd', this.containerd.address,
          '--containerd-namespace', 'moby',
          '--containerd-plugins-namespace', 'plugins.moby',
          '--iptables=false',
          '--ip6tables=false',
          '--bridge=none',
          '--userland-proxy=false',
          '--debug',
        ],
        {
          stdio: ['ignore', logFd, logFd],
          // its PATH finds runc (the default runtime's CLI) and bin/ (tsrun); no proxy or
          // registry settings from the test's environment
          env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: this.dir },
          detached: true,
        },
      );
    } finally {
      closeSync(logFd);
    }
    child.unref();
    this.child = child;
    this.childExit = new Promise((resolve) => child.once('exit', () => resolve()));
    try {
      await waitUntil(
        async () => {
          if (!this.isRunning) throw new Error(`dockerd exited (${child.exitCode ?? child.signalCode})`);
          return (await this.docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 3_000 })).exitCode === 0;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'dockerd to answer' },
      );
    } catch (err) {
      await this.stop();
      throw new Error(`dockerd did not start: ${(err as Error).message}\n--- ${this.logPath} (tail) ---\n${this.logTail()}`);
    }
  }

  /** SIGTERM, like a service stop; with live-restore the containers keep running. */
  async stop(timeoutMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || !this.isRunning) return;
    child.kill('SIGTERM');
    const exited = await Promise.race([
      this.childExit!.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs)),
    ]);
    if (!exited) {
      child.kill('SIGKILL');
      await this.childExit;
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Runs the docker CLI against this engine. Never throws on exit codes. */
  async docker(args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<DockerResult> {
    this.binaries ??= await dockerBinaries();
    const result = await execa(this.binaries.docker, args, {
      reject: false,
      timeout: options.timeoutMs ?? 60_000,
      ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
      env: { DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: this.cliConfigDir, PATH: process.env.PATH ?? '/usr/bin:/bin' },
      extendEnv: false,
      stripFinalNewline: false,
    });
    return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: result.exitCode ?? -1, timedOut: result.timedOut ?? false };
  }

  /** docker() that throws with the output unless docker exits 0; returns stdout trimmed. */
  async dockerOk(args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<string> {
    const r = await this.docker(args, options);
    if (r.exitCode !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** `docker inspect` of one object, parsed. */
  async inspect<T = Record<string, unknown>>(id: string): Promise<T> {
    return (JSON.parse(await this.dockerOk(['inspect', id])) as T[])[0]!;
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Removes every container (through dockerd, as a user would), then stops dockerd. */
  private async teardown(): Promise<string[]> {
    const problems: string[] = [];
    if (!this.isRunning && existsSync(this.configFile)) {
      // a test left it stopped: start it again so the containers are removed properly
      await this.start().catch((err: unknown) => problems.push(`restarting dockerd for teardown: ${(err as Error).message}`));
    }
    if (this.isRunning) {
      const ids = (await this.docker(['ps', '-aq'])).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
      if (ids.length > 0) {
        const rm = await this.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
        if (rm.exitCode !== 0) problems.push(`docker rm -f: ${rm.stderr.trim()}`);
      }
    }
    const pid = this.pid;
    await this.stop();
    if (pid !== undefined && isLive(pid)) problems.push(`dockerd ${pid} still running`);
    for (const dir of this.fixedDirsMade) {
      try {
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`rmdir ${dir}: ${(err as Error).message}`);
      }
    }
    return problems;
  }

  /** Tears down the engine and its containerd; returns what could not be cleaned. */
  destroy(): Promise<string[]> {
    return this.containerd.destroy();
  }
}
