// Builds the Kata guest agent (src/backends/kata/guest-agent) into dist/kata/, the files the
// guest image (scripts/build-kata-guest.sh) puts next to each other in the initramfs:
// - guest-agent.mjs: one ESM bundle, everything but Node's built-ins inside (the guest has
//   no node_modules); minified, since Node parses it on every boot of a VM that may be
//   emulated (TCG);
// - ffi-rs.<platform>.node: ffi-rs's native addon (src/sys/ffi.ts: the reaper, pty and pipe
//   calls). ffi-rs's loader is bundled and looks for the addon next to the bundle first;
// - tsshim-native-helper: the native executor (dist/native/tsshim-exec, static);
// - guest-files.txt: the list of these files, relative to the repository root, one a line.
// Usable as a module (buildKataAgent(root), after buildNative) or run directly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const KATA_DIST = 'dist/kata';

// The guest has no systemd: the native runtime checks for /run/systemd/system before it would
// reach systemd over D-Bus, so the D-Bus client (~200 KB of dbus-native + XML parsers, a
// third of the bundle) is left out; if it were ever asked for, the answer is a clear error.
const noSystemdInGuest = {
  name: 'no-systemd-in-guest',
  setup(b) {
    b.onResolve({ filter: /systemd-manager\.js$/ }, () => ({ path: 'systemd-manager', namespace: 'kata-agent-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'kata-agent-stub' }, () => ({
      resolveDir: path.join(b.initialOptions.absWorkingDir, 'src/sys'),
      loader: 'ts',
      contents: [
        "import { ShimError } from '../core/errors.ts';",
        'export class SystemdError extends ShimError {}',
        'export class SystemdManager {',
        '  static async connect(): Promise<never> {',
        "    throw new ShimError('Unimplemented', 'the Kata guest agent has no systemd cgroup driver (the guest runs no systemd)');",
        '  }',
        '}',
      ].join('\n'),
    }));
  },
};

/** ffi-rs's addon package and file for this machine (the guest runs the host's Node and libc) */
function ffiAddon(root) {
  const triple = { x64: 'linux-x64-gnu', arm64: 'linux-arm64-gnu' }[process.arch];
  if (!triple) throw new Error(`build-kata-agent: no ffi-rs addon known for ${process.arch}`);
  const file = `ffi-rs.${triple}.node`;
  const src = path.join(root, 'node_modules/@yuuang', `ffi-rs-${triple}`, file);
  if (!fs.existsSync(src)) throw new Error(`build-kata-agent: ${src} missing (npm install)`);
  return { src, file };
}

export async function buildKataAgent(root) {
  const { build } = await import('esbuild');
  const out = path.join(root, KATA_DIST);
  fs.mkdirSync(out, { recursive: true });
  await build({
    absWorkingDir: root,
    entryPoints: ['src/backends/kata/guest-agent/main.ts'],
    outfile: path.join(KATA_DIST, 'guest-agent.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify: true,
    sourcemap: 'linked',
    // the addon is found next to the bundle at run time (copied below)
    external: ['@yuuang/*', '*.node'],
    plugins: [noSystemdInGuest],
    // bundled CommonJS (ffi-rs's loader) calls require() and reads __dirname
    banner: {
      js: [
        "import { createRequire as __agentCreateRequire } from 'node:module';",
        "import { fileURLToPath as __agentFileURLToPath } from 'node:url';",
        "import { dirname as __agentDirname } from 'node:path';",
        'const require = __agentCreateRequire(import.meta.url);',
        'const __filename = __agentFileURLToPath(import.meta.url);',
        'const __dirname = __agentDirname(__filename);',
      ].join(' '),
    },
    logLevel: 'warning',
  });
  const addon = ffiAddon(root);
  fs.copyFileSync(addon.src, path.join(out, addon.file));
  const helper = path.join(root, 'dist/native/tsshim-exec');
  fs.copyFileSync(helper, path.join(out, 'tsshim-native-helper'));
  fs.chmodSync(path.join(out, 'tsshim-native-helper'), 0o755);
  const files = ['guest-agent.mjs', addon.file, 'tsshim-native-helper'].map((f) => path.posix.join(KATA_DIST, f));
  fs.writeFileSync(path.join(out, 'guest-files.txt'), `${files.join('\n')}\n`);
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const { buildNative } = await import('./build-native.mjs');
  buildNative(root);
  console.log((await buildKataAgent(root)).join('\n'));
}
