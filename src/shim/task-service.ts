/**
 * The Task service edge: decode → call the core → encode. Nothing else lives here: no
 * state, no policy. Registered under containerd.task.v2.Task and, for containerd 2.x,
 * containerd.task.v3.Task (identical messages).
 */
import { invalidArgument } from '../core/errors.js';
import type { TaskCore } from '../core/task-core.js';
import type { CgroupMetrics } from '../core/backend.js';
import * as pb from '../proto/gen/containerd/task/v2/shim.js';
import { Empty } from '../proto/gen/google/protobuf/empty.js';
import { ProcessDetails, CheckpointOptions } from '../proto/gen/containerd/runc/v1/options.js';
import { Status } from '../proto/gen/containerd/v1/types/task.js';
import {
  TASK_SERVICE_V2,
  TASK_SERVICE_V3,
  TypeUrl,
  packMessage,
  timestampFromDate,
  typeUrlMatches,
  unpackAny,
} from '../proto/typeurls.js';
import { decodePayload, type TtrpcServer, type UnaryHandler, type CallContext, type PayloadDecoder } from '../ttrpc/server.js';
import type { DecodedOptions } from './runtime-options.js';

export interface RpcLogger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ShimControl {
  /** containerd asked the shim to go away; honoured only when no container is left */
  shutdown(): void;
  /** decode + validate options for one Create (loads the per-runtime config) */
  decodeOptions(options: pb.CreateTaskRequest['options']): DecodedOptions;
  shimPid: number;
  log: RpcLogger;
}

interface Enc<T> {
  encode(m: T): { finish(): Uint8Array };
}

const EMPTY = Empty.encode({}).finish();

