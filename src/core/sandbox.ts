/**
 * The pod's sandbox as the core sees it (design idiom 5). A sandbox backend (gVisor's
 * `runsc-sandbox`, a Kata VM) runs one sandbox per pod: the CRI sandbox container creates it
 * and the pod's app containers join it; it goes away after its last container. Namespace
 * backends have a trivial sandbox (every container alone, nothing to tear down).
 *
 * The core decides in one place which sandbox a container belongs to (from the annotations
 * CRI runtimes put in the OCI spec) and when a sandbox has lost its last container; backends
 * only act on that (`CreateInput.sandbox`, `Backend.closeSandbox`).
 */

/** Where a container runs. */
export interface SandboxPlacement {
  /** the sandbox's id: the id of the container that creates it */
  readonly sandboxId: string;
  /** this container creates the sandbox (CRI sandbox container, or any container without CRI annotations) */
  readonly creates: boolean;
}

/** annotation names CRI implementations put in the OCI spec: [container type, sandbox id] */
const CRI_ANNOTATIONS: ReadonlyArray<readonly [string, string]> = [
  ['io.kubernetes.cri.container-type', 'io.kubernetes.cri.sandbox-id'], // containerd
  ['io.kubernetes.cri-o.ContainerType', 'io.kubernetes.cri-o.SandboxID'], // CRI-O
];

/**
 * The placement a container's annotations ask for. Without CRI annotations (plain ctr) a
 * container is its own sandbox; a CRI "container" joins the sandbox its sandbox id names.
 */
export function placementOf(containerId: string, annotations: Readonly<Record<string, string>>): SandboxPlacement {
  for (const [typeKey, sandboxKey] of CRI_ANNOTATIONS) {
    const type = annotations[typeKey];
    if (type === 'container') {
      const sandboxId = annotations[sandboxKey];
      if (sandboxId && sandboxId !== containerId) return { sandboxId, creates: false };
    }
    if (type === 'sandbox') return { sandboxId: containerId, creates: true };
  }
  return { sandboxId: containerId, creates: true };
}

/** Which containers of this shim are in which sandbox. */
export class SandboxMembership {
  private readonly members = new Map<string, Set<string>>();
  private readonly sandboxOf = new Map<string, string>();

  join(containerId: string, placement: SandboxPlacement): void {
    let set = this.members.get(placement.sandboxId);
    if (!set) {
      set = new Set();
      this.members.set(placement.sandboxId, set);
    }
    set.add(containerId);
    this.sandboxOf.set(containerId, placement.sandboxId);
  }

  /** the container is gone: returns its sandbox and whether it was the sandbox's last container */
  leave(containerId: string): { sandboxId: string; last: boolean } | undefined {
    const sandboxId = this.sandboxOf.get(containerId);
    if (sandboxId === undefined) return undefined;
    this.sandboxOf.delete(containerId);
    const set = this.members.get(sandboxId);
    set?.delete(containerId);
    const last = !set || set.size === 0;
    if (last) this.members.delete(sandboxId);
    return { sandboxId, last };
  }

  /** containers in a sandbox, for tests and diagnostics */
  membersOf(sandboxId: string): string[] {
    return [...(this.members.get(sandboxId) ?? [])];
  }
}
