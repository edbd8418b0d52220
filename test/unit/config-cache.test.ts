/**
 * The config cache the C launcher reads (src/shim/config-cache.ts): written only for a
 * file that is still the one that was read, and old enough for its mtime to tell.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { configCachePath, stampConfigFile, writeConfigCache, CONFIG_CACHE_PREFIX } from '../../src/shim/config-cache.js';

let dir: string;
let cacheDir: string;
let cfg: string;
const HOUR_AGO = new Date(Date.now() - 3600_000);
const shim = { group: 'container' as const, socketDir: '/run/tsshim-test', spareIdleSec: 300 };

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-config-cache-'));
  cacheDir = path.join(dir, 'cache');
  cfg = path.join(dir, 'config.toml');
  fs.writeFileSync(cfg, '[shim]\ngroup = "container"\n');
  fs.utimesSync(cfg, HOUR_AGO, HOUR_AGO);
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('config cache', () => {
  it('is named after the sha256 of the path and holds "<mtime ms> <size> <scope> <spare idle s> <socket dir>"', () => {
    const file = configCachePath(cfg, cacheDir);
    expect(file).toBe(path.join(cacheDir, CONFIG_CACHE_PREFIX + createHash('sha256').update(cfg).digest('hex')));
    const stamp = stampConfigFile(cfg)!;
    expect(writeConfigCache(cfg, stamp, shim, cacheDir)).toBe(true);
    const st = fs.statSync(cfg);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${Math.trunc(st.mtimeMs)} ${st.size} container 300 /run/tsshim-test\n`);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(cacheDir)).toEqual([path.basename(file)]);
  });

  it('is not written when the file changed after it was stamped', () => {
    const stamp = stampConfigFile(cfg)!;
    fs.appendFileSync(cfg, '# more\n');
    fs.utimesSync(cfg, HOUR_AGO, HOUR_AGO);
    expect(writeConfigCache(cfg, stamp, shim, cacheDir)).toBe(false);
    expect(fs.existsSync(configCachePath(cfg, cacheDir))).toBe(false);
  });

  it('is not written for a file modified within the last second', () => {
    fs.utimesSync(cfg, new Date(), new Date());
    expect(writeConfigCache(cfg, stampConfigFile(cfg)!, shim, cacheDir)).toBe(false);
  });

  it('has no stamp for relative paths, directories and missing files', () => {
    expect(stampConfigFile(path.relative(process.cwd(), cfg))).toBeUndefined();
    expect(stampConfigFile(dir)).toBeUndefined();
    expect(stampConfigFile(path.join(dir, 'missing.toml'))).toBeUndefined();
  });
});
