/**
 * Kata's ttrpc services as the guest agent serves them: `grpc.AgentService` (the messages
 * of src/proto/defs/kata/agent.proto) and `grpc.Health`. Every method of our agent.proto
 * has a handler; the ones this agent does not do answer Unimplemented and say why.
 * Methods outside our .proto get the server's own Unimplemented ("method X").
 *
 * Errors: ShimError codes map to ttrpc codes (src/shim/status.ts); a stream at its end
 * answers Internal "read meet eof", as kata-agent does, which the host takes as EOF.
 */
import { readFileSync, existsSync } from 'node:fs';
import { ShimError, invalidArgument, unimplemented } from '../../../core/errors.js';
import { Empty } from '../../../proto/gen/google/protobuf/empty.js';
import * as pb from '../../../proto/gen/kata/agent.js';
import { HealthCheckResponse, HealthCheckResponse_ServingStatus, HealthDefinition, VersionCheckResponse, CheckRequest } from '../../../proto/gen/kata/health.js';
import type { Process, Spec, LinuxResources } from '../../../proto/gen/kata/oci.js';
import { Interface } from '../../../proto/gen/kata/types.js';
import { errorToStatus } from '../../../shim/status.js';
import { decodePayload, type CallContext, type PayloadDecoder, type TtrpcServer, type UnaryHandler } from '../../../ttrpc/server.js';
import { ociProcessFromProto, ociResourcesFromProto, ociSpecFromProto } from '../oci-spec.js';
import type { GuestAgent, Log } from './agent.js';
import { EndOfStream } from './streams.js';
import { cgroupStatsOf } from './stats.js';
import { copyFile } from './copy-file.js';
import type { GuestNetwork } from './network.js';

/** reported in GetGuestDetails and Health.Version */
export const AGENT_VERSION = '3.2.0-tsshim';
const API_VERSION = '0.0.1';

interface Enc<T> {
  encode(message: T): { finish(): Uint8Array };
}

export interface ServiceHooks {
  log: Log;
  /** DestroySandbox answered: the agent exits (and init powers the VM off) */
  onDestroyed: () => void;
}

/** Kata's answer shape for an error: ttrpc status from our error codes */
export function agentErrorToStatus(err: unknown): { code: number; message: string } {
  if (err instanceof EndOfStream) return { code: 13 /* Internal */, message: err.message };
  return errorToStatus(err);
}

