// Builds one of our Node programs (the shim daemon, tsrun) as a minified CommonJS bundle,
// <dir>/<name>-<hash>.cjs, with V8's code cache for it, <name>-<hash>.cache, and the boot
// loader that ties them together, <dir>/<boot> (src/boot/cached-boot.ts says why).
// Called by scripts/build.mjs (daemon) and scripts/build-native.mjs (tsrun).
//
// The cache is produced the only way that captures more than the top level: by running
// the program once through the new boot loader, with the programs' own Node flags (V8
// rejects a cache made under other flags), letting it do some typical work; the loader
// writes what V8 has compiled when the process exits.
//
// Files are written under temporary names and renamed, the boot loader last: a process
// starting during a rebuild sees either the old trio or the new one. Older bundles and
// caches are then removed; a running program holds its code in memory, not in the file.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { tsValues } from './build-launcher.mjs';

const PRODUCE_TIMEOUT_MS = 20_000;

/**
 * esbuild, loaded on first use: an install from the packed project (scripts/npm-postinstall.mjs)
 * only makes code caches, and esbuild is a dev dependency it does not have
 */
async function build(options) {
  const esbuild = await import('esbuild');
  return esbuild.build(options);
}

function writeAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/**
 * pino and its writers load three Node built-ins at import time that our programs use only
 * on paths they never take (log transports in worker threads, sonic-boom's assertion on a
 * misuse): assert, worker_threads and module, with a dozen internal modules behind them,
 * ~3 ms of every shim's boot. For imports from those packages only, this plugin puts in
 * small stand-ins that load the real built-in on first real use, so behaviour is unchanged:
 * - assert: checks the value and calls the real assert only when it fails;
 * - worker_threads: `isMainThread` is true (our programs never run pino in a worker
 *   thread); `Worker` (thread-stream takes it at import) constructs the real one; anything
 *   else comes from the real module;
 * - module: createRequire comes from the real module when called.
 */
const DEFERRED_BUILTINS = {
  assert: `module.exports = function assert(value, message) { if (!value) require('node:assert')(value, message); };`,
  worker_threads: `module.exports = new Proxy({ isMainThread: true, Worker: class Worker { constructor(...a) { return new (require('node:worker_threads').Worker)(...a); } } }, { get: (own, key) => (key in own ? own[key] : require('node:worker_threads')[key]) });`,
  module: `exports.createRequire = (from) => require('node:module').createRequire(from);`,
};
const deferBuiltinsForPino = {
  name: 'defer-builtins-for-pino',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(assert|worker_threads|module)$/ }, (args) => {
      if (!/node_modules[\\/](pino|sonic-boom|thread-stream)[\\/]/.test(args.importer)) return undefined;
      return { path: args.path.replace(/^node:/, ''), namespace: 'deferred-builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'deferred-builtin' }, (args) => ({ contents: DEFERRED_BUILTINS[args.path], loader: 'js' }));
  },
};

/**
 * Modules a program imports with `await import(...)` on a path most of its processes never
 * take go to chunks of their own, <name>-lazy-<chunk>-<hash>.cjs, required on first use.
 * Why: V8 keeps a program's whole source in memory for as long as the process lives (it
 * compiles functions lazily from it), and every shim on a node pays that per pod. execa
 * (~120 KB minified) is only for the runc-family backends; the cgroup metrics types
 * (~75 KB) only for Stats; the D-Bus client only for the systemd cgroup driver. Measured here: a native shim with one container, 0.27 MiB
 * less anonymous memory without execa in its bundle.
 *
 * Chunks are not pruned with old bundles: a daemon that is running during a rebuild (an
 * upgrade) still requires the chunks it was built with, by name, when it first needs them.
 */
const LAZY_CHUNKS = {
  daemon: [
    { chunk: 'execa', filter: /^execa$/ },
    { chunk: 'metrics-v1', filter: /cgroups\/v1\/metrics\.js$/ },
    { chunk: 'metrics-v2', filter: /cgroups\/v2\/metrics\.js$/ },
    // the systemd cgroup driver's D-Bus client: only for SystemdCgroup = true
    { chunk: 'systemd', filter: /systemd-manager\.js$/ },
  ],
  tsrun: [{ chunk: 'systemd', filter: /systemd-manager\.js$/ }],
};

