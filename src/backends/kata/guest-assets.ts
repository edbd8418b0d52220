/**
 * Where the kata guest and the host-side helpers built/fetched by the install scripts live
 * (scripts/fetch-kata.sh, scripts/build-kata-guest.sh): `<root>/.cache/kata/...`, root being the
 * repository or the installed release directory (both carry `.cache`). `TSSHIM_KATA_DIR`
 * overrides `<root>/.cache/kata` as a whole.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface GuestAssets {
  /** the guest kernel (Debian's vmlinuz) */
  kernel: string;
  /** our initramfs: init + node + agent + native helper + modules */
  initrd: string;
  /** the bench floor: same kernel, an init that powers off at once */
  floor: string;
  /** vhost-device-vsock from Debian sid (unpacked, not installed) */
  vhostDeviceVsock: string;
  /** virtiofsd shipped with bookworm's QEMU */
  virtiofsd: string;
}

export function defaultGuestAssets(repoRoot: string, env: NodeJS.ProcessEnv = process.env): GuestAssets {
  const kataDir = env.TSSHIM_KATA_DIR ? resolve(env.TSSHIM_KATA_DIR) : join(repoRoot, '.cache', 'kata');
  return {
    kernel: join(kataDir, 'guest', 'vmlinuz'),
    initrd: join(kataDir, 'guest', 'initrd.img'),
    floor: join(kataDir, 'guest', 'floor.img'),
    vhostDeviceVsock: join(kataDir, 'vhost-device-vsock', 'bin', 'vhost-device-vsock'),
    virtiofsd: '/usr/lib/qemu/virtiofsd',
  };
}

/**
 * The root holding `.cache/kata`, found upwards from this module (src/…, dist/…, or an installed
 * release's bundle); undefined when none has it.
 */
export function findAssetsRoot(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.cache', 'kata'))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/** the assets a shim or tool at `from` uses when [kata] names none: the found root's, else the cwd's */
export function guestAssetsFrom(from?: string, env: NodeJS.ProcessEnv = process.env): GuestAssets {
  return defaultGuestAssets(findAssetsRoot(from) ?? process.cwd(), env);
}
