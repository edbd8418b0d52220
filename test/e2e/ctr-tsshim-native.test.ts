/**
 * The ctr suite against tsshim with its own native executor (backend = "native") under
 * real containerd 1.6; the config reaches the shim through runtime options.
 */
import { defineCtrSuite } from './ctr-suite.js';
import { tsshimRunFlags } from './tsshim-run-flags.js';

defineCtrSuite('io.containerd.tsshim.v2', { label: 'tsshim + native backend', runFlags: tsshimRunFlags('native'), warnsInShimLog: true });