const esbuildCommon = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // smaller source to read, compile and keep in memory (measured: −1.5 MiB anonymous per
  // shim against the unminified bundle). No keepNames: it cost another 1.6 MiB, and our
  // error classes set their name themselves.
  minify: true,
  // V8 keeps ASCII source as one-byte strings; the loader reads it as latin1
  charset: 'ascii',
  // ffi-rs's JS loader is bundled (src/sys/ffi.ts says why); the native addon it picks
  // per platform is resolved from node_modules at run time
  external: ['@yuuang/*', '*.node'],
  plugins: [deferBuiltinsForPino],
  logLevel: 'warning',
};

/**
 * builds each lazy chunk of program `name`; returns the plugin that points its dynamic
 * imports there, and `chunks()`: the chunk files this build uses
 */
function lazyChunkPlugin(root, dir, name) {
  const chunks = LAZY_CHUNKS[name] ?? [];
  const files = new Map();
  const plugin = {
    name: 'lazy-chunks',
    setup(b) {
      for (const { chunk, filter } of chunks) {
        b.onResolve({ filter }, async (args) => {
          if (args.kind !== 'dynamic-import' || args.pluginData?.lazyChunkBuild) return undefined;
          // the real module, resolved as esbuild would, is the chunk's entry
          const resolved = await b.resolve(args.path, { kind: 'import-statement', resolveDir: args.resolveDir, pluginData: { lazyChunkBuild: true } });
          if (resolved.errors.length > 0) return { errors: resolved.errors };
          if (!files.has(chunk)) files.set(chunk, buildChunk(resolved.path, chunk));
          return { path: chunk, namespace: 'lazy-chunk', pluginData: { file: await files.get(chunk) } };
        });
      }
      b.onLoad({ filter: /.*/, namespace: 'lazy-chunk' }, (args) => ({
        // __dirname: the program's dir (the boot loader passes its own)
        contents: `module.exports = require(require('node:path').join(__dirname, ${JSON.stringify(args.pluginData.file)}));`,
        loader: 'js',
      }));
    },
  };
  async function buildChunk(entry, chunk) {
    const result = await build({ ...esbuildCommon, absWorkingDir: root, entryPoints: [entry], outfile: path.join(dir, 'chunk.cjs'), write: false });
    const code = result.outputFiles[0].contents;
    const file = `${name}-lazy-${chunk}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.cjs`;
    const target = path.join(root, dir, file);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    if (!fs.existsSync(target)) writeAtomic(target, code);
    return file;
  }
  return { plugin, chunks: () => Promise.all(files.values()) };
}

/** package.json's version, for src/shim/version.ts */
export function versionDefine(root) {
  const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  return { TSSHIM_BUILD_VERSION: JSON.stringify(version) };
}

