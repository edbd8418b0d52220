/**
 * A real systemd as PID 1 of private PID, mount, cgroup, UTS and IPC namespaces, in a cgroup
 * subtree of its own, on a host whose init is not systemd: what the systemd cgroup driver's
 * tests need (containerd, CRI and the shim run inside, reach systemd over the D-Bus system bus,
 * and everything they create stays in that subtree).
 *
 * How it is kept from touching the host:
 * - The launcher moves itself into a new cgroup `tsshim-sd-<pid>-<random>` under its own cgroup
 *   in every hierarchy, then unshares a cgroup namespace rooted there; inside, /sys/fs/cgroup is
 *   mounted afresh (new cgroupfs mounts in a cgroup namespace show only its root's subtree), so
 *   systemd sees and manages only that subtree.
 * - The root filesystem is read-only inside (a per-mount flag of the namespace's copy: the
 *   host's mount stays read-write); /run, /tmp, /var/tmp, /var/lib/systemd and /dev are private
 *   tmpfs mounts; /proc/sys and /sys are read-only. Only `dir` and `writablePaths` are bound
 *   read-write. Debian's tmpfiles rules (`D /tmp`, `D! /var/lib/cni/networks`, ...) would empty
 *   the host's directories: no tmpfiles service can even be loaded, see the next point.
 * - systemd loads units only from a directory written here (SYSTEMD_UNIT_PATH replaces its unit
 *   search path; SYSTEMD_GENERATOR_PATH points at an empty directory): journald, dbus, logind and
 *   empty stand-ins for the targets their default dependencies name. Nothing else from
 *   /lib/systemd/system or /etc/systemd/system (tmpfiles, sysctl, udev, timesyncd, sysusers,
 *   getty, postgresql, containerd, ...) exists for it.
 * - A watchdog process kills PID 1 if the test process dies without stop() (its stdin is a pipe
 *   from this process), and removes the cgroup subtree.
 *
 * Processes started by run()/spawn() are first moved into the subtree's root cgroup (the
 * namespace's root, where the launcher was) in every hierarchy and then enter the namespaces with
 * nsenter, so they and their descendants (containerd, shims, containers) are contained in the
 * subtree too. Not a cgroup of their own below it: systemd removes empty cgroups it does not
 * know from the v1 hierarchies it manages (seen: an empty leaf vanished from blkio while a unit
 * was realized), and it never removes its root.
 */
import { execa, type Options as ExecaOptions, type Result, type ResultPromise } from 'execa';
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, realpathSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { readExe } from './proc-fs.js';
import { waitUntil } from './wait-until.js';

/**
 * `hybrid`: as this host: each v1 hierarchy at /sys/fs/cgroup/<name>, name=systemd at
 * /sys/fs/cgroup/systemd, cgroup2 at /sys/fs/cgroup/unified (systemd's hybrid mode).
 * `unified`: one cgroup2 mount at /sys/fs/cgroup (systemd's unified mode). On a hybrid host every
 * controller is bound to a v1 hierarchy, so that cgroup2 has no controllers: units exist, resource
 * properties have no files to land in.
 */
export type CgroupLayout = 'hybrid' | 'unified';

export interface PrivateSystemdOptions {
  /**
   * A directory of the test (must exist). Bound read-write into the namespace at the same path;
   * `<dir>/systemd-console.log` gets the namespace setup's errors and whatever is written to
   * /dev/console inside (systemd itself logs to the journal: see journal()).
   */
  dir: string;
  /** More existing host directories bound read-write at the same path (the rest of / is read-only inside). */
  writablePaths?: string[];
  /** Default `hybrid` on a host with v1 hierarchies. */
  cgroupLayout?: CgroupLayout;
  /** Until `systemctl is-system-running --wait` says running/degraded and systemd answers on the bus; default 30 s. */
  bootTimeoutMs?: number;
}

