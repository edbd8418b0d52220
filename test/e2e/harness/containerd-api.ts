/**
 * Minimal gRPC client for containerd's own API (Tasks, Events, Version), built from our own
 * .proto files in test/e2e/proto. Used where ctr does not expose what a test must check
 * (exit status of a stopped task, events). The namespace travels in `containerd-namespace`
 * metadata. Event payloads (protobuf Any) are decoded with the deserializers proto-loader
 * builds for the (never called) PayloadCodec service in task-events.proto.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoDir } from './repo-paths.js';

export type TaskStatus = 'UNKNOWN' | 'CREATED' | 'RUNNING' | 'STOPPED' | 'PAUSED' | 'PAUSING';

export interface ProtoTimestamp {
  seconds: number;
  nanos: number;
}

export interface TaskProcess {
  containerId: string;
  id: string;
  pid: number;
  status: TaskStatus;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt: ProtoTimestamp | null;
}

export interface WaitResult {
  exitStatus: number;
  exitedAt: ProtoTimestamp | null;
}

export interface DeleteResult {
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: ProtoTimestamp | null;
}

/** One containerd event; payload fields are camelCase, defaults included, timestamps {seconds, nanos}. */
export interface ContainerdEvent {
  topic: string;
  namespace: string;
  typeUrl: string;
  payload: Record<string, unknown>;
}

/** Payload of /tasks/exit (decoded TaskExit). */
export interface TaskExitPayload {
  containerId: string;
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: ProtoTimestamp | null;
}

export const GRPC_NOT_FOUND = grpc.status.NOT_FOUND;

/** gRPC status code of a failed call, or undefined for other errors. */
export function grpcCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

const SYNC_TOPIC = '/tsshim-e2e/sync';
/** what containerd's client puts on an exec's process spec */
const OCI_PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
const EMPTY_TYPE_URL = 'google.protobuf.Empty';

type UnaryCallback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;
type UnaryMethod = (
  req: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: UnaryCallback<unknown>,
) => grpc.ClientUnaryCall;
type StreamMethod = (req: unknown, metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

interface LoadedApi {
  tasks: grpc.ServiceClientConstructor;
  events: grpc.ServiceClientConstructor;
  version: grpc.ServiceClientConstructor;
  /** Payload decoders by message name (e.g. "TaskExit"). */
  payloadDecoders: Map<string, (bytes: Buffer) => Record<string, unknown>>;
}

let loaded: LoadedApi | undefined;

function loadApi(): LoadedApi {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync(
    ['tasks.proto', 'events.proto', 'version.proto', 'task-events.proto'],
    { includeDirs: [protoDir], keepCase: false, longs: Number, enums: String, defaults: true },
  );
  const pkg = grpc.loadPackageDefinition(definition);
  const lookup = (path: string): grpc.ServiceClientConstructor => {
    let node: unknown = pkg;
    for (const part of path.split('.')) node = (node as Record<string, unknown>)[part];
    if (typeof node !== 'function') throw new Error(`proto service ${path} not found in ${protoDir}`);
    return node as grpc.ServiceClientConstructor;
  };
  const payloadDecoders = new Map<string, (bytes: Buffer) => Record<string, unknown>>();
  const codec = definition['containerd.events.PayloadCodec'];
  if (!codec) throw new Error('PayloadCodec missing from task-events.proto');
  for (const [name, method] of Object.entries(codec)) {
    if (typeof method === 'object' && method !== null && 'responseDeserialize' in method) {
      const deserialize = method.responseDeserialize as (bytes: Buffer) => Record<string, unknown>;
      payloadDecoders.set(name, deserialize);
    }
  }
  loaded = {
    tasks: lookup('containerd.services.tasks.v1.Tasks'),
    events: lookup('containerd.services.events.v1.Events'),
    version: lookup('containerd.services.version.v1.Version'),
    payloadDecoders,
  };
  return loaded;
}

function decodePayload(typeUrl: string, value: Buffer): Record<string, unknown> {
  // containerd names event types like "containerd.events.TaskExit".
  const name = typeUrl.slice(Math.max(typeUrl.lastIndexOf('/'), typeUrl.lastIndexOf('.')) + 1);
  const decode = loadApi().payloadDecoders.get(name);
  return decode ? decode(value) : {};
}

interface RawEnvelope {
  topic: string;
  namespace: string;
  // protobufjs keeps google.protobuf.Any's own field names even with keepCase off.
  event: { type_url: string; value: Buffer } | null;
}

/**
 * A live event subscription. Events are buffered from the moment the subscription is live, so
 * `next()` also finds events that arrived before it was called.
 */
export class EventSubscription {
  readonly received: ContainerdEvent[] = [];
  private waiters: Array<{ match: (e: ContainerdEvent) => boolean; resolve: (e: ContainerdEvent) => void }> = [];
  private failure: Error | undefined;
  private consumed = 0;

  constructor(private readonly stream: grpc.ClientReadableStream<unknown>) {}

  /** @internal */
  push(event: ContainerdEvent): void {
    this.received.push(event);
    const waiter = this.waiters.find((w) => w.match(event));
    if (waiter) {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.resolve(event);
    }
  }

  /** @internal */
  fail(err: Error): void {
    this.failure ??= err;
  }

  /** First buffered-or-future event matching `match` that no earlier next() returned. */
  next(match: (e: ContainerdEvent) => boolean, timeoutMs = 10_000): Promise<ContainerdEvent> {
    for (let i = this.consumed; i < this.received.length; i++) {
      const event = this.received[i]!;
      if (match(event)) {
        this.consumed = i + 1;
        return Promise.resolve(event);
      }
    }
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== onEvent);
        const seen = this.received.map((e) => e.topic).join(', ');
        reject(new Error(`no matching event within ${timeoutMs} ms (seen: ${seen || 'none'})`));
      }, timeoutMs);
      const onEvent = (event: ContainerdEvent): void => {
        clearTimeout(timer);
        this.consumed = this.received.indexOf(event) + 1;
        resolve(event);
      };
      this.waiters.push({ match, resolve: onEvent });
    });
  }

  /** Every event of `topic` received so far. */
  ofTopic(topic: string): ContainerdEvent[] {
    return this.received.filter((e) => e.topic === topic);
  }

  close(): void {
    this.stream.cancel();
  }
}

