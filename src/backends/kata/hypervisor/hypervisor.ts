/**
 * The hypervisor side of the kata backend (KATA-CONTRACT "Interface 2"): boot a VM from a
 * kernel + initrd with a shared dir (virtio-fs, tag `kataShared`) and a hybrid-vsock socket
 * on which the guest's agent answers; stop it leaving nothing behind.
 */
import { unimplemented } from '../../../core/errors.js';
import type { Reaper } from '../../../sys/reaper.js';
import { killPidFiles } from './host-process.js';
import { childProcessLauncher, reaperLauncher, type ProcessLauncher } from './launcher.js';
import { QemuHypervisor } from './qemu.js';

export interface VmSpec {
  /** sandbox id (names sockets, logs) */
  id: string;
  /** host dir for this VM: sockets, console log, pid files */
  stateDir: string;
  kernel: string;
  initrd: string;
  kernelParams: string[];
  memoryMiB: number;
  vcpus: number;
  /** host dir exported by virtiofsd, tag "kataShared" */
  sharedDir: string;
  /**
   * The pod's network: QEMU runs in the pod's network namespace and attaches to the tap there
   * (src/backends/kata/pod-network.ts made it), the guest NIC with the pod interface's MAC
   */
  network?: { netns: string; tap: string; mac: string };
  hypervisorPath?: string;
  extraArgs: string[];
  accel: 'kvm' | 'tcg' | 'auto';
  /** from start until the agent answers on its vsock port (CONNECT handshake accepted) */
  bootTimeoutMs: number;
}

export interface RunningVm {
  /** QEMU's host pid */
  readonly pid: number;
  /** hybrid vsock unix socket (CONNECT <port>) */
  readonly agentSocket: string;
  /** guest console output file (for error messages) */
  readonly consoleLog: string;
  /** QEMU exited (its helpers are stopped by then) */
  readonly exited: Promise<{ status: number }>;
  /** kill QEMU + virtiofsd + vsock device, remove sockets; idempotent */
  stop(): Promise<void>;
}

export interface Hypervisor {
  readonly name: string;
  start(spec: VmSpec): Promise<RunningVm>;
}

export type HypervisorName = 'qemu' | 'cloud-hypervisor' | 'firecracker';

export interface HypervisorDeps {
  /**
   * Starts the long-running host processes. Inside the shim: `reaperLauncher(reaper)` (or pass
   * `reaper` and it is made here); without a Reaper (tests, tools): `childProcessLauncher()`,
   * the default.
   */
  launcher?: ProcessLauncher;
  reaper?: Reaper;
  /** vhost-device-vsock binary (default: .cache/kata/vhost-device-vsock/bin/vhost-device-vsock) */
  vhostDeviceVsock?: string;
  /** virtiofsd binary (default /usr/lib/qemu/virtiofsd) */
  virtiofsd?: string;
  /** log line sink for timings and decisions (accel chosen, boot time) */
  log?: (msg: string) => void;
}

export const HYPERVISOR_NAMES: readonly HypervisorName[] = ['qemu', 'cloud-hypervisor', 'firecracker'];

class UnimplementedHypervisor implements Hypervisor {
  constructor(readonly name: string) {}
  start(): Promise<RunningVm> {
    return Promise.reject(
      unimplemented(
        `hypervisor ${this.name} is not implemented: tsshim's kata backend drives QEMU only (${this.name} is not installable on Debian 12); set the hypervisor to "qemu"`,
      ),
    );
  }
}

export function hypervisorByName(name: HypervisorName, deps: HypervisorDeps = {}): Hypervisor {
  switch (name) {
    case 'qemu': {
      const launcher = deps.launcher ?? (deps.reaper ? reaperLauncher(deps.reaper) : childProcessLauncher());
      return new QemuHypervisor({ ...deps, launcher });
    }
    case 'cloud-hypervisor':
    case 'firecracker':
      return new UnimplementedHypervisor(name);
    default:
      throw unimplemented(`unknown hypervisor ${String(name)} (known: ${HYPERVISOR_NAMES.join(', ')})`);
  }
}

/**
 * After a SIGKILLed shim: kills the processes the pid files in stateDir name (QEMU,
 * virtiofsd, vhost-device-vsock; each checked to still run that program), waits for them to
 * go, and removes the sockets and pid files. The console log stays (for diagnosis).
 */
export function cleanupVmState(stateDir: string): Promise<void> {
  return killPidFiles(stateDir);
}
