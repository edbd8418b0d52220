/**
 * AgentClient against a fake agent: our ttrpc server (src/ttrpc/server.ts) serving
 * grpc.AgentService and grpc.Health with the generated Kata messages, over a unix socket
 * and over a fake hybrid vsock device.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentCallError, AgentClient } from '../../src/backends/kata/agent-client.js';
import { ShimError } from '../../src/core/errors.js';
import { Code, TtrpcError, TtrpcServer, type CallContext, type UnaryHandler } from '../../src/ttrpc/index.js';
import { listenPipe } from '../../src/sys/uv-pipe.js';
import { AgentServiceDefinition } from '../../src/proto/gen/kata/agent.js';
import { HealthCheckResponse_ServingStatus, HealthDefinition } from '../../src/proto/gen/kata/health.js';
import { IPFamily } from '../../src/proto/gen/kata/types.js';

let dir: string;
const cleanups: Array<() => unknown> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kata-agent-client-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

interface Seen {
  path: string;
  request: unknown;
  deadline: number | undefined;
  at: number;
}

type Impl = (request: unknown, ctx: CallContext) => Promise<unknown> | unknown;

interface FakeAgent {
  server: TtrpcServer;
  socketPath: string;
  seen: Seen[];
  /** per method name (Kata's, e.g. "WaitProcess"): what to answer; default: an empty response */
  impl: Map<string, Impl>;
}

interface Definition {
  fullName: string;
  methods: Record<
    string,
    {
      name: string;
      requestType: { decode(b: Uint8Array): unknown };
      responseType: { fromPartial(o: never): unknown; encode(m: never): { finish(): Uint8Array } };
    }
  >;
}

function handlersFor(def: Definition, agent: Omit<FakeAgent, 'server' | 'socketPath'>, skip: string[]): Record<string, UnaryHandler> {
  const handlers: Record<string, UnaryHandler> = {};
  for (const m of Object.values(def.methods)) {
    if (skip.includes(m.name)) continue;
    handlers[m.name] = async (payload, ctx) => {
      const request = m.requestType.decode(payload);
      agent.seen.push({ path: `/${ctx.service}/${ctx.method}`, request, deadline: ctx.deadline, at: Date.now() });
      const answer = (await agent.impl.get(m.name)?.(request, ctx)) ?? {};
      return m.responseType.encode(m.responseType.fromPartial(answer as never) as never).finish();
    };
  }
  return handlers;
}

async function fakeAgent(opts: { skip?: string[] } = {}): Promise<FakeAgent> {
  const socketPath = join(dir, `agent-${cleanups.length}.sock`);
  const state = { seen: [] as Seen[], impl: new Map<string, Impl>() };
  const server = new TtrpcServer({ closeTimeoutMs: 200 });
  server.register('grpc.AgentService', handlersFor(AgentServiceDefinition as unknown as Definition, state, opts.skip ?? []));
  server.register('grpc.Health', handlersFor(HealthDefinition as unknown as Definition, state, []));
  server.listen(await listenPipe({ path: socketPath }));
  cleanups.push(() => server.close());
  return { server, socketPath, ...state };
}

/** A fake hybrid vsock device in front of the agent: CONNECT <port> -> OK, then the agent serves the socket. */
async function fakeDeviceFor(
  agent: FakeAgent,
  acceptPort: number,
  opts: { path?: string; refuseFirst?: number } = {},
): Promise<string> {
  const path = opts.path ?? join(dir, `vsock-${cleanups.length}.sock`);
  let refuse = opts.refuseFirst ?? 0;
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    let buf = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('latin1');
      if (!buf.includes('\n')) return;
      socket.off('data', onData);
      if (buf !== `CONNECT ${acceptPort}\n` || refuse-- > 0) {
        socket.end();
        return;
      }
      socket.write('OK 1073741825\n');
      agent.server.handleConnection(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return path;
}

async function connect(agent: FakeAgent, opts: { defaultTimeoutMs?: number } = {}): Promise<AgentClient> {
  const client = await AgentClient.connect({ unix: agent.socketPath }, { timeoutMs: 2000, ...opts });
  cleanups.push(() => client.close());
  return client;
}

async function rejection(p: Promise<unknown>): Promise<AgentCallError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentCallError);
  return err as AgentCallError;
}

