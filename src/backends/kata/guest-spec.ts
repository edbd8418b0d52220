/**
 * The OCI spec a container gets inside the VM, from the one containerd wrote on the host.
 *
 * Host paths mean nothing in the guest: whatever the container needs from the host (its
 * rootfs, bind-mounted files and volumes) is bind-mounted into the sandbox's shared
 * directory, which virtio-fs exports, and the spec names it by its guest path
 * (`/run/kata-containers/shared/containers/<name>`), as Kata's runtime does. What the host
 * already did or what only makes sense on the host goes away: hooks, namespace paths, the
 * network namespace (the container uses the VM's, which holds the pod's interface), device
 * cgroup rules naming host devices. A pod's /dev/shm becomes a tmpfs of the guest.
 */
import { basename } from 'node:path';

/** where the agent mounts the shared directory (Kata's kataGuestSharedDir) */
export const GUEST_SHARED_DIR = '/run/kata-containers/shared/containers';

/** one host path the guest needs: bind it at `<shared dir>/<name>` before CreateContainer */
export interface HostShare {
  hostPath: string;
  name: string;
  readonly: boolean;
}

export interface GuestSpec {
  spec: Record<string, unknown>;
  /**
   * The container shares its pod's PID namespace (the host spec joins one by path): the
   * agent puts it in the sandbox's (CreateContainerRequest.sandbox_pidns), as with Kata.
   */
  sandboxPidns: boolean;
  /** the rootfs first, then bind sources, in mount order */
  shares: HostShare[];
}

interface OciMount {
  destination?: string;
  type?: string;
  source?: string;
  options?: string[];
}

function isBind(m: OciMount): boolean {
  return m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
}

/** a name for a share that stays a single path component and tells what it is */
function shareName(containerId: string, index: number, source: string): string {
  const base = basename(source).replace(/[^A-Za-z0-9._-]/g, '_') || 'root';
  return `${containerId}-${index}-${base}`;
}

/** kubelet's systemd form `parent.slice:prefix:name` as a plain path the guest can create */
function guestCgroupsPath(path: unknown, containerId: string): string {
  if (typeof path !== 'string' || path === '') return `/tsshim-kata/${containerId}`;
  if (path.startsWith('/')) return path;
  const parts = path.split(':');
  if (parts.length === 3) return `/${parts[0]}/${parts[1]}-${parts[2]}`;
  return `/${path}`;
}

export function guestSpecOf(hostSpec: Record<string, unknown>, containerId: string, rootfsHostPath: string): GuestSpec {
  // a deep copy: the host's spec object stays as containerd wrote it
  const spec = JSON.parse(JSON.stringify(hostSpec)) as Record<string, unknown> & {
    root?: { path?: string; readonly?: boolean };
    mounts?: OciMount[];
    hooks?: unknown;
    linux?: Record<string, unknown> & {
      namespaces?: Array<{ type?: string; path?: string }>;
      resources?: Record<string, unknown>;
      cgroupsPath?: unknown;
    };
  };
  const shares: HostShare[] = [
    // shared read-write even for a read-only root: the guest's runtime creates the mount
    // targets in it first and makes it read-only after the mounts, as runc does
    { hostPath: rootfsHostPath, name: `${containerId}/rootfs`, readonly: false },
  ];
  spec.root = { ...(spec.root ?? {}), path: `${GUEST_SHARED_DIR}/${containerId}/rootfs` };

  const mounts: OciMount[] = [];
  (spec.mounts ?? []).forEach((m, i) => {
    if (!isBind(m) || typeof m.source !== 'string') {
      mounts.push(m);
      return;
    }
    if (m.destination === '/dev/shm') {
      // the pod's shm is a host tmpfs the VM cannot share: the guest gets its own
      mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] });
      return;
    }
    if (m.source.startsWith('/dev/') || m.source === '/dev') {
      // host devices are not the guest's devices; the guest's own /dev has the usual ones
      mounts.push(m);
      return;
    }
    const name = shareName(containerId, i, m.source);
    const readonly = (m.options ?? []).includes('ro');
    shares.push({ hostPath: m.source, name, readonly });
    mounts.push({ ...m, source: `${GUEST_SHARED_DIR}/${name}` });
  });
  spec.mounts = mounts;

  // prestart/createRuntime hooks are the host's business (Kata runs them on the host too)
  delete spec.hooks;

  const linux = spec.linux;
  let sandboxPidns = false;
  if (linux) {
    // As Kata's runtime sends them: no network namespace (the VM's is the pod's) and no
    // cgroup namespace; no pid namespace either, a path there meaning "the pod's" (the agent
    // then shares the sandbox's); every other namespace new, the agent shares IPC and UTS
    // across the pod itself.
    sandboxPidns = (linux.namespaces ?? []).some((ns) => ns.type === 'pid' && !!ns.path);
    linux.namespaces = (linux.namespaces ?? [])
      .filter((ns) => ns.type !== 'network' && ns.type !== 'cgroup' && ns.type !== 'pid')
      .map((ns) => ({ type: ns.type }));
    linux.cgroupsPath = guestCgroupsPath(linux.cgroupsPath, containerId);
    if (linux.resources) {
      // device rules name host majors/minors; the guest's executor applies its defaults
      delete linux.resources.devices;
    }
    delete linux.devices;
  }
  return { spec, shares, sandboxPidns };
}
