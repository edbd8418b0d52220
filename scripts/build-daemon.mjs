// Builds the daemon: one minified CommonJS bundle, dist/shim/daemon-<hash>.cjs, V8's code
// cache for it, daemon-<hash>.cache, and the boot loader that ties them together,
// dist/shim/daemon-boot.cjs (src/shim/daemon-boot.ts says why). Called by scripts/build.mjs.
//
// The cache is produced the only way that captures more than the top level: by booting
// the daemon through the new boot loader, with the daemon's own Node flags (V8 rejects a
// cache made under other flags), letting it answer a few calls, then asking the loader
// (SIGUSR2) to write what V8 has compiled so far.
//
// Files are written under temporary names and renamed, the boot loader last: a daemon
// starting during a rebuild sees either the old trio or the new one. Older bundles and
// caches are then removed; a running daemon holds its code in memory, not in the file.
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tsValues } from './build-launcher.mjs';

const OUT_DIR = 'dist/shim';
const BOOT = 'daemon-boot.cjs';
const PRODUCE_TIMEOUT_MS = 20_000;

function writeAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

async function bundleDaemon(root) {
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['src/shim/daemon-main.ts'],
    outfile: path.join(OUT_DIR, 'daemon.cjs'),
    write: false,
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
    sourcemap: 'external',
    // native addon: resolved from node_modules at run time
    external: ['ffi-rs'],
    define: { 'import.meta.url': '__tsshimModuleUrl' },
    logLevel: 'warning',
  });
  const code = result.outputFiles.find((f) => f.path.endsWith('.cjs'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.map'));
  const hash = createHash('sha256').update(code.contents).digest('hex').slice(0, 16);
  const name = `daemon-${hash}`;
  const bundleFile = path.join(root, OUT_DIR, `${name}.cjs`);
  fs.mkdirSync(path.dirname(bundleFile), { recursive: true });
  writeAtomic(`${bundleFile}.map`, map.contents);
  writeAtomic(bundleFile, Buffer.concat([Buffer.from(code.contents), Buffer.from(`\n//# sourceMappingURL=${name}.cjs.map\n`)]));
  return name;
}

async function bundleBoot(root, outfile, name) {
  await build({
    absWorkingDir: root,
    entryPoints: ['src/shim/daemon-boot.ts'],
    outfile,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    define: {
      TSSHIM_DAEMON_BUNDLE: JSON.stringify(`${name}.cjs`),
      TSSHIM_DAEMON_CODE_CACHE: JSON.stringify(`${name}.cache`),
    },
    logLevel: 'warning',
  });
}

/** boots the daemon through `boot`, lets it answer a few calls, collects its code cache */
async function produceCodeCache(root, boot, cacheFile, values) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-code-cache-'));
  const socket = path.join(work, 'shim.sock');
  const env = { ...process.env, [values.CODE_CACHE_PRODUCE_ENV]: cacheFile, TTRPC_ADDRESS: path.join(work, 'none.sock') };
  delete env.NODE_EXTRA_CA_CERTS;
  const args = [...values.daemonNodeFlags(), boot, '-namespace', 'tsshim-build', '-address', path.join(work, 'none.sock'), '-publish-binary', '', '-id', 'code-cache', '-socket', socket, 'serve'];
  const child = spawn(process.execPath, args, { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  const deadline = setTimeout(() => child.kill('SIGKILL'), PRODUCE_TIMEOUT_MS);
  try {
    let client;
    for (let i = 0; !client; i++) {
      try {
        client = await values.TtrpcClient.connect(socket);
      } catch (err) {
        if (i > 400) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    // ConnectRequest / StateRequest { id = "code-cache" }: the calls of every boot, and an
    // error path (no such task)
    const request = Buffer.concat([Buffer.from([10, 10]), Buffer.from('code-cache')]);
    await client.call('containerd.task.v2.Task', 'Connect', request, { timeoutMs: 5_000 });
    await client.call('containerd.task.v2.Task', 'State', request, { timeoutMs: 5_000 }).catch(() => undefined);
    client.close();
    child.kill('SIGUSR2');
    const how = await exited;
    if (how !== 0 || !fs.existsSync(cacheFile)) throw new Error(`daemon exited ${how}: ${stderr.trim()}`);
  } finally {
    clearTimeout(deadline);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** removes bundles and caches of earlier builds (not `keep`) */
function pruneOld(root, keep) {
  const dir = path.join(root, OUT_DIR);
  for (const f of fs.readdirSync(dir)) {
    if (/^daemon-[0-9a-f]{16}\.(cjs|cjs\.map|cache)$/.test(f) && !f.startsWith(`${keep}.`)) fs.rmSync(path.join(dir, f), { force: true });
  }
}

export async function buildDaemon(root) {
  const values = await tsValues(root);
  const name = await bundleDaemon(root);
  const boot = path.join(root, OUT_DIR, BOOT);
  const bootTmp = `${boot}.tmp-${process.pid}.cjs`;
  await bundleBoot(root, bootTmp, name);
  const cacheFile = path.join(root, OUT_DIR, `${name}.cache`);
  try {
    await produceCodeCache(root, bootTmp, cacheFile, values);
  } catch (err) {
    // a missing cache only costs boot time; say so and ship without it
    console.warn(`build-daemon: no code cache (${err instanceof Error ? err.message : err})`);
    fs.rmSync(cacheFile, { force: true });
  }
  fs.renameSync(bootTmp, boot);
  pruneOld(root, name);
  return { boot, bundle: `${name}.cjs`, cache: fs.existsSync(cacheFile) ? `${name}.cache` : undefined };
}
