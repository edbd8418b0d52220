/**
 * QEMU (Debian's qemu-system-x86 7.2) as the kata hypervisor: q35, guest memory from a shared
 * memfd (vhost-user devices map it), virtio-fs through virtiofsd, vsock through
 * vhost-device-vsock, the serial console into a file. KVM when /dev/kvm really runs a guest
 * (probed once per QEMU binary), software emulation (TCG) otherwise.
 */
import { accessSync, constants as fsConstants, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShimError, deadlineExceeded, failedPrecondition, invalidArgument, notFound, unimplemented } from '../../../core/errors.js';
import { guestAssetsFrom } from '../guest-assets.js';
import type { Hypervisor, HypervisorDeps, RunningVm, VmSpec } from './hypervisor.js';
import { HostProcess, removeSockets, tailOf } from './host-process.js';
import type { ProcessLauncher } from './launcher.js';
import { startVirtiofsd } from './virtiofsd.js';
import { probeHybridVsock, startVsockDevice } from './vsock-device.js';

export const DEFAULT_AGENT_PORT = 1024;
export const CONSOLE_LOG = 'console.log';

/**
 * Always on the guest's command line: the console on the first serial port (our init and the
 * kernel write there), no reboot loop on a panic, and what Kata also sets to boot faster
 * (no i8042 probing, no crypto self-tests, trust the TSC). The spec's params come after and win.
 */
export const BASE_KERNEL_PARAMS = [
  'console=ttyS0',
  'quiet',
  'panic=-1',
  'reboot=k',
  'tsc=reliable',
  'no_timer_check',
  'rcupdate.rcu_expedited=1',
  'i8042.direct=1',
  'i8042.dumbkbd=1',
  'i8042.nopnp=1',
  'i8042.noaux=1',
  'noreplace-smp',
  'cryptomgr.notests',
  'net.ifnames=0',
];

function onPath(file: string): string | undefined {
  if (file.includes('/')) return existsSync(file) ? file : undefined;
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = join(dir || '.', file);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** QEMU's option syntax: a comma inside a value is written twice */
const qemuValue = (s: string) => s.replace(/,/g, ',,');

export function agentPortOf(kernelParams: string[]): number {
  let port = DEFAULT_AGENT_PORT;
  for (const p of kernelParams) {
    const m = /^agent\.port=(\d+)$/.exec(p);
    if (m) port = Number(m[1]);
  }
  return port;
}

export interface QemuArgsInput {
  spec: VmSpec;
  accel: 'kvm' | 'tcg';
  consoleLog: string;
  vsockDeviceSocket: string;
  virtiofsSocket: string;
}

export function qemuArgs(i: QemuArgsInput): string[] {
  const { spec } = i;
  return [
    '-machine', 'q35',
    '-accel', i.accel,
    '-cpu', i.accel === 'kvm' ? 'host' : 'max',
    '-smp', String(spec.vcpus),
    '-m', `${spec.memoryMiB}M`,
    // vhost-user backends map the guest's memory: it must be a shared file mapping
    '-object', `memory-backend-memfd,id=mem,size=${spec.memoryMiB}M,share=on`,
    '-numa', 'node,memdev=mem',
    '-nographic', '-nodefaults', '-no-user-config',
    // a guest reboot (or panic, panic=-1) ends QEMU like a power-off: the VM is gone either way
    '-no-reboot',
    '-serial', `file:${qemuValue(i.consoleLog)}`,
    '-kernel', qemuValue(spec.kernel),
    '-initrd', qemuValue(spec.initrd),
    '-append', [...BASE_KERNEL_PARAMS, ...spec.kernelParams].join(' '),
    '-chardev', `socket,id=vsock,path=${qemuValue(i.vsockDeviceSocket)}`,
    '-device', 'vhost-user-vsock-pci,chardev=vsock',
    '-chardev', `socket,id=fs,path=${qemuValue(i.virtiofsSocket)}`,
    '-device', 'vhost-user-fs-pci,chardev=fs,tag=kataShared',
    // the pod's NIC: the tap joined to the pod's veth, the guest side with the veth's MAC
    ...(spec.network
      ? ['-netdev', `tap,id=net0,ifname=${spec.network.tap},script=no,downscript=no,vhost=off`, '-device', `virtio-net-pci,netdev=net0,mac=${spec.network.mac}`]
      : []),
    ...spec.extraArgs,
  ];
}

/* ---- KVM probe ---------------------------------------------------------------------------- */

/**
 * A 64 KiB firmware whose reset vector writes 1 to the isa-debug-exit port: QEMU then exits
 * with status (1 << 1) | 1 = 3. Run with the CPU model the real VM gets (`-cpu host`), it tells
 * a KVM that runs guests from one that does not (a paravirtual /dev/kvm aborts QEMU here).
 */
function probeFirmware(): Buffer {
  const fw = Buffer.alloc(64 * 1024, 0xf4); // hlt everywhere
  Buffer.from([0xb0, 0x01, 0xe6, 0xf4, 0xf4]).copy(fw, fw.length - 16); // mov al,1; out 0xf4,al; hlt
  return fw;
}

const kvmProbes = new Map<string, Promise<boolean>>();

export function probeKvm(qemu: string, launcher: ProcessLauncher, timeoutMs = 5000): Promise<boolean> {
  let probe = kvmProbes.get(qemu);
  if (!probe) {
    probe = runKvmProbe(qemu, launcher, timeoutMs);
    kvmProbes.set(qemu, probe);
  }
  return probe;
}

async function runKvmProbe(qemu: string, launcher: ProcessLauncher, timeoutMs: number): Promise<boolean> {
  try {
    accessSync('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    return false;
  }
  const base = join(tmpdir(), `tsshim-kvm-probe-${process.pid}`);
  const fw = `${base}.bin`;
  writeFileSync(fw, probeFirmware());
  try {
    const proc = launcher.launch(
      qemu,
      ['-machine', 'q35', '-accel', 'kvm', '-cpu', 'host', '-m', '16', '-display', 'none', '-nodefaults', '-no-user-config',
        '-bios', fw, '-device', 'isa-debug-exit,iobase=0xf4,iosize=1'],
      { logFile: `${base}.log` },
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const r = await Promise.race([proc.exited, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // gone
      }
      await proc.exited;
      return false;
    }
    return r.status === 3;
  } catch {
    return false;
  } finally {
    rmSync(fw, { force: true });
    rmSync(`${base}.log`, { force: true });
  }
}

/* ---- the VM ---------------------------------------------------------------------------- */

class QemuVm implements RunningVm {
  readonly exited: Promise<{ status: number }>;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly qemu: HostProcess,
    private readonly helpers: HostProcess[],
    private readonly stateDir: string,
    readonly agentSocket: string,
    readonly consoleLog: string,
  ) {
    // QEMU gone (powered off, crashed, killed): its helpers have nobody to serve
    this.exited = qemu.exited.then(async (e) => {
      await Promise.all(this.helpers.map((h) => h.stop()));
      removeSockets(this.stateDir);
      return e;
    });
  }

  get pid(): number {
    return this.qemu.pid;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.qemu.stop();
      await this.exited;
    })();
    return this.stopping;
  }
}

