/**
 * Host-side client of Kata's agent API (`grpc.AgentService` + `grpc.Health`) over ttrpc.
 *
 * Nothing here depends on which agent answers: the messages are Kata's (our own .proto with
 * Kata's field numbers, src/proto/defs/kata), the method paths are Kata's
 * (`/grpc.AgentService/<Method>`), so kata-agent and tsshim's guest agent are interchangeable.
 *
 * Deadlines: every call has one (defaultTimeoutMs, 60 s unless set) except the calls that block
 * in the agent by design: WaitProcess (until the process exits), ReadStdout/ReadStderr (until
 * output comes), WriteStdin (until the process reads), GetOOMEvent (until an OOM kill). Kata's
 * runtime gives those no deadline either. A per-call `timeoutMs` overrides the default.
 *
 * Errors: a call rejects with AgentCallError, a ShimError whose code follows the agent's gRPC
 * status (NotFound stays NotFound, ...), whose message keeps the agent's own message, and
 * which carries the raw status code.
 */
import { ShimError, type ErrorCode } from '../../core/errors.js';
import { Code, TtrpcError } from '../../ttrpc/status.js';
import { TtrpcClient } from '../../ttrpc/client.js';
import { Empty } from '../../proto/gen/google/protobuf/empty.js';
import { AgentServiceDefinition } from '../../proto/gen/kata/agent.js';
import { HealthCheckResponse_ServingStatus, HealthDefinition } from '../../proto/gen/kata/health.js';
import { connectHybridVsock } from './hybrid-vsock.js';

export type AgentTarget = { hybridVsock: string; port: number } | { unix: string };

export interface AgentConnectOptions {
  /** Deadline for connecting (unix connect + hybrid vsock handshake). */
  timeoutMs: number;
  /** Deadline of calls that have one by default. Default 60000 ms. */
  defaultTimeoutMs?: number;
}

export interface AgentCallOptions {
  /** Deadline of this call; overrides the default (also for the blocking calls). */
  timeoutMs?: number;
  /** Cancels the call locally (rejects with Canceled). */
  signal?: AbortSignal;
}

