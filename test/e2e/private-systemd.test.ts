/**
 * The private systemd harness (harness/private-systemd.ts): a real systemd boots as PID 1 of
 * private namespaces, manages only its own cgroup subtree, answers on the system bus, creates
 * scopes with limits there, leaves the host's /tmp and /var/tmp alone, and stop() leaves no
 * process, cgroup or mount behind.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateSystemd } from './harness/private-systemd.js';
import { isLive } from './harness/proc-fs.js';
import { repoRoot } from './harness/repo-paths.js';
import { waitUntil } from './harness/wait-until.js';

const isRoot = process.getuid?.() === 0;
const systemdInstalled = existsSync('/lib/systemd/systemd') && existsSync('/usr/bin/dbus-daemon');

/** Names systemd gives the cgroups of what it boots here; none may appear outside the subtree. */
const SYSTEMD_CGROUP_NAMES = new Set([
  'init.scope',
  'system.slice',
  'user.slice',
  'systemd-journald.service',
  'dbus.service',
  'systemd-logind.service',
  'tsshim-probe.scope',
]);

/**
 * Every cgroup directory with one of those names in the host's hierarchies, outside the
 * subtrees of private systemd instances (this one's and those of other test runs meanwhile).
 */
function systemdLikeCgroups(): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    if (path.split('/').pop()!.startsWith('tsshim-sd-')) return;
    let entries;
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const child = join(path, entry.name);
      if (SYSTEMD_CGROUP_NAMES.has(entry.name)) found.push(child);
      walk(child);
    }
  };
  walk('/sys/fs/cgroup');
  return found.sort();
}

/** The host's mounts as "<mount point> <per-mount options>". */
function hostMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' '))
    .map((fields) => `${fields[4]} ${fields[5]}`);
}

/** Mount points the namespace replaces or remounts on its side; the host's must stay as they were. */
const PLACES_COVERED_INSIDE = new Set(['/', '/run', '/tmp', '/var/tmp', '/var/lib/systemd', '/dev', '/dev/pts', '/dev/shm', '/dev/console', '/proc', '/proc/sys', '/sys']);
function hostMountsOfCoveredPlaces(): string[] {
  return hostMounts()
    .filter((mount) => {
      const point = mount.split(' ')[0]!;
      return PLACES_COVERED_INSIDE.has(point) || point.startsWith('/sys/fs/cgroup');
    })
    .sort();
}

/** Cgroup path of a host process per hierarchy line of /proc/<pid>/cgroup. */
function cgroupLines(pid: number | 'self', text?: string): { controllers: string; path: string }[] {
  return (text ?? readFileSync(`/proc/${pid}/cgroup`, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, controllers, ...path] = line.split(':');
      return { controllers: controllers!, path: path.join(':') };
    });
}

