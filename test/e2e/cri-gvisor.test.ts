/**
 * CRI end-to-end with gVisor on containerd 1.6: the CRI suite through tsshim's gvisor backend
 * (handler tsshim-gvisor: one shim and ONE runsc-sandbox per pod, app containers joining it).
 * Checks gVisor cannot pass are skipped with the reason. The reference (handler runsc:
 * containerd's runc shim driving runsc through a wrapper) cannot run this suite at all: the
 * measured reason is listed as a skipped check. The ctr suites compare against it instead.
 */
import { defineCriSuite } from './cri-suite.js';
import { RUNSC_DEBIAN } from './gvisor-flags.js';

/** each reason measured with runsc 2022 in this suite's run (the failure it gave) */
const GVISOR_CRI_SKIPS: Readonly<Record<string, string>> = {
  'containers share the pod network namespace (worker reaches web on localhost)':
    'under --network=host a sandbox app container gets no answer on 127.0.0.1 (wget exits 1); the pod IP answers from the host',
  'UpdateContainerResources changes the container cgroup limits': 'runsc has no update verb: tsshim answers Unimplemented',
  'a container over its memory limit ends with reason OOMKilled (same shim)':
    'runsc puts only the sandbox in a host cgroup: a 32 MiB-limited app container running `tail /dev/zero` was still running after 30 s',
  'a privileged container (as CNI and CSI daemonsets run): every capability, the host devices, nothing masked, no seccomp':
    'runsc 2022 refuses containerd\'s full capability set: unknown capability "CAP_PERFMON"',
  'a restricted container (Pod Security "restricted"): RuntimeDefault seccomp, no capabilities, non-root, read-only root, no_new_privs; with kubelet\'s hugepage limits':
    "gVisor's /proc/self/status has no Seccomp line",
  "the cgroup filesystem in a container: the container's own cgroups, read-only, as runc shows them": 'gVisor shows its own cgroupfs, not the host\'s',
  'volumes: read-write, read-only dir and file; HostToContainer and Bidirectional propagation, each way':
    'runsc rejects rshared root propagation ("root mount propagation option must specify private or slave")',
  'shared PID namespace (shareProcessNamespace): a stopped container takes its leftover children along':
    'the check reads host cgroups for the container\'s processes; gVisor runs them inside the sandbox',
};

defineCriSuite({
  line: '1.6',
  handler: 'tsshim-gvisor',
  label: `gVisor, ${RUNSC_DEBIAN.label}`,
  runsc: RUNSC_DEBIAN,
  skipReason: RUNSC_DEBIAN.missing,
  skipChecks: GVISOR_CRI_SKIPS,
  sandboxProcess: 'runsc-sandbox',
  reference: {
    handler: 'runsc',
    // measured with runsc 2022: a pod alone, and a pod with a plain and a tty app container
    cannot:
      "containerd's runc shim cannot drive a gVisor pod. StopPodSandbox of a pod alone hits CRI's 60 s deadline: the TaskExit comes only with containerd's SIGKILL, and its retries then fail on runsc's \"sandbox is not running\", which the runc shim does not take for an exited process, so the pod is never removed. An app container's `runsc start` gives it the shim's pipes, which its gofer keeps open (StartContainer hits the deadline); with a terminal it starts, but its exit never arrives (the shim waits on its pid, the sandbox's). The handler runsc-pod (runscPodReferenceWrapper) gets past StartContainer, so the bench can time a pod's start, but no app container's exit reaches the runc shim there either, so it cannot stop a pod",
  },
});
