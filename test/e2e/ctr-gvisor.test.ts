/**
 * The ctr suite with tsshim's gvisor backend on containerd 1.6 and bookworm's runsc (ptrace),
 * against containerd's runc shim driving the same runsc (see ctr-gvisor-suite.ts).
 */
import { defineGvisorCtrSuites } from './ctr-gvisor-suite.js';
import { RUNSC_DEBIAN } from './gvisor-flags.js';

defineGvisorCtrSuites(RUNSC_DEBIAN);