describe('AgentClient: requests and responses', () => {
  it('each typed method calls /grpc.AgentService/<Method> (or /grpc.Health/<Method>) with the request as given', async () => {
    const agent = await fakeAgent();
    const client = await connect(agent);
    agent.impl.set('WaitProcess', () => ({ status: 137 }));
    agent.impl.set('ReadStdout', () => ({ data: Buffer.from('out') }));
    agent.impl.set('ReadStderr', () => ({ data: Buffer.from('err') }));
    agent.impl.set('WriteStdin', (req) => ({ len: (req as { data: Uint8Array }).data.length }));
    agent.impl.set('StatsContainer', () => ({ cgroupStats: { memoryStats: { usage: { usage: 4096n } } }, networkStats: [{ name: 'eth0', rxBytes: 5n }] }));
    agent.impl.set('GetOOMEvent', () => ({ containerId: 'c1' }));
    agent.impl.set('ListInterfaces', () => ({ Interfaces: [{ name: 'eth0', mtu: 1500n }] }));
    agent.impl.set('UpdateInterface', (req) => (req as { interface: unknown }).interface);
    agent.impl.set('UpdateRoutes', (req) => (req as { routes: unknown }).routes);
    agent.impl.set('GetGuestDetails', () => ({ memBlockSizeBytes: 128n << 20n, agentDetails: { version: '3.2.0' } }));
    agent.impl.set('Check', () => ({ status: HealthCheckResponse_ServingStatus.SERVING }));
    agent.impl.set('Version', () => ({ agentVersion: '3.2.0', grpcVersion: '1' }));

    const spec = { Version: '1.1.0', Root: { Path: '/run/kata-containers/shared/containers/c1/rootfs' }, Process: { Args: ['true'], Cwd: '/' } };
    const iface = { name: 'eth0', device: 'eth0', mtu: 1500n, hwAddr: '02:00:00:00:00:01', IPAddresses: [{ family: IPFamily.v4, address: '10.0.0.2', mask: '24' }] };
    const route = { dest: '0.0.0.0/0', gateway: '10.0.0.1', device: 'eth0' };

    expect(await client.check()).toEqual({ status: HealthCheckResponse_ServingStatus.SERVING });
    expect(await client.version()).toEqual({ grpcVersion: '1', agentVersion: '3.2.0' });
    expect(await client.createSandbox({ hostname: 'pod', sandboxId: 'sb', storages: [{ driver: 'virtio-fs', source: 'kataShared', fstype: 'virtiofs', mountPoint: '/run/kata-containers/shared/containers/' }] })).toBeUndefined();
    expect(await client.createContainer({ containerId: 'c1', execId: 'c1', OCI: spec })).toBeUndefined();
    await client.startContainer({ containerId: 'c1' });
    await client.execProcess({ containerId: 'c1', execId: 'e1', process: { Args: ['ls'], Terminal: true } });
    await client.signalProcess({ containerId: 'c1', execId: '', signal: 15 });
    expect(await client.waitProcess({ containerId: 'c1', execId: 'c1' })).toEqual({ status: 137 });
    expect(Buffer.from((await client.readStdout({ containerId: 'c1', execId: 'c1', len: 1024 })).data).toString()).toBe('out');
    expect(Buffer.from((await client.readStderr({ containerId: 'c1', execId: 'c1', len: 1024 })).data).toString()).toBe('err');
    expect(await client.writeStdin({ containerId: 'c1', execId: 'c1', data: Buffer.from('abcd') })).toEqual({ len: 4 });
    await client.closeStdin({ containerId: 'c1', execId: 'c1' });
    await client.ttyWinResize({ containerId: 'c1', execId: 'e1', row: 24, column: 80 });
    const stats = await client.statsContainer({ containerId: 'c1' });
    expect(stats.cgroupStats!.memoryStats!.usage!.usage).toBe(4096n);
    expect(stats.networkStats[0]!.rxBytes).toBe(5n);
    await client.updateContainer({ containerId: 'c1', resources: { Memory: { Limit: 1n << 28n }, CPU: { Quota: 50000n, Period: 100000n } } });
    await client.pauseContainer({ containerId: 'c1' });
    await client.resumeContainer({ containerId: 'c1' });
    expect(await client.getOomEvent()).toEqual({ containerId: 'c1' });
    expect((await client.listInterfaces()).Interfaces[0]!.name).toBe('eth0');
    expect((await client.updateInterface({ interface: iface })).IPAddresses[0]!.address).toBe('10.0.0.2');
    expect((await client.updateRoutes({ routes: { Routes: [route] } })).Routes[0]!.gateway).toBe('10.0.0.1');
    await client.addArpNeighbors({ neighbors: { ARPNeighbors: [{ toIPAddress: { address: '10.0.0.1' }, lladdr: 'aa:bb:cc:dd:ee:ff', device: 'eth0', state: 128 }] } });
    expect((await client.getGuestDetails({ memBlockSize: true })).agentDetails!.version).toBe('3.2.0');
    agent.impl.set('ListRoutes', () => ({ Routes: [route] }));
    agent.impl.set('GetMetrics', () => ({ metrics: 'kata_agent_up 1\n' }));
    expect((await client.listRoutes()).Routes[0]!.dest).toBe('0.0.0.0/0');
    expect(await client.getMetrics()).toEqual({ metrics: 'kata_agent_up 1\n' });
    await client.onlineCpuMem({ wait: true, nbCpus: 2 });
    await client.setGuestDateTime({ Sec: 1700000000n, Usec: 5n });
    await client.copyFile({ path: '/run/kata-containers/shared/containers/resolv.conf', fileSize: 3n, fileMode: 0o644, data: Buffer.from('x=1') });
    await client.removeContainer({ containerId: 'c1', timeout: 5 });
    await client.destroySandbox();

    expect(agent.seen.map((s) => s.path)).toEqual([
      '/grpc.Health/Check',
      '/grpc.Health/Version',
      '/grpc.AgentService/CreateSandbox',
      '/grpc.AgentService/CreateContainer',
      '/grpc.AgentService/StartContainer',
      '/grpc.AgentService/ExecProcess',
      '/grpc.AgentService/SignalProcess',
      '/grpc.AgentService/WaitProcess',
      '/grpc.AgentService/ReadStdout',
      '/grpc.AgentService/ReadStderr',
      '/grpc.AgentService/WriteStdin',
      '/grpc.AgentService/CloseStdin',
      '/grpc.AgentService/TtyWinResize',
      '/grpc.AgentService/StatsContainer',
      '/grpc.AgentService/UpdateContainer',
      '/grpc.AgentService/PauseContainer',
      '/grpc.AgentService/ResumeContainer',
      '/grpc.AgentService/GetOOMEvent',
      '/grpc.AgentService/ListInterfaces',
      '/grpc.AgentService/UpdateInterface',
      '/grpc.AgentService/UpdateRoutes',
      '/grpc.AgentService/AddARPNeighbors',
      '/grpc.AgentService/GetGuestDetails',
      '/grpc.AgentService/ListRoutes',
      '/grpc.AgentService/GetMetrics',
      '/grpc.AgentService/OnlineCPUMem',
      '/grpc.AgentService/SetGuestDateTime',
      '/grpc.AgentService/CopyFile',
      '/grpc.AgentService/RemoveContainer',
      '/grpc.AgentService/DestroySandbox',
    ]);
    const req = (path: string) => agent.seen.find((s) => s.path === `/grpc.AgentService/${path}`)!.request as Record<string, unknown>;
    expect(req('CreateContainer')).toMatchObject({ containerId: 'c1', execId: 'c1', OCI: { Version: '1.1.0', Root: { Path: '/run/kata-containers/shared/containers/c1/rootfs', Readonly: false } } });
    expect(req('CreateSandbox')).toMatchObject({ hostname: 'pod', sandboxId: 'sb', storages: [{ driver: 'virtio-fs', source: 'kataShared', fstype: 'virtiofs' }] });
    expect(req('ExecProcess')).toMatchObject({ containerId: 'c1', execId: 'e1', process: { Args: ['ls'], Terminal: true } });
    expect(req('SignalProcess')).toEqual({ containerId: 'c1', execId: '', signal: 15 });
    expect(req('TtyWinResize')).toEqual({ containerId: 'c1', execId: 'e1', row: 24, column: 80 });
    expect(req('UpdateContainer')).toMatchObject({ resources: { Memory: { Limit: 1n << 28n }, CPU: { Quota: 50000n, Period: 100000n } } });
    expect(req('RemoveContainer')).toEqual({ containerId: 'c1', timeout: 5 });
    expect(req('SetGuestDateTime')).toEqual({ Sec: 1700000000n, Usec: 5n });
    expect(req('CopyFile')).toMatchObject({ fileSize: 3n, fileMode: 0o644, data: Buffer.from('x=1') });
    expect(req('AddARPNeighbors')).toMatchObject({ neighbors: { ARPNeighbors: [{ lladdr: 'aa:bb:cc:dd:ee:ff', state: 128 }] } });
  });

  it('works the same through a hybrid vsock device (CONNECT <port>)', async () => {
    const agent = await fakeAgent();
    const device = await fakeDeviceFor(agent, 1024);
    agent.impl.set('WaitProcess', () => ({ status: 3 }));
    const client = await AgentClient.connect({ hybridVsock: device, port: 1024 }, { timeoutMs: 2000 });
    cleanups.push(() => client.close());
    expect(await client.check()).toEqual({ status: 0 });
    expect(await client.waitProcess({ containerId: 'c', execId: 'c' })).toEqual({ status: 3 });
    expect(agent.seen.map((s) => s.path)).toEqual(['/grpc.Health/Check', '/grpc.AgentService/WaitProcess']);
  });

  it('connect failures are ShimErrors: no socket (unix), nothing listening on the port (hybrid vsock)', async () => {
    const agent = await fakeAgent();
    const device = await fakeDeviceFor(agent, 1024);
    const e1 = await AgentClient.connect({ unix: join(dir, 'none.sock') }, { timeoutMs: 500 }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ShimError);
    expect((e1 as ShimError).code).toBe('Unavailable');
    expect((e1 as ShimError).message).toContain('none.sock');
    const e2 = await AgentClient.connect({ hybridVsock: device, port: 2048 }, { timeoutMs: 500 }).catch((e: unknown) => e);
    expect((e2 as ShimError).code).toBe('Unavailable');
    expect((e2 as ShimError).message).toMatch(/port 2048/);
  });
});

