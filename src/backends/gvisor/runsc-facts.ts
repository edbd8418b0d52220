/**
 * What the backend learns about a runsc binary by running it, once per binary: the best gVisor
 * platform that boots on this host, and runsc's release date. Kept in a file next to runsc's
 * root, keyed by the binary's identity (real path, size, mtime), so that later shims (one per
 * pod) do not pay the runs; a new runsc at the same path is a new identity. Both runs go
 * through the backend's RuntimeCommand: posix_spawn in the daemon, no child_process.
 *
 * The platform is tried best first (systrap, then ptrace; kvm only when configured: on a host
 * whose /dev/kvm cannot run gVisor it hangs rather than fails) by booting a sandbox that runs
 * /bin/true, ~0.3 s.
 */
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { failedPrecondition } from '../../core/errors.js';
import type { RuntimeCommand } from '../runc/cli.js';
import type { GvisorPlatform } from '../../shim/config.js';

export const PROBED_PLATFORMS: readonly GvisorPlatform[] = ['systrap', 'ptrace'];
const PROBE_TIMEOUT_MS = 10_000;
const VERSION_TIMEOUT_MS = 5_000;
export const FACTS_FILE = 'runsc-facts.json';

/** what is known of one binary, valid while its size and mtime are these */
interface BinaryFacts {
  size: number;
  mtimeMs: number;
  platform?: GvisorPlatform;
  /** release date as a number, `runsc version 0.0~20221219.0` → 20221219 */
  release?: number;
}

/** the facts file: real path of each binary → its facts */
type FactsFile = Record<string, BinaryFacts>;

interface Identity {
  real: string;
  size: number;
  mtimeMs: number;
}

/** the binary's real path on PATH (runsc) or as given, with size and mtime; undefined when missing */
function identify(binary: string): Identity | undefined {
  const candidates = binary.includes('/') ? [binary] : (process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, binary));
  for (const c of candidates) {
    try {
      const st = statSync(c);
      if (st.isFile()) return { real: realpathSync(c), size: st.size, mtimeMs: st.mtimeMs };
    } catch {
      // next
    }
  }
  return undefined;
}

function readFacts(cacheDir: string): FactsFile {
  try {
    const parsed = JSON.parse(readFileSync(join(cacheDir, FACTS_FILE), 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as FactsFile) : {};
  } catch {
    return {};
  }
}

function cachedFacts(cacheDir: string, id: Identity): BinaryFacts | undefined {
  const f = readFacts(cacheDir)[id.real];
  return f && f.size === id.size && f.mtimeMs === id.mtimeMs ? f : undefined;
}

/**
 * Adds to what is known of a binary. Two shims learning at once may each write the file whole
 * (rename: never a torn file); one's addition can then be lost, and is learnt again later.
 */
function remember(cacheDir: string, id: Identity, learnt: Partial<BinaryFacts>): void {
  try {
    mkdirSync(cacheDir, { recursive: true });
    const all = readFacts(cacheDir);
    const own = all[id.real];
    const base = own && own.size === id.size && own.mtimeMs === id.mtimeMs ? own : { size: id.size, mtimeMs: id.mtimeMs };
    all[id.real] = { ...base, ...learnt };
    const file = join(cacheDir, FACTS_FILE);
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify(all));
    renameSync(tmp, file);
  } catch {
    // not kept: the next shim asks runsc again
  }
}

/** memo per (binary, cache dir) within this process */
const platforms = new Map<string, Promise<GvisorPlatform>>();
const releases = new Map<string, Promise<number | undefined>>();

function memo<T>(map: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
  let p = map.get(key);
  if (!p) {
    p = make();
    map.set(key, p);
    p.catch(() => map.delete(key));
  }
  return p;
}

/** the best platform that boots here: from the facts file, or probed (and kept) */
export function bestPlatform(binary: string, cacheDir: string, command: RuntimeCommand): Promise<GvisorPlatform> {
  return memo(platforms, `${binary}\0${cacheDir}`, () => probePlatform(binary, cacheDir, command));
}

async function probePlatform(binary: string, cacheDir: string, command: RuntimeCommand): Promise<GvisorPlatform> {
  const id = identify(binary);
  if (!id) throw failedPrecondition(`gvisor backend: runsc binary "${binary}" not found (install runsc, or set [gvisor] binary)`);
  const known = cachedFacts(cacheDir, id)?.platform;
  if (known) return known;
  mkdirSync(cacheDir, { recursive: true });
  const failures: string[] = [];
  for (const platform of PROBED_PLATFORMS) {
    const root = mkdtempSync(join(cacheDir, '.probe-'));
    try {
      const r = await command.run({
        file: id.real,
        args: bootProbeArgs(root, platform, 'none'),
        timeoutMs: PROBE_TIMEOUT_MS,
      });
      if (r.exitCode === 0 && !r.timedOut) {
        remember(cacheDir, id, { platform });
        return platform;
      }
      const why = r.spawnErrno ?? (r.timedOut ? `no answer within ${PROBE_TIMEOUT_MS} ms` : lastLines(`${r.stdout}\n${r.stderr}`));
      failures.push(`${platform}: ${why}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  throw failedPrecondition(`gvisor backend: no gVisor platform boots on this host with ${id.real} (${failures.join('; ')}); set [gvisor] platform`);
}

/** runsc's arguments for booting a sandbox that runs /bin/true (state under `root`); `tsshim check` uses them too */
export function bootProbeArgs(root: string, platform: GvisorPlatform, network: 'none' | 'host' | 'sandbox'): string[] {
  return ['--root', root, `--platform=${platform}`, `--network=${network}`, 'do', '/bin/true'];
}

/** the platform known for this binary (same real path, size, mtime), without probing */
export function readCachedPlatform(binary: string, cacheDir: string): GvisorPlatform | undefined {
  const id = identify(binary);
  return id ? cachedFacts(cacheDir, id)?.platform : undefined;
}

/** where the facts are kept, for messages */
export function factsFile(cacheDir: string): string {
  return join(cacheDir, FACTS_FILE);
}

/** runsc's release date (`runsc --version`), from the facts file or asked (and kept); undefined if unknown */
export function runscRelease(binary: string, cacheDir: string, command: RuntimeCommand): Promise<number | undefined> {
  return memo(releases, `${binary}\0${cacheDir}`, async () => {
    const id = identify(binary);
    if (!id) return undefined;
    const known = cachedFacts(cacheDir, id)?.release;
    if (known !== undefined) return known;
    const r = await command.run({ file: id.real, args: ['--version'], timeoutMs: VERSION_TIMEOUT_MS });
    const release = r.exitCode === 0 ? parseRunscRelease(r.stdout) : undefined;
    if (release !== undefined) remember(cacheDir, id, { release });
    return release;
  });
}

/** `runsc version 0.0~20221219.0` (or `release-20240729.0`) → 20221219 */
export function parseRunscRelease(versionOutput: string): number | undefined {
  const m = /version\s+\S*?(\d{8})/.exec(versionOutput);
  return m ? Number(m[1]) : undefined;
}

export function lastLines(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.slice(-2).join(' / ') || 'no output';
}
