/**
 * Minimal Kubernetes CRI client (runtime.v1 RuntimeService + ImageService) over gRPC, built from
 * our own test/e2e/proto/cri-runtime-v1.proto. It speaks to containerd's CRI plugin on the same
 * socket as containerd's own API, the way kubelet would. Every call has a deadline.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoDir } from './repo-paths.js';

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    securityContext?: {
      namespaceOptions?: { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode };
      privileged?: boolean;
      seccomp?: SecurityProfile;
    };
    sysctls?: Record<string, string>;
  };
}

export interface LinuxContainerResources {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitInBytes?: number;
  oomScoreAdj?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  hugepageLimits?: Array<{ pageSize: string; limit: number }>;
  unified?: Record<string, string>;
  memorySwapLimitInBytes?: number;
}

export interface SecurityProfile {
  profileType: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhostRef?: string;
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: Array<{ key: string; value: string }>;
  mounts?: Array<{
    containerPath: string;
    hostPath: string;
    readonly?: boolean;
    /** CRI 1.30+: read-only submounts too (containerd passes the OCI option "rro") */
    recursiveReadOnly?: boolean;
    propagation?: 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';
  }>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Relative to the sandbox's logDirectory. */
  logPath?: string;
  stdin?: boolean;
  tty?: boolean;
  linux?: {
    resources?: LinuxContainerResources;
    securityContext?: {
      privileged?: boolean;
      namespaceOptions?: { network?: NamespaceMode; pid?: NamespaceMode; ipc?: NamespaceMode };
      capabilities?: { addCapabilities?: string[]; dropCapabilities?: string[] };
      runAsUser?: { value: number };
      readonlyRootfs?: boolean;
      noNewPrivs?: boolean;
      seccomp?: SecurityProfile;
    };
  };
}

export interface PodSandboxStatusResult {
  status: {
    id: string;
    metadata: PodSandboxMetadata;
    state: PodSandboxState;
    createdAt: number;
    network: { ip: string; additionalIps: Array<{ ip: string }> } | null;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    runtimeHandler: string;
  };
  info: Record<string, string>;
}

export interface ContainerStatusResult {
  status: {
    id: string;
    metadata: { name: string; attempt: number };
    state: ContainerState;
    createdAt: number;
    startedAt: number;
    finishedAt: number;
    exitCode: number;
    imageRef: string;
    reason: string;
    message: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    logPath: string;
    resources: { linux: LinuxContainerResources | null } | null;
  };
  info: Record<string, string>;
}

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

interface UInt64Value {
  value: number;
}

export interface ContainerStats {
  attributes: { id: string; metadata: { name: string; attempt: number } | null; labels: Record<string, string> } | null;
  cpu: { timestamp: number; usageCoreNanoSeconds: UInt64Value | null; usageNanoCores: UInt64Value | null } | null;
  memory: {
    timestamp: number;
    workingSetBytes: UInt64Value | null;
    availableBytes: UInt64Value | null;
    usageBytes: UInt64Value | null;
    rssBytes: UInt64Value | null;
    pageFaults: UInt64Value | null;
    majorPageFaults: UInt64Value | null;
  } | null;
  writableLayer: { timestamp: number; usedBytes: UInt64Value | null; inodesUsed: UInt64Value | null } | null;
}

export interface PodSandboxSummary {
  id: string;
  metadata: PodSandboxMetadata;
  state: PodSandboxState;
  labels: Record<string, string>;
  runtimeHandler: string;
}

export interface ContainerSummary {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
}

type UnaryCallback = (err: grpc.ServiceError | null, res?: unknown) => void;
type UnaryMethod = (req: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: UnaryCallback) => grpc.ClientUnaryCall;

let loaded: { runtime: grpc.ServiceClientConstructor; image: grpc.ServiceClientConstructor } | undefined;

function loadCri(): { runtime: grpc.ServiceClientConstructor; image: grpc.ServiceClientConstructor } {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync('cri-runtime-v1.proto', {
    includeDirs: [protoDir],
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor } };
  };
  loaded = { runtime: pkg.runtime.v1.RuntimeService, image: pkg.runtime.v1.ImageService };
  return loaded;
}

