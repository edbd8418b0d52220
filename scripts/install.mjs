// Installs tsshim on a node, or takes it away again (`--uninstall`). Run through
// scripts/install.sh, which checks for root, Node >= 20.16 and gcc first.
//
// What goes where (PREFIX: --prefix, default /usr/local):
//   PREFIX/lib/tsshim/<version>+<build>/   one self-contained release: bin/ (the C launcher,
//       its alias links, tsrun, the Node entry), dist/ (the bundles of this build with their
//       code caches, the native executor), node_modules/ (the production dependencies
//       only: ffi-rs's native addon is loaded from there), release.json
//   PREFIX/lib/tsshim/current              symlink to the release new shims run
//   PREFIX/lib/tsshim/installed.json       what this script made (links, dirs), for --uninstall
//   PREFIX/bin/<name>                      symlinks to current/bin/<name>: the launcher
//       containerd-shim-tsshim-v2, every alias of it in bin/, tsrun
//   CONFIG_DIR/config.toml                 (--config-dir, default /etc/tsshim) written only
//       when there is none; never overwritten, kept by --uninstall
//
// Upgrade in place: a new build goes to a new release dir and `current` flips to it in one
// rename. A running shim keeps using the release it started from: the launcher resolves its
// own real path at start (src/launcher/launcher.c), so the daemon it spawns, the lazy chunks
// the daemon loads later and the executor it runs all come from that release dir. Old
// release dirs are removed by a later install or uninstall once no process uses them (maps
// a file there, runs one, or has one on its command line).
//
// Nothing half-installed: the release is staged under a temporary name next to its final
// place and renamed; links are checked before anything changes and replaced one by one
// with rename (each link is always either the old or the new one).
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const LAUNCHER = 'containerd-shim-tsshim-v2';
const RUNTIME_TYPE = 'io.containerd.tsshim.v2';
/** containerd's service PATH (its systemd unit sets none): where it finds shims by name */
const SERVICE_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const RELEASE_RE = /^\d[^/]*\+[0-9a-f]{12}$/;

class InstallError extends Error {
  constructor(message, code = 1) {
    super(message);
    this.exitCode = code;
  }
}

function usage() {
  return `usage: scripts/install.sh [--prefix DIR] [--config-dir DIR] [--no-build] [--force]
       scripts/install.sh --uninstall [--prefix DIR] [--force]

  --prefix DIR      install under DIR (default /usr/local): DIR/lib/tsshim, links in DIR/bin
  --config-dir DIR  where tsshim's config.toml goes if there is none (default /etc/tsshim;
                    env TSSHIM_CONFIG_DIR)
  --containerd BIN  the containerd whose config version the snippet uses (default: containerd on PATH)
  --no-build        install the existing build (dist/release.json) as it is
  --force           install: replace files in DIR/bin that are not tsshim's links;
                    uninstall: even while shims of this install are running
  --uninstall       remove what was installed under DIR (keeps the config)
`;
}

function parseArgs(argv) {
  const opts = { containerd: 'containerd', prefix: '/usr/local', configDir: process.env.TSSHIM_CONFIG_DIR || '/etc/tsshim', build: true, force: false, uninstall: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new InstallError(`${name} needs a value\n${usage()}`, 64);
      return v;
    };
    switch (name) {
      case '--prefix': opts.prefix = value(); break;
      case '--config-dir': opts.configDir = value(); break;
      case '--containerd': opts.containerd = value(); break;
      case '--no-build': opts.build = false; break;
      case '--force': opts.force = true; break;
      case '--uninstall': opts.uninstall = true; break;
      case '-h': case '--help': process.stdout.write(usage()); process.exit(0); break;
      default: throw new InstallError(`unknown argument ${arg}\n${usage()}`, 64);
    }
  }
  opts.prefix = path.resolve(opts.prefix);
  opts.configDir = path.resolve(opts.configDir);
  return opts;
}

const say = (msg) => process.stdout.write(`tsshim install: ${msg}\n`);

