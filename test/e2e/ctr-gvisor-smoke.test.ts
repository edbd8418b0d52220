/**
 * gvisor backend smoke tests on containerd 1.7 and 2.1 (fetched into .cache by
 * scripts/fetch-containerd.sh), with both runsc builds; the full ctr suite runs on 1.6
 * (ctr-gvisor.test.ts, ctr-gvisor-systrap.test.ts).
 */
import { defineGvisorSmoke } from './ctr-gvisor-suite.js';
import { RUNSC_BACKPORTS, RUNSC_DEBIAN } from './gvisor-flags.js';

defineGvisorSmoke(RUNSC_DEBIAN, '1.7');
defineGvisorSmoke(RUNSC_BACKPORTS, '2.1');
