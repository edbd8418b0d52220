// `npm pack` / `npm publish`: the bundles go into the package prebuilt (an install has no
// esbuild or TypeScript: dev dependencies), marked by dist/packed.json so that
// scripts/npm-postinstall.mjs knows it runs from a package and not in a checkout. The C
// parts and the code caches are not packed (package.json "files"): they are made on the
// node that installs it. scripts/npm-postpack removes the mark again.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (process.argv[2] === 'post') {
  fs.rmSync(path.join(root, 'dist/packed.json'), { force: true });
  process.exit(0);
}
const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
fs.writeFileSync(path.join(root, 'dist/packed.json'), `${JSON.stringify({ version }, null, 2)}\n`);