/** everything about one install location */
function layout(prefix) {
  const lib = path.join(prefix, 'lib', 'tsshim');
  return { prefix, bin: path.join(prefix, 'bin'), libParent: path.join(prefix, 'lib'), lib, current: path.join(lib, 'current'), record: path.join(lib, 'installed.json') };
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function lstat(file) {
  try {
    return fs.lstatSync(file);
  } catch {
    return undefined;
  }
}

function readlink(file) {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** a symlink made under a temporary name and renamed over `link`: never absent, never half */
function replaceSymlink(target, link) {
  const tmp = `${link}.tsshim-${process.pid}-${randomBytes(3).toString('hex')}`;
  fs.symlinkSync(target, tmp);
  try {
    fs.renameSync(tmp, link);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

// ------------------------------------------------------------------------------------------
// Build
// ------------------------------------------------------------------------------------------

function newestMtime(dir) {
  let newest = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, fs.lstatSync(p).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

/** why the checkout's build cannot be installed as it is; undefined when it can */
function staleBuild() {
  const manifest = readJson(path.join(repo, 'dist/release.json'));
  if (!manifest) return 'no build yet';
  if (manifest.node !== process.execPath || manifest.nodeVersion !== process.version) return `built by another Node (${manifest.nodeVersion} at ${manifest.node})`;
  const built = fs.statSync(path.join(repo, 'dist/release.json')).mtimeMs;
  const buildScripts = fs.readdirSync(path.join(repo, 'scripts')).filter((f) => /^build.*\.mjs$/.test(f)).map((f) => `scripts/${f}`);
  for (const input of ['src', 'bin', 'package.json', 'package-lock.json', ...buildScripts]) {
    const p = path.join(repo, input);
    if (!fs.existsSync(p)) continue; // the packed project has no package-lock.json
    const t = fs.statSync(p).isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs;
    if (t > built) return `${input} changed since the last build`;
  }
  // (code caches are made anew in the release: the packed project ships none)
  for (const f of manifest.files) if (!f.endsWith('.cache') && !fs.existsSync(path.join(repo, f))) return `${f} is missing`;
  if (!manifest.bin) return 'built by an older build script';
  return undefined;
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.error) throw new InstallError(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new InstallError(`${what} failed (exit ${r.status ?? r.signal}):\n${(r.stdout + r.stderr).trim().split('\n').slice(-30).join('\n')}`);
  return r.stdout;
}

function ensureBuild(opts) {
  const why = staleBuild();
  if (!why) return say('the build is up to date');
  if (!opts.build) throw new InstallError(`--no-build, but the build cannot be installed as it is: ${why} (run npm run build)`);
  if (!fs.existsSync(path.join(repo, 'node_modules/esbuild'))) {
    say('npm ci (node_modules is missing)');
    run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], 'npm ci');
  }
  say(`building (${why})`);
  run(process.execPath, ['scripts/build.mjs'], 'the build (node scripts/build.mjs)');
  const still = staleBuild();
  if (still) throw new InstallError(`the build did not produce an installable release: ${still}`);
}

// ------------------------------------------------------------------------------------------
// Staging a release
// ------------------------------------------------------------------------------------------

/**
 * The production dependencies' package dirs, relative to the repo, found the way Node
 * resolves them (node_modules of the package, then of each dir above, up to the repo):
 * package.json's dependencies and the optional ones that are installed (ffi-rs's native
 * addon for this platform), recursively. Works in a checkout and in the installed npm
 * package alike, without asking npm.
 */
function productionPackages() {
  const found = new Set();
  const resolve = (name, fromDir) => {
    for (let dir = fromDir; ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
      if (dir === repo || path.dirname(dir) === dir) return undefined;
    }
  };
  const visit = (pkgDir) => {
    const pkg = readJson(path.join(pkgDir, 'package.json')) ?? {};
    const wanted = [...Object.keys(pkg.dependencies ?? {}).map((n) => [n, false]), ...Object.keys(pkg.optionalDependencies ?? {}).map((n) => [n, true])];
    for (const [name, optional] of wanted) {
      const dir = resolve(name, pkgDir);
      if (!dir) {
        if (optional) continue;
        throw new InstallError(`${name} (a dependency of ${pkg.name}) is not installed in node_modules (npm ci)`);
      }
      const rel = path.relative(repo, dir);
      if (found.has(rel)) continue;
      found.add(rel);
      visit(dir);
    }
  };
  visit(repo);
  if (!found.has(path.join('node_modules', 'ffi-rs'))) throw new InstallError('ffi-rs is not installed in node_modules (npm ci)');
  return [...found].sort();
}

/** copies a package dir without its node_modules (its nested dependencies are listed on their own) */
function copyPackage(from, to) {
  fs.cpSync(from, to, {
    recursive: true,
    dereference: true,
    filter: (src) => path.relative(from, src).split(path.sep)[0] !== 'node_modules',
  });
}

/**
 * The commands for PREFIX/bin, as the build found them in bin/ (dist/release.json): the
 * launcher and its aliases (links to it: an alias added to bin/ comes along; tsrun is one,
 * the launcher runs its front end under that name).
 */
function binEntries(manifest) {
  const entries = [];
  for (const { name, aliasOf } of manifest.bin) {
    if (aliasOf !== undefined && aliasOf !== LAUNCHER) throw new InstallError(`bin/${name} links to ${aliasOf}; only aliases of ${LAUNCHER} are expected there`);
    entries.push({ name, alias: aliasOf !== undefined });
  }
  if (!entries.some((e) => e.name === LAUNCHER)) throw new InstallError(`the build has no bin/${LAUNCHER}`);
  return entries;
}

/** sha256 over the release's files (names, modes, contents), code caches left out: they differ per build run */
function releaseHash(dir) {
  const h = createHash('sha256');
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = path.join(rel, e.name);
      const p = path.join(dir, r);
      if (e.name.endsWith('.cache') || r === 'release.json') continue;
      if (e.isDirectory()) walk(r);
      else if (e.isSymbolicLink()) h.update(`L ${r} ${fs.readlinkSync(p)}\n`);
      else h.update(`F ${r} ${fs.statSync(p).mode & 0o777} `).update(fs.readFileSync(p)).update('\n');
    }
  };
  walk('');
  return h.digest('hex').slice(0, 12);
}

/** every symlink inside `dir` must resolve inside it: the release stands on its own */
function checkSelfContained(dir) {
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSymbolicLink()) {
        const target = path.resolve(path.dirname(p), fs.readlinkSync(p));
        if (path.relative(dir, target).startsWith('..')) throw new InstallError(`${path.relative(dir, p)} points outside the release (${target})`);
      } else if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
}

