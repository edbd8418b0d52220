/**
 * The guest agent where only cgroup2 is mounted, as in our VM guest (init mounts cgroup2 on
 * /sys/fs/cgroup). This host is hybrid, so the agent runs in a mount namespace of its own
 * where /sys/fs/cgroup is the cgroup2 hierarchy (the host's unified tree, with no
 * controllers enabled on it: limits cannot be checked here, the executor's v2 path can).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/backends/kata/agent-client.js';
import { buildAgent, connectToSpawnedAgent, stopAgent } from './kata-agent-connect.js';
import { isRoot, repoRoot } from './native-fixtures.js';
import { makeBundle, removeRootfsTemplate } from './oci-bundle.js';

const UNIFIED = '/sys/fs/cgroup/unified';
const hybridHost = fs.existsSync(path.join(UNIFIED, 'cgroup.procs'));
const hasUnshare = (() => {
  try {
    execFileSync('unshare', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!isRoot || !hybridHost || !hasUnshare)('kata guest agent: a cgroup2-only guest', () => {
  let work: string;
  let shared: string;
  let agent: ChildProcess;
  let agentExit: Promise<number | null>;
  let client: AgentClient;
  const cgroupParent = `/tsshim-kata-agent-v2-${process.pid}`;

  beforeAll(async () => {
    await buildAgent();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-kata-agent-v2-'));
    shared = path.join(work, 'shared');
    fs.mkdirSync(shared);
    const sock = path.join(work, 'agent.sock');
    agent = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"',
        'sh',
        process.execPath,
        path.join(repoRoot, 'dist/kata/guest-agent.mjs'),
        '--socket',
        sock,
        '--shared-root',
        shared,
        '--run-dir',
        path.join(work, 'run'),
        '--cgroup-parent',
        cgroupParent,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    agentExit = new Promise((resolve) => agent.once('exit', (code) => resolve(code)));
    client = await connectToSpawnedAgent(sock);
    await client.createSandbox({ sandboxId: 'v2sandbox', storages: [] });
  }, 60_000);

  afterAll(async () => {
    await stopAgent(client, agent, agentExit);
    const parent = path.join(UNIFIED, cgroupParent);
    if (fs.existsSync(parent)) {
      for (const c of fs.readdirSync(parent, { withFileTypes: true })) {
        if (!c.isDirectory()) continue;
        for (const pid of fs.readFileSync(path.join(parent, c.name, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      }
      await new Promise((r) => setTimeout(r, 200));
      for (const c of fs.readdirSync(parent, { withFileTypes: true })) if (c.isDirectory()) fs.rmdirSync(path.join(parent, c.name));
      fs.rmdirSync(parent);
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
    removeRootfsTemplate();
  });

  it('runs a container and an exec, answers stats, and leaves no cgroup', async () => {
    makeBundle(shared, 'v2c', { args: ['true'] });
    await client.createContainer({
      containerId: 'v2c',
      OCI: {
        Version: '1.1.0',
        Process: { Args: ['sh', '-c', 'cat /proc/self/cgroup; sleep 1000'], Env: ['PATH=/bin'], Cwd: '/', User: { UID: 0, GID: 0 } },
        Root: { Path: '/run/kata-containers/shared/containers/v2c/rootfs' },
        Mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
        Linux: { Namespaces: [{ Type: 'pid' }, { Type: 'mount' }] },
      },
    });
    await client.closeStdin({ containerId: 'v2c', execId: '' });
    await client.startContainer({ containerId: 'v2c' });
    const first = await client.readStdout({ containerId: 'v2c', execId: '', len: 4096 });
    // the container's cgroup, in the cgroup2 tree only
    expect(Buffer.from(first.data).toString()).toContain(`0::${cgroupParent}/v2c`);
    expect(fs.existsSync(path.join(UNIFIED, cgroupParent, 'v2c'))).toBe(true);
    await client.execProcess({ containerId: 'v2c', execId: 'e1', process: { Args: ['sh', '-c', 'exit 5'], Env: ['PATH=/bin'], Cwd: '/' } });
    expect((await client.waitProcess({ containerId: 'v2c', execId: 'e1' })).status).toBe(5);
    const stats = await client.statsContainer({ containerId: 'v2c' });
    expect(stats.cgroupStats).toBeDefined();
    await client.pauseContainer({ containerId: 'v2c' });
    expect(fs.readFileSync(path.join(UNIFIED, cgroupParent, 'v2c', 'cgroup.freeze'), 'utf8').trim()).toBe('1');
    await client.resumeContainer({ containerId: 'v2c' });
    await client.signalProcess({ containerId: 'v2c', execId: '', signal: 9 });
    expect((await client.waitProcess({ containerId: 'v2c', execId: '' })).status).toBe(137);
    await client.removeContainer({ containerId: 'v2c' });
    expect(fs.existsSync(path.join(UNIFIED, cgroupParent, 'v2c'))).toBe(false);
    await client.destroySandbox({});
    expect(await agentExit).toBe(0);
  }, 60_000);
});