export function registerAgentService(server: TtrpcServer, agent: GuestAgent, net: GuestNetwork, hooks: ServiceHooks): void {
  const unary =
    <Req, Res>(reqCodec: PayloadDecoder<Req>, resCodec: Enc<Res>, fn: (req: Req, ctx: CallContext) => Promise<Res> | Res): UnaryHandler =>
    async (payload, ctx) => {
      const req = decodePayload(reqCodec, payload);
      try {
        return resCodec.encode(await fn(req, ctx)).finish();
      } catch (err) {
        if (!(err instanceof EndOfStream)) {
          const r = req as { containerId?: string; execId?: string };
          hooks.log('rpc failed', { rpc: ctx.method, containerId: r.containerId, execId: r.execId, err: (err as Error).message });
        }
        throw err;
      }
    };
  const empty = Empty.fromPartial({});
  const notDone = (method: string, why: string) => async () => {
    throw unimplemented(`${method}: ${why}`);
  };

  const methods: Record<string, UnaryHandler> = {
    CreateContainer: unary(pb.CreateContainerRequest, Empty, async (r) => {
      const spec = r.OCI ? specJson(r.OCI) : undefined;
      if (r.devices.length > 0) throw unimplemented(`CreateContainer ${r.containerId}: devices (${r.devices.map((d) => d.type).join(', ')}) are not supported by this agent`);
      await agent.createContainer(r.containerId, spec, r.storages, { sandboxPidns: r.sandboxPidns });
      return empty;
    }),
    StartContainer: unary(pb.StartContainerRequest, Empty, async (r) => {
      await agent.startContainer(r.containerId);
      return empty;
    }),
    RemoveContainer: unary(pb.RemoveContainerRequest, Empty, async (r) => {
      const removal = agent.removeContainer(r.containerId);
      if (r.timeout > 0) {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ShimError('DeadlineExceeded', `RemoveContainer ${r.containerId}: not done within ${r.timeout} s`)), r.timeout * 1000);
        });
        try {
          await Promise.race([removal, deadline]);
        } finally {
          clearTimeout(timer);
        }
      } else {
        await removal;
      }
      return empty;
    }),
    ExecProcess: unary(pb.ExecProcessRequest, Empty, async (r) => {
      const process = r.process ? processJson(r.process) : undefined;
      await agent.execProcess(r.containerId, r.execId, process);
      return empty;
    }),
    SignalProcess: unary(pb.SignalProcessRequest, Empty, async (r) => {
      await agent.signalProcess(r.containerId, r.execId, r.signal);
      return empty;
    }),
    WaitProcess: unary(pb.WaitProcessRequest, pb.WaitProcessResponse, async (r) => ({ status: await agent.waitProcess(r.containerId, r.execId) })),
    UpdateContainer: unary(pb.UpdateContainerRequest, Empty, async (r) => {
      if (r.resources) await agent.update(r.containerId, resourcesJson(r.resources));
      return empty;
    }),
    StatsContainer: unary(pb.StatsContainerRequest, pb.StatsContainerResponse, async (r) =>
      pb.StatsContainerResponse.fromPartial({ cgroupStats: cgroupStatsOf(await agent.stats(r.containerId)), networkStats: net.stats() }),
    ),
    PauseContainer: unary(pb.PauseContainerRequest, Empty, async (r) => {
      await agent.pause(r.containerId);
      return empty;
    }),
    ResumeContainer: unary(pb.ResumeContainerRequest, Empty, async (r) => {
      await agent.resume(r.containerId);
      return empty;
    }),

    WriteStdin: unary(pb.WriteStreamRequest, pb.WriteStreamResponse, async (r) => ({ len: await agent.writeStdin(r.containerId, r.execId, r.data) })),
    ReadStdout: unary(pb.ReadStreamRequest, pb.ReadStreamResponse, async (r) => ({ data: await agent.readOutput(r.containerId, r.execId, 'stdout', r.len) })),
    ReadStderr: unary(pb.ReadStreamRequest, pb.ReadStreamResponse, async (r) => ({ data: await agent.readOutput(r.containerId, r.execId, 'stderr', r.len) })),
    CloseStdin: unary(pb.CloseStdinRequest, Empty, (r) => {
      agent.closeStdin(r.containerId, r.execId);
      return empty;
    }),
    TtyWinResize: unary(pb.TtyWinResizeRequest, Empty, async (r) => {
      await agent.ttyWinResize(r.containerId, r.execId, r.row, r.column);
      return empty;
    }),

    UpdateInterface: unary(pb.UpdateInterfaceRequest, Interface, async (r) => {
      if (!r.interface) throw invalidArgument('UpdateInterface: no interface in the request');
      return net.updateInterface(r.interface);
    }),
    UpdateRoutes: unary(pb.UpdateRoutesRequest, pb.Routes, async (r) => ({ Routes: await net.updateRoutes(r.routes?.Routes ?? []) })),
    ListInterfaces: unary(pb.ListInterfacesRequest, pb.Interfaces, async () => ({ Interfaces: await net.listInterfaces() })),
    ListRoutes: unary(pb.ListRoutesRequest, pb.Routes, async () => ({ Routes: await net.listRoutes() })),
    AddARPNeighbors: unary(pb.AddARPNeighborsRequest, Empty, async (r) => {
      await net.addArpNeighbors(r.neighbors?.ARPNeighbors ?? []);
      return empty;
    }),

    GetMetrics: unary(pb.GetMetricsRequest, pb.Metrics, notDone('GetMetrics', 'this agent exports no Prometheus metrics')),
    CreateSandbox: unary(pb.CreateSandboxRequest, Empty, async (r) => {
      if (r.kernelModules.length > 0) throw unimplemented(`CreateSandbox: loading kernel modules (${r.kernelModules.map((m) => m.name).join(', ')}) is not supported by this agent`);
      await agent.createSandbox({ sandboxId: r.sandboxId, hostname: r.hostname, storages: r.storages });
      return empty;
    }),
    DestroySandbox: unary(pb.DestroySandboxRequest, Empty, async () => {
      try {
        await agent.destroySandbox();
      } finally {
        hooks.onDestroyed();
      }
      return empty;
    }),
    OnlineCPUMem: unary(pb.OnlineCPUMemRequest, Empty, notDone('OnlineCPUMem', 'CPU and memory hotplug are not supported by this agent')),
    GetGuestDetails: unary(pb.GuestDetailsRequest, pb.GuestDetailsResponse, (r) => guestDetails(r)),
    SetGuestDateTime: unary(pb.SetGuestDateTimeRequest, Empty, notDone('SetGuestDateTime', 'setting the guest clock is not supported by this agent')),
    CopyFile: unary(pb.CopyFileRequest, Empty, (r) => {
      copyFile(r, agent.paths);
      return empty;
    }),
    GetOOMEvent: unary(pb.GetOOMEventRequest, pb.OOMEvent, async () => {
      const id = await agent.nextOomEvent();
      // the sandbox went away while the host waited: kata-agent fails the call then too
      if (!id) throw new ShimError('Unavailable', 'GetOOMEvent: the sandbox is being destroyed');
      return { containerId: id };
    }),
  };
  // every method of our agent.proto must have an answer (a test lists them too)
  for (const m of Object.values(pb.AgentServiceDefinition.methods)) {
    if (!methods[m.name]) methods[m.name] = unary(Empty, Empty, notDone(m.name, 'not implemented by this agent'));
  }
  server.register(pb.AgentServiceDefinition.fullName, methods);

  server.register(HealthDefinition.fullName, {
    Check: unary(CheckRequest, HealthCheckResponse, () => ({ status: HealthCheckResponse_ServingStatus.SERVING })),
    Version: unary(CheckRequest, VersionCheckResponse, () => VersionCheckResponse.fromPartial({ grpcVersion: API_VERSION, agentVersion: AGENT_VERSION })),
  });
}

