/**
 * The ctr suite against tsshim with its own native executor (backend = "native") under
 * real containerd 1.6; the config reaches the shim through runtime options.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineCtrSuite } from './ctr-suite.js';
import type { PrivateContainerd } from './harness/private-containerd.js';

defineCtrSuite('io.containerd.tsshim.v2', {
  label: 'tsshim + native backend',
  runFlags: (cd: PrivateContainerd): string[] => {
    const file = join(cd.dir, 'tsshim-native.toml');
    writeFileSync(file, `backend = "native"\n[native]\nroot = "${cd.runtimeRoot}"\n`);
    return ['--runtime-config-path', file];
  },
});