/** the boot loader's verdict on its code cache, with the release's node and flags */
function codeCacheOutcome(stage, node, bootRel, flags) {
  const r = spawnSync(node, [...flags, path.join(stage, bootRel)], { env: { ...process.env, TSSHIM_CODE_CACHE_CHECK: '1' }, encoding: 'utf8' });
  return (r.stdout || '').trim() || `error: ${(r.stderr || '').trim()}`;
}

/**
 * The code caches, made in the release's final place by the Node it runs under (the build's,
 * ensureBuild checked), with its own files: a cache records the path of the script it was
 * made for, and one made in the checkout would point back there. Then each is checked the
 * way the programs load it (their flags); one V8 does not take is removed, not installed.
 */
async function makeCodeCaches(releaseDir, manifest) {
  const { produceCodeCache } = await import('./build-cached-bundle.mjs');
  const flags = daemonFlags();
  for (const [name, program] of Object.entries(manifest.programs)) {
    const cache = path.join(releaseDir, program.cache);
    try {
      await produceCodeCache(repo, name, path.join(releaseDir, program.boot), cache);
    } catch (err) {
      say(`warning: no code cache for ${name} (${err instanceof Error ? err.message : err}); it compiles at each start instead`);
      continue;
    }
    const outcome = codeCacheOutcome(releaseDir, manifest.node, program.boot, flags);
    if (outcome !== 'hit') {
      say(`warning: ${program.boot}: code cache ${outcome}; installing without it (costs start-up time only)`);
      fs.rmSync(cache, { force: true });
    }
  }
}