/** A failed agent call: code mapped from the agent's status, the agent's message kept. */
export class AgentCallError extends ShimError {
  constructor(
    code: ErrorCode,
    message: string,
    /** The RPC, e.g. "CreateContainer". */
    readonly method: string,
    /** The gRPC status code the agent (or the local ttrpc client) gave. */
    readonly grpcCode: number,
    /** The agent's own message (or the local client's, for deadlines and lost connections). */
    readonly agentMessage: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'AgentCallError';
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;
const AGENT_SERVICE = AgentServiceDefinition.fullName;
const HEALTH_SERVICE = HealthDefinition.fullName;

/** What a generated method entry gives us. */
interface MethodDef<Req, Res> {
  readonly name: string;
  readonly requestType: { fromPartial(object: never): Req; encode(message: Req): { finish(): Uint8Array } };
  readonly responseType: { decode(input: Uint8Array): Res };
}

type Methods = typeof AgentServiceDefinition.methods;
type HealthMethods = typeof HealthDefinition.methods;
/** The request a method takes, as its generated fromPartial accepts it (any field may be left out). */
type RequestOf<M> = M extends { requestType: { fromPartial(object: infer P): unknown } } ? P : never;
type ResponseOf<M> = M extends { responseType: { decode(input: Uint8Array): infer R } } ? R : never;

type AgentMethod<K extends keyof Methods> = (
  req?: RequestOf<Methods[K]>,
  opts?: AgentCallOptions,
) => Promise<[keyof ResponseOf<Methods[K]>] extends [never] ? void : ResponseOf<Methods[K]>>;

const GRPC_TO_SHIM: Partial<Record<number, ErrorCode>> = {
  [Code.Canceled]: 'Canceled',
  [Code.Unknown]: 'Unknown',
  [Code.InvalidArgument]: 'InvalidArgument',
  [Code.DeadlineExceeded]: 'DeadlineExceeded',
  [Code.NotFound]: 'NotFound',
  [Code.AlreadyExists]: 'AlreadyExists',
  [Code.PermissionDenied]: 'PermissionDenied',
  [Code.ResourceExhausted]: 'ResourceExhausted',
  [Code.FailedPrecondition]: 'FailedPrecondition',
  [Code.Aborted]: 'FailedPrecondition',
  [Code.OutOfRange]: 'InvalidArgument',
  [Code.Unimplemented]: 'Unimplemented',
  [Code.Internal]: 'Internal',
  [Code.Unavailable]: 'Unavailable',
  [Code.DataLoss]: 'Internal',
  [Code.Unauthenticated]: 'PermissionDenied',
};

/** Maps a ttrpc failure of `method` to an AgentCallError. */
export function agentCallError(method: string, err: unknown): AgentCallError {
  if (err instanceof AgentCallError) return err;
  if (err instanceof TtrpcError) {
    const code = GRPC_TO_SHIM[err.code] ?? 'Unknown';
    // The local client says "ttrpc: closed" when the connection goes: say what that means here.
    const text =
      err.code === Code.Unavailable && err.message === 'ttrpc: closed'
        ? `connection to the agent lost${err.cause instanceof Error ? ` (${err.cause.message})` : ''}`
        : err.message;
    return new AgentCallError(code, `kata agent ${method}: ${text}`, method, err.code, err.message, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new AgentCallError('Internal', `kata agent ${method}: ${message}`, method, Code.Internal, message, { cause: err });
}

export class AgentClient {
  private readonly defaultTimeoutMs: number;

  private constructor(
    private readonly ttrpc: TtrpcClient,
    defaultTimeoutMs: number | undefined,
  ) {
    this.defaultTimeoutMs = defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Connects to the agent: through a hybrid vsock socket (CONNECT <port>) or a plain unix
   * socket (an agent running on the host, in tests). Rejects with ShimError Unavailable (nothing
   * to connect to, or nothing listening on the guest port yet) or DeadlineExceeded.
   */
  static async connect(target: AgentTarget, opts: AgentConnectOptions): Promise<AgentClient> {
    if ('hybridVsock' in target) {
      const stream = await connectHybridVsock(target.hybridVsock, target.port, { timeoutMs: opts.timeoutMs });
      return new AgentClient(TtrpcClient.fromSocket(stream), opts.defaultTimeoutMs);
    }
    try {
      return new AgentClient(await TtrpcClient.connect(target.unix, { timeoutMs: opts.timeoutMs }), opts.defaultTimeoutMs);
    } catch (err) {
      const code: ErrorCode = err instanceof TtrpcError && err.code === Code.DeadlineExceeded ? 'DeadlineExceeded' : 'Unavailable';
      const detail = err instanceof Error ? err.message : String(err);
      throw new ShimError(code, `kata agent: cannot connect to ${target.unix}: ${detail}`, { cause: err });
    }
  }

  /**
   * Connects once the agent answers: while the VM boots, the vsock device socket may not
   * exist yet and nothing listens on the guest port (both Unavailable), so this retries
   * connect + /grpc.Health/Check every retryIntervalMs until the agent answers (anything but
   * NOT_SERVING) or timeoutMs has passed (DeadlineExceeded, naming the last failure).
   * `signal` stops the wait early (a VM that exited: the reason is kept as the cause); an
   * error other than Unavailable/DeadlineExceeded ends it at once.
   */
  static async connectWhenReady(
    target: AgentTarget,
    opts: AgentConnectOptions & { retryIntervalMs?: number; signal?: AbortSignal },
  ): Promise<AgentClient> {
    const deadline = Date.now() + opts.timeoutMs;
    const interval = opts.retryIntervalMs ?? 20;
    const where = 'hybridVsock' in target ? `${target.hybridVsock} port ${target.port}` : target.unix;
    let last: ShimError | undefined;
    for (;;) {
      if (opts.signal?.aborted) {
        throw new ShimError('Unavailable', `kata agent at ${where}: gave up waiting${last ? ` (last: ${last.message})` : ''}`, {
          cause: opts.signal.reason,
        });
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ShimError(
          'DeadlineExceeded',
          `kata agent at ${where}: no answer within ${opts.timeoutMs} ms${last ? ` (last: ${last.message})` : ''}`,
          { cause: last },
        );
      }
      let client: AgentClient | undefined;
      try {
        client = await AgentClient.connect(target, { ...opts, timeoutMs: left });
        const health = await client.check({}, { timeoutMs: Math.max(1, deadline - Date.now()), signal: opts.signal });
        // Kata's runtime takes any answer to Check as "up"; only an explicit NOT_SERVING waits.
        if (health.status !== HealthCheckResponse_ServingStatus.NOT_SERVING) return client;
        last = new ShimError('Unavailable', `kata agent health: ${HealthCheckResponse_ServingStatus[health.status] ?? health.status}`);
      } catch (err) {
        const shimErr = err instanceof ShimError ? err : agentCallError('Check', err);
        if (shimErr.code !== 'Unavailable' && shimErr.code !== 'DeadlineExceeded' && shimErr.code !== 'Canceled') {
          await client?.close();
          throw shimErr;
        }
        last = shimErr;
      }
      await client?.close();
      await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), opts.signal);
    }
  }

  /** Wraps a ttrpc client that is already connected to an agent. */
  static fromTtrpc(client: TtrpcClient, opts: { defaultTimeoutMs?: number } = {}): AgentClient {
    return new AgentClient(client, opts.defaultTimeoutMs);
  }

  /** true once the connection is gone (calls then reject with Unavailable). */
  get closed(): boolean {
    return this.ttrpc.closed;
  }

  /** Called once when the connection ends (a VM that dies ends it). Returns an unsubscribe. */
  onClose(cb: (err?: Error) => void): () => void {
    return this.ttrpc.onClose(cb);
  }

  /** Closes the connection; calls in flight reject with Unavailable. */
  close(): Promise<void> {
    return this.ttrpc.close();
  }

  // ---- health ----

  /** /grpc.Health/Check: the agent answers (SERVING). */
  check(req: RequestOf<HealthMethods['check']> = {}, opts: AgentCallOptions = {}): Promise<ResponseOf<HealthMethods['check']>> {
    return this.invoke(HEALTH_SERVICE, HealthDefinition.methods.check, req, opts, true);
  }

  /** /grpc.Health/Version: the agent's version. */
  version(req: RequestOf<HealthMethods['version']> = {}, opts: AgentCallOptions = {}): Promise<ResponseOf<HealthMethods['version']>> {
    return this.invoke(HEALTH_SERVICE, HealthDefinition.methods.version, req, opts, true);
  }

  // ---- sandbox ----
  readonly createSandbox: AgentMethod<'createSandbox'> = this.unary('createSandbox');
  readonly destroySandbox: AgentMethod<'destroySandbox'> = this.unary('destroySandbox');
  readonly getGuestDetails: AgentMethod<'getGuestDetails'> = this.unary('getGuestDetails');
  readonly onlineCpuMem: AgentMethod<'onlineCPUMem'> = this.unary('onlineCPUMem');
  readonly setGuestDateTime: AgentMethod<'setGuestDateTime'> = this.unary('setGuestDateTime');
  readonly copyFile: AgentMethod<'copyFile'> = this.unary('copyFile');
  readonly getMetrics: AgentMethod<'getMetrics'> = this.unary('getMetrics');
  /** Blocks until a container of the sandbox is OOM-killed: no deadline by default. */
  readonly getOomEvent: AgentMethod<'getOOMEvent'> = this.unary('getOOMEvent', false);

  // ---- containers and processes ----
  readonly createContainer: AgentMethod<'createContainer'> = this.unary('createContainer');
  readonly startContainer: AgentMethod<'startContainer'> = this.unary('startContainer');
  readonly removeContainer: AgentMethod<'removeContainer'> = this.unary('removeContainer');
  readonly execProcess: AgentMethod<'execProcess'> = this.unary('execProcess');
  readonly signalProcess: AgentMethod<'signalProcess'> = this.unary('signalProcess');
  /**
   * Blocks until the process exits: no deadline by default. `status` is the exit code, or
   * 128 + signal for a process killed by a signal (kata-agent's convention: 137 after SIGKILL).
   */
  readonly waitProcess: AgentMethod<'waitProcess'> = this.unary('waitProcess', false);
  readonly updateContainer: AgentMethod<'updateContainer'> = this.unary('updateContainer');
  readonly statsContainer: AgentMethod<'statsContainer'> = this.unary('statsContainer');
  readonly pauseContainer: AgentMethod<'pauseContainer'> = this.unary('pauseContainer');
  readonly resumeContainer: AgentMethod<'resumeContainer'> = this.unary('resumeContainer');

  // ---- stdio ----
  /** Blocks until the process takes the bytes: no deadline by default. */
  readonly writeStdin: AgentMethod<'writeStdin'> = this.unary('writeStdin', false);
  /**
   * Blocks until output comes: no deadline by default. EOF is an answer with empty data
   * (kata-agent; Kata's runtime also takes an error as EOF). With a terminal, both streams
   * read the terminal: use readStdout only.
   */
  readonly readStdout: AgentMethod<'readStdout'> = this.unary('readStdout', false);
  /** As readStdout. */
  readonly readStderr: AgentMethod<'readStderr'> = this.unary('readStderr', false);
  readonly closeStdin: AgentMethod<'closeStdin'> = this.unary('closeStdin');
  readonly ttyWinResize: AgentMethod<'ttyWinResize'> = this.unary('ttyWinResize');

  // ---- networking ----
  readonly updateInterface: AgentMethod<'updateInterface'> = this.unary('updateInterface');
  readonly updateRoutes: AgentMethod<'updateRoutes'> = this.unary('updateRoutes');
  readonly listInterfaces: AgentMethod<'listInterfaces'> = this.unary('listInterfaces');
  readonly listRoutes: AgentMethod<'listRoutes'> = this.unary('listRoutes');
  readonly addArpNeighbors: AgentMethod<'addARPNeighbors'> = this.unary('addARPNeighbors');

  private unary<K extends keyof Methods>(key: K, hasDefaultDeadline = true): AgentMethod<K> {
    const def = AgentServiceDefinition.methods[key] as unknown as MethodDef<unknown, unknown>;
    return ((req: unknown = {}, opts: AgentCallOptions = {}) =>
      this.invoke(AGENT_SERVICE, def, req, opts, hasDefaultDeadline).then((res) =>
        (def.responseType as unknown) === Empty ? undefined : res,
      )) as AgentMethod<K>;
  }

  private async invoke<Req, Res>(
    service: string,
    def: MethodDef<Req, Res>,
    req: unknown,
    opts: AgentCallOptions,
    hasDefaultDeadline: boolean,
  ): Promise<Res> {
    let payload: Uint8Array;
    try {
      payload = def.requestType.encode(def.requestType.fromPartial(req as never)).finish();
    } catch (err) {
      // fromPartial/encode throw on values that do not fit the field (a bigint out of range, ...).
      const message = err instanceof Error ? err.message : String(err);
      throw new AgentCallError('InvalidArgument', `kata agent ${def.name}: bad request: ${message}`, def.name, Code.InvalidArgument, message, {
        cause: err,
      });
    }
    const timeoutMs = opts.timeoutMs ?? (hasDefaultDeadline ? this.defaultTimeoutMs : undefined);
    let answer: Uint8Array;
    try {
      answer = await this.ttrpc.call(service, def.name, payload, { timeoutMs, signal: opts.signal });
    } catch (err) {
      throw agentCallError(def.name, err);
    }
    try {
      return def.responseType.decode(answer);
    } catch (err) {
      const message = `undecodable response: ${err instanceof Error ? err.message : String(err)}`;
      throw new AgentCallError('Internal', `kata agent ${def.name}: ${message}`, def.name, Code.Internal, message, { cause: err });
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
