/**
 * The guest agent's network verbs (UpdateInterface, UpdateRoutes, AddARPNeighbors, List*),
 * as Kata's runtime calls them at pod start. The agent runs on the host in a network
 * namespace of its own (unshare --net, --net-ok, and a sysfs of that namespace), with a veth link standing in for the
 * VM's virtio-net device; what it configured is read back with `ip` in that namespace.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/backends/kata/agent-client.js';
import { buildAgent, connectToSpawnedAgent, stopAgent } from './kata-agent-connect.js';
import { IPFamily } from '../../src/proto/gen/kata/types.js';
import { isRoot, repoRoot } from './native-fixtures.js';

const hasTools = (() => {
  try {
    execFileSync('unshare', ['--version']);
    execFileSync('nsenter', ['--version']);
    execFileSync('ip', ['-V']);
    return true;
  } catch {
    return false;
  }
})();

const MAC = '02:42:ac:11:00:05';

describe.skipIf(!isRoot || !hasTools)('kata guest agent: guest network', () => {
  let work: string;
  let agent: ChildProcess;
  let agentExit: Promise<number | null>;
  let client: AgentClient;
  const inNs = (...args: string[]) => execFileSync('nsenter', ['-t', String(agent.pid), '-n', 'ip', ...args], { encoding: 'utf8' });

  beforeAll(async () => {
    await buildAgent();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-kata-agent-net-'));
    fs.mkdirSync(path.join(work, 'shared'));
    const sock = path.join(work, 'agent.sock');
    agent = spawn(
      'unshare',
      // its own /sys too: sysfs shows the links of the netns that mounted it
      ['--net', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t sysfs sysfs /sys && exec "$@"', 'sh', process.execPath, path.join(repoRoot, 'dist/kata/guest-agent.mjs'), '--socket', sock, '--shared-root', path.join(work, 'shared'), '--run-dir', path.join(work, 'run'), '--net-ok'],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    agentExit = new Promise((resolve) => agent.once('exit', (code) => resolve(code)));
    client = await connectToSpawnedAgent(sock);
    // the VM's NIC: the host named it by MAC, the guest kernel calls it something else
    // (a veth pair: this host's kernel has no dummy driver and cannot load modules)
    inNs('link', 'add', 'nic0', 'address', MAC, 'type', 'veth', 'peer', 'name', 'nic0peer');
    inNs('link', 'set', 'nic0peer', 'up');
  }, 60_000);

  afterAll(async () => {
    await stopAgent(client, agent, agentExit);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('configures the interface found by MAC: name, MTU, addresses, up', async () => {
    const r = await client.updateInterface({
      interface: {
        device: 'eth0',
        name: 'eth0',
        hwAddr: MAC,
        mtu: 1450n,
        IPAddresses: [
          { family: IPFamily.v4, address: '10.88.0.5', mask: '16' },
          { family: IPFamily.v6, address: 'fd00:88::5', mask: '64' },
        ],
      },
    });
    expect(r.name).toBe('eth0');
    const link = inNs('-o', 'addr', 'show', 'dev', 'eth0');
    expect(link).toContain('10.88.0.5/16');
    expect(link).toContain('fd00:88::5/64');
    const details = inNs('link', 'show', 'dev', 'eth0');
    expect(details).toContain('mtu 1450');
    expect(details).toContain(MAC);
    expect(details).toMatch(/[<,]UP[,>]/);
    const listed = await client.listInterfaces({});
    expect(listed.Interfaces.find((i) => i.name === 'eth0')?.hwAddr).toBe(MAC);
  });

  it('adds routes (link scope before gateways) and static ARP neighbours', async () => {
    await client.updateRoutes({
      routes: {
        Routes: [
          { dest: '', gateway: '10.88.0.1', device: 'eth0', family: IPFamily.v4 },
          { dest: '10.99.0.0/16', gateway: '', device: 'eth0', scope: 253, family: IPFamily.v4 },
        ],
      },
    });
    const routes = inNs('route', 'show');
    expect(routes).toMatch(/default via 10\.88\.0\.1 dev eth0/);
    expect(routes).toMatch(/10\.99\.0\.0\/16 dev eth0 .*scope link/);
    const listed = await client.listRoutes({});
    expect(listed.Routes.some((r) => r.gateway === '10.88.0.1' && r.device === 'eth0')).toBe(true);

    await client.addArpNeighbors({
      neighbors: { ARPNeighbors: [{ toIPAddress: { family: IPFamily.v4, address: '10.88.0.1', mask: '' }, device: 'eth0', lladdr: '02:42:ac:11:00:01', state: 0x80 }] },
    });
    expect(inNs('neigh', 'show', 'dev', 'eth0')).toMatch(/10\.88\.0\.1 lladdr 02:42:ac:11:00:01 PERMANENT/);
  });

  it('a link that is not there: NotFound; a bad route: the ip error, and the agent keeps serving', async () => {
    await expect(client.updateInterface({ interface: { hwAddr: '02:00:00:00:00:99', name: 'eth9' } })).rejects.toMatchObject({ code: 'NotFound' });
    await expect(client.updateRoutes({ routes: { Routes: [{ dest: '10.1.0.0/16', gateway: '192.0.2.1', device: 'eth0' }] } })).rejects.toThrow(/ip -?.*route replace/);
    expect((await client.check()).status).toBe(1);
  });
});