interface QemuDeps extends HypervisorDeps {
  launcher: ProcessLauncher;
}

export class QemuHypervisor implements Hypervisor {
  readonly name = 'qemu';

  constructor(private readonly deps: QemuDeps) {}

  async start(spec: VmSpec): Promise<RunningVm> {
    const started = Date.now();
    const deadline = started + spec.bootTimeoutMs;
    const { vm, qemu, fail } = await this.launch(spec, deadline);
    try {
      await this.waitForAgent(vm, qemu, agentPortOf(spec.kernelParams), deadline, spec);
    } catch (err) {
      return fail(err);
    }
    this.deps.log?.(`kata vm ${spec.id}: agent answered ${Date.now() - started} ms after start`);
    return vm;
  }

  /**
   * Boots spec as start() does (same helpers, same QEMU arguments) and waits for the VM to end
   * by itself: the bench floor (floor.img powers off at once). Rejects with DeadlineExceeded
   * (the VM killed) when it does not end within bootTimeoutMs.
   */
  async runUntilExit(spec: VmSpec): Promise<{ status: number; ms: number }> {
    const started = Date.now();
    const deadline = started + spec.bootTimeoutMs;
    const { vm, fail } = await this.launch(spec, deadline);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), Math.max(0, deadline - Date.now()))));
    const r = await Promise.race([vm.exited, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') return fail(deadlineExceeded(`kata: the VM did not power off within ${spec.bootTimeoutMs} ms`));
    return { status: r.status, ms: Date.now() - started };
  }

  private async launch(spec: VmSpec, deadline: number): Promise<{ vm: QemuVm; qemu: HostProcess; fail: (err: unknown) => Promise<never> }> {
    const log = this.deps.log ?? (() => {});
    const nsenter = spec.network ? onPath('nsenter') : undefined;
    if (spec.network && !nsenter) throw notFound('kata: nsenter not found (util-linux): needed to start the VM in the pod network namespace');
    if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 64) throw invalidArgument(`kata: memory ${spec.memoryMiB} MiB is too small`);
    if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1) throw invalidArgument(`kata: ${spec.vcpus} vCPUs`);
    for (const [what, path] of [['kernel', spec.kernel], ['initrd', spec.initrd]] as const) {
      try {
        accessSync(path, fsConstants.R_OK);
      } catch {
        throw notFound(`kata: guest ${what} ${path} not found or unreadable (scripts/build-kata-guest.sh builds it)`);
      }
    }
    if (!existsSync(spec.sharedDir)) throw notFound(`kata: shared dir ${spec.sharedDir} does not exist`);
    const qemuBin = onPath(spec.hypervisorPath ?? 'qemu-system-x86_64');
    if (!qemuBin) throw notFound(`kata: QEMU ${spec.hypervisorPath ?? 'qemu-system-x86_64'} not found (apt-get install qemu-system-x86)`);
    const assets = guestAssetsFrom();
    const vsockBin = this.deps.vhostDeviceVsock ?? assets.vhostDeviceVsock;
    const virtiofsdBin = this.deps.virtiofsd ?? assets.virtiofsd;
    if (!existsSync(vsockBin)) throw notFound(`kata: ${vsockBin} not found (scripts/fetch-kata.sh fetches it)`);
    if (!existsSync(virtiofsdBin)) throw notFound(`kata: ${virtiofsdBin} not found (apt-get install qemu-system-x86)`);

    const accel = spec.accel === 'auto' ? ((await probeKvm(qemuBin, this.deps.launcher)) ? 'kvm' : 'tcg') : spec.accel;
    log(`kata vm ${spec.id}: accel ${accel}`);

    mkdirSync(spec.stateDir, { recursive: true, mode: 0o700 });
    const consoleLog = join(spec.stateDir, CONSOLE_LOG);
    rmSync(consoleLog, { force: true });
    const helpers: HostProcess[] = [];
    let qemu: HostProcess | undefined;
    const fail = async (err: unknown): Promise<never> => {
      if (qemu?.running) await qemu.stop(0);
      await Promise.all(helpers.map((h) => h.stop(0)));
      removeSockets(spec.stateDir);
      throw err;
    };
    try {
      const vsock = await startVsockDevice(this.deps.launcher, { binary: vsockBin, stateDir: spec.stateDir, deadline });
      helpers.push(vsock.proc);
      const fs = await startVirtiofsd(this.deps.launcher, { binary: virtiofsdBin, stateDir: spec.stateDir, sharedDir: spec.sharedDir, deadline });
      helpers.push(fs.proc);
      const args = qemuArgs({ spec, accel, consoleLog, vsockDeviceSocket: vsock.deviceSocket, virtiofsSocket: fs.socket });
      // in the pod's network namespace, where its tap is; nsenter execs QEMU (same pid)
      qemu = nsenter
        ? HostProcess.launch(this.deps.launcher, spec.stateDir, 'qemu', nsenter, [`--net=${spec.network!.netns}`, '--', qemuBin, ...args], qemuBin)
        : HostProcess.launch(this.deps.launcher, spec.stateDir, 'qemu', qemuBin, args);
      return { vm: new QemuVm(qemu, helpers, spec.stateDir, vsock.hybridSocket, consoleLog), qemu, fail };
    } catch (err) {
      return fail(err);
    }
  }

  private async waitForAgent(vm: QemuVm, qemu: HostProcess, port: number, deadline: number, spec: VmSpec): Promise<void> {
    const diagnosis = () => {
      const consoleTail = tailOf(vm.consoleLog, 12);
      const qemuTail = qemu.logTail(5);
      return `${consoleTail ? `; guest console:\n${consoleTail}` : '; the guest console is empty'}${qemuTail ? `\nqemu: ${qemuTail}` : ''}`;
    };
    for (;;) {
      if (!qemu.running) {
        const { status } = await qemu.exited;
        throw failedPrecondition(`kata: the VM exited (QEMU status ${status}) before its agent answered on vsock port ${port}${diagnosis()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw deadlineExceeded(`kata: the agent did not answer on vsock port ${port} within ${spec.bootTimeoutMs} ms${diagnosis()}`);
      }
      let answered = false;
      try {
        answered = await probeHybridVsock(vm.agentSocket, port, Math.min(left, 3000));
      } catch (err) {
        if (!(err instanceof ShimError && err.code === 'DeadlineExceeded')) throw err;
      }
      if (answered) return;
      // the guest is still booting: refused at once, so retry soon, but not in a busy loop
      await Promise.race([new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, deadline - Date.now())))), qemu.exited]);
    }
  }
}
