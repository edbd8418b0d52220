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

  /**
   * A guest path as this agent sees it. In host-test mode, paths under the guest's shared
   * dir go to the shared root and other paths under /run/kata-containers (storages Kata puts
   * there) to the run dir, so that nothing lands in the host's own /run.
   */
  map(guestPath: string): string {
    if (this.sharedRoot === undefined || !isAbsolute(guestPath)) return guestPath;
    const inShared = below(GUEST_SHARED_DIR, guestPath);
    if (inShared !== undefined) return join(this.sharedRoot, inShared);
    const inRun = below(GUEST_RUN_DIR, guestPath);
    if (inRun !== undefined) return join(this.runDir, inRun);
    return guestPath;
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

/** the path of p relative to dir, when p is dir or below it */
function below(dir: string, p: string): string | undefined {
  const rel = relative(dir, resolve(p));
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return rel;
}

/** kata-agent's rule for container and exec ids: ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$ */
export function validId(id: string): boolean {
  return /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(id);
}