async function bundle(root, entry, dir, name) {
  const lazy = lazyChunkPlugin(root, dir, name);
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: path.join(dir, `${name}.cjs`),
    write: false,
    ...esbuildCommon,
    sourcemap: 'external',
    define: { 'import.meta.url': '__tsshimModuleUrl', ...versionDefine(root) },
    plugins: [...esbuildCommon.plugins, lazy.plugin],
  });
  const code = result.outputFiles.find((f) => f.path.endsWith('.cjs'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.map'));
  const hashed = `${name}-${createHash('sha256').update(code.contents).digest('hex').slice(0, 16)}`;
  const file = path.join(root, dir, `${hashed}.cjs`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeAtomic(`${file}.map`, map.contents);
  writeAtomic(file, Buffer.concat([Buffer.from(code.contents), Buffer.from(`\n//# sourceMappingURL=${hashed}.cjs.map\n`)]));
  return { hashed, lazyChunks: await lazy.chunks() };
}

async function bundleBoot(root, outfile, hashed) {
  await build({
    absWorkingDir: root,
    entryPoints: ['src/boot/cached-boot.ts'],
    outfile,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    define: {
      TSSHIM_BOOT_BUNDLE: JSON.stringify(`${hashed}.cjs`),
      TSSHIM_BOOT_CODE_CACHE: JSON.stringify(`${hashed}.cache`),
    },
    logLevel: 'warning',
  });
}

/**
 * Runs `node <flags> <boot> ...args` in a scratch dir with the producer env; `drive` gets
 * the child and the scratch dir, does the work and makes the program exit. Resolves once
 * the cache file is there.
 */
async function runProducer(boot, cacheFile, values, args, drive, extraEnv = () => ({})) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-code-cache-'));
  const env = { ...process.env, ...extraEnv(work), [values.CODE_CACHE_PRODUCE_ENV]: cacheFile };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(process.execPath, [...values.daemonNodeFlags(), boot, ...args(work)], { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  const deadline = setTimeout(() => child.kill('SIGKILL'), PRODUCE_TIMEOUT_MS);
  try {
    await drive(child, work);
    const how = await exited;
    if (!fs.existsSync(cacheFile)) throw new Error(`exited ${how} without a cache: ${stderr.trim()}`);
  } finally {
    clearTimeout(deadline);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** removes bundles and caches of earlier builds (not `keep`) */
function pruneOld(root, dir, name, keep) {
  const re = new RegExp(`^${name}-[0-9a-f]{16}\\.(cjs|cjs\\.map|cache)$`);
  for (const f of fs.readdirSync(path.join(root, dir))) {
    if (re.test(f) && !f.startsWith(`${keep}.`)) fs.rmSync(path.join(root, dir, f), { force: true });
  }
}

/**
 * Builds entry as <dir>/<name>-<hash>.cjs with its code cache and <dir>/<boot>. produce:
 * (runProducer-bound helper) → Promise, the program-specific run that makes the cache.
 */
async function buildCachedBundle(root, { entry, dir, name, boot, produce }) {
  const values = await tsValues(root);
  const { hashed, lazyChunks } = await bundle(root, entry, dir, name);
  const bootFile = path.join(root, dir, boot);
  const bootTmp = `${bootFile}.tmp-${process.pid}.cjs`;
  await bundleBoot(root, bootTmp, hashed);
  const cacheFile = path.join(root, dir, `${hashed}.cache`);
  try {
    await produce((args, drive, extraEnv) => runProducer(bootTmp, cacheFile, values, args, drive, extraEnv), values);
  } catch (err) {
    // a missing cache only costs start-up time; say so and ship without it
    console.warn(`build: no code cache for ${name} (${err instanceof Error ? err.message : err})`);
    fs.rmSync(cacheFile, { force: true });
  }
  fs.renameSync(bootTmp, bootFile);
  pruneOld(root, dir, name, hashed);
  return { boot: bootFile, bundle: `${hashed}.cjs`, cache: fs.existsSync(cacheFile) ? `${hashed}.cache` : undefined, lazyChunks };
}

/** a busybox bundle running /bin/true (config: tsrun's default spec), in work/bundle */
function trueBundle(values, work, cgroupParent) {
  const bundle = path.join(work, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  fs.symlinkSync('busybox', path.join(rootfs, 'bin/true'));
  const spec = values.defaultSpec();
  spec.process.terminal = false;
  spec.process.args = ['/bin/true'];
  spec.linux.cgroupsPath = `${cgroupParent}/c`;
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

/**
 * One container's whole life through the daemon (native backend, /bin/true of the
 * static busybox Debian installs): Create, Start, Wait, Delete, with events going to a
 * sink. Only as root, where a build on a node runs; everything it makes is under `work`
 * or in a cgroup it removes.
 */
async function containerLifecycle(values, client, work, cgroupParent) {
  const bundle = trueBundle(values, work, cgroupParent);
  const call = (method, codec, msg) => client.call('containerd.task.v2.Task', method, codec.encode(codec.fromPartial(msg)).finish(), { timeoutMs: 10_000 });
  const id = 'code-cache-c';
  await call('Create', values.CreateTaskRequest, { id, bundle });
  await call('Start', values.StartRequest, { id });
  await call('Wait', values.WaitRequest, { id });
  await call('Delete', values.DeleteRequest, { id });
}

function removeCgroupParent(cgroupParent) {
  for (const entry of fs.readdirSync('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', entry, cgroupParent);
    if (!fs.existsSync(dir)) continue;
    for (const child of fs.readdirSync(dir, { withFileTypes: true })) if (child.isDirectory()) fs.rmdirSync(path.join(dir, child.name));
    fs.rmdirSync(dir);
  }
}

/** an events endpoint that takes everything (the daemon publishes during the lifecycle) */
async function eventSink(values, socketPath) {
  const server = new values.TtrpcServer();
  server.register(values.EVENTS_SERVICE, { Forward: async () => new Uint8Array(0) });
  const listener = net.createServer();
  server.listen(listener);
  await new Promise((resolve) => listener.listen(socketPath, resolve));
  return async () => {
    await server.close();
    await new Promise((r) => listener.close(() => r()));
  };
}

/** whether this build can run a container to warm the caches with */
function canRunContainers() {
  return process.getuid?.() === 0 && fs.existsSync('/bin/busybox') && fs.existsSync('/sys/fs/cgroup');
}

/**
 * the shim daemon: dist/shim/daemon-boot.cjs. The cache comes from a boot, the calls of
 * every boot (Connect, a State that fails) and, as root, one container's whole life, so
 * that a shim's first container finds its code compiled too.
 */
export function buildDaemon(root) {
  return buildCachedBundle(root, { entry: 'src/shim/daemon-main.ts', dir: 'dist/shim', name: 'daemon', boot: 'daemon-boot.cjs', produce: daemonProducer() });
}

function daemonProducer() {
  const asRoot = canRunContainers();
  const cgroupParent = `/tsshim-build-${process.pid}`;
  return async (run, values) => {
    const sinkDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-code-cache-events-'));
    const sinkPath = path.join(sinkDir, 'events.sock');
    const closeSink = await eventSink(values, sinkPath);
    try {
      await run(
        (work) => ['-namespace', 'tsshim-build', '-address', path.join(work, 'none.sock'), '-publish-binary', '', '-id', 'code-cache', '-socket', path.join(work, 'shim.sock'), 'serve'],
        async (child, work) => {
          const socket = path.join(work, 'shim.sock');
          let client;
          for (let i = 0; !client; i++) {
            try {
              client = await values.TtrpcClient.connect(socket);
            } catch (err) {
              if (i > 400) throw err;
              await new Promise((r) => setTimeout(r, 25));
            }
          }
          // ConnectRequest / StateRequest { id = "code-cache" }: the calls of every boot,
          // and an error path (no such task)
          const request = Buffer.concat([Buffer.from([10, 10]), Buffer.from('code-cache')]);
          await client.call('containerd.task.v2.Task', 'Connect', request, { timeoutMs: 5_000 });
          await client.call('containerd.task.v2.Task', 'State', request, { timeoutMs: 5_000 }).catch(() => undefined);
          if (asRoot) {
            try {
              await containerLifecycle(values, client, work, cgroupParent);
            } catch (err) {
              // the cache is still good for the boot; say why it has less in it
              console.warn(`build: code cache without a container lifecycle (${err instanceof Error ? err.message : err})`);
            }
          }
          await client.close();
          child.kill('SIGTERM');
        },
        (work) => {
          const config = path.join(work, 'tsshim.toml');
          fs.writeFileSync(config, `backend = "native"\n[native]\nroot = "${path.join(work, 'native')}"\n`);
          return { TSSHIM_CONFIG: config, TTRPC_ADDRESS: sinkPath };
        },
      );
    } finally {
      await closeSink();
      fs.rmSync(sinkDir, { recursive: true, force: true });
      if (asRoot) removeCgroupParent(cgroupParent);
    }
  };
}

/**
 * tsrun: dist/native/tsrun-boot.cjs. The cache comes from `tsrun run` of /bin/true as
 * root (the whole create/start/wait/delete path), else from a `state` of a missing
 * container.
 */
export function buildTsrunBundle(root) {
  return buildCachedBundle(root, { entry: 'src/backends/native/tsrun/cli-entry.ts', dir: 'dist/native', name: 'tsrun', boot: 'tsrun-boot.cjs', produce: tsrunProducer() });
}

function tsrunProducer() {
  const asRoot = canRunContainers();
  const cgroupParent = `/tsshim-build-tsrun-${process.pid}`;
  return async (run, values) => {
    try {
      await run(
        (work) =>
          asRoot
            ? ['--root', path.join(work, 'state'), 'run', '--bundle', trueBundle(values, work, cgroupParent), 'code-cache-c']
            : ['--root', path.join(work, 'state'), 'state', 'code-cache'],
        async () => undefined,
      );
    } finally {
      if (asRoot) removeCgroupParent(cgroupParent);
    }
  };
}

const PRODUCERS = { daemon: daemonProducer, tsrun: tsrunProducer };

/**
 * Makes the code cache of an already built program where it will run: `boot` is its boot
 * loader (e.g. an installed release's dist/shim/daemon-boot.cjs), `cacheFile` the cache the
 * loader looks for next to it. Run by scripts/install.mjs, so that the cache comes from the
 * Node the release runs under and from the release's own files (a cache records the path
 * of the script it was made for). Throws when no cache came out.
 */
export async function produceCodeCache(root, name, boot, cacheFile) {
  const values = await tsValues(root);
  fs.rmSync(cacheFile, { force: true });
  await PRODUCERS[name]()((args, drive, extraEnv) => runProducer(boot, cacheFile, values, args, drive, extraEnv), values);
}
