/**
 * vhost-device-vsock (Debian sid, unpacked into .cache/kata): gives a QEMU guest a virtio-vsock
 * device over vhost-user (QEMU's vhost-user-vsock-pci connects to `socket`), with the host
 * side as a "hybrid vsock" unix socket (`uds-path`): a host client writes `CONNECT <port>\n`,
 * reads `OK <n>\n`, then has a byte stream to the guest's AF_VSOCK listener on that port.
 *
 * `probeHybridVsock` does that handshake once: it succeeds only when something in the guest
 * accepted the connection (our init listens only once the agent does).
 */
import { join } from 'node:path';
import { ShimError, deadlineExceeded } from '../../../core/errors.js';
import { connectPipe } from '../../../sys/uv-pipe.js';
import { HostProcess, waitForSocket } from './host-process.js';
import type { ProcessLauncher } from './launcher.js';

export const VSOCK_DEVICE_SOCKET = 'vhost-vsock.sock';
/** the hybrid vsock socket the host connects to (RunningVm.agentSocket) */
export const HYBRID_VSOCK_SOCKET = 'kata.hvsock.sock';
export const GUEST_CID = 3;

export function vsockDeviceArgs(deviceSocket: string, udsPath: string): string[] {
  return ['--vm', `guest-cid=${GUEST_CID},socket=${deviceSocket},uds-path=${udsPath}`];
}

export async function startVsockDevice(
  launcher: ProcessLauncher,
  o: { binary: string; stateDir: string; deadline: number },
): Promise<{ proc: HostProcess; deviceSocket: string; hybridSocket: string }> {
  const deviceSocket = join(o.stateDir, VSOCK_DEVICE_SOCKET);
  const hybridSocket = join(o.stateDir, HYBRID_VSOCK_SOCKET);
  const proc = HostProcess.launch(launcher, o.stateDir, 'vhost-device-vsock', o.binary, vsockDeviceArgs(deviceSocket, hybridSocket));
  try {
    await waitForSocket(deviceSocket, proc, o.deadline, 'vhost-device-vsock');
  } catch (err) {
    await proc.stop(0);
    throw err;
  }
  return { proc, deviceSocket, hybridSocket };
}

/**
 * One hybrid-vsock handshake on `udsPath` for `port`, within timeoutMs. Resolves true when the
 * guest accepted (`OK`), false when the connection was refused or closed (nobody listens yet);
 * rejects only on the deadline.
 */
export function probeHybridVsock(udsPath: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const stream = connectPipe(udsPath);
    let got = '';
    let settled = false;
    const finish = (ok: boolean | ShimError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.destroy();
      if (ok instanceof ShimError) reject(ok);
      else resolve(ok);
    };
    const timer = setTimeout(() => finish(deadlineExceeded(`no answer to CONNECT ${port} on ${udsPath} within ${timeoutMs} ms`)), timeoutMs);
    stream.on('error', () => finish(false));
    stream.on('close', () => finish(false));
    stream.on('end', () => finish(false));
    stream.on('connect', () => stream.write(Buffer.from(`CONNECT ${port}\n`)));
    stream.on('data', (chunk) => {
      got += chunk.toString('latin1');
      const nl = got.indexOf('\n');
      if (nl >= 0) finish(got.startsWith('OK '));
    });
  });
}