/** One cgroup hierarchy of the host, and this instance's subtree in it. */
export interface CgroupHierarchy {
  /** The mount's directory name under /sys/fs/cgroup: `memory`, `cpu`, `systemd` (name=systemd), `unified` (cgroup2), ... */
  name: string;
  version: 1 | 2;
  /** v1: the superblock options that select this hierarchy (`memory`, `name=systemd`); v2: ''. */
  mountOptions: string;
  /** Host path of the subtree: the namespace's root cgroup in this hierarchy. */
  hostRoot: string;
}

export interface RunInsideOptions extends Omit<ExecaOptions, 'cwd' | 'reject'> {
  /** Working directory inside the namespace; default `/`. */
  cwd?: string;
}

export interface SpawnedInside {
  /** The nsenter process (on the host's side); resolves when the command ends (never rejects). */
  subprocess: ResultPromise<{ reject: false }>;
  /** Host pid of the command itself (nsenter's child). */
  pid: number;
  /** Its pid inside the namespace. */
  nsPid: number;
}

const SYSTEMD = '/lib/systemd/system';
/** Where systemd reads units from inside (on the private /run). */
const UNIT_DIR = '/run/tsshim-harness/units';
const NO_GENERATORS_DIR = '/run/tsshim-harness/no-generators';
/** Units copied as they are from Debian's systemd and dbus packages. */
const COPIED_UNITS = [
  'systemd-journald.service',
  'systemd-journald.socket',
  'systemd-journald-dev-log.socket',
  'dbus.service',
  'dbus.socket',
  'systemd-logind.service',
  'user.slice',
];
const BOOT_TARGET = 'tsshim-harness.target';

/** Moves the shell into the cgroup.procs files given first, then execs the rest of its arguments. */
const ENTER_CGROUPS_THEN_EXEC =
  'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || { echo "tsshim private systemd: cannot enter cgroup $1" >&2; exit 125; }; shift; n=$((n - 1)); done; exec "$@"';

export class PrivateSystemd {
  /** Host pid of systemd (PID 1 inside). */
  readonly pid: number;
  /** The system bus as seen inside the namespace (DBUS_SYSTEM_BUS_ADDRESS form). */
  readonly busAddress = 'unix:path=/run/dbus/system_bus_socket';
  /** The system bus socket reached from the host (through the namespace's root). */
  readonly hostBusSocket: string;
  /** systemd's private socket (what systemctl uses) reached from the host. */
  readonly hostPrivateSocket: string;
  readonly cgroupLayout: CgroupLayout;
  /** Every hierarchy of the host with this instance's subtree in it (the namespace sees only the subtree). */
  readonly hierarchies: readonly CgroupHierarchy[];
  /** The setup's stderr and /dev/console inside (systemd logs to the journal). */
  readonly consoleLog: string;

  private readonly launcher: ChildProcess;
  private readonly launcherExit: Promise<void>;
  private readonly watchdog: ChildProcess;
  private stopping: Promise<void> | undefined;

  private constructor(init: {
    pid: number;
    cgroupLayout: CgroupLayout;
    hierarchies: CgroupHierarchy[];
    consoleLog: string;
    launcher: ChildProcess;
    launcherExit: Promise<void>;
    watchdog: ChildProcess;
  }) {
    this.pid = init.pid;
    this.cgroupLayout = init.cgroupLayout;
    this.hierarchies = init.hierarchies;
    this.consoleLog = init.consoleLog;
    this.launcher = init.launcher;
    this.launcherExit = init.launcherExit;
    this.watchdog = init.watchdog;
    this.hostBusSocket = `/proc/${init.pid}/root/run/dbus/system_bus_socket`;
    this.hostPrivateSocket = `/proc/${init.pid}/root/run/systemd/private`;
  }

