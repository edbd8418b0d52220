/**
 * The ctr suite with tsshim's gvisor backend on containerd 1.6 and bookworm-backports' runsc
 * (2024, systrap platform; fetched into .cache by scripts/fetch-runsc.sh, never installed),
 * against containerd's runc shim driving the same runsc.
 */
import { defineGvisorCtrSuites } from './ctr-gvisor-suite.js';
import { RUNSC_BACKPORTS } from './gvisor-flags.js';

defineGvisorCtrSuites(RUNSC_BACKPORTS);
