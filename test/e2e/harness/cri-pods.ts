/**
 * Pods and containers for the CRI tests and the pod bench: configs as kubelet sends them (its
 * own PID namespace per container, our log dir and cgroup parent), start helpers, and how to
 * find the processes behind a pod (pause, containers, the shim serving them).
 */
import type { CriContainerd } from './cri-containerd.js';
import { verboseInfo, type ContainerConfig, type PodSandboxConfig } from './cri-api.js';
import { readStat } from './proc-fs.js';
import { BUSYBOX_IMAGE } from './test-images.js';

let podCounter = 0;

/**
 * A pod config as kubelet would send it, with our log dir and cgroup parent. `sharedPid` is
 * a pod with shareProcessNamespace: true (kubelet then asks for PID namespace POD).
 */
export function podConfig(
  env: CriContainerd,
  name: string,
  annotations: Record<string, string> = {},
  options: { sharedPid?: boolean; privileged?: boolean } = {},
): PodSandboxConfig {
  const uid = `uid-${name}-${++podCounter}`;
  return {
    metadata: { name, uid, namespace: 'tsshim-e2e', attempt: 0 },
    hostname: name,
    logDirectory: env.logDirectory(name),
    labels: { 'tsshim-e2e/pod': name },
    annotations,
    linux: {
      cgroupParent: env.cgroupParent(name),
      securityContext: {
        namespaceOptions: { network: 'POD', pid: options.sharedPid ? 'POD' : 'CONTAINER', ipc: 'POD' },
        ...(options.privileged ? { privileged: true } : {}),
      },
    },
  };
}

/**
 * A container config as kubelet sends it: its own PID namespace unless the pod shares one
 * (kubelet sets CONTAINER explicitly; the CRI default, POD, means shareProcessNamespace).
 */
export function containerConfig(
  name: string,
  command: string[],
  extra: Partial<ContainerConfig> = {},
  options: { sharedPid?: boolean } = {},
): ContainerConfig {
  return {
    metadata: { name, attempt: 0 },
    image: { image: BUSYBOX_IMAGE },
    command,
    logPath: `${name}/0.log`,
    labels: { 'tsshim-e2e/container': name },
    ...extra,
    linux: {
      ...extra.linux,
      securityContext: {
        ...extra.linux?.securityContext,
        namespaceOptions: { network: 'POD', pid: options.sharedPid ? 'POD' : 'CONTAINER', ipc: 'POD' },
      },
    },
  };
}

/** Creates and starts a container; returns its id. */
export async function startContainer(env: CriContainerd, sandboxId: string, pod: PodSandboxConfig, config: ContainerConfig): Promise<string> {
  const id = await env.cri.createContainer(sandboxId, config, pod);
  await env.cri.startContainer(id);
  return id;
}

export function pidOf(info: Record<string, string>): number {
  const pid = verboseInfo(info).pid;
  if (typeof pid !== 'number' || pid <= 0) throw new Error(`no pid in verbose info: ${info.info?.slice(0, 300)}`);
  return pid;
}

export async function sandboxPid(env: CriContainerd, sandboxId: string): Promise<number> {
  return pidOf((await env.cri.podSandboxStatus(sandboxId, true)).info);
}

export async function containerPid(env: CriContainerd, containerId: string): Promise<number> {
  return pidOf((await env.cri.containerStatus(containerId, true)).info);
}

/** The process a container's init was reparented to: the shim serving it (a child subreaper). */
export function parentOf(pid: number): number {
  const stat = readStat(pid);
  if (!stat) throw new Error(`process ${pid} is gone`);
  return stat.ppid;
}

/** What a running pod is made of, recorded before it is removed. */
export interface PodFacts {
  sandboxId: string;
  containerIds: string[];
  /** The process serving the pod: the parent of its pause process. */
  shimPid: number;
  ip: string;
  /** The pod's network namespace mount (under containerd's state dir). */
  netnsPath: string;
  /** Host side of the pod's veth pair (from the CNI result CRI keeps). */
  hostVeth: string;
}

export async function podFacts(env: CriContainerd, sandboxId: string, containerIds: string[]): Promise<PodFacts> {
  const status = await env.cri.podSandboxStatus(sandboxId, true);
  const spec = verboseInfo(status.info).runtimeSpec as { linux?: { namespaces?: Array<{ type: string; path?: string }> } } | undefined;
  const netnsPath = spec?.linux?.namespaces?.find((ns) => ns.type === 'network')?.path ?? '';
  const cni = verboseInfo(status.info).cniResult as { Interfaces?: Record<string, { Sandbox?: string }> } | undefined;
  const hostVeth = Object.entries(cni?.Interfaces ?? {}).find(([name, i]) => name !== env.network.bridge && !i.Sandbox)?.[0] ?? '';
  return { sandboxId, containerIds, shimPid: parentOf(pidOf(status.info)), ip: status.status.network?.ip ?? '', netnsPath, hostVeth };
}