describe('AgentClient: deadlines', () => {
  it('default deadline on ordinary calls, none on the calls that block in the agent, per-call override', async () => {
    const agent = await fakeAgent();
    const client = await connect(agent);
    await client.createContainer({ containerId: 'c1' });
    await client.waitProcess({ containerId: 'c1' });
    await client.readStdout({ containerId: 'c1' });
    await client.readStderr({ containerId: 'c1' });
    await client.writeStdin({ containerId: 'c1' });
    await client.getOomEvent({});
    await client.startContainer({ containerId: 'c1' }, { timeoutMs: 5000 });
    await client.waitProcess({ containerId: 'c1' }, { timeoutMs: 7000 });
    const d = agent.seen.map((s) => (s.deadline === undefined ? undefined : Math.round((s.deadline - s.at) / 1000)));
    expect(d).toEqual([60, undefined, undefined, undefined, undefined, undefined, 5, 7]);

    const other = await AgentClient.connect({ unix: agent.socketPath }, { timeoutMs: 2000, defaultTimeoutMs: 3000 });
    cleanups.push(() => other.close());
    await other.statsContainer({ containerId: 'c1' });
    expect(Math.round((agent.seen.at(-1)!.deadline! - agent.seen.at(-1)!.at) / 1000)).toBe(3);
  });

  it('an agent that does not answer in time: DeadlineExceeded naming the RPC', async () => {
    const agent = await fakeAgent();
    const client = await connect(agent);
    agent.impl.set('StartContainer', () => new Promise(() => {}));
    const started = Date.now();
    const err = await rejection(client.startContainer({ containerId: 'c1' }, { timeoutMs: 150 }));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err.code).toBe('DeadlineExceeded');
    expect(err.method).toBe('StartContainer');
    expect(err.message).toMatch(/^kata agent StartContainer: .*deadline exceeded/);
  });

  it('a call canceled by its signal rejects with Canceled', async () => {
    const agent = await fakeAgent();
    const client = await connect(agent);
    agent.impl.set('WaitProcess', () => new Promise(() => {}));
    const ac = new AbortController();
    const p = client.waitProcess({ containerId: 'c1' }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    expect((await rejection(p)).code).toBe('Canceled');
  });
});

