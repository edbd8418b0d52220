// Bundles the shim into dist/shim/*.mjs with esbuild. One bundle (code-split per action)
// loads far faster than hundreds of ESM files: Node resolves and compiles each module
// file separately, which alone cost ~100 ms for execa + protobuf here.
//
// Ends by writing dist/release.json: the files of this build, for an install
// (scripts/install.mjs) to copy. dist/ keeps files of earlier builds (see below), so the
// directory itself is not the release.
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { buildDaemon, buildTsrunBundle, versionDefine } from './build-cached-bundle.mjs';
import { buildLauncher } from './build-launcher.mjs';
import { buildNative, NATIVE_OUTPUT } from './build-native.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const manifestFile = path.join(root, 'dist/release.json');

/** writes dist/release.json under a temporary name and renames it */
function writeManifest(manifest) {
  fs.writeFileSync(`${manifestFile}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  fs.renameSync(`${manifestFile}.tmp`, manifestFile);
}

// --c-only: the C parts for the bundles already there, with this machine's gcc and Node (an
// install from the packed project, scripts/npm-postinstall.mjs: its bundles were built by
// `npm pack`, its C parts are not in the package)
if (process.argv.includes('--c-only')) {
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  buildNative(root);
  await buildLauncher(root);
  writeManifest({ ...manifest, node: process.execPath, nodeVersion: process.version });
  process.exit(0);
}

const { build } = await import('esbuild');

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
  define: versionDefine(root),
  logLevel: 'warning',
};

// The native backend's C executor first: the daemon's and tsrun's code caches are made by
// running a container through them (on a fresh clone it is not there yet otherwise).
buildNative(root);

// The daemon is one self-contained, minified file loaded with V8's code cache: its boot
// is on containerd's critical path (scripts/build-cached-bundle.mjs, src/boot/cached-boot.ts).
const daemon = await buildDaemon(root);

// The other actions (start/delete fallbacks, -info, -v) dispatch from main.mjs.
const main = await build({ ...common, entryPoints: { main: 'src/shim/main.ts' }, splitting: true, chunkNames: 'main-[name]-[hash]', metafile: true });

// the executable containerd runs: a C launcher in front of the bundle (src/launcher)
const launcher = await buildLauncher(root);

// the tsrun CLI bundle (src/backends/native)
const tsrun = await buildTsrunBundle(root);

// the Kata guest agent and what the guest image takes with it (dist/kata/guest-files.txt);
// loaded here, not above: the packed project's `--c-only` build has no such script
const { buildKataAgent } = await import('./build-kata-agent.mjs');
await buildKataAgent(root);

/** paths relative to the root, of the files a release needs (no source maps) */
const rel = (file) => path.relative(root, path.resolve(root, file));
const programFiles = (dir, program) => [program.boot, path.join(dir, program.bundle), ...(program.cache ? [path.join(dir, program.cache)] : []), ...program.lazyChunks.map((c) => path.join(dir, c))];
const files = [
  ...Object.keys(main.metafile.outputs).filter((f) => f.endsWith('.mjs')),
  ...programFiles('dist/shim', daemon),
  ...programFiles('dist/native', tsrun),
  NATIVE_OUTPUT,
  launcher,
].map(rel);
const program = (dir, p) => ({ boot: rel(p.boot), cache: path.join(dir, p.bundle.replace(/\.cjs$/, '.cache')) });
/** bin/: the commands an install links (the launcher, its aliases: links to it, tsrun), not the Node entry */
const bin = fs
  .readdirSync(path.join(root, 'bin'))
  .filter((name) => name !== 'tsshim-node.mjs')
  .sort()
  .map((name) => {
    const file = path.join(root, 'bin', name);
    return fs.lstatSync(file).isSymbolicLink() ? { name, aliasOf: fs.readlinkSync(file) } : { name };
  });
const manifest = {
  version: JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version,
  // the Node the launcher runs and the code caches were made by
  node: process.execPath,
  nodeVersion: process.version,
  files: [...new Set(files)].sort(),
  bin,
  // the programs with a code cache: an install makes their caches anew in the release
  programs: { daemon: program('dist/shim', daemon), tsrun: program('dist/native', tsrun) },
};
writeManifest(manifest);
