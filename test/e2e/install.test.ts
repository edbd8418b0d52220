/**
 * Installing tsshim on a node (scripts/install.sh): into a temporary prefix, with a private
 * containerd whose PATH is a service's default plus PREFIX/bin only (never the checkout's
 * bin/), real runc-free native containers through ctr and a CRI pod, an upgrade to a second
 * build (a copy of this tree with another version) while a container runs, and an uninstall
 * that leaves no file behind.
 *
 * Which release a shim runs is read from the kernel: a shim daemon's command line names its
 * boot loader and its maps hold ffi-rs's native addon, both under the release dir it
 * started from.
 */
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchCriContainerd, type CriContainerd } from './harness/cri-containerd.js';
import { containerdBinaries } from './harness/containerd-versions.js';
import { containerConfig, podFacts, podConfig, startContainer } from './harness/cri-pods.js';
import { PrivateContainerd, SYSTEM_PATH } from './harness/private-containerd.js';
import { isLive } from './harness/proc-fs.js';
import { repoRoot } from './harness/repo-paths.js';
import { BUSYBOX_IMAGE } from './harness/test-images.js';
import { waitUntil } from './harness/wait-until.js';
import { configCachePath } from '../../src/shim/config-cache.js';

const RUNTIME = 'io.containerd.tsshim.v2';
const INSTALL = join(repoRoot, 'scripts/install.sh');

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function installSh(args: string[], options: { cwd?: string; env?: Record<string, string>; script?: string } = {}): Promise<Run> {
  const r = await execa('/bin/bash', [options.script ?? INSTALL, ...args], { reject: false, env: options.env, extendEnv: options.env === undefined, timeout: 300_000 });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** every file and link under dir (relative paths), dirs included */
function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(dir, p));
      if (e.isDirectory()) walk(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

/** files under dir whose bytes contain `needle` */
function filesContaining(dir: string, needle: string): string[] {
  const found: string[] = [];
  const bytes = Buffer.from(needle);
  for (const rel of listTree(dir)) {
    const p = join(dir, rel);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) {
      if (readlinkSync(p).includes(needle)) found.push(rel);
    } else if (st.isFile() && readFileSync(p).includes(bytes)) found.push(rel);
  }
  return found;
}

/** the release dir (real path, with a trailing slash) a process runs from, judged by its cmdline and maps */
function releaseOf(pid: number, lib: string): string[] {
  const seen = new Set<string>();
  const text = `${readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ')}\n${readFileSync(`/proc/${pid}/maps`, 'latin1')}`;
  for (const m of text.matchAll(new RegExp(`${lib.replace(/[.+]/g, '\\$&')}/([^/\\s]+)/`, 'g'))) seen.add(m[1]!);
  return [...seen].sort();
}