describe('AgentClient: errors', () => {
  it.each([
    [Code.NotFound, 'NotFound', 'container c1 not found'],
    [Code.AlreadyExists, 'AlreadyExists', 'container c1 already exists'],
    [Code.InvalidArgument, 'InvalidArgument', 'Invalid container id'],
    [Code.FailedPrecondition, 'FailedPrecondition', 'sandbox not created'],
    [Code.Aborted, 'FailedPrecondition', 'aborted'],
    [Code.OutOfRange, 'InvalidArgument', 'out of range'],
    [Code.PermissionDenied, 'PermissionDenied', 'denied by policy'],
    [Code.Unauthenticated, 'PermissionDenied', 'who are you'],
    [Code.ResourceExhausted, 'ResourceExhausted', 'no memory'],
    [Code.Unimplemented, 'Unimplemented', 'not supported'],
    [Code.Internal, 'Internal', 'rustjail: mount failed: ENOENT'],
    [Code.DataLoss, 'Internal', 'lost'],
    [Code.Unavailable, 'Unavailable', 'agent shutting down'],
    [Code.Unknown, 'Unknown', 'something odd'],
  ] as const)('agent status %i -> ShimError %s, the agent\'s message kept', async (grpc, shim, text) => {
    const agent = await fakeAgent();
    const client = await connect(agent);
    agent.impl.set('CreateContainer', () => {
      throw new TtrpcError(grpc, text);
    });
    const err = await rejection(client.createContainer({ containerId: 'c1' }));
    expect(err).toBeInstanceOf(ShimError);
    expect(err.code).toBe(shim);
    expect(err.grpcCode).toBe(grpc);
    expect(err.agentMessage).toBe(text);
    expect(err.method).toBe('CreateContainer');
    expect(err.message).toBe(`kata agent CreateContainer: ${text}`);
  });

  it('an RPC the agent does not serve is Unimplemented', async () => {
    const agent = await fakeAgent({ skip: ['GetOOMEvent'] });
    const client = await connect(agent);
    const err = await rejection(client.getOomEvent({}, { timeoutMs: 1000 }));
    expect(err.code).toBe('Unimplemented');
    expect(err.grpcCode).toBe(Code.Unimplemented);
  });

  it('a connection lost under a blocking call: Unavailable, and onClose fires (a VM that dies)', async () => {
    const agent = await fakeAgent();
    const client = await connect(agent);
    let waiting!: () => void;
    const entered = new Promise<void>((r) => (waiting = r));
    agent.impl.set('WaitProcess', () => {
      waiting();
      return new Promise(() => {});
    });
    const closed = new Promise<void>((resolve) => client.onClose(() => resolve()));
    const p = client.waitProcess({ containerId: 'c1', execId: 'c1' });
    await entered;
    await agent.server.close();
    const err = await rejection(p);
    expect(err.code).toBe('Unavailable');
    expect(err.message).toMatch(/^kata agent WaitProcess: connection to the agent lost/);
    await closed;
    expect(client.closed).toBe(true);
    expect((await rejection(client.check())).code).toBe('Unavailable');
  });

  it('a request value that does not fit its field is InvalidArgument before anything is sent', async () => {
    const agent = await fakeAgent();
    const client = await connect(agent);
    const err = await rejection(client.updateContainer({ containerId: 'c1', resources: { Memory: { Limit: 1n << 70n } } }));
    expect(err.code).toBe('InvalidArgument');
    expect(agent.seen).toEqual([]);
  });
});

