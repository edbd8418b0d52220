/**
 * The daemon's boot loader, built to dist/shim/daemon-boot.cjs: what the launcher and
 * `start` run with Node. It compiles the daemon bundle (dist/shim/daemon-<hash>.cjs) with
 * V8's code cache for it (daemon-<hash>.cache, made at build time by
 * scripts/build-code-cache.mjs), then runs it.
 *
 * Why: the daemon's boot is on containerd's critical path for every pod. Compiling the
 * bundle was ~24 ms of a ~75 ms boot here (Node 20's ES module loader takes no code
 * cache); with the cache a boot to the first answer takes ~50 ms, and less anonymous
 * memory, as the minified source it keeps is half the size.
 *
 * V8 checks a cache against its own version and flags and rejects it on a mismatch (then
 * we just compile), but it checks the source only by its length. So the cache is named
 * after a hash of the exact bundle, and both names are baked into this loader when it
 * is built: a cache always belongs to the bundle next to it.
 *
 * Kept tiny and CommonJS: it is loaded by Node's CJS loader before anything else.
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { CODE_CACHE_CHECK_ENV, CODE_CACHE_PRODUCE_ENV } from './daemon-code-cache.js';

/** daemon-<hash>.cjs: set by the build (esbuild define) */
declare const TSSHIM_DAEMON_BUNDLE: string;
/** daemon-<hash>.cache */
declare const TSSHIM_DAEMON_CODE_CACHE: string;

/**
 * The bundle is CommonJS-shaped; these are its free variables. __tsshimModuleUrl stands
 * in for import.meta.url (esbuild define), which CommonJS does not have.
 */
const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname, __tsshimModuleUrl) {';
const WRAPPER_TAIL = '\n})';

function boot(): void {
  const bundle = path.join(__dirname, TSSHIM_DAEMON_BUNDLE);
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(path.join(__dirname, TSSHIM_DAEMON_CODE_CACHE));
  } catch {
    // no cache (not produced, or removed): compile from source
  }
  // latin1: esbuild writes ASCII only, and a one-byte string is what V8 keeps anyway
  let script: Script | undefined = new Script(WRAPPER_HEAD + readFileSync(bundle, 'latin1') + WRAPPER_TAIL, {
    filename: bundle,
    cachedData,
  });
  const outcome = cachedData === undefined ? 'absent' : script.cachedDataRejected ? 'rejected' : 'hit';
  cachedData = undefined;

  if (process.env[CODE_CACHE_CHECK_ENV]) {
    process.stdout.write(`${outcome}\n`);
    return;
  }
  const produceTo = process.env[CODE_CACHE_PRODUCE_ENV];
  if (produceTo) {
    delete process.env[CODE_CACHE_PRODUCE_ENV];
    const s = script;
    // after the daemon has answered its first calls: the cache then holds the functions
    // they compiled, not just the top level
    process.on('SIGUSR2', () => {
      const tmp = `${produceTo}.${process.pid}`;
      writeFileSync(tmp, s.createCachedData());
      renameSync(tmp, produceTo);
      process.exit(0);
    });
  }
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  script = undefined;
  const mod = { exports: {} };
  run(mod.exports, require, mod, bundle, __dirname, pathToFileURL(bundle).href);
}

boot();
