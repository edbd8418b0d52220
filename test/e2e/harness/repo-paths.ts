/**
 * Paths of the repository the e2e harness runs from. Found from this module's location so the
 * same code works from test/e2e/harness (vitest) and dist/test/e2e/harness (compiled bench).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
        if (parsed.name === 'tsshim') return dir;
      } catch {
        // not our manifest; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the tsshim repository above ${start}`);
    dir = parent;
  }
}

export const repoRoot: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
/** Put first on containerd's PATH so it finds containerd-shim-tsshim-v2 without an install. */
export const repoBinDir: string = join(repoRoot, 'bin');
export const scriptsDir: string = join(repoRoot, 'scripts');
export const protoDir: string = join(repoRoot, 'test', 'e2e', 'proto');
export const cacheDir: string = process.env.TSSHIM_CACHE_DIR ?? join(repoRoot, '.cache');
/**
 * Where containerd finds containerd-shim-tsshim-v2: <repo>/bin, unless TSSHIM_E2E_SHIM_BIN_DIR
 * names another build's bin/ (e.g. a known-good build while the working tree is mid-change).
 */
export const shimBinDir: string = process.env.TSSHIM_E2E_SHIM_BIN_DIR ?? repoBinDir;
export const tsshimBinary: string = join(shimBinDir, 'containerd-shim-tsshim-v2');