describe('AgentClient.connectWhenReady: waiting for a booting VM\'s agent', () => {
  it('retries while the device socket is missing and while the guest port refuses, then answers', async () => {
    const agent = await fakeAgent();
    const devicePath = join(dir, 'late-vsock.sock');
    setTimeout(() => void fakeDeviceFor(agent, 1024, { path: devicePath, refuseFirst: 2 }), 150);
    const started = Date.now();
    const client = await AgentClient.connectWhenReady({ hybridVsock: devicePath, port: 1024 }, { timeoutMs: 5000, retryIntervalMs: 10 });
    cleanups.push(() => client.close());
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    // the refused attempts never reached the agent; the successful one checked health
    expect(agent.seen.map((s) => s.path)).toEqual(['/grpc.Health/Check']);
  });

  it('waits while the agent says NOT_SERVING', async () => {
    const agent = await fakeAgent();
    let calls = 0;
    agent.impl.set('Check', () => ({ status: ++calls < 3 ? HealthCheckResponse_ServingStatus.NOT_SERVING : HealthCheckResponse_ServingStatus.SERVING }));
    const client = await AgentClient.connectWhenReady({ unix: agent.socketPath }, { timeoutMs: 5000, retryIntervalMs: 5 });
    cleanups.push(() => client.close());
    expect(calls).toBe(3);
  });

  it('an agent that never comes: DeadlineExceeded after timeoutMs, naming the last failure', async () => {
    const started = Date.now();
    const err = await AgentClient.connectWhenReady({ hybridVsock: join(dir, 'never.sock'), port: 1024 }, { timeoutMs: 300, retryIntervalMs: 20 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(3000);
    expect((err as ShimError).code).toBe('DeadlineExceeded');
    expect((err as ShimError).message).toMatch(/no answer within 300 ms \(last: .*ENOENT/);
  });

  it('a hung agent (accepts, never answers Check) also ends at the deadline', async () => {
    const agent = await fakeAgent();
    agent.impl.set('Check', () => new Promise(() => {}));
    const err = await AgentClient.connectWhenReady({ unix: agent.socketPath }, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect((err as ShimError).code).toBe('DeadlineExceeded');
  });

  it('stops when its signal aborts (the VM exited)', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('qemu exited with status 1')), 50);
    const started = Date.now();
    const err = await AgentClient.connectWhenReady({ unix: join(dir, 'never.sock') }, { timeoutMs: 10_000, signal: ac.signal }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect((err as ShimError).code).toBe('Unavailable');
    expect(((err as ShimError).cause as Error).message).toBe('qemu exited with status 1');
  });
});