/** the daemon's Node flags, as the launcher passes them (the header the build generated) */
function daemonFlags() {
  const header = fs.readFileSync(path.join(repo, 'dist/launcher/launcher-config.h'), 'utf8');
  const line = header.split('\n').find((l) => l.startsWith('#define TSSHIM_DAEMON_FLAGS '));
  if (!line) throw new InstallError('dist/launcher/launcher-config.h has no TSSHIM_DAEMON_FLAGS');
  return [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
}

function stageRelease(stage, manifest) {
  fs.mkdirSync(stage, { recursive: true });
  // code caches are made anew once the release is in its place (makeCodeCaches)
  for (const f of manifest.files.filter((x) => !x.endsWith('.cache'))) {
    fs.mkdirSync(path.dirname(path.join(stage, f)), { recursive: true });
    fs.copyFileSync(path.join(repo, f), path.join(stage, f));
    fs.chmodSync(path.join(stage, f), fs.statSync(path.join(repo, f)).mode & 0o777);
  }
  fs.copyFileSync(path.join(repo, 'bin/tsshim-node.mjs'), path.join(stage, 'bin/tsshim-node.mjs'));
  for (const e of binEntries(manifest)) {
    const dest = path.join(stage, 'bin', e.name);
    if (e.alias) fs.symlinkSync(LAUNCHER, dest);
    else if (!fs.existsSync(dest)) {
      fs.copyFileSync(path.join(repo, 'bin', e.name), dest);
      fs.chmodSync(dest, fs.statSync(path.join(repo, 'bin', e.name)).mode & 0o777);
    }
  }
  for (const dir of productionPackages()) copyPackage(path.join(repo, dir), path.join(stage, dir));
  const pkg = readJson(path.join(repo, 'package.json'));
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify({ name: pkg.name, version: pkg.version, private: true, type: pkg.type, license: pkg.license, dependencies: pkg.dependencies }, null, 2)}\n`);
  checkSelfContained(stage);

  // it runs: the launcher finds its Node entry from its own path, inside the stage
  const v = spawnSync(path.join(stage, 'bin', LAUNCHER), ['-v'], { encoding: 'utf8' });
  if (v.status !== 0 || !v.stdout.includes(`Version: ${manifest.version}`)) throw new InstallError(`the staged shim does not run: ${(v.stdout + v.stderr).trim()}`);
}

// ------------------------------------------------------------------------------------------
// Who uses a release
// ------------------------------------------------------------------------------------------

/**
 * Processes using files under `dir` (a real path): their executable is there, they map a
 * file there (ffi-rs's addon in a shim daemon), or an argument names one (the daemon's
 * boot loader: Node reads scripts instead of mapping them, and the daemon requires its
 * lazy chunks later).
 */
function processesUsing(dir) {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const base = `/proc/${pid}`;
    let cmdline = [];
    try {
      cmdline = fs.readFileSync(`${base}/cmdline`, 'latin1').split('\0').filter(Boolean);
    } catch {
      continue; // gone
    }
    let uses = cmdline.some((a) => a.startsWith(prefix));
    if (!uses) uses = (readlink(`${base}/exe`) ?? '').startsWith(prefix);
    if (!uses) {
      try {
        uses = fs.readFileSync(`${base}/maps`, 'latin1').includes(` ${prefix}`);
      } catch {
        // gone, or a kernel thread
      }
    }
    if (uses) found.push({ pid, command: cmdline.join(' ').slice(0, 160) });
  }
  return found;
}

/**
 * Waiting spare daemons (src/shim/spare.ts: `tsshim-spare -address … -control <socket>`) of a
 * release hold no container: an upgrade or an uninstall stops them (and removes their control
 * sockets) instead of waiting for them. A start that was adopting one falls back to a spawn.
 */
function stopSpares(dir) {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const stopped = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let argv;
    try {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    if (argv[0] !== 'tsshim-spare') continue;
    let ours = (readlink(`/proc/${pid}/exe`) ?? '').startsWith(prefix);
    if (!ours) {
      try {
        ours = fs.readFileSync(`/proc/${pid}/maps`, 'latin1').includes(` ${prefix}`);
      } catch {
        continue;
      }
    }
    if (!ours) continue;
    try {
      process.kill(pid, 'SIGKILL');
      stopped.push(pid);
    } catch {
      continue;
    }
    const control = argv[argv.indexOf('-control') + 1];
    if (argv.includes('-control') && control?.startsWith('/')) fs.rmSync(control, { force: true });
  }
  // a killed process keeps its mappings until it is reaped by its parent (init): wait briefly
  const deadline = Date.now() + 2000;
  while (stopped.some((pid) => fs.existsSync(`/proc/${pid}/maps`)) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
}

function realDir(dir) {
  try {
    return fs.realpathSync(dir);
  } catch {
    return dir;
  }
}

function describe(procs) {
  return procs.map((p) => `  pid ${p.pid}: ${p.command}`).join('\n');
}

/** removes release dirs other than `keep` that no process uses; leftover staging dirs too */
function prune(l, keep) {
  if (!fs.existsSync(l.lib)) return;
  for (const name of fs.readdirSync(l.lib)) {
    const dir = path.join(l.lib, name);
    const staging = /^\.staging-(\d+)-/.exec(name);
    if (staging) {
      let alive = true;
      try {
        process.kill(Number(staging[1]), 0);
      } catch {
        alive = false;
      }
      if (!alive || Number(staging[1]) === process.pid) fs.rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (!RELEASE_RE.test(name) || name === keep) continue;
    stopSpares(realDir(dir));
    const users = processesUsing(realDir(dir));
    if (users.length > 0) {
      say(`kept ${name}: still in use\n${describe(users)}`);
      continue;
    }
    fs.rmSync(dir, { recursive: true, force: true });
    say(`removed ${name} (no longer in use)`);
  }
}

/**
 * One install or uninstall at a time per prefix: another one could otherwise prune the
 * release this one just put in place before it becomes current. A lock file with our pid;
 * one left by a process that is gone is taken over.
 */
function lock(l) {
  const file = path.join(l.lib, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    const holder = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
    let alive = false;
    try {
      process.kill(holder, 0);
      alive = holder !== process.pid;
    } catch {
      alive = false;
    }
    if (alive) throw new InstallError(`another install or uninstall (pid ${holder}) is running on ${l.prefix}`);
    fs.rmSync(file, { force: true });
  }
  throw new InstallError(`cannot take the lock ${file}`);
}

// ------------------------------------------------------------------------------------------
// Config and snippets
// ------------------------------------------------------------------------------------------

const DEFAULT_CONFIG = `# tsshim's configuration (written by scripts/install.sh because there was none;
# it is never overwritten and --uninstall keeps it). All keys are optional.
backend = "native"          # native | runc | crun

[shim]
group = "pod"               # pod: one shim per pod; container; namespace: one shim for all
log_level = "info"

[runc]
binary = "runc"

[crun]
binary = "crun"
`;

/** writes the config only if there is none: linked into place, which fails if a file appeared meanwhile */
function writeConfigIfAbsent(configDir) {
  const file = path.join(configDir, 'config.toml');
  if (lstat(file)) return { file, written: false };
  fs.mkdirSync(configDir, { recursive: true, mode: 0o755 });
  const tmp = `${file}.tsshim-${process.pid}`;
  fs.writeFileSync(tmp, DEFAULT_CONFIG, { mode: 0o644 });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    return { file, written: false };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return { file, written: true };
}

/** the installed containerd's release line, from `containerd --version`; undefined without one */
function containerdVersion(binary) {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const m = /\s(v?)(\d+)\.(\d+)\.\d+/.exec(r.stdout);
  return m ? { major: Number(m[2]), minor: Number(m[3]), text: `${m[2]}.${m[3]}` } : undefined;
}

function snippets(opts, l, configFile) {
  const cd = containerdVersion(opts.containerd);
  const configVersion = cd && cd.major >= 2 ? 3 : 2;
  const onServicePath = SERVICE_PATH.includes(l.bin);
  const optionsPath = opts.configDir === '/etc/tsshim' ? undefined : configFile;
  const table = configVersion === 3 ? 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes.tsshim' : 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tsshim';
  const toml = [
    `version = ${configVersion}`,
    `[${table}]`,
    `  runtime_type = "${RUNTIME_TYPE}"`,
    ...(onServicePath ? [] : [`  runtime_path = "${path.join(l.bin, LAUNCHER)}"   # ${l.bin} is not on containerd's default PATH`]),
    `  [${table}.options]`,
    `    ConfigPath = "${optionsPath ?? '/etc/tsshim/config.toml'}"`,
  ].join('\n');
  const which = cd ? `containerd ${cd.text} is installed: config version ${configVersion}` : `no containerd found (${opts.containerd}): config version ${configVersion} (1.6/1.7; containerd 2.x takes version 3)`;
  return `
containerd (${which}), in /etc/containerd/config.toml, then restart containerd:

${toml}

Kubernetes (RuntimeClass; pods with runtimeClassName: tsshim then run under tsshim):

apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: tsshim
handler: tsshim

Docker (23+), in /etc/docker/daemon.json, then restart dockerd; docker run --runtime tsshim ...:

{
  "runtimes": {
    "tsshim": {
      "runtimeType": "${onServicePath ? RUNTIME_TYPE : path.join(l.bin, LAUNCHER)}"${optionsPath ? `,\n      "options": { "ConfigPath": "${optionsPath}" }` : ''}
    }
  }
}

ctr: ctr run --runtime ${onServicePath ? RUNTIME_TYPE : path.join(l.bin, LAUNCHER)} <image> <id> <command>
`;
}

