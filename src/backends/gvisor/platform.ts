/**
 * Which gVisor platform boots on this host. Tried once per runsc binary, best first
 * (systrap, then ptrace; kvm only when configured: on a host whose /dev/kvm cannot run
 * gVisor it hangs rather than fails), by booting a sandbox that runs /bin/true. The answer is
 * cached in a file under runsc's root keyed by the binary's identity, so later shims (one per
 * pod) do not pay the ~0.3 s probe.
 */
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { failedPrecondition } from '../../core/errors.js';
import { childProcess } from '../../sys/lazy-builtins.js';
import type { GvisorPlatform } from '../../shim/config.js';

export const PROBED_PLATFORMS: readonly GvisorPlatform[] = ['systrap', 'ptrace'];
const PROBE_TIMEOUT_MS = 10_000;
const CACHE_FILE = 'platform-probe.json';

interface CacheEntry {
  binary: string;
  size: number;
  mtimeMs: number;
  platform: GvisorPlatform;
}

/** the binary's path on PATH (runsc) or as given; undefined when missing */
export function resolveBinary(binary: string): string | undefined {
  const candidates = binary.includes('/') ? [binary] : (process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, binary));
  for (const c of candidates) {
    try {
      if (statSync(c).isFile()) return realpathSync(c);
    } catch {
      // next
    }
  }
  return undefined;
}

export interface BootProbeOptions {
  /** runsc --network; the backend's probe uses none */
  network?: 'none' | 'host' | 'sandbox';
  /** run runsc under this command (e.g. ['unshare', '--net']: a network namespace of its own) */
  wrapper?: string[];
  timeoutMs?: number;
}

/**
 * Boots a sandbox running /bin/true with runsc state under `root` (a scratch dir the caller
 * removes). Also used by `tsshim check` (src/shim/host-check), which probes every platform.
 */
export function bootProbe(
  binary: string,
  root: string,
  platform: GvisorPlatform,
  o: BootProbeOptions = {},
): Promise<{ ok: boolean; output: string; code?: number; signal?: string }> {
  return new Promise((resolve) => {
    const argv = [binary, '--root', root, `--platform=${platform}`, `--network=${o.network ?? 'none'}`, 'do', '/bin/true'];
    const [file, ...args] = [...(o.wrapper ?? []), ...argv] as [string, ...string[]];
    const child = childProcess().spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: o.timeoutMs ?? PROBE_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    let output = '';
    const take = (b: Buffer) => {
      if (output.length < 4096) output += b.toString('utf8');
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    child.on('error', (err) => resolve({ ok: false, output: err.message }));
    child.on('close', (code, signal) =>
      resolve({ ok: code === 0, output: signal ? `${output}\nkilled by ${signal} (timeout)` : output, code: code ?? undefined, signal: signal ?? undefined }),
    );
  });
}

/** the platform a previous probe cached for this binary (same path, size, mtime), if any */
export function readCachedPlatform(binary: string, cacheDir: string): GvisorPlatform | undefined {
  const real = resolveBinary(binary);
  if (!real) return undefined;
  try {
    const st = statSync(real);
    const cached = JSON.parse(readFileSync(join(cacheDir, CACHE_FILE), 'utf8')) as Partial<CacheEntry>;
    if (cached.binary === real && cached.size === st.size && cached.mtimeMs === st.mtimeMs && cached.platform) return cached.platform;
  } catch {
    // no cache yet
  }
  return undefined;
}

/** where the probe's answer is cached, for messages */
export function platformCacheFile(cacheDir: string): string {
  return join(cacheDir, CACHE_FILE);
}

/** memo per binary within this process */
const memo = new Map<string, Promise<GvisorPlatform>>();

export function bestPlatform(binary: string, cacheDir: string): Promise<GvisorPlatform> {
  let p = memo.get(binary);
  if (!p) {
    p = probe(binary, cacheDir);
    memo.set(binary, p);
    p.catch(() => memo.delete(binary));
  }
  return p;
}

async function probe(binary: string, cacheDir: string): Promise<GvisorPlatform> {
  const real = resolveBinary(binary);
  if (!real) throw failedPrecondition(`gvisor backend: runsc binary "${binary}" not found (install runsc, or set [gvisor] binary)`);
  const st = statSync(real);
  const cacheFile = join(cacheDir, CACHE_FILE);
  const cached = readCachedPlatform(real, cacheDir);
  if (cached) return cached;
  mkdirSync(cacheDir, { recursive: true });
  const failures: string[] = [];
  for (const platform of PROBED_PLATFORMS) {
    const root = mkdtempSync(join(cacheDir, '.probe-'));
    try {
      const r = await bootProbe(real, root, platform);
      if (r.ok) {
        const entry: CacheEntry = { binary: real, size: st.size, mtimeMs: st.mtimeMs, platform };
        const tmp = `${cacheFile}.${process.pid}`;
        writeFileSync(tmp, JSON.stringify(entry));
        renameSync(tmp, cacheFile);
        return platform;
      }
      failures.push(`${platform}: ${lastLines(r.output)}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  throw failedPrecondition(`gvisor backend: no gVisor platform boots on this host with ${real} (${failures.join('; ')}); set [gvisor] platform`);
}

export function lastLines(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.slice(-2).join(' / ') || 'no output';
}