/** a copy of this tree (tracked and untracked-but-not-ignored files, node_modules hard-linked) with another version */
function copyTreeWithVersion(to: string, version: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repoRoot })
    .toString()
    .split('\0')
    .filter((f) => f && f !== '.cache' && existsSync(join(repoRoot, f)));
  for (const f of files) {
    mkdirSync(dirname(join(to, f)), { recursive: true });
    cpSync(join(repoRoot, f), join(to, f), { verbatimSymlinks: true });
  }
  execFileSync('cp', ['-al', join(repoRoot, 'node_modules'), join(to, 'node_modules')]);
  const pkg = JSON.parse(readFileSync(join(to, 'package.json'), 'utf8')) as { version: string };
  pkg.version = version;
  writeFileSync(join(to, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
}

describe('scripts/install.sh', () => {
  let work: string;
  let prefix: string;
  let bin: string;
  let lib: string;
  let configDir: string;
  let first: Run;
  let firstRelease: string;
  const containerds: PrivateContainerd[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tsshim-install-'));
    prefix = join(work, 'prefix');
    bin = join(prefix, 'bin');
    lib = join(prefix, 'lib', 'tsshim');
    configDir = join(work, 'etc-tsshim');
    first = await installSh(['--prefix', prefix, '--config-dir', configDir]);
    if (first.exitCode !== 0) throw new Error(`install failed (${first.exitCode}):\n${first.stdout}\n${first.stderr}`);
    firstRelease = readlinkSync(join(lib, 'current'));
  }, 300_000);

  afterAll(async () => {
    for (const cd of containerds) await cd.destroy();
    // the fingerprint a shim's start leaves in the socket dir for the config it read
    rmSync(configCachePath(join(configDir, 'config.toml')), { force: true });
    await installSh(['--uninstall', '--force', '--prefix', prefix, '--config-dir', configDir]);
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  describe('checks before it starts', () => {
    it('refuses to run without root', async () => {
      const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', INSTALL, '--prefix', join(work, 'nobody')], { reject: false });
      expect(r.exitCode).toBe(77);
      expect(r.stderr).toContain('must run as root');
      expect(existsSync(join(work, 'nobody'))).toBe(false);
    });

    it('says that Node >= 20.16 is missing, or too old', async () => {
      const none = await installSh(['--prefix', join(work, 'p-none')], { env: { PATH: join(work, 'no-such-dir') } });
      expect(none.exitCode).toBe(69);
      expect(none.stderr).toMatch(/Node\.js >= 20\.16 is required and no `node` is on PATH/);
      const oldDir = join(work, 'old-node');
      mkdirSync(oldDir, { recursive: true });
      writeFileSync(join(oldDir, 'node'), '#!/bin/sh\necho 20.15.1\n', { mode: 0o755 });
      const old = await installSh(['--prefix', join(work, 'p-old')], { env: { PATH: oldDir } });
      expect(old.exitCode).toBe(69);
      expect(old.stderr).toContain('is 20.15.1');
      expect(existsSync(join(work, 'p-old'))).toBe(false);
    });

    it('says that gcc is missing', async () => {
      const nodeOnly = join(work, 'node-only');
      mkdirSync(nodeOnly, { recursive: true });
      symlinkSync(process.execPath, join(nodeOnly, 'node'));
      const r = await installSh(['--prefix', join(work, 'p-gcc')], { env: { PATH: nodeOnly } });
      expect(r.exitCode).toBe(69);
      expect(r.stderr).toContain('gcc is required');
      expect(existsSync(join(work, 'p-gcc'))).toBe(false);
    });
  });

  describe('what it installs', () => {
    it('a release dir named after the version, `current`, and links in PREFIX/bin for the launcher, every alias in bin/ and tsrun', () => {
      const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
      expect(firstRelease.startsWith(`${version}+`)).toBe(true);
      expect(readdirSync(lib).sort()).toEqual([firstRelease, 'current', 'installed.json'].sort());
      // the alias list comes from the checkout's bin/
      const aliases = readdirSync(join(repoRoot, 'bin')).filter((n) => /^containerd-shim-tsshim-.+-v2$/.test(n));
      expect(aliases.length).toBeGreaterThanOrEqual(3);
      expect(readdirSync(bin).sort()).toEqual(['containerd-shim-tsshim-v2', ...aliases, 'tsrun'].sort());
      for (const name of readdirSync(bin)) {
        expect(readlinkSync(join(bin, name))).toBe(`../lib/tsshim/current/bin/${name}`);
        expect(realpathSync(join(bin, name)).startsWith(`${realpathSync(join(lib, firstRelease))}/bin/`)).toBe(true);
      }
      // the release: its bundles, caches, executor, launcher and production dependencies only
      const files = listTree(join(lib, firstRelease));
      expect(files).toContain('dist/native/tsshim-exec');
      expect(files).toContain('dist/shim/daemon-boot.cjs');
      expect(files.filter((f) => /^dist\/shim\/daemon-[0-9a-f]{16}\.cache$/.test(f))).toHaveLength(1);
      expect(files.filter((f) => /^dist\/shim\/daemon-lazy-execa-[0-9a-f]{16}\.cjs$/.test(f))).toHaveLength(1);
      expect(files.some((f) => /^node_modules\/@yuuang\/ffi-rs-linux-[^/]+\/.*\.node$/.test(f))).toBe(true);
      expect(files).toContain('node_modules/ffi-rs/package.json');
      expect(files.filter((f) => /^node_modules\/(esbuild|vitest|typescript|@grpc)\b/.test(f))).toEqual([]);
      expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || (f.startsWith('dist/') && f.endsWith('.map')))).toEqual([]);
    });

    it('nothing in the prefix points back into the checkout, and the code caches are for this Node', async () => {
      expect(filesContaining(prefix, repoRoot)).toEqual([]);
      const realRepo = realpathSync(repoRoot);
      if (realRepo !== repoRoot) expect(filesContaining(prefix, realRepo)).toEqual([]);
      const tsrun = await execa(join(bin, 'tsrun'), [], { env: { TSSHIM_CODE_CACHE_CHECK: '1' } });
      expect(tsrun.stdout.trim()).toBe('hit');
      const v = await execa(join(bin, 'containerd-shim-tsshim-runc-v2'), ['-v']);
      expect(v.stdout).toContain(`Runtime: node ${process.version}`);
    });

    it('writes the config only when there is none, and prints the snippets for the containerd installed here (1.6: version 2)', async () => {
      expect(first.stdout).toContain(`wrote ${join(configDir, 'config.toml')}`);
      expect(readFileSync(join(configDir, 'config.toml'), 'utf8')).toContain('backend = "native"');
      expect(first.stdout).toContain('containerd 1.6 is installed: config version 2');
      expect(first.stdout).toContain('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tsshim]');
      expect(first.stdout).toContain(`runtime_path = "${join(bin, 'containerd-shim-tsshim-v2')}"`);
      expect(first.stdout).toContain(`ConfigPath = "${join(configDir, 'config.toml')}"`);
      expect(first.stdout).toContain('kind: RuntimeClass');
      expect(first.stdout).toContain('handler: tsshim');
      expect(first.stdout).toContain('"runtimes": {');

      // containerd 2.x takes config version 3, with CRI's runtime plugin split out
      const cd21 = await containerdBinaries('2.1');
      const v3 = await installSh(['--prefix', prefix, '--config-dir', configDir, '--no-build', '--containerd', cd21.containerd]);
      expect(v3.exitCode, v3.stderr).toBe(0);
      expect(v3.stdout).toContain('containerd 2.1 is installed: config version 3');
      expect(v3.stdout).toContain('version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tsshim]');

      // the operator's file survives a reinstall byte for byte
      const mine = '# the operator\'s own\nbackend = "native"\n[shim]\nlog_level = "debug"\n';
      writeFileSync(join(configDir, 'config.toml'), mine);
      const again = await installSh(['--prefix', prefix, '--config-dir', configDir, '--no-build']);
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stdout).toContain('kept the existing');
      expect(again.stdout).toContain(`${firstRelease} is already there; keeping it`);
      expect(readFileSync(join(configDir, 'config.toml'), 'utf8')).toBe(mine);
      expect(readlinkSync(join(lib, 'current'))).toBe(firstRelease);
    });

    it('a failing install leaves nothing behind: a conflicting file in PREFIX/bin, a config dir it cannot make', async () => {
      const p = join(work, 'p-conflict');
      mkdirSync(join(p, 'bin'), { recursive: true });
      writeFileSync(join(p, 'bin', 'tsrun'), 'not ours\n');
      const conflict = await installSh(['--prefix', p, '--config-dir', join(work, 'cfg-conflict'), '--no-build']);
      expect(conflict.exitCode).toBe(1);
      expect(conflict.stderr).toContain(`${join(p, 'bin', 'tsrun')} exists and is not a link`);
      expect(listTree(p)).toEqual(['bin', 'bin/tsrun']);

      // fails after the release was staged and renamed into place: all of it is rolled back
      const q = join(work, 'p-late');
      writeFileSync(join(work, 'a-file'), '');
      const late = await installSh(['--prefix', q, '--config-dir', join(work, 'a-file', 'tsshim'), '--no-build']);
      expect(late.exitCode).toBe(1);
      expect(late.stdout).toContain('staging the release');
      expect(late.stderr).toMatch(/ERROR: .*ENOTDIR/);
      expect(existsSync(q)).toBe(false);
    });
  });

  it('npm install -g of the packed project does the same install: C parts compiled on install, release in PREFIX/lib/tsshim, links in PREFIX/bin', async () => {
    const packDir = join(work, 'pack');
    mkdirSync(packDir);
    const pack = await execa('npm', ['pack', '--pack-destination', packDir], { cwd: repoRoot, reject: false, timeout: 300_000 });
    expect(pack.exitCode, String(pack.stderr)).toBe(0);
    const tarball = join(packDir, readdirSync(packDir).find((f) => f.endsWith('.tgz'))!);
    const listing = execFileSync('tar', ['tzf', tarball]).toString().split('\n');
    // no C binaries and no code caches in the package: they are made where it is installed
    expect(listing.filter((f) => f.endsWith('/tsshim-exec') || f.endsWith('/containerd-shim-tsshim-v2') || f.endsWith('.cache'))).toEqual([]);
    expect(listing).toContain('package/src/launcher/launcher.c');
    expect(existsSync(join(repoRoot, 'dist/packed.json'))).toBe(false);

    const npmPrefix = join(work, 'npm-prefix');
    const npmConfig = join(work, 'npm-etc');
    const inst = await execa('npm', ['install', '-g', '--prefix', npmPrefix, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], {
      reject: false,
      timeout: 300_000,
      env: { TSSHIM_CONFIG_DIR: npmConfig },
    });
    expect(inst.exitCode, `${inst.stdout}\n${inst.stderr}`).toBe(0);
    expect(String(inst.stdout)).toContain('config version 2');
    const npmLib = join(npmPrefix, 'lib', 'tsshim');
    const release = readlinkSync(join(npmLib, 'current'));
    const packageDir = join(npmPrefix, 'lib', 'node_modules', 'tsshim');
    // the launcher and the executor were compiled by this install, into the package, then copied
    expect(existsSync(join(packageDir, 'dist/native/tsshim-exec'))).toBe(true);
    for (const name of ['containerd-shim-tsshim-v2', 'containerd-shim-tsshim-runc-v2', 'tsrun']) {
      expect(realpathSync(join(npmPrefix, 'bin', name)).startsWith(`${realpathSync(join(npmLib, release))}/bin/`)).toBe(true);
    }
    // the release stands alone: npm may replace its package dir on the next install
    expect(filesContaining(npmLib, packageDir)).toEqual([]);
    expect(filesContaining(npmLib, repoRoot)).toEqual([]);
    expect((await execa(join(npmPrefix, 'bin', 'tsrun'), [], { env: { TSSHIM_CODE_CACHE_CHECK: '1' } })).stdout.trim()).toBe('hit');
    expect(readFileSync(join(npmConfig, 'config.toml'), 'utf8')).toContain('backend = "native"');

    // and away again: our part with tsshim-install --uninstall, npm's with npm uninstall
    const un = await execa(join(npmPrefix, 'bin', 'tsshim-install'), ['--uninstall', '--prefix', npmPrefix], { reject: false });
    expect(un.exitCode, String(un.stderr)).toBe(0);
    const npmUn = await execa('npm', ['uninstall', '-g', '--prefix', npmPrefix, 'tsshim'], { reject: false, timeout: 120_000 });
    expect(npmUn.exitCode, String(npmUn.stderr)).toBe(0);
    expect(listTree(npmPrefix).filter((f) => !['bin', 'lib', 'lib/node_modules'].includes(f))).toEqual([]);
  }, 600_000);

  describe('containerd with PATH = the system default + PREFIX/bin', () => {
    let cd: PrivateContainerd;
    const configPath = (): string => join(configDir, 'config.toml');

    beforeAll(async () => {
      cd = await PrivateContainerd.launch({ pathPrefix: [bin], basePath: SYSTEM_PATH });
      containerds.push(cd);
    }, 180_000);

    it('runs a container through the installed shim (ctr)', async () => {
      const r = await cd.ctrOk(['run', '--rm', '--runtime', RUNTIME, '--runtime-config-path', configPath(), BUSYBOX_IMAGE, 'inst-echo', 'sh', '-c', 'echo hello-from-pid-$$']);
      expect(r.stdout.trim()).toBe('hello-from-pid-1');
      // and an alias of the installed launcher
      const alias = await cd.ctrOk(['run', '--rm', '--runtime', 'io.containerd.tsshim-native.v2', BUSYBOX_IMAGE, 'inst-alias', 'echo', 'alias-ok']);
      expect(alias.stdout.trim()).toBe('alias-ok');
    });

    it('runs a CRI pod through the installed shim', async () => {
      const env: CriContainerd = await launchCriContainerd({ line: '1.6', pathPrefix: [bin], basePath: SYSTEM_PATH });
      containerds.push(env.cd);
      const pod = podConfig(env, 'installed');
      const sandboxId = await env.cri.runPodSandbox(pod, 'tsshim-native');
      const id = await startContainer(env, sandboxId, pod, containerConfig('app', ['sh', '-c', 'echo pod-ok; sleep 3600']));
      const facts = await podFacts(env, sandboxId, [id]);
      expect(releaseOf(facts.shimPid, realpathSync(lib))).toEqual([firstRelease]);
      const exec = await env.cri.execSync(id, ['echo', 'exec-ok'], 10);
      expect(Buffer.from(exec.stdout).toString().trim()).toBe('exec-ok');
      await env.cri.removeAllPods();
      await env.cd.destroy();
      containerds.splice(containerds.indexOf(env.cd), 1);
    });

    it('upgrades in place: a running shim keeps its release (exec, metrics, its exit), a new container starts on the new one, the old release goes once unused', async () => {
      await cd.ctrOk(['run', '-d', '--runtime', RUNTIME, '--runtime-config-path', configPath(), BUSYBOX_IMAGE, 'inst-old', 'sh', '-c', 'trap "exit 7" TERM; while :; do sleep 0.2; done']);
      const [oldShim] = cd.shimProcessesFor('inst-old');
      expect(oldShim).toBeDefined();
      const realLib = realpathSync(lib);
      expect(releaseOf(oldShim!.pid, realLib)).toEqual([firstRelease]);

      // the second build: this tree with another version, installed from its own checkout
      const tree = join(work, 'tree-2');
      copyTreeWithVersion(tree, '0.1.0-upgrade.2');
      const up = await installSh(['--prefix', prefix, '--config-dir', configDir], { script: join(tree, 'scripts/install.sh') });
      expect(up.exitCode, `${up.stdout}\n${up.stderr}`).toBe(0);
      const secondRelease = readlinkSync(join(lib, 'current'));
      expect(secondRelease.startsWith('0.1.0-upgrade.2+')).toBe(true);
      expect(up.stdout).toContain(`(was ${firstRelease})`);
      // the old release stays while its shim runs, and the install says who holds it
      expect(up.stdout).toContain(`kept ${firstRelease}: still in use`);
      expect(up.stdout).toContain(`pid ${oldShim!.pid}`);
      expect(filesContaining(prefix, tree)).toEqual([]);

      // the old shim still serves its container: exec, and metrics (a lazy chunk of its release, loaded now)
      const exec = await cd.ctrOk(['task', 'exec', '--exec-id', 'after-upgrade', 'inst-old', 'echo', 'still-served']);
      expect(exec.stdout.trim()).toBe('still-served');
      const metrics = await cd.ctrOk(['task', 'metrics', 'inst-old']);
      expect(metrics.stdout).toContain('memory');
      expect(releaseOf(oldShim!.pid, realLib)).toEqual([firstRelease]);

      // a new container gets a new shim on the new release
      await cd.ctrOk(['run', '-d', '--runtime', RUNTIME, '--runtime-config-path', configPath(), BUSYBOX_IMAGE, 'inst-new', 'sleep', '600']);
      const [newShim] = cd.shimProcessesFor('inst-new');
      expect(newShim).toBeDefined();
      expect(newShim!.pid).not.toBe(oldShim!.pid);
      expect(releaseOf(newShim!.pid, realLib)).toEqual([secondRelease]);
      const v = await execa(join(bin, 'containerd-shim-tsshim-v2'), ['-v']);
      expect(v.stdout).toContain('Version: 0.1.0-upgrade.2');

      // the old container's exit is reported by the old shim
      const api = cd.api();
      const waited = api.wait('inst-old', '', 20_000);
      await api.kill('inst-old', 15);
      expect((await waited).exitStatus).toBe(7);
      await cd.ctrOk(['task', 'rm', 'inst-old']);
      await cd.ctrOk(['container', 'rm', 'inst-old']);
      await waitUntil(async () => !isLive(oldShim!.pid), { timeoutMs: 10_000, intervalMs: 50, what: 'the old shim to exit' });

      // the next install removes the release nobody uses any more
      const again = await installSh(['--prefix', prefix, '--config-dir', configDir, '--no-build'], { script: join(tree, 'scripts/install.sh') });
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stdout).toContain(`removed ${firstRelease} (no longer in use)`);
      expect(readdirSync(lib).sort()).toEqual([secondRelease, 'current', 'installed.json'].sort());
    }, 300_000);

    it('uninstall refuses while a shim of the install runs, naming it; then removes everything but the config', async () => {
      const [shim] = cd.shimProcessesFor('inst-new');
      expect(shim).toBeDefined();
      const refused = await installSh(['--uninstall', '--prefix', prefix, '--config-dir', configDir]);
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toContain('shims of this install are still running');
      expect(refused.stderr).toContain(`pid ${shim!.pid}:`);
      expect(existsSync(join(bin, 'containerd-shim-tsshim-v2'))).toBe(true);

      await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', 'inst-new']);
      await waitUntil(async () => (await cd.listTasks()).find((t) => t.id === 'inst-new')?.status === 'STOPPED', { timeoutMs: 10_000, intervalMs: 50, what: 'inst-new to stop' });
      await cd.ctrOk(['task', 'rm', 'inst-new']);
      await cd.ctrOk(['container', 'rm', 'inst-new']);
      await waitUntil(async () => !isLive(shim!.pid), { timeoutMs: 10_000, intervalMs: 50, what: 'the shim to exit' });

      const done = await installSh(['--uninstall', '--prefix', prefix, '--config-dir', configDir]);
      expect(done.exitCode, done.stderr).toBe(0);
      expect(done.stdout).toContain(`kept ${join(configDir, 'config.toml')}`);
      // the prefix was made by the install: nothing of it is left
      expect(existsSync(prefix)).toBe(false);
      expect(readdirSync(configDir)).toEqual(['config.toml']);
      expect(resolve(configDir)).toBe(configDir);
    });
  });
});
