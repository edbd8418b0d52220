/**
 * The ctr suite for gVisor: tsshim's gvisor backend against the reference, containerd's runc
 * shim driving runsc (`--runc-binary` = a wrapper adding runsc's flags; Debian ships no
 * containerd-shim-runsc-v1), in the same file. Checks gVisor itself cannot pass are skipped
 * with the reason, for both, when the reference fails them too.
 */
import { release } from 'node:os';
import { expect, it } from 'vitest';
import { defineCtrSuite, type CtrSuiteContext } from './ctr-suite.js';
import { gvisorRunFlags, runscReferenceRunFlags, type RunscBuild } from './gvisor-flags.js';

/** what gVisor cannot do the way runc does, for the reference and tsshim alike */
export const GVISOR_SKIPS: Readonly<Record<string, string>> = {
  "starts the process with no signal ignored or blocked, and HOME from the image's /etc/passwd":
    "gVisor's /proc/<pid>/status has no SigBlk/SigIgn lines",
  'exec: no signal ignored or blocked, HOME from /etc/passwd': "gVisor's /proc/<pid>/status has no SigBlk/SigIgn lines",
  'runs with a terminal (-t): output, exit code': "`tty` says \"not a tty\" in gVisor (no ttyname for its pty)",
  'exec: terminal (-t)': "`tty` says \"not a tty\" in gVisor (no ttyname for its pty)",
};

/** proof of the sandbox, and what gVisor reports instead of the host's view */
export function gvisorChecks({ newId, runArgs, ctrExpect }: CtrSuiteContext): void {
  it('runs sandboxed: uname -r and dmesg show gVisor, not the host kernel', async () => {
    const result = await ctrExpect(runArgs(['--rm'], newId('uname'), ['sh', '-c', 'uname -r; dmesg']));
    const [kernel, ...boot] = result.stdout.split('\n');
    expect(kernel).not.toBe(release());
    expect(boot.join('\n')).toMatch(/Starting gVisor/);
  });

}

export function defineGvisorCtrSuites(build: RunscBuild, version: '1.6' | '1.7' | '2.1' = '1.6'): void {
  defineCtrSuite('io.containerd.runc.v2', {
    goRuncShim: true,
    label: `containerd ${version}: reference runc shim driving ${build.label}`,
    runFlags: runscReferenceRunFlags(build),
    containerd: { version },
    skipReason: build.missing,
    skipChecks: {
      ...GVISOR_SKIPS,
      // measured: fails for the reference (tsshim stops the sandbox when start fails)
      'a missing executable gives a clear error and leaves nothing behind':
        'runsc fails only at start, with the sandbox up; the runc shim leaves a CREATED task ctr cannot delete',
    },
    sandboxPids: true,
    extraChecks: gvisorChecks,
  });
  defineCtrSuite('io.containerd.tsshim.v2', {
    label: `containerd ${version}: tsshim + gvisor backend, ${build.label}`,
    runFlags: gvisorRunFlags(build),
    containerd: { version },
    skipReason: build.missing,
    skipChecks: GVISOR_SKIPS,
    sandboxPids: true,
    extraChecks: gvisorChecks,
  });
}