export function registerTaskService(server: TtrpcServer, core: TaskCore, control: ShimControl): void {
  const unary =
    <Req, Res>(reqCodec: PayloadDecoder<Req>, resCodec: Enc<Res> | null, fn: (req: Req, ctx: CallContext) => Promise<Res> | Res): UnaryHandler =>
    async (payload, ctx) => {
      const req = decodePayload(reqCodec, payload);
      const r = req as { id?: string; execId?: string };
      control.log.debug({ rpc: ctx.method, id: r.id, execId: r.execId || undefined }, 'rpc');
      try {
        const res = await fn(req, ctx);
        return resCodec ? resCodec.encode(res).finish() : EMPTY;
      } catch (err) {
        control.log.debug({ rpc: ctx.method, id: r.id, execId: r.execId || undefined, err: (err as Error).message }, 'rpc failed');
        throw err;
      }
    };

  const methods: Record<string, UnaryHandler> = {
    State: unary(pb.StateRequest, pb.StateResponse, (r) => {
      const s = core.state(r.id, r.execId);
      return pb.StateResponse.fromPartial({
        id: s.id,
        bundle: s.bundle,
        pid: s.pid,
        status: s.status as unknown as Status,
        stdin: s.stdin,
        stdout: s.stdout,
        stderr: s.stderr,
        terminal: s.terminal,
        exitStatus: s.exitStatus,
        exitedAt: timestampFromDate(s.exitedAt),
        execId: s.execId,
      });
    }),

    Create: unary(pb.CreateTaskRequest, pb.CreateTaskResponse, async (r) => {
      const opts = control.decodeOptions(r.options);
      const { pid } = await core.create({
        id: r.id,
        bundle: r.bundle,
        rootfs: r.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: m.options })),
        terminal: r.terminal,
        stdin: r.stdin,
        stdout: r.stdout,
        stderr: r.stderr,
        checkpoint: r.checkpoint,
        options: opts.runc,
        configPath: opts.configPath,
        configBody: opts.configBody,
      });
      return { pid };
    }),

    Start: unary(pb.StartRequest, pb.StartResponse, async (r) => core.start(r.id, r.execId)),

    Delete: unary(pb.DeleteRequest, pb.DeleteResponse, async (r) => {
      const v = await core.delete(r.id, r.execId);
      return { pid: v.pid, exitStatus: v.exitStatus, exitedAt: timestampFromDate(v.exitedAt) };
    }),

    Pids: unary(pb.PidsRequest, pb.PidsResponse, async (r) => {
      const list = await core.pids(r.id);
      return {
        processes: list.map((p) => ({
          pid: p.pid,
          info: p.execId ? packMessage(TypeUrl.RuncProcessDetails, ProcessDetails, { execId: p.execId }) : undefined,
        })),
      };
    }),

    Pause: unary(pb.PauseRequest, null, async (r) => core.pause(r.id)),
    Resume: unary(pb.ResumeRequest, null, async (r) => core.resume(r.id)),

    Checkpoint: unary(pb.CheckpointTaskRequest, null, async (r) => {
      const o = unpackAny(r.options, TypeUrl.RuncCheckpointOptions, CheckpointOptions) ?? CheckpointOptions.fromPartial({});
      await core.checkpoint(r.id, {
        path: r.path,
        exit: o.exit,
        openTcp: o.openTcp,
        externalUnixSockets: o.externalUnixSockets,
        terminal: o.terminal,
        fileLocks: o.fileLocks,
        emptyNamespaces: o.emptyNamespaces,
        cgroupsMode: o.cgroupsMode,
        workPath: o.workPath,
        parentPath: o.parentPath,
      });
    }),

    Kill: unary(pb.KillRequest, null, async (r) => core.kill(r.id, r.execId, r.signal, r.all)),

    Exec: unary(pb.ExecProcessRequest, null, async (r) => {
      // the runc shim reads the value as an OCI process whatever its type URL says
      if (!r.spec) throw invalidArgument(`exec ${r.execId}: no process spec`);
      let spec: unknown;
      try {
        spec = JSON.parse(Buffer.from(r.spec.value).toString('utf8'));
      } catch (err) {
        throw invalidArgument(`exec ${r.execId}: process spec is not valid JSON: ${(err as Error).message}`, err);
      }
      if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw invalidArgument(`exec ${r.execId}: process spec must be an object`);
      await core.exec(r.id, r.execId, { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal }, spec as Record<string, unknown>);
    }),

    ResizePty: unary(pb.ResizePtyRequest, null, (r) => core.resizePty(r.id, r.execId, r.width, r.height)),
    CloseIO: unary(pb.CloseIORequest, null, (r) => {
      if (r.stdin) core.closeIO(r.id, r.execId);
    }),

    Update: unary(pb.UpdateTaskRequest, null, async (r) => {
      if (!r.resources) throw invalidArgument('update: resources missing');
      if (!typeUrlMatches(r.resources.typeUrl, TypeUrl.OciLinuxResources)) {
        throw invalidArgument(`update: resources of type ${r.resources.typeUrl} are not supported (want ${TypeUrl.OciLinuxResources})`);
      }
      let res: unknown;
      try {
        res = JSON.parse(Buffer.from(r.resources.value).toString('utf8'));
      } catch (err) {
        throw invalidArgument(`update: resources are not valid JSON: ${(err as Error).message}`, err);
      }
      if (!res || typeof res !== 'object' || Array.isArray(res)) throw invalidArgument('update: resources must be an object');
      await core.update(r.id, res as Record<string, unknown>);
    }),

    Wait: unary(pb.WaitRequest, pb.WaitResponse, async (r, ctx) => {
      const v = await core.wait(r.id, r.execId, ctx.signal);
      return { exitStatus: v.exitStatus, exitedAt: timestampFromDate(v.exitedAt) };
    }),

    Stats: unary(pb.StatsRequest, pb.StatsResponse, async (r) => ({ stats: await encodeMetrics(await core.stats(r.id)) })),

    Connect: unary(pb.ConnectRequest, pb.ConnectResponse, (r) => ({
      shimPid: control.shimPid,
      taskPid: core.taskPid(r.id),
      version: '',
    })),

    Shutdown: unary(pb.ShutdownRequest, null, () => {
      control.shutdown();
    }),
  };

  server.register(TASK_SERVICE_V2, methods);
  server.register(TASK_SERVICE_V3, methods);
}

/**
 * The metrics messages are the largest generated code we have; a shim that is never
 * asked for stats (ctr run) never loads them.
 */
async function encodeMetrics(m: CgroupMetrics) {
  if (m.version === 1) {
    const { Metrics } = await import('../proto/gen/cgroups/v1/metrics.js');
    return packMessage(TypeUrl.CgroupsV1Metrics, Metrics, Metrics.fromPartial(m.data as never));
  }
  const { Metrics } = await import('../proto/gen/cgroups/v2/metrics.js');
  return packMessage(TypeUrl.CgroupsV2Metrics, Metrics, Metrics.fromPartial(m.data as never));
}
