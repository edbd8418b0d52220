/**
 * The ctr suite against containerd's own runc shim: the reference that defines the expected
 * behaviour for tsshim. Must always pass.
 */
import { defineCtrSuite } from './ctr-suite.js';

defineCtrSuite('io.containerd.runc.v2', {
  // containerd's Go runc shim: its known races are allowed (see ctr-suite.ts)
  goRuncShim: true,
  label: 'reference runc shim (io.containerd.runc.v2 + runc)',
  runFlags: (cd) => ['--runc-root', cd.runtimeRoot],
});
