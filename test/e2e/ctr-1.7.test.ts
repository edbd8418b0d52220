/**
 * The ctr suite on containerd 1.7 (Debian trixie's, fetched into .cache by
 * scripts/fetch-containerd.sh, never installed): the reference runc shim of that release, then
 * tsshim with its runc backend and with native (the default). crun is left out: crun 1.8.1 refuses the OCI spec 1.2 that
 * containerd 1.7 writes.
 */
import { defineCtrSuite } from './ctr-suite.js';
import { tsshimRunFlags } from './tsshim-run-flags.js';

defineCtrSuite('io.containerd.runc.v2', {
  // containerd's Go runc shim: its known races are allowed (see ctr-suite.ts)
  goRuncShim: true,
  label: 'containerd 1.7: reference runc shim (io.containerd.runc.v2 1.7 + runc)',
  runFlags: (cd) => ['--runc-root', cd.runtimeRoot],
  containerd: { version: '1.7' },
});
defineCtrSuite('io.containerd.tsshim.v2', {
  label: 'containerd 1.7: tsshim + runc backend',
  runFlags: tsshimRunFlags('runc'),
  // debug: containerd passes -debug to the shim, whose log lines then land in containerd's log.
  containerd: { version: '1.7', logLevel: 'debug' },
});
defineCtrSuite('io.containerd.tsshim.v2', {
  label: 'containerd 1.7: tsshim + native backend (the default)',
  runFlags: tsshimRunFlags('native'),
  containerd: { version: '1.7' },
});
