/**
 * The ctr suite against tsshim (io.containerd.tsshim.v2) under real containerd 1.6,
 * once with the runc backend and once with crun. The config reaches the shim the way
 * CRI passes it: runtime options (runtimeoptions.v1.Options.config_path).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineCtrSuite } from './ctr-suite.js';
import type { PrivateContainerd } from './harness/private-containerd.js';

function configFor(backend: 'runc' | 'crun') {
  return (cd: PrivateContainerd): string[] => {
    const file = join(cd.dir, `tsshim-${backend}.toml`);
    writeFileSync(file, `backend = "${backend}"\n[${backend}]\nroot = "${cd.runtimeRoot}"\n`);
    return ['--runtime-config-path', file];
  };
}

defineCtrSuite('io.containerd.tsshim.v2', { label: 'tsshim + runc backend', runFlags: configFor('runc') });
defineCtrSuite('io.containerd.tsshim.v2', { label: 'tsshim + crun backend', runFlags: configFor('crun') });
