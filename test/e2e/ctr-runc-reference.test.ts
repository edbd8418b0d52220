/**
 * The ctr suite against containerd's own runc shim: the reference that defines the expected
 * behaviour for tsshim. Must always pass.
 */
import { defineCtrSuite } from './ctr-suite.js';

defineCtrSuite('io.containerd.runc.v2', {
  // the Go runc shim itself sometimes loses a run's last lines (see ctr-suite.ts)
  lastLinesLossAllowed: 2,
  deleteEventLossAllowed: true,
  label: 'reference runc shim (io.containerd.runc.v2 + runc)',
  runFlags: (cd) => ['--runc-root', cd.runtimeRoot],
});