describe.skipIf(!isRoot || !systemdInstalled)('private systemd (hybrid cgroups, as the host)', () => {
  let dir: string;
  let sd: PrivateSystemd;
  const canaries = [join('/tmp', `tsshim-sd-canary-${process.pid}`), join('/var/tmp', `tsshim-sd-canary-${process.pid}`)];
  let systemdCgroupsBefore: string[];
  let coveredMountsBefore: string[];

  beforeAll(async () => {
    for (const canary of canaries) writeFileSync(canary, 'must survive\n');
    systemdCgroupsBefore = systemdLikeCgroups();
    coveredMountsBefore = hostMountsOfCoveredPlaces();
    // Under the host's /tmp on purpose: the namespace covers /tmp with a tmpfs and must still see it.
    dir = mkdtempSync(join(tmpdir(), 'tsshim-sd-'));
    sd = await PrivateSystemd.boot({ dir });
  });

  afterAll(async () => {
    await sd?.stop();
    for (const canary of canaries) rmSync(canary, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('boots: running, journald/dbus/logind active, both bus sockets there, systemd answers on the system bus', async () => {
    const state = await sd.run('systemctl', ['is-system-running']);
    const failed = await sd.run('systemctl', ['list-units', '--failed', '--no-legend', '--plain']);
    expect(String(state.stdout).trim(), `failed units: ${String(failed.stdout)}`).toBe('running');
    const active = await sd.run('systemctl', ['is-active', 'systemd-journald.service', 'dbus.service', 'systemd-logind.service']);
    expect(String(active.stdout).trim().split('\n')).toEqual(['active', 'active', 'active']);
    // Nothing else was loaded, let alone run: no tmpfiles, sysctl, udev, timesyncd, getty, ...
    const services = String((await sd.runOk('systemctl', ['list-units', '--all', '--type=service', '--no-legend', '--plain'])).stdout)
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(/\s+/))
      .filter(([, load]) => load === 'loaded')
      .map(([name]) => name)
      .sort();
    expect(services).toEqual(['dbus.service', 'systemd-journald.service', 'systemd-logind.service']);
    expect((await sd.run('test', ['-S', '/run/dbus/system_bus_socket'])).exitCode).toBe(0);
    expect((await sd.run('test', ['-S', '/run/systemd/private'])).exitCode).toBe(0);
    const call = await sd.runOk('busctl', ['--system', 'call', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager', 'GetUnit', 's', 'init.scope']);
    expect(String(call.stdout).trim()).toBe('o "/org/freedesktop/systemd1/unit/init_2escope"');
    // The bus is also reachable from the host through the namespace's root.
    expect(existsSync(sd.hostBusSocket)).toBe(true);
    expect(sd.busAddress).toBe('unix:path=/run/dbus/system_bus_socket');
  });

  it("puts its units in the test's subtree of every hierarchy, and nowhere else", async () => {
    for (const hierarchy of ['systemd', 'unified']) {
      expect(existsSync(sd.hostCgroupDir(hierarchy, '/init.scope'))).toBe(true);
      expect(existsSync(sd.hostCgroupDir(hierarchy, '/system.slice/dbus.service'))).toBe(true);
    }
    // systemd's own view: it is in /init.scope of the namespace (no "/.." escaping the root).
    const inside = cgroupLines('self', String((await sd.runOk('cat', ['/proc/1/cgroup'])).stdout));
    for (const line of inside.filter((l) => l.controllers === 'name=systemd' || l.controllers === '')) expect(line.path).toBe('/init.scope');
    for (const line of inside) expect(line.path.startsWith('/..')).toBe(false);
    // Host view of PID 1: inside the subtree in every hierarchy.
    const roots = sd.hierarchies.map((h) => h.hostRoot);
    const subtree = roots[0]!.split('/').pop()!;
    const hostView = cgroupLines(sd.pid);
    expect(hostView.length).toBe(cgroupLines('self').length);
    for (const line of hostView) expect(line.path.split('/'), line.path).toContain(subtree);
    expect(systemdLikeCgroups()).toEqual(systemdCgroupsBefore);
  });

  it('run() and spawn() put processes in the namespace and in its cgroups, not the host', async () => {
    const self = cgroupLines('self', String((await sd.runOk('cat', ['/proc/self/cgroup'])).stdout));
    expect(self.length).toBe(cgroupLines('self').length);
    for (const line of self) expect(line.path, JSON.stringify(self)).toBe('/');
    expect(String((await sd.runOk('sh', ['-c', 'echo $$'])).stdout).trim()).not.toBe(String(process.pid));
    expect(String((await sd.runOk('pwd', [], { cwd: '/run' })).stdout).trim()).toBe('/run');

    const sleeper = await sd.spawn('sleep', ['60']);
    expect(sleeper.nsPid).toBeGreaterThan(1);
    const subtreeNames = new Map(sd.hierarchies.map((h) => [h.hostRoot.split('/').pop()!, h]));
    for (const line of cgroupLines(sleeper.pid)) expect(subtreeNames.has(line.path.split('/').pop()!), line.path).toBe(true);
    expect(sd.processes()).toContain(sleeper.pid);
    process.kill(sleeper.pid, 'SIGTERM');
    const result = await sleeper.subprocess;
    expect(result.exitCode).not.toBe(0);
    await expect(sd.spawn('/nonexistent-binary')).rejects.toThrow(/ended at once/);
  });

  it('systemd-run --scope -p MemoryLimit=64M makes a scope whose cgroup is in the subtree with the limit; systemctl stop removes it', async () => {
    const scope = sd.hostCgroupDir('memory', '/system.slice/tsshim-probe.scope');
    const probe = await sd.spawn('systemd-run', ['--scope', '--unit=tsshim-probe', '-p', 'MemoryLimit=64M', 'sleep', '60']);
    const limit = await waitUntil(
      () => {
        try {
          return readFileSync(join(scope, 'memory.limit_in_bytes'), 'utf8').trim();
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 10_000, what: `${scope}/memory.limit_in_bytes` },
    );
    expect(limit).toBe(String(64 * 1024 * 1024));
    await waitUntil(() => readFileSync(join(scope, 'cgroup.procs'), 'utf8').split('\n').includes(String(probe.pid)), { what: 'the probe in its scope' });
    expect(existsSync(sd.hostCgroupDir('systemd', '/system.slice/tsshim-probe.scope'))).toBe(true);
    await sd.runOk('systemctl', ['stop', 'tsshim-probe.scope']);
    await probe.subprocess;
    await waitUntil(() => !existsSync(scope), { what: 'the scope cgroup to go' });
    expect(existsSync(sd.hostCgroupDir('systemd', '/system.slice/tsshim-probe.scope'))).toBe(false);
  });

  it("keeps the host's files: private /tmp and /var/tmp, read-only root, only the test dir writable", async () => {
    for (const canary of canaries) {
      expect(readFileSync(canary, 'utf8')).toBe('must survive\n');
      // Not visible inside: /tmp and /var/tmp are the namespace's own tmpfs.
      expect((await sd.run('test', ['-e', canary])).exitCode).toBe(1);
    }
    const denied = await sd.run('touch', ['/var/lib/tsshim-sd-probe']);
    expect(String(denied.stderr)).toMatch(/Read-only file system/);
    await sd.runOk('sh', ['-c', `echo inside > ${dir}/written-inside`]);
    expect(readFileSync(join(dir, 'written-inside'), 'utf8')).toBe('inside\n');
    expect(existsSync('/var/lib/tsshim-sd-probe')).toBe(false);
  });

  it('stop() ends every process, removes the subtree in every hierarchy and leaves no mount; the canaries survive', async () => {
    const pid = sd.pid;
    const journald = Number(String((await sd.runOk('systemctl', ['show', '-p', 'MainPID', '--value', 'systemd-journald.service'])).stdout).trim());
    expect(journald).toBeGreaterThan(1);
    // While it runs, the host's mounts are untouched too: the read-only root and /sys are the namespace's copies.
    expect(hostMountsOfCoveredPlaces()).toEqual(coveredMountsBefore);
    expect(hostMounts().filter((m) => m.startsWith('/ ') || m.startsWith('/sys '))).toEqual(expect.arrayContaining([expect.stringMatching(/^\/ rw/), expect.stringMatching(/^\/sys rw/)]));
    await sd.stop();
    expect(isLive(pid)).toBe(false);
    expect(sd.processes()).toEqual([]);
    for (const h of sd.hierarchies) expect(existsSync(h.hostRoot), h.hostRoot).toBe(false);
    expect(hostMounts().filter((m) => m.startsWith(dir))).toEqual([]);
    expect(hostMountsOfCoveredPlaces()).toEqual(coveredMountsBefore);
    for (const canary of canaries) expect(readFileSync(canary, 'utf8')).toBe('must survive\n');
    expect(systemdLikeCgroups()).toEqual(systemdCgroupsBefore);
  });
});

describe.skipIf(!isRoot || !systemdInstalled)('private systemd whose test process dies without stop()', () => {
  it('the watchdog kills the namespace and removes the subtree', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsshim-sd-orphan-'));
    try {
      // A separate process boots one, prints what it got and then is killed with SIGKILL.
      const script = join(dir, 'boot.ts');
      writeFileSync(
        script,
        [
          `import { PrivateSystemd } from ${JSON.stringify(join(repoRoot, 'test/e2e/harness/private-systemd.ts'))};`,
          `const sd = await PrivateSystemd.boot({ dir: ${JSON.stringify(dir)} });`,
          'console.log(JSON.stringify({ pid: sd.pid, roots: sd.hierarchies.map((h) => h.hostRoot) }));',
          'setInterval(() => undefined, 1000);',
        ].join('\n'),
      );
      const child = execa(join(repoRoot, 'node_modules/.bin/vite-node'), [script], { cwd: repoRoot, reject: false, buffer: false });
      const booted = await new Promise<{ pid: number; roots: string[] }>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (line) resolve(JSON.parse(line));
        });
        void child.then((r) => reject(new Error(`the booting process ended: ${r.exitCode} ${String(r.stderr ?? '')}`)));
      });
      expect(isLive(booted.pid)).toBe(true);
      // vite-node runs the script in its own process: kill that whole process tree's root (no stop()).
      child.kill('SIGKILL');
      await child;
      await waitUntil(() => !isLive(booted.pid) && booted.roots.every((root) => !existsSync(root)), { timeoutMs: 15_000, what: 'the watchdog to clean up' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!isRoot || !systemdInstalled)('private systemd (cgroup v2 only inside)', () => {
  let dir: string;
  let sd: PrivateSystemd;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsshim-sd-v2-'));
    sd = await PrivateSystemd.boot({ dir, cgroupLayout: 'unified' });
  });

  afterAll(async () => {
    await sd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('boots in unified mode on the subtree of the host cgroup2 hierarchy (no controllers there on a hybrid host)', async () => {
    expect(String((await sd.runOk('stat', ['-fc', '%T', '/sys/fs/cgroup'])).stdout).trim()).toBe('cgroup2fs');
    expect(String((await sd.run('systemctl', ['is-system-running'])).stdout).trim()).toBe('running');
    expect(existsSync(sd.hostCgroupDir('unified', '/init.scope'))).toBe(true);
    expect(existsSync(sd.hostCgroupDir('unified', '/system.slice/systemd-logind.service'))).toBe(true);
    // v1 hierarchies hold the subtree too (containment), but systemd made nothing there.
    expect(readdirSync(sd.hostCgroupDir('memory')).filter((name) => name.endsWith('.slice') || name.endsWith('.scope'))).toEqual([]);
    const controllers = String((await sd.runOk('cat', ['/sys/fs/cgroup/cgroup.controllers'])).stdout).trim();
    expect(controllers).toBe(readFileSync(join(sd.hostCgroupDir('unified'), 'cgroup.controllers'), 'utf8').trim());
    await sd.stop();
    for (const h of sd.hierarchies) expect(existsSync(h.hostRoot), h.hostRoot).toBe(false);
  });
});