export class ContainerdApi {
  private readonly tasksClient: grpc.Client;
  private readonly eventsClient: grpc.Client;
  private readonly versionClient: grpc.Client;

  constructor(
    readonly address: string,
    readonly namespace: string,
    private readonly defaultTimeoutMs = 10_000,
  ) {
    const api = loadApi();
    const target = `unix://${address}`;
    const credentials = grpc.credentials.createInsecure();
    this.tasksClient = new api.tasks(target, credentials);
    this.eventsClient = new api.events(target, credentials);
    this.versionClient = new api.version(target, credentials);
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', this.namespace);
    return md;
  }

  private unary<Res>(client: grpc.Client, method: string, req: object, timeoutMs?: number): Promise<Res> {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method];
    if (!fn) return Promise.reject(new Error(`no gRPC method ${method}`));
    return new Promise<Res>((resolve, reject) => {
      fn.call(client, req, this.metadata(), { deadline: Date.now() + (timeoutMs ?? this.defaultTimeoutMs) }, (err, res) => {
        if (err) reject(err);
        else resolve(res as Res);
      });
    });
  }

  async version(): Promise<{ version: string; revision: string }> {
    return this.unary(this.versionClient, 'Version', {});
  }

  /**
   * Creates the task of a container made by `ctr container create`, with task options (an
   * Any) ctr cannot pass. rootfs: the container snapshot's mounts (the client's job).
   */
  async createTask(
    containerId: string,
    rootfs: Array<{ type: string; source: string; options: string[] }>,
    options?: { typeUrl: string; value: Uint8Array },
  ): Promise<{ pid: number }> {
    // protobufjs's bundled google.protobuf.Any keeps its proto field names
    const any = options ? { type_url: options.typeUrl, value: Buffer.from(options.value) } : undefined;
    return this.unary(this.tasksClient, 'Create', { containerId, rootfs, options: any }, 30_000);
  }

  async startTask(containerId: string): Promise<{ pid: number }> {
    return this.unary(this.tasksClient, 'Start', { containerId, execId: '' }, 30_000);
  }

  async getTask(containerId: string, execId = ''): Promise<TaskProcess> {
    const res = await this.unary<{ process: TaskProcess }>(this.tasksClient, 'Get', { containerId, execId });
    return res.process;
  }

  async listTasks(): Promise<TaskProcess[]> {
    const res = await this.unary<{ tasks: TaskProcess[] }>(this.tasksClient, 'List', {});
    return res.tasks;
  }

  async kill(containerId: string, signal: number, options: { execId?: string; all?: boolean } = {}): Promise<void> {
    await this.unary(this.tasksClient, 'Kill', { containerId, execId: options.execId ?? '', signal, all: options.all ?? false });
  }

  /** Blocks until the process exits (or `timeoutMs`). */
  async wait(containerId: string, execId = '', timeoutMs = 30_000): Promise<WaitResult> {
    return this.unary(this.tasksClient, 'Wait', { containerId, execId }, timeoutMs);
  }

  /**
   * Adds an exec process (not started). `spec` is an OCI Process; `terminal` is the request's,
   * sent as given even when the spec says otherwise (ctr always makes them agree).
   */
  async exec(
    containerId: string,
    execId: string,
    spec: object,
    io: { stdin?: string; stdout?: string; stderr?: string; terminal: boolean },
  ): Promise<void> {
    await this.unary(this.tasksClient, 'Exec', {
      containerId,
      execId,
      stdin: io.stdin ?? '',
      stdout: io.stdout ?? '',
      stderr: io.stderr ?? '',
      terminal: io.terminal,
      // protobufjs keeps google.protobuf.Any's own field names (see RawEnvelope)
      spec: { type_url: OCI_PROCESS_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) },
    });
  }

  /** Starts a created task (execId '') or exec process; returns its pid. */
  async start(containerId: string, execId = ''): Promise<number> {
    const res = await this.unary<{ pid: number }>(this.tasksClient, 'Start', { containerId, execId });
    return res.pid;
  }

  async deleteProcess(containerId: string, execId: string): Promise<DeleteResult> {
    return this.unary(this.tasksClient, 'DeleteProcess', { containerId, execId });
  }

  async deleteTask(containerId: string): Promise<DeleteResult> {
    return this.unary(this.tasksClient, 'Delete', { containerId });
  }

  async listPids(containerId: string): Promise<number[]> {
    const res = await this.unary<{ processes: Array<{ pid: number }> }>(this.tasksClient, 'ListPids', { containerId });
    return res.processes.map((p) => p.pid);
  }

  /**
   * Subscribes to events (containerd filter syntax, ORed; [] = all events) and resolves once the
   * subscription is live, proven by receiving a marker event this call publishes.
   */
  async subscribe(filters: string[] = [], timeoutMs = 10_000): Promise<EventSubscription> {
    const open = (this.eventsClient as unknown as Record<string, StreamMethod>)['Subscribe'];
    if (!open) throw new Error('no gRPC method Subscribe');
    const allFilters = filters.length > 0 ? [...filters, `topic=="${SYNC_TOPIC}"`] : [];
    const stream = open.call(this.eventsClient, { filters: allFilters }, this.metadata(), {});
    const subscription = new EventSubscription(stream);
    let synced = false;
    let markSynced: () => void = () => {};
    const syncedPromise = new Promise<void>((resolve) => (markSynced = resolve));
    stream.on('data', (raw: RawEnvelope) => {
      if (raw.topic === SYNC_TOPIC) {
        synced = true;
        markSynced();
        return;
      }
      if (!synced) return;
      const typeUrl = raw.event?.type_url ?? '';
      const payload = raw.event ? decodePayload(typeUrl, raw.event.value) : {};
      subscription.push({ topic: raw.topic, namespace: raw.namespace, typeUrl, payload });
    });
    stream.on('error', (err: Error) => {
      if (grpcCode(err) !== grpc.status.CANCELLED) subscription.fail(err);
    });

    // Publish markers until one comes back: the subscription is registered when it does.
    const deadline = Date.now() + timeoutMs;
    while (!synced) {
      if (Date.now() > deadline) {
        stream.cancel();
        throw new Error('event subscription did not become live');
      }
      await this.unary(this.eventsClient, 'Publish', {
        topic: SYNC_TOPIC,
        event: { type_url: EMPTY_TYPE_URL, value: Buffer.alloc(0) },
      });
      await Promise.race([syncedPromise, new Promise((resolve) => setTimeout(resolve, 100))]);
    }
    return subscription;
  }

  close(): void {
    this.tasksClient.close();
    this.eventsClient.close();
    this.versionClient.close();
  }
}