// ------------------------------------------------------------------------------------------
// Install
// ------------------------------------------------------------------------------------------

/** the link PREFIX/bin/<name> for `name` */
function linkTarget(l, name) {
  return path.relative(l.bin, path.join(l.current, 'bin', name));
}

/** is `file` one of our links (into this install's lib/tsshim)? */
function isOurLink(l, file) {
  const target = readlink(file);
  if (target === undefined) return false;
  const abs = path.resolve(path.dirname(file), target);
  return !path.relative(l.lib, abs).startsWith('..');
}

async function install(opts) {
  const l = layout(opts.prefix);
  ensureBuild(opts);
  const manifest = readJson(path.join(repo, 'dist/release.json'));
  const entries = binEntries(manifest);
  const record = readJson(l.record) ?? { links: [], createdDirs: [] };

  // before anything changes: every link we are about to place may replace only our own
  for (const e of entries) {
    const file = path.join(l.bin, e.name);
    if (lstat(file) && !isOurLink(l, file) && !opts.force) {
      throw new InstallError(`${file} exists and is not a link into ${l.lib} (another installation of tsshim?); remove it or run with --force`);
    }
  }

  const createdDirs = new Set(record.createdDirs);
  for (const dir of [opts.prefix, l.bin, l.libParent, l.lib]) {
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { mode: 0o755, recursive: dir === opts.prefix });
      createdDirs.add(dir);
    }
  }
  const unlock = lock(l);
  try {
    await installLocked(opts, l, manifest, entries, record, createdDirs);
  } finally {
    unlock();
  }
}

