/**
 * Guest paths as Kata's runtime names them, and their mapping to a host directory when the
 * agent runs on the host for tests (`--shared-root`): there the shared fs is a plain
 * directory and nothing is mounted.
 */
import { join, relative, isAbsolute, resolve } from 'node:path';

/** where the host's shared directory (virtio-fs tag kataShared) is mounted in the guest */
export const GUEST_SHARED_DIR = '/run/kata-containers/shared/containers/';
/** kata-agent's per-container bundle base; a container's bundle is <base>/<id> */
export const GUEST_RUN_DIR = '/run/kata-containers';

export class GuestPaths {
  constructor(
    /** host dir standing in for GUEST_SHARED_DIR (host-test mode), or undefined in a VM */
    readonly sharedRoot: string | undefined,
    /** bundles and agent state */
    readonly runDir: string,
  ) {}

  get hostTestMode(): boolean {
    return this.sharedRoot !== undefined;
  }

  /** the shared dir as this agent sees it */
  get sharedDir(): string {
    return this.sharedRoot ?? GUEST_SHARED_DIR;
  }

  /** a guest path, mapped into the shared root when it lies under the guest's shared dir */
  map(guestPath: string): string {
    if (this.sharedRoot === undefined || !isAbsolute(guestPath)) return guestPath;
    const rel = relative(GUEST_SHARED_DIR, resolve(guestPath));
    if (rel === '') return this.sharedRoot;
    if (rel.startsWith('..') || isAbsolute(rel)) return guestPath;
    return join(this.sharedRoot, rel);
  }

  /** Kata's default rootfs of a container: <shared>/<id>/rootfs */
  defaultRootfs(containerId: string): string {
    return join(this.sharedDir, containerId, 'rootfs');
  }

  bundle(containerId: string): string {
    return join(this.runDir, containerId);
  }

  /** the native executor's state; a dot name cannot clash with a container id */
  get nativeRoot(): string {
    return join(this.runDir, '.tsshim-native');
  }
}

/** kata-agent's rule for container and exec ids: ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$ */
export function validId(id: string): boolean {
  return /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(id);
}
