/**
 * The ctr suite with containerd's own runc shim (io.containerd.runc.v2) driving bin/tsrun
 * as its runc (runtime options' BinaryName, what `ctr run --runc-binary` sets): the native
 * executor behind the runc command line, judged by the reference expectations.
 */
import { join } from 'node:path';
import { defineCtrSuite } from './ctr-suite.js';
import { repoRoot } from './harness/repo-paths.js';

const build = (await import(join(repoRoot, 'scripts/build-native.mjs'))) as { buildNative: (r: string) => string; buildTsrun: (r: string) => Promise<string> };
build.buildNative(repoRoot);
await build.buildTsrun(repoRoot);

defineCtrSuite('io.containerd.runc.v2', {
  // containerd's Go runc shim: its known races are allowed (see ctr-suite.ts)
  goRuncShim: true,
  label: 'containerd runc shim + tsrun (native executor)',
  runFlags: (cd) => ['--runc-binary', join(repoRoot, 'bin/tsrun'), '--runc-root', cd.runtimeRoot],
});
