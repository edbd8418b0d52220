/**
 * What the short-lived `delete` action needs to clean up after a dead shim, written
 * into the bundle at Create (like the reference shim's options.json): which backend,
 * which runtime binary and root.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const BUNDLE_STATE_FILE = 'tsshim.json';

export interface BundleState {
  backend: string;
  binary: string;
  root: string;
  systemdCgroup: boolean;
  /** kata: the sandbox (VM) the container is in; `root` is then that VM's state directory */
  sandboxId?: string;
}

export function writeBundleState(bundle: string, st: BundleState): void {
  const file = join(bundle, BUNDLE_STATE_FILE);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(st));
  renameSync(tmp, file);
}

export function readBundleState(bundle: string): BundleState | undefined {
  try {
    const st = JSON.parse(readFileSync(join(bundle, BUNDLE_STATE_FILE), 'utf8')) as Partial<BundleState>;
    if (typeof st.backend !== 'string' || typeof st.binary !== 'string' || typeof st.root !== 'string') return undefined;
    return {
      backend: st.backend,
      binary: st.binary,
      root: st.root,
      systemdCgroup: !!st.systemdCgroup,
      ...(typeof st.sandboxId === 'string' ? { sandboxId: st.sandboxId } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * Written once containerd's Delete of the init process has succeeded: the runtime state
 * and the rootfs mount are gone, so the `delete` action has nothing left to clean up and
 * the C launcher (src/launcher) answers it without starting Node.
 */
export const DELETED_MARKER_FILE = '.tsshim-deleted';

export function markDeleted(bundle: string): void {
  try {
    writeFileSync(join(bundle, DELETED_MARKER_FILE), '');
  } catch {
    // without the marker `delete` takes the slow (Node) path, which is still correct
  }
}