/** Parses the JSON "info" entry of a verbose status (absent or invalid → {}). */
export function verboseInfo(info: Record<string, string>): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(info.info ?? '{}');
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly image: grpc.Client;
  /** Every sandbox id this client created: the harness's last-resort cleanup list. */
  readonly sandboxesCreated = new Set<string>();

  constructor(
    readonly address: string,
    private readonly defaultTimeoutMs = 30_000,
  ) {
    const services = loadCri();
    const target = `unix://${address}`;
    const credentials = grpc.credentials.createInsecure();
    this.runtime = new services.runtime(target, credentials);
    this.image = new services.image(target, credentials);
  }

  private call<Res>(client: grpc.Client, method: string, req: object, timeoutMs?: number): Promise<Res> {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method];
    if (!fn) return Promise.reject(new Error(`no CRI method ${method}`));
    return new Promise<Res>((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + (timeoutMs ?? this.defaultTimeoutMs) }, (err, res) => {
        if (err) reject(new Error(`CRI ${method}: ${err.message}`, { cause: err }));
        else resolve(res as Res);
      });
    });
  }

  version(): Promise<{ version: string; runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call(this.runtime, 'Version', { version: 'v1' });
  }

  status(verbose = false): Promise<{
    status: { conditions: Array<{ type: string; status: boolean; reason: string; message: string }> };
    info: Record<string, string>;
    /** containerd 2.x: each handler's features, from its OCI runtime's features (-info) */
    runtimeHandlers: Array<{ name: string; features: { recursiveReadOnlyMounts: boolean; userNamespaces: boolean } | null }>;
  }> {
    return this.call(this.runtime, 'Status', { verbose });
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler: string, timeoutMs = 60_000): Promise<string> {
    const res = await this.call<{ podSandboxId: string }>(this.runtime, 'RunPodSandbox', { config, runtimeHandler }, timeoutMs);
    this.sandboxesCreated.add(res.podSandboxId);
    return res.podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string, timeoutMs = 60_000): Promise<void> {
    await this.call(this.runtime, 'StopPodSandbox', { podSandboxId }, timeoutMs);
  }

  async removePodSandbox(podSandboxId: string, timeoutMs = 60_000): Promise<void> {
    await this.call(this.runtime, 'RemovePodSandbox', { podSandboxId }, timeoutMs);
  }

  podSandboxStatus(podSandboxId: string, verbose = false): Promise<PodSandboxStatusResult> {
    return this.call(this.runtime, 'PodSandboxStatus', { podSandboxId, verbose });
  }

  async listPodSandbox(): Promise<PodSandboxSummary[]> {
    const res = await this.call<{ items: PodSandboxSummary[] }>(this.runtime, 'ListPodSandbox', {});
    return res.items;
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    const res = await this.call<{ containerId: string }>(this.runtime, 'CreateContainer', { podSandboxId, config, sandboxConfig }, 60_000);
    return res.containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call(this.runtime, 'StartContainer', { containerId }, 60_000);
  }

  async stopContainer(containerId: string, timeoutSeconds = 0): Promise<void> {
    await this.call(this.runtime, 'StopContainer', { containerId, timeout: timeoutSeconds }, (timeoutSeconds + 15) * 1000);
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.call(this.runtime, 'RemoveContainer', { containerId }, 60_000);
  }

  async listContainers(filter: { podSandboxId?: string } = {}): Promise<ContainerSummary[]> {
    const res = await this.call<{ containers: ContainerSummary[] }>(this.runtime, 'ListContainers', { filter });
    return res.containers;
  }

  containerStatus(containerId: string, verbose = false): Promise<ContainerStatusResult> {
    return this.call(this.runtime, 'ContainerStatus', { containerId, verbose });
  }

  async updateContainerResources(containerId: string, linux: LinuxContainerResources): Promise<void> {
    await this.call(this.runtime, 'UpdateContainerResources', { containerId, linux });
  }

  /** `timeoutSeconds` is CRI's own exec timeout; the gRPC deadline allows for it plus slack. */
  execSync(containerId: string, cmd: string[], timeoutSeconds = 10): Promise<ExecSyncResult> {
    return this.call(this.runtime, 'ExecSync', { containerId, cmd, timeout: timeoutSeconds }, (timeoutSeconds + 20) * 1000);
  }

  async containerStats(containerId: string): Promise<ContainerStats> {
    const res = await this.call<{ stats: ContainerStats }>(this.runtime, 'ContainerStats', { containerId });
    return res.stats;
  }

  async listContainerStats(filter: { id?: string; podSandboxId?: string } = {}): Promise<ContainerStats[]> {
    const res = await this.call<{ stats: ContainerStats[] }>(this.runtime, 'ListContainerStats', { filter });
    return res.stats;
  }

  async listImages(): Promise<Array<{ id: string; repoTags: string[] }>> {
    const res = await this.call<{ images: Array<{ id: string; repoTags: string[] }> }>(this.image, 'ListImages', {});
    return res.images;
  }

  async imageStatus(image: string): Promise<{ id: string; repoTags: string[] } | null> {
    const res = await this.call<{ image: { id: string; repoTags: string[] } | null }>(this.image, 'ImageStatus', { image: { image } });
    return res.image && res.image.id ? res.image : null;
  }

  /**
   * Stops and removes every pod sandbox (containers go with them), as kubelet would on drain.
   * Returns what failed.
   */
  async removeAllPods(): Promise<string[]> {
    const problems: string[] = [];
    let pods: PodSandboxSummary[] = [];
    try {
      pods = await this.listPodSandbox();
    } catch (err) {
      problems.push(`ListPodSandbox: ${err instanceof Error ? err.message : String(err)}`);
    }
    const ids = new Set([...pods.map((p) => p.id), ...this.sandboxesCreated]);
    for (const id of ids) {
      // Bounded: a pod whose containers cannot be stopped must not stall teardown for minutes.
      for (const step of [() => this.stopPodSandbox(id, 20_000), () => this.removePodSandbox(id, 20_000)]) {
        try {
          await step();
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          // Removing an already removed sandbox is fine (NotFound).
          if (!/not ?found/i.test(message)) problems.push(`pod ${id}: ${message}`);
        }
      }
    }
    return problems;
  }

  close(): void {
    this.runtime.close();
    this.image.close();
  }
}