  /** Boots systemd and waits until it is up (running or degraded) and on the system bus. */
  static async boot(options: PrivateSystemdOptions): Promise<PrivateSystemd> {
    if (process.getuid?.() !== 0) throw new Error('PrivateSystemd needs root (namespaces, mounts, cgroups)');
    const dir = realpathSync(options.dir);
    const writable = [dir, ...(options.writablePaths ?? []).map((p) => realpathSync(p))];
    for (const path of writable) {
      if (!statSync(path).isDirectory()) throw new Error(`PrivateSystemd: ${path} is not a directory`);
      if (/^\/(run|dev|proc|sys)(\/|$)/.test(path) || path === '/') {
        throw new Error(`PrivateSystemd: ${path} cannot be bound into the namespace (/, /run, /dev, /proc and /sys are replaced there)`);
      }
    }
    const hostHierarchies = readHostHierarchies();
    const hasV1 = hostHierarchies.some((h) => h.version === 1);
    const cgroupLayout = options.cgroupLayout ?? (hasV1 ? 'hybrid' : 'unified');
    if (cgroupLayout === 'hybrid' && !hasV1) {
      throw new Error('PrivateSystemd: the hybrid layout needs cgroup v1 hierarchies on the host; this host has cgroup v2 only (use cgroupLayout: "unified")');
    }
    if (cgroupLayout === 'unified' && !hostHierarchies.some((h) => h.version === 2)) {
      throw new Error('PrivateSystemd: the unified layout needs a cgroup2 mount on the host');
    }

    const subtree = `tsshim-sd-${process.pid}-${randomBytes(4).toString('hex')}`;
    const hierarchies: CgroupHierarchy[] = hostHierarchies.map((h) => ({
      name: h.name,
      version: h.version,
      mountOptions: h.mountOptions,
      hostRoot: posix.join(h.ownCgroupDir, subtree),
    }));
    const consoleLog = join(dir, 'systemd-console.log');
    const created: CgroupHierarchy[] = [];
    let launcher: ChildProcess | undefined;
    let watchdog: ChildProcess | undefined;
    try {
      for (const h of hierarchies) {
        makeCgroup(h, h.hostRoot);
        created.push(h);
      }
      writeFileSync(consoleLog, '');
      const logFd = openSync(consoleLog, 'a');
      const unshareArgs = [
        'unshare', '--pid', '--fork', '--kill-child', '--mount', '--mount-proc', '--cgroup', '--uts', '--ipc',
        '--propagation', 'private',
        '--', '/bin/sh', '-c', innerScript(hierarchies, cgroupLayout, consoleLog), 'tsshim-systemd-setup', ...writable,
      ];
      const procsFiles = hierarchies.map((h) => join(h.hostRoot, 'cgroup.procs'));
      launcher = spawnChild('/bin/sh', ['-c', ENTER_CGROUPS_THEN_EXEC, 'sh', String(procsFiles.length), ...procsFiles, ...unshareArgs], {
        stdio: ['ignore', logFd, logFd],
        detached: true,
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      });
      closeSync(logFd);
      // An instance a test forgets to stop must not keep the test process alive: the watchdog ends it when this process exits.
      launcher.unref();
      const launched = launcher;
      const launcherExit = new Promise<void>((resolve) => {
        if (launched.exitCode !== null || launched.signalCode !== null) resolve();
        else launched.once('exit', () => resolve());
      });
      launched.on('error', () => undefined);

      const found = await waitUntil<{ pid: number } | { exited: string }>(
        () => {
          if (launched.exitCode !== null || launched.signalCode !== null) return { exited: `${launched.exitCode ?? launched.signalCode}` };
          const child = childPids(launched.pid!)[0];
          return child !== undefined && readExe(child)?.endsWith('/systemd') ? { pid: child } : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 20, what: "systemd to be exec'd as PID 1 of the namespace" },
      );
      if ('exited' in found) throw new Error(`PrivateSystemd: the namespace's setup failed (exit ${found.exited}): ${tail(consoleLog)}`);
      const pid = found.pid;
      watchdog = startWatchdog(pid, hierarchies);
      const instance = new PrivateSystemd({ pid, cgroupLayout, hierarchies, consoleLog, launcher: launched, launcherExit, watchdog });
      try {
        await instance.waitReady(options.bootTimeoutMs ?? 30_000);
      } catch (err) {
        const journal = await instance.journal(60).catch(() => '(none)');
        await instance.stop().catch(() => undefined);
        throw new Error(`${(err as Error).message}\n--- console ---\n${tail(consoleLog)}\n--- journal ---\n${journal}`);
      }
      return instance;
    } catch (err) {
      if (launcher?.pid !== undefined && launcher.exitCode === null && launcher.signalCode === null) {
        // Killing unshare (--kill-child) kills the namespace's PID 1 and with it the namespace.
        killQuietly(launcher.pid, 'SIGKILL');
        for (const child of childPids(launcher.pid)) killQuietly(child, 'SIGKILL');
      }
      if (watchdog?.pid !== undefined) killQuietly(watchdog.pid, 'SIGKILL');
      await removeSubtrees(created).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Runs a command inside the namespaces (its processes in the subtree's root cgroup), like
   * execa with `reject: false`: look at exitCode/stdout/stderr.
   */
  run(command: string, args: readonly string[] = [], options: RunInsideOptions = {}): Promise<Result<{ reject: false }>> {
    const { file, args: wrapped } = this.commandInside(command, args, options.cwd);
    const { cwd: _cwd, ...rest } = options;
    return execa(file, wrapped, { ...rest, reject: false }) as unknown as Promise<Result<{ reject: false }>>;
  }

  /** Like run(), throwing with the command's stderr when it exits non-zero. */
  async runOk(command: string, args: readonly string[] = [], options: RunInsideOptions = {}): Promise<Result<{ reject: false }>> {
    const result = await this.run(command, args, options);
    if (result.exitCode !== 0) {
      throw new Error(`inside the private systemd: ${command} ${args.join(' ')} exited ${result.exitCode ?? result.signal}: ${String(result.stderr ?? '').trim()}`);
    }
    return result;
  }

  /**
   * Starts a long-running command inside (e.g. containerd) and returns once it runs. Stop it with
   * `process.kill(spawned.pid, sig)` (nsenter does not forward signals) or let stop() end it.
   */
  async spawn(command: string, args: readonly string[] = [], options: RunInsideOptions = {}): Promise<SpawnedInside> {
    const { file, args: wrapped } = this.commandInside(command, args, options.cwd);
    const { cwd: _cwd, ...rest } = options;
    const subprocess = execa(file, wrapped, { ...rest, reject: false }) as unknown as ResultPromise<{ reject: false }>;
    const outer = subprocess.pid;
    if (outer === undefined) throw new Error(`could not spawn ${command} inside the private systemd`);
    let ended: Result<{ reject: false }> | undefined;
    void subprocess.then((result) => {
      ended = result;
    });
    const found = await waitUntil<{ pid: number } | { ended: Result<{ reject: false }> }>(
      () => {
        if (ended) return { ended };
        const child = childPids(outer)[0];
        // nsenter's child first is a copy of nsenter, then the command once exec'd. A child whose
        // exe can't be read is a zombie whose exec failed: wait for nsenter to report it.
        const exe = child === undefined ? undefined : readExe(child);
        return exe !== undefined && !exe.endsWith('/nsenter') ? { pid: child! } : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 10, what: `${command} to start inside the private systemd` },
    );
    if ('ended' in found) {
      throw new Error(`${command} ended at once inside the private systemd (exit ${found.ended.exitCode ?? found.ended.signal}): ${String(found.ended.stderr ?? '').trim()}`);
    }
    return { subprocess, pid: found.pid, nsPid: nsPidOf(found.pid) ?? -1 };
  }

  /**
   * The command line that runs `command` inside (for code that spawns processes itself, e.g. a
   * harness that needs its own child_process handling): run it with child_process or execa.
   */
  commandInside(command: string, args: readonly string[] = [], cwd = '/'): { file: string; args: string[] } {
    const procsFiles = this.hierarchies.map((h) => join(h.hostRoot, 'cgroup.procs'));
    return {
      file: '/bin/sh',
      args: [
        '-c', ENTER_CGROUPS_THEN_EXEC, 'sh', String(procsFiles.length), ...procsFiles,
        'nsenter', '-t', String(this.pid), '-p', '-m', '-C', '-u', '-i', `--wd=${cwd}`, '--', command, ...args,
      ],
    };
  }

  /** Host path of the subtree (the namespace's root cgroup) per hierarchy name. */
  get cgroupRoots(): Record<string, string> {
    return Object.fromEntries(this.hierarchies.map((h) => [h.name, h.hostRoot]));
  }

  /** The host directory of a cgroup given as seen inside (`/system.slice/x.scope`), in one hierarchy (`memory`, `systemd`, `unified`, ...). */
  hostCgroupDir(hierarchy: string, nsPath = '/'): string {
    const h = this.hierarchies.find((x) => x.name === hierarchy);
    if (!h) throw new Error(`no cgroup hierarchy ${hierarchy} (have ${this.hierarchies.map((x) => x.name).join(', ')})`);
    return posix.join(h.hostRoot, nsPath);
  }

  /** The last lines of the journal inside (systemd's own log and its services'), for diagnosis. */
  async journal(lines = 100): Promise<string> {
    const result = await this.run('journalctl', ['--no-pager', '-q', '-n', String(lines)], { timeout: 10_000 });
    return String(result.stdout ?? '');
  }

  /** Host pids of every process in the subtree (any hierarchy). */
  processes(): number[] {
    return processesInSubtrees(this.hierarchies);
  }

  /**
   * Kills systemd (SIGKILL of the namespace's PID 1 ends every process in the PID namespace;
   * the mount namespace goes with its last process), kills whatever is left in the subtree
   * (nsenter parents outside the PID namespace), removes the subtree in every hierarchy and
   * throws if anything is left.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    killQuietly(this.pid, 'SIGKILL');
    await Promise.race([this.launcherExit, sleep(10_000)]);
    if (this.launcher.exitCode === null && this.launcher.signalCode === null) killQuietly(this.launcher.pid!, 'SIGKILL');
    await removeSubtrees(this.hierarchies);
    if (this.watchdog.pid !== undefined) killQuietly(this.watchdog.pid, 'SIGKILL');
    this.watchdog.stdin?.destroy();
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`systemd did not come up within ${timeoutMs} ms (last: ${last || 'no answer'})`);
      const state = await this.run('systemctl', ['is-system-running', '--wait'], { timeout: left });
      const answer = String(state.stdout ?? '').trim();
      last = `${answer} ${String(state.stderr ?? '').trim()}`.trim();
      if (answer === 'running' || answer === 'degraded') break;
      // "offline" also means its socket is not there yet: that one is retried until the deadline.
      if (answer === 'maintenance' || answer === 'stopping') throw new Error(`systemd is ${answer}`);
      await sleep(100);
    }
    // systemd connects to the system bus once dbus.service runs; the driver talks to it there.
    for (;;) {
      const ping = await this.run('busctl', ['--system', 'call', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Peer', 'Ping'], {
        timeout: Math.max(1, deadline - Date.now()),
      });
      if (ping.exitCode === 0) return;
      if (Date.now() >= deadline) throw new Error(`systemd is not on the system bus: ${String(ping.stderr ?? '').trim()}`);
      await sleep(100);
    }
  }
}

interface HostHierarchy {
  name: string;
  version: 1 | 2;
  mountOptions: string;
  /** Host path of the cgroup this process is in, in this hierarchy. */
  ownCgroupDir: string;
}

/** The hierarchies mounted under /sys/fs/cgroup, each with this process's cgroup in it. */
function readHostHierarchies(): HostHierarchy[] {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, controllers, ...path] = line.split(':');
      return { id, controllers: controllers === '' ? [] : controllers!.split(','), path: path.join(':') };
    });
  const seen = new Set<string>();
  const out: HostHierarchy[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fstype, , superOptions] = right.split(' ');
    const root = fields[3]!;
    const mountPoint = fields[4]!;
    if ((fstype !== 'cgroup' && fstype !== 'cgroup2') || !mountPoint.startsWith('/sys/fs/cgroup')) continue;
    let selectors: string[] = [];
    let entry: (typeof own)[number] | undefined;
    if (fstype === 'cgroup2') {
      entry = own.find((e) => e.id === '0' && e.controllers.length === 0);
    } else {
      // The options that pick a v1 hierarchy: its controllers and name=; the rest (rw, xattr, ...) are kept for the mount too.
      const options = (superOptions ?? '').split(',').filter((o) => o !== 'rw' && o !== 'ro');
      entry = own.find((e) => e.controllers.length > 0 && e.controllers.every((c) => options.includes(c)));
      selectors = options.filter((o) => !o.startsWith('release_agent='));
    }
    if (!entry) continue;
    const key = fstype === 'cgroup2' ? 'cgroup2' : entry.controllers.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    if (!(entry.path === root || entry.path.startsWith(root === '/' ? '/' : `${root}/`))) {
      throw new Error(`PrivateSystemd: this process's cgroup ${entry.path} is outside the mount of ${mountPoint} (root ${root})`);
    }
    const relative = root === '/' ? entry.path : entry.path.slice(root.length);
    out.push({
      name: mountPoint === '/sys/fs/cgroup' ? 'unified' : basename(mountPoint),
      version: fstype === 'cgroup2' ? 2 : 1,
      mountOptions: selectors.join(','),
      ownCgroupDir: posix.join(mountPoint, relative),
    });
  }
  if (out.length === 0) throw new Error('PrivateSystemd: no cgroup hierarchy mounted under /sys/fs/cgroup');
  return out;
}

