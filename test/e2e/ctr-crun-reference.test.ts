/**
 * The ctr suite against containerd's runc shim driving crun (runc option BinaryName = "crun"):
 * the reference for tsshim's crun backend, and proof that crun works on this host
 * (scripts/setup-host.sh moves hugetlb off cgroup2 first).
 */
import { defineCtrSuite } from './ctr-suite.js';

defineCtrSuite('io.containerd.runc.v2', {
  // containerd's Go runc shim: its known races are allowed (see ctr-suite.ts)
  goRuncShim: true,
  label: 'reference runc shim driving crun (io.containerd.runc.v2, BinaryName=crun)',
  runFlags: (cd) => ['--runc-binary', 'crun', '--runc-root', cd.runtimeRoot],
});
