/**
 * A boot loader for one of our Node programs: the shim daemon (dist/shim/daemon-boot.cjs)
 * and tsrun (dist/native/tsrun-boot.cjs). It compiles the program's bundle
 * (<name>-<hash>.cjs, next to it) with V8's code cache for it (<name>-<hash>.cache, made at
 * build time by scripts/build-cached-bundle.mjs), then runs it.
 *
 * Why: Node 20's ES module loader takes no code cache, and compiling the bundle was a
 * third of the daemon's boot (~24 of ~75 ms); the daemon's boot is on containerd's
 * critical path for every pod, and tsrun starts once per runc verb.
 *
 * V8 checks a cache against its own version and flags and rejects it on a mismatch (then
 * we just compile), but it checks the source only by its length. So the cache is named
 * after a hash of the exact bundle, and both names are baked into this loader when it is
 * built: a cache always belongs to the bundle next to it. The programs run with
 * --verify-snapshot-checksum, so a damaged cache is rejected too, instead of crashing V8.
 *
 * V8's version check is its own major.minor.build.patch: Node releases that patch V8
 * without changing that number (they do) would accept each other's caches. So a cache file
 * starts with a line naming the Node that made it (version, V8 with Node's patch level,
 * architecture), and another Node (the node executable upgraded under an installed
 * release) never gets it: it compiles from source ('other-node'). Any Node can make a
 * cache for a bundle: an install makes them with the Node the release runs under.
 *
 * Kept tiny and CommonJS: it is loaded by Node's CJS loader before anything else.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { CODE_CACHE_CHECK_ENV, CODE_CACHE_PRODUCE_ENV, nodeIdentity } from './code-cache-env.js';

/** <name>-<hash>.cjs: set by the build (esbuild define) */
declare const TSSHIM_BOOT_BUNDLE: string;
/** <name>-<hash>.cache */
declare const TSSHIM_BOOT_CODE_CACHE: string;

/**
 * The bundle is CommonJS-shaped; these are its free variables. __tsshimModuleUrl stands
 * in for import.meta.url (esbuild define), which CommonJS does not have.
 */
const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname, __tsshimModuleUrl) {';
const WRAPPER_TAIL = '\n})';

function boot(): void {
  const bundle = join(__dirname, TSSHIM_BOOT_BUNDLE);
  let cachedData: Buffer | undefined;
  let otherNode = false;
  try {
    // "<nodeIdentity()>\n" then V8's data
    const file = readFileSync(join(__dirname, TSSHIM_BOOT_CODE_CACHE));
    const eol = file.indexOf(10);
    if (eol >= 0 && file.toString('latin1', 0, eol) === nodeIdentity()) cachedData = file.subarray(eol + 1);
    else otherNode = true;
  } catch {
    // no cache (not produced, or removed): compile from source
  }
  // latin1: esbuild writes ASCII only, and a one-byte string is what V8 keeps anyway
  let script: Script | undefined = new Script(WRAPPER_HEAD + readFileSync(bundle, 'latin1') + WRAPPER_TAIL, {
    filename: bundle,
    cachedData,
  });
  const outcome = otherNode ? 'other-node' : cachedData === undefined ? 'absent' : script.cachedDataRejected ? 'rejected' : 'hit';
  cachedData = undefined;

  if (process.env[CODE_CACHE_CHECK_ENV]) {
    process.stdout.write(`${outcome}\n`);
    return;
  }
  const produceTo = process.env[CODE_CACHE_PRODUCE_ENV];
  if (produceTo) {
    delete process.env[CODE_CACHE_PRODUCE_ENV];
    const s = script;
    // at exit, after the program did its work: the cache then holds the functions that
    // work compiled, not just the top level
    process.on('exit', () => {
      const tmp = `${produceTo}.${process.pid}`;
      writeFileSync(tmp, Buffer.concat([Buffer.from(`${nodeIdentity()}\n`, 'latin1'), s.createCachedData()]));
      renameSync(tmp, produceTo);
    });
  }
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  script = undefined;
  const mod = { exports: {} };
  run(mod.exports, require, mod, bundle, __dirname, pathToFileURL(bundle).href);
}

boot();
