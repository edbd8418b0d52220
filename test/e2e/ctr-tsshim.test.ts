/**
 * The ctr suite against tsshim (io.containerd.tsshim.v2) under real containerd 1.6,
 * once with the runc backend and once with crun. The config reaches the shim the way
 * CRI passes it: runtime options (runtimeoptions.v1.Options.config_path).
 */
import { defineCtrSuite } from './ctr-suite.js';
import { tsshimRunFlags } from './tsshim-run-flags.js';

defineCtrSuite('io.containerd.tsshim.v2', { label: 'tsshim + runc backend', runFlags: tsshimRunFlags('runc') });
defineCtrSuite('io.containerd.tsshim.v2', { label: 'tsshim + crun backend', runFlags: tsshimRunFlags('crun') });
