/**
 * What a config FILE says about where a group listens, cached for the C launcher
 * (src/launcher). CRI passes our config path in the runtime options of every `start`;
 * without this cache the launcher would have to boot Node just to read a TOML file and
 * learn `shim.group` and `shim.socket_dir`, the only settings that decide the address.
 *
 * After a Node `start` that loaded a config file, the cache holds one line:
 *   "<mtime ms, truncated> <size> <group scope> <spare idle seconds> <socket dir>\n"
 * in <default socket dir>/.tsshim-config-<sha256 hex of the config path>. The launcher
 * uses it only while the file's mtime and size still match; anything else goes to Node.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { DEFAULT_SOCKET_DIR } from './address.js';
import type { GroupScope } from './config.js';

export const CONFIG_CACHE_PREFIX = '.tsshim-config-';

/**
 * A file modified within this long before we read it could change again within the
 * same millisecond without its mtime or size changing; such a read is not cached.
 */
const RACY_MS = 1000;

export function configCachePath(configPath: string, cacheDir: string = DEFAULT_SOCKET_DIR): string {
  return join(cacheDir, CONFIG_CACHE_PREFIX + createHash('sha256').update(configPath).digest('hex'));
}

export interface FileStamp {
  mtimeMs: number;
  size: number;
  ino: number;
}

/** the config file's identity before it is read; undefined if it cannot be cached */
export function stampConfigFile(configPath: string): FileStamp | undefined {
  // the launcher hashes the path bytes as given: only absolute paths have one meaning
  if (!isAbsolute(configPath)) return undefined;
  try {
    const st = statSync(configPath);
    return st.isFile() ? { mtimeMs: Math.trunc(st.mtimeMs), size: st.size, ino: st.ino } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Record what the file said, if it is still the file that was read (`before`, taken
 * before reading it) and old enough. Best effort: the cache only saves time.
 */
export function writeConfigCache(
  configPath: string,
  before: FileStamp,
  shim: { group: GroupScope; socketDir: string; spareIdleSec: number },
  cacheDir: string = DEFAULT_SOCKET_DIR,
): boolean {
  const after = stampConfigFile(configPath);
  if (!after || after.mtimeMs !== before.mtimeMs || after.size !== before.size || after.ino !== before.ino) return false;
  if (Date.now() - after.mtimeMs < RACY_MS) return false;
  if (/[\s]/.test(shim.socketDir)) return false; // one line, space-separated
  const file = configCachePath(configPath, cacheDir);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, `${after.mtimeMs} ${after.size} ${shim.group} ${shim.spareIdleSec} ${shim.socketDir}\n`, { mode: 0o600 });
    renameSync(tmp, file);
    return true;
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created */
    }
    return false;
  }
}