async function installLocked(opts, l, manifest, entries, record, createdDirs) {
  const stage = path.join(l.lib, `.staging-${process.pid}-${randomBytes(4).toString('hex')}`);
  let releaseDir;
  let createdRelease = false;
  let config;
  let previous;
  let flipped = false;
  const newLinks = [];
  try {
    say(`staging the release (${manifest.version})`);
    stageRelease(stage, manifest);
    const name = `${manifest.version}+${releaseHash(stage)}`;
    fs.writeFileSync(path.join(stage, 'release.json'), `${JSON.stringify({ name, version: manifest.version, node: manifest.node, nodeVersion: manifest.nodeVersion, files: manifest.files }, null, 2)}\n`);
    releaseDir = path.join(l.lib, name);
    if (fs.existsSync(releaseDir)) {
      // the same build again: the one in place is identical (and may be running)
      say(`${name} is already there; keeping it`);
      fs.rmSync(stage, { recursive: true, force: true });
    } else {
      fs.renameSync(stage, releaseDir);
      createdRelease = true;
      await makeCodeCaches(releaseDir, manifest);
    }
    config = writeConfigIfAbsent(opts.configDir);

    // the switch: new shims start from the new release from here on
    previous = readlink(l.current);
    replaceSymlink(name, l.current);
    flipped = true;
    for (const e of entries) {
      const link = path.join(l.bin, e.name);
      if (!lstat(link)) newLinks.push(link);
      replaceSymlink(linkTarget(l, e.name), link);
    }
    // links of an earlier install that this release no longer has
    for (const old of record.links) {
      if (!entries.some((e) => e.name === old) && isOurLink(l, path.join(l.bin, old))) fs.rmSync(path.join(l.bin, old), { force: true });
    }
    fs.writeFileSync(`${l.record}.tmp`, `${JSON.stringify({ prefix: opts.prefix, links: entries.map((e) => e.name), createdDirs: [...createdDirs] }, null, 2)}\n`);
    fs.renameSync(`${l.record}.tmp`, l.record);
    say(`installed ${releaseDir}${previous && previous !== name ? ` (was ${previous})` : ''}`);
    say(`linked ${entries.map((e) => e.name).join(', ')} in ${l.bin}`);
  } catch (err) {
    // back to what was there: the previous release current, its links, no new files
    for (const link of newLinks) fs.rmSync(link, { force: true });
    if (flipped) {
      if (previous) replaceSymlink(previous, l.current);
      else fs.rmSync(l.current, { force: true });
    }
    if (config?.written) fs.rmSync(config.file, { force: true });
    fs.rmSync(stage, { recursive: true, force: true });
    if (createdRelease) fs.rmSync(releaseDir, { recursive: true, force: true });
    // a first install that failed leaves nothing: the dirs it made are empty again
    if (!fs.existsSync(l.record)) {
      fs.rmSync(path.join(l.lib, '.lock'), { force: true });
      for (const dir of [l.lib, l.libParent, l.bin, opts.prefix]) {
        if (!createdDirs.has(dir) || record.createdDirs.includes(dir)) continue;
        try {
          fs.rmdirSync(dir);
        } catch {
          // not empty
        }
      }
    }
    throw err;
  }

  prune(l, path.basename(releaseDir));
  say(config.written ? `wrote ${config.file}` : `kept the existing ${config.file}`);
  process.stdout.write(snippets(opts, l, config.file));
}

