/**
 * virtiofsd (the C one shipped with bookworm's QEMU, /usr/lib/qemu/virtiofsd): exports the
 * VM's shared dir over vhost-user; QEMU's vhost-user-fs-pci device connects to its socket and
 * the guest mounts it by tag (`kataShared`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HostProcess, waitForSocket } from './host-process.js';
import type { ProcessLauncher } from './launcher.js';

export const VIRTIOFSD_SOCKET = 'virtiofsd.sock';

/** The hard RLIMIT_NOFILE of this process: virtiofsd may raise its soft limit that far. */
function hardNofile(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const hard = Number(line?.trim().split(/\s+/)[4]);
    return Number.isInteger(hard) && hard > 0 ? hard : 0;
  } catch {
    return 0;
  }
}

export function virtiofsdArgs(socketPath: string, sharedDir: string): string[] {
  return [
    `--socket-path=${socketPath}`,
    '-o',
    `source=${sharedDir}`,
    // the guest sees host changes (rootfs bind mounts made after boot) without a stale cache
    '-o',
    'cache=auto',
    // chroot, not its default mount namespace: bind mounts the host adds to the shared dir
    // after start stay visible whatever the propagation of the host's mounts
    '-o',
    'sandbox=chroot',
    '-o',
    'log_level=warn',
    // its default asks for up to 1,000,000 fds: more than the hard limit fails without
    // CAP_SYS_RESOURCE, so ask for exactly the hard limit (0: leave it unchanged)
    `--rlimit-nofile=${hardNofile()}`,
  ];
}

export async function startVirtiofsd(
  launcher: ProcessLauncher,
  o: { binary: string; stateDir: string; sharedDir: string; deadline: number },
): Promise<{ proc: HostProcess; socket: string }> {
  const socket = join(o.stateDir, VIRTIOFSD_SOCKET);
  const proc = HostProcess.launch(launcher, o.stateDir, 'virtiofsd', o.binary, virtiofsdArgs(socket, o.sharedDir));
  try {
    await waitForSocket(socket, proc, o.deadline, 'virtiofsd');
  } catch (err) {
    await proc.stop(0);
    throw err;
  }
  return { proc, socket };
}