function makeCgroup(h: CgroupHierarchy, path: string): void {
  mkdirSync(path);
  if (h.name === 'cpuset' || h.mountOptions.split(',').includes('cpuset')) {
    // A new v1 cpuset cgroup has no cpus/mems and refuses tasks until given its parent's.
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      writeFileSync(join(path, file), readFileSync(join(path, '..', file), 'utf8').trim() || '\n');
    }
  }
}

/** Single-quoted for sh. */
function q(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The setup run as PID 1 of the new namespaces before it execs systemd. Arguments: the
 * directories to bind read-write. Every mount here is in the private mount namespace.
 */
function innerScript(hierarchies: CgroupHierarchy[], layout: CgroupLayout, consoleLog: string): string {
  const keep = '/run/tsshim-harness/keep';
  const stagedDev = '/run/tsshim-harness/dev';
  const cgroupMounts =
    layout === 'unified'
      ? ['mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup']
      : [
          'mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs /sys/fs/cgroup',
          ...hierarchies.flatMap((h) => [
            `mkdir /sys/fs/cgroup/${q(h.name)}`,
            h.version === 2
              ? `mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup/${q(h.name)}`
              : `mount -t cgroup -o ${q(`${h.mountOptions},nosuid,nodev,noexec`)} cgroup /sys/fs/cgroup/${q(h.name)}`,
          ]),
          // The host's usual aliases (cpu,cpuacct -> cpu ...) if it has them.
          ...hostCgroupSymlinks().map(([name, target]) => `ln -s ${q(target)} /sys/fs/cgroup/${q(name)}`),
        ];
  const unit = (name: string, lines: string[]) => `printf '%s\\n' ${lines.map(q).join(' ')} > ${UNIT_DIR}/${name}`;
  const emptyTarget = (name: string) => unit(`${name}.target`, ['[Unit]', `Description=${name}.target (tsshim harness: pulls in nothing)`, 'DefaultDependencies=no']);
  const wanted = 'systemd-journald.service dbus.socket dbus.service systemd-logind.service';
  return [
    'set -eu',
    // Private /run first, then keep the writable directories reachable before /tmp etc. are covered.
    'mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run',
    `mkdir -p ${keep} ${stagedDev}`,
    `i=0; for p in "$@"; do mkdir ${keep}/$i; mount --bind "$p" ${keep}/$i; i=$((i + 1)); done`,
    // tmpfiles-style cleanups and every service's private files land here, not on the host.
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp',
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp',
    'mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /var/lib/systemd',
    // A private /dev (the host's devtmpfs is shared: journald's /dev/log symlink, udev, ...).
    `mount -t tmpfs -o mode=755,nosuid tmpfs ${stagedDev}`,
    `cd ${stagedDev}`,
    'mknod -m 666 null c 1 3; mknod -m 666 zero c 1 5; mknod -m 666 full c 1 7',
    'mknod -m 666 random c 1 8; mknod -m 666 urandom c 1 9; mknod -m 666 tty c 5 0',
    'ln -s /proc/self/fd fd; ln -s /proc/self/fd/0 stdin; ln -s /proc/self/fd/1 stdout; ln -s /proc/self/fd/2 stderr',
    'ln -s pts/ptmx ptmx; mkdir pts shm; : > console',
    'cd /',
    `mount --move ${stagedDev} /dev`,
    'mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts /dev/pts',
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm',
    // Kernel settings stay the host's: systemd and its services cannot write sysctls.
    'mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys',
    '[ ! -e /proc/sysrq-trigger ] || { mount --bind /proc/sysrq-trigger /proc/sysrq-trigger; mount -o remount,bind,ro /proc/sysrq-trigger; }',
    // Fresh cgroup mounts: made in the cgroup namespace, their root is the subtree.
    'umount -R /sys/fs/cgroup',
    'mount -o remount,bind,ro /sys',
    ...cgroupMounts,
    `i=0; for p in "$@"; do mkdir -p "$p"; mount --move ${keep}/$i "$p"; i=$((i + 1)); done`,
    `rmdir ${keep}/* 2>/dev/null || true; rmdir ${keep} ${stagedDev}`,
    // Console output of anything inside lands in the log file next to the setup's errors.
    `mount --bind ${q(consoleLog)} /dev/console`,
    // The rest of the root filesystem read-only (this mount only: bind,remount never touches the superblock).
    'mount -o remount,bind,ro /',
    `mkdir -p ${UNIT_DIR}/systemd-journald.service.d ${UNIT_DIR}/systemd-logind.service.d ${NO_GENERATORS_DIR} /run/systemd/journald.conf.d`,
    `printf '[Journal]\\nStorage=volatile\\n' > /run/systemd/journald.conf.d/tsshim-harness.conf`,
    `for u in ${COPIED_UNITS.join(' ')}; do cp ${SYSTEMD}/$u ${UNIT_DIR}/; done`,
    `ln -s systemd-logind.service ${UNIT_DIR}/dbus-org.freedesktop.login1.service`,
    // No audit socket: it would read the host's kernel audit stream.
    unit('systemd-journald.service.d/tsshim-harness.conf', ['[Service]', 'Sockets=', 'Sockets=systemd-journald.socket systemd-journald-dev-log.socket']),
    // logind's ReadWritePaths=/etc would make the host's /etc writable again in its own mount namespace.
    unit('systemd-logind.service.d/tsshim-harness.conf', ['[Service]', 'ReadWritePaths=', 'ReadWritePaths=/run']),
    ...['sysinit', 'sockets', 'paths', 'timers', 'slices', 'local-fs', 'swap', 'umount'].map(emptyTarget),
    unit('basic.target', ['[Unit]', 'Description=basic.target (tsshim harness)', 'DefaultDependencies=no', 'Requires=sysinit.target', 'After=sysinit.target sockets.target paths.target slices.target timers.target']),
    unit('shutdown.target', ['[Unit]', 'Description=shutdown.target (tsshim harness)', 'DefaultDependencies=no', 'RefuseManualStart=yes']),
    unit(BOOT_TARGET, ['[Unit]', 'Description=tsshim test harness: journald, D-Bus, logind', `Wants=${wanted}`, `After=${wanted} basic.target`]),
    'exec env -i container=docker PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' +
      ` SYSTEMD_UNIT_PATH=/run/systemd/system.control:/run/systemd/transient:${UNIT_DIR}` +
      ` SYSTEMD_GENERATOR_PATH=${NO_GENERATORS_DIR} SYSTEMD_ENVIRONMENT_GENERATOR_PATH=${NO_GENERATORS_DIR}` +
      ` /lib/systemd/systemd --system --unit=${BOOT_TARGET} --log-target=journal --show-status=no`,
  ].join('\n');
}

/** Symlinks in the host's /sys/fs/cgroup (e.g. cpu -> cpu,cpuacct on most systemd hosts). */
function hostCgroupSymlinks(): [string, string][] {
  const out: [string, string][] = [];
  for (const entry of readdirSync('/sys/fs/cgroup', { withFileTypes: true })) {
    if (entry.isSymbolicLink()) {
      try {
        out.push([entry.name, readlinkSafe(join('/sys/fs/cgroup', entry.name))]);
      } catch {
        // vanished meanwhile
      }
    }
  }
  return out;
}

function readlinkSafe(path: string): string {
  return posix.relative('/sys/fs/cgroup', realpathSync(path));
}

/**
 * Kills PID 1 and removes the subtree if this process dies without stop(): it waits for EOF on
 * its stdin (a pipe from this process), which comes when this process exits however it exits.
 */
function startWatchdog(pid: number, hierarchies: CgroupHierarchy[]): ChildProcess {
  const roots = hierarchies.map((h) => q(h.hostRoot)).join(' ');
  const script = [
    "trap '' INT TERM HUP",
    'cat > /dev/null',
    `kill -9 ${pid} 2>/dev/null`,
    `for round in 1 2 3 4 5 6 7 8 9 10; do`,
    `  for root in ${roots}; do [ -d "$root" ] && find "$root" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null; done`,
    '  sleep 0.5',
    `  for root in ${roots}; do [ -d "$root" ] && find "$root" -depth -type d -exec rmdir {} + 2>/dev/null; done`,
    `  left=0; for root in ${roots}; do [ -d "$root" ] && left=1; done; [ $left = 0 ] && exit 0`,
    'done',
  ].join('\n');
  const watchdog = spawnChild('/bin/sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  watchdog.on('error', () => undefined);
  watchdog.stdin!.on('error', () => undefined);
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  return watchdog;
}

function processesInSubtrees(hierarchies: readonly CgroupHierarchy[]): number[] {
  const pids = new Set<number>();
  const walk = (path: string) => {
    let entries;
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const line of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.add(Number(line));
    } catch {
      // removed meanwhile
    }
    for (const entry of entries) if (entry.isDirectory()) walk(join(path, entry.name));
  };
  for (const h of hierarchies) walk(h.hostRoot);
  return [...pids];
}

/** Kills every process left in the subtrees, then removes them depth-first; throws with what is left. */
async function removeSubtrees(hierarchies: readonly CgroupHierarchy[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = processesInSubtrees(hierarchies);
    if (pids.length === 0) break;
    if (Date.now() >= deadline) throw new Error(`PrivateSystemd: processes still in its cgroups after SIGKILL: ${pids.join(' ')}`);
    for (const pid of pids) killQuietly(pid, 'SIGKILL');
    await sleep(50);
  }
  const left: string[] = [];
  for (const h of hierarchies) {
    if (!existsSync(h.hostRoot)) continue;
    for (;;) {
      try {
        removeCgroupTree(h.hostRoot);
        break;
      } catch (err) {
        // An exited task leaves its cgroup a moment later (EBUSY until then).
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || Date.now() >= deadline) {
          left.push(`${h.hostRoot}: ${(err as Error).message}`);
          break;
        }
        await sleep(50);
      }
    }
  }
  if (left.length > 0) throw new Error(`PrivateSystemd: cgroups left: ${left.join('; ')}`);
}

function removeCgroupTree(path: string): void {
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) removeCgroupTree(join(path, entry.name));
  }
  try {
    rmdirSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function nsPidOf(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'));
    const ids = line?.split(/\s+/).slice(1).filter(Boolean).map(Number);
    return ids?.[ids.length - 1];
  } catch {
    return undefined;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

function tail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