// ------------------------------------------------------------------------------------------
// Uninstall
// ------------------------------------------------------------------------------------------

function uninstall(opts) {
  const l = layout(opts.prefix);
  if (!fs.existsSync(l.lib)) {
    say(`nothing installed under ${opts.prefix}`);
    return;
  }
  const unlock = lock(l);
  try {
    uninstallLocked(opts, l);
  } catch (err) {
    unlock();
    throw err;
  }
  // the lock went with lib/tsshim
}

function uninstallLocked(opts, l) {
  stopSpares(realDir(l.lib));
  const users = processesUsing(realDir(l.lib));
  if (users.length > 0 && !opts.force) {
    throw new InstallError(`shims of this install are still running; stop their containers first, or run with --force:\n${describe(users)}`, 2);
  }
  const record = readJson(l.record) ?? { links: [], createdDirs: [] };
  // our links: the recorded ones and any other link in PREFIX/bin into lib/tsshim
  const names = new Set(record.links);
  if (fs.existsSync(l.bin)) for (const name of fs.readdirSync(l.bin)) if (isOurLink(l, path.join(l.bin, name))) names.add(name);
  for (const name of names) {
    const file = path.join(l.bin, name);
    if (isOurLink(l, file)) fs.rmSync(file, { force: true });
  }
  fs.rmSync(l.lib, { recursive: true, force: true });
  for (const dir of [l.libParent, l.bin, opts.prefix]) {
    if (!record.createdDirs.includes(dir)) continue;
    try {
      fs.rmdirSync(dir);
    } catch {
      // not empty: someone else's files are there too
    }
  }
  say(`removed tsshim from ${opts.prefix}${users.length > 0 ? ` (forced, while running:\n${describe(users)})` : ''}`);
  const config = path.join(opts.configDir, 'config.toml');
  if (fs.existsSync(config)) say(`kept ${config} (the operator's configuration)`);
}

try {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new InstallError('must run as root (it writes under the prefix and /etc, and checks running shims)', 77);
  if (opts.uninstall) uninstall(opts);
  else await install(opts);
} catch (err) {
  // what failed, in one line; nothing was left half-installed (install() rolled back)
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`tsshim install: ERROR: ${message}\n`);
  if (!(err instanceof InstallError) && process.env.TSSHIM_INSTALL_DEBUG) process.stderr.write(`${err.stack}\n`);
  process.exit(err instanceof InstallError ? err.exitCode : 1);
}