/** a message the converter refuses is the caller's mistake: InvalidArgument */
function converted<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw invalidArgument(`${what}: ${(err as Error).message}`, err);
  }
}

function specJson(spec: Spec): Record<string, unknown> {
  return converted('OCI spec', () => ociSpecFromProto(spec));
}

function processJson(p: Process): Record<string, unknown> {
  return converted('process', () => ociProcessFromProto(p));
}

function resourcesJson(r: LinuxResources): Record<string, unknown> {
  return converted('resources', () => ociResourcesFromProto(r));
}

function guestDetails(r: pb.GuestDetailsRequest): pb.GuestDetailsResponse {
  let memBlockSizeBytes = 0n;
  if (r.memBlockSize) {
    try {
      memBlockSizeBytes = BigInt(`0x${readFileSync('/sys/devices/system/memory/block_size_bytes', 'utf8').trim()}`);
    } catch {
      // no memory hotplug in this kernel: 0, as kata-agent answers
    }
  }
  return pb.GuestDetailsResponse.fromPartial({
    memBlockSizeBytes,
    supportMemHotplugProbe: r.memHotplugProbe && existsSync('/sys/devices/system/memory/probe'),
    agentDetails: {
      version: AGENT_VERSION,
      initDaemon: process.pid === 1,
      deviceHandlers: [],
      storageHandlers: ['virtio-fs', 'local', 'ephemeral'],
      supportsSeccomp: true,
      extraFeatures: [],
    },
  });
}
