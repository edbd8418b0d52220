// Builds the native backend's executables from source:
// - dist/native/tsshim-exec, the executor (src/backends/native/helper): C11, libc and kernel
//   headers only, linked statically (it runs as a script interpreter inside minimal rootfs
//   too, and saves the dynamic loader's time on every container), warnings are errors;
// - dist/native/tsrun-boot.cjs + tsrun-<hash>.cjs/.cache, the runc-compatible CLI (bin/tsrun),
//   one bundle with its code cache (scripts/build-cached-bundle.mjs).
// The executor is rebuilt only when a source is newer than the binary. Usable as a module
// (buildNative(root), buildTsrun(root)) or run directly (both).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HELPER_DIR = 'src/backends/native/helper';
export const NATIVE_OUTPUT = 'dist/native/tsshim-exec';

function isElf(file) {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(4);
      return fs.readSync(fd, b, 0, 4, 0) === 4 && b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

export function buildNative(root) {
  const dir = path.join(root, HELPER_DIR);
  const sources = fs.readdirSync(dir).filter((f) => f.endsWith('.c') || f.endsWith('.h')).map((f) => path.join(dir, f));
  const out = path.join(root, NATIVE_OUTPUT);
  const inputs = [...sources, fileURLToPath(import.meta.url)];
  if (isElf(out)) {
    const built = fs.statSync(out).mtimeMs;
    if (inputs.every((f) => fs.statSync(f).mtimeMs <= built)) return out;
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  // compile next to the target and rename: a running helper must not be rewritten in place
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    execFileSync(
      process.env.CC || 'cc',
      ['-std=c11', '-O2', '-static', '-s', '-ffunction-sections', '-fdata-sections', '-Wl,--gc-sections', '-Wall', '-Wextra', '-Werror', '-D_FORTIFY_SOURCE=2', '-o', tmp, ...sources.filter((s) => s.endsWith('.c'))],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, out);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return out;
}

export const TSRUN_BOOT = 'dist/native/tsrun-boot.cjs';

/** bundles bin/tsrun's code with its code cache; esbuild is loaded only then (tests build the executor alone) */
export async function buildTsrun(root) {
  const { buildTsrunBundle } = await import('./build-cached-bundle.mjs');
  return (await buildTsrunBundle(root)).boot;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  console.log(buildNative(root));
  console.log(await buildTsrun(root));
}
