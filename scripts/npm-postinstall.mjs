// `npm install -g <packed tsshim>`: the same install as scripts/install.sh, into npm's
// global prefix. The package has the bundles (built by `npm pack`, see scripts/npm-prepack.mjs)
// but no C parts and no code caches: the launcher and the executor are compiled here with
// this machine's gcc, against the Node running this install, then scripts/install.sh puts a
// release into PREFIX/lib/tsshim/<version>+<build> and links PREFIX/bin, exactly as from a
// checkout (it makes the code caches there).
//
// A checkout (no dist/packed.json, or a .git: a `npm pack` that failed halfway may leave the
// mark behind) is not a package: `npm ci` there runs this script and it does nothing.
// A local (not -g) install only builds the C parts and says how to install on the node.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (!fs.existsSync(path.join(root, 'dist/packed.json')) || fs.existsSync(path.join(root, '.git'))) process.exit(0);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** npm's global prefix, from where npm put this package: PREFIX/lib/node_modules/<name> */
function globalPrefix() {
  if (process.env.npm_config_global !== 'true') return undefined;
  const parent = path.dirname(root);
  if (path.basename(parent) !== 'node_modules' || path.basename(path.dirname(parent)) !== 'lib') return undefined;
  return path.dirname(path.dirname(parent));
}

// the same checks as scripts/install.sh (root, Node, gcc) before compiling anything
const prefix = globalPrefix();
if (prefix === undefined) {
  run(process.execPath, ['scripts/build.mjs', '--c-only']);
  process.stdout.write(`tsshim: built; to install it on this node run ${path.join(root, 'scripts/install.sh')} (as root)\n`);
  process.exit(0);
}
run('bash', ['scripts/install.sh', '--check-only']);
run(process.execPath, ['scripts/build.mjs', '--c-only']);
// install.mjs under this very Node: the one the C launcher was just built for
run(process.execPath, ['scripts/install.mjs', '--prefix', prefix, '--no-build']);
