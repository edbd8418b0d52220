// Bundles the shim into dist/shim/*.mjs with esbuild. One bundle (code-split per action)
// loads far faster than hundreds of ESM files: Node resolves and compiles each module
// file separately, which alone cost ~100 ms for execa + protobuf here.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { buildDaemon } from './build-cached-bundle.mjs';
import { buildLauncher } from './build-launcher.mjs';
import { buildNative, buildTsrun } from './build-native.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// dist/shim is not cleaned: chunk names are content hashes, and a daemon that is running
// during a rebuild (an upgrade, on a node) may still lazy-load the chunks it was built with.
const common = {
  absWorkingDir: root,
  outdir: 'dist/shim',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // native addon: resolved from node_modules at run time
  external: ['ffi-rs'],
  // some dependencies are CommonJS and call require() for Node built-ins
  banner: { js: "import { createRequire as __tsshimCreateRequire } from 'node:module'; const require = __tsshimCreateRequire(import.meta.url);" },
  logLevel: 'warning',
};

// The native backend's C executor first: the daemon's and tsrun's code caches are made by
// running a container through them (on a fresh clone it is not there yet otherwise).
buildNative(root);

// The daemon is one self-contained, minified file loaded with V8's code cache: its boot
// is on containerd's critical path (scripts/build-cached-bundle.mjs, src/boot/cached-boot.ts).
await buildDaemon(root);

// The other actions (start/delete fallbacks, -info, -v) dispatch from main.mjs.
await build({ ...common, entryPoints: { main: 'src/shim/main.ts' }, splitting: true, chunkNames: 'main-[name]-[hash]' });

// the executable containerd runs: a C launcher in front of the bundle (src/launcher)
await buildLauncher(root);

// the tsrun CLI bundle (src/backends/native)
await buildTsrun(root);
