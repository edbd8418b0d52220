/**
 * The Kata guest agent (dist/kata/guest-agent.mjs, the bundle the VM boots) run ON THE HOST
 * as a child process in host-test mode (--shared-root: the shared dir is a host dir), driven
 * through the host's AgentClient with Kata-shaped messages: the spec as Kata's runtime sends
 * it (guest rootfs path under /run/kata-containers/shared/containers/, the pod's network
 * namespace, ...). Containers are real: busybox rootfs, the native executor, cgroups.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/backends/kata/agent-client.js';
import { buildAgent, connectToSpawnedAgent, stopAgent } from './kata-agent-connect.js';
import { Code, TtrpcClient } from '../../src/ttrpc/index.js';
import { ociSpecToProto } from '../../src/backends/kata/oci-spec.js';
import { Spec } from '../../src/proto/gen/kata/oci.js';
import type { DeepPartial } from '../../src/proto/gen/kata/agent.js';
import { isRoot, cgroupDirsUnder, removeCgroupParent, repoRoot } from './native-fixtures.js';
import { makeBundle, removeRootfsTemplate } from './oci-bundle.js';

const GUEST_SHARED = '/run/kata-containers/shared/containers';
const SIGKILL = 9;
const SIGTERM = 15;

/** the spec Kata's runtime would send for a busybox container (oci.proto field names) */
function kataSpec(id: string, args: string[], o: { terminal?: boolean; memoryLimit?: number; cwd?: string } = {}): DeepPartial<Spec> {
  const caps = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_NET_BIND_SERVICE'];
  return {
    Version: '1.1.0',
    Process: {
      Terminal: !!o.terminal,
      User: { UID: 0, GID: 0 },
      Args: args,
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      Cwd: o.cwd ?? '/',
      Capabilities: { Bounding: caps, Effective: caps, Permitted: caps },
      NoNewPrivileges: true,
    },
    Root: { Path: `${GUEST_SHARED}/${id}/rootfs`, Readonly: false },
    Hostname: id,
    Mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    Linux: {
      // the host's cgroup path: the agent puts it below its own parent (--cgroup-parent)
      CgroupsPath: `/kubepods/besteffort/pod0/${id}`,
      Namespaces: [
        { Type: 'pid' },
        { Type: 'mount' },
        { Type: 'ipc' },
        { Type: 'uts' },
        // the host's pod netns: meaningless in the guest, the agent drops it
        { Type: 'network', Path: '/var/run/netns/cni-0000' },
      ],
      Resources: o.memoryLimit ? { Memory: { Limit: BigInt(o.memoryLimit), Swap: BigInt(o.memoryLimit) } } : undefined,
      MaskedPaths: ['/proc/kcore'],
      ReadonlyPaths: ['/proc/sys'],
    },
  };
}

async function readAll(client: AgentClient, which: 'stdout' | 'stderr', containerId: string, execId = ''): Promise<{ text: string; end: string }> {
  let text = '';
  for (;;) {
    try {
      const r = await (which === 'stdout' ? client.readStdout : client.readStderr)({ containerId, execId, len: 32 * 1024 }, { timeoutMs: 20_000 });
      text += Buffer.from(r.data).toString();
    } catch (err) {
      return { text, end: (err as Error).message };
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!isRoot)('kata guest agent on the host', () => {
  let work: string;
  let shared: string;
  let agent: ChildProcess;
  let agentExit: Promise<number | null>;
  let agentLog = '';
  let client: AgentClient;
  const cgroupParent = `/tsshim-kata-agent-${process.pid}`;
  const socket = () => path.join(work, 'agent.sock');

  /** a busybox rootfs where Kata's runtime puts it: <shared>/<id>/rootfs */
  const rootfs = (id: string) => {
    makeBundle(shared, id, { args: ['true'] });
    fs.rmSync(path.join(shared, id, 'config.json'));
  };
  const create = async (id: string, args: string[], o: Parameters<typeof kataSpec>[2] = {}) => {
    rootfs(id);
    await client.createContainer({ containerId: id, OCI: kataSpec(id, args, o) });
  };
  /** a container's cgroup files, in whichever hierarchy has them */
  const cgroupFile = (id: string, file: string): string | undefined =>
    cgroupDirsUnder(cgroupParent)
      .filter((d) => path.basename(d) === id)
      .map((d) => path.join(d, file))
      .find((f) => fs.existsSync(f));
  const containerPids = (id: string): number[] => {
    const f = cgroupFile(id, 'cgroup.procs');
    return f ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map(Number) : [];
  };

  beforeAll(async () => {
    await buildAgent();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-kata-agent-'));
    shared = path.join(work, 'shared');
    fs.mkdirSync(shared);
    // the agent runs from a copy of dist/kata alone: no node_modules next to it, as in the guest
    const agentDir = path.join(work, 'agent');
    fs.mkdirSync(agentDir);
    for (const f of fs.readFileSync(path.join(repoRoot, 'dist/kata/guest-files.txt'), 'utf8').split('\n').filter(Boolean)) {
      fs.copyFileSync(path.join(repoRoot, f), path.join(agentDir, path.basename(f)));
      fs.chmodSync(path.join(agentDir, path.basename(f)), 0o755);
    }
    agent = spawn(
      process.execPath,
      [path.join(agentDir, 'guest-agent.mjs'), '--socket', socket(), '--shared-root', shared, '--run-dir', path.join(work, 'run'), '--cgroup-parent', cgroupParent],
      { stdio: ['ignore', 'inherit', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    agent.stderr!.on('data', (c: Buffer) => (agentLog += c.toString()));
    agentExit = new Promise((resolve) => agent.once('exit', (code) => resolve(code)));
    client = await connectToSpawnedAgent(socket());
    expect((await client.check()).status).toBe(1); // SERVING
    await client.createSandbox({
      sandboxId: 'sandbox1',
      hostname: 'pod1',
      storages: [{ driver: 'virtio-fs', source: 'kataShared', fstype: 'virtiofs', options: ['nodev'], mountPoint: `${GUEST_SHARED}/` }],
    });
  }, 60_000);

  afterAll(async () => {
    await stopAgent(client, agent, agentExit);
    // after a failed test: what the agent left running must not outlive the test
    for (const d of cgroupDirsUnder(cgroupParent)) {
      const procs = path.join(d, 'cgroup.procs');
      if (fs.existsSync(procs)) for (const pid of fs.readFileSync(procs, 'utf8').split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    }
    // killed processes leave their cgroups a moment later
    for (let i = 0; ; i++) {
      try {
        removeCgroupParent(cgroupParent);
        break;
      } catch (err) {
        if (i >= 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
    removeRootfsTemplate();
  });

  it('runs a container: stdout and stderr apart, EOF as an error, exit code from WaitProcess', async () => {
    await create('out1', ['sh', '-c', 'echo to-stdout; echo to-stderr >&2; exit 3']);
    await client.closeStdin({ containerId: 'out1', execId: '' });
    await client.startContainer({ containerId: 'out1' });
    const [out, err, wait] = await Promise.all([readAll(client, 'stdout', 'out1'), readAll(client, 'stderr', 'out1'), client.waitProcess({ containerId: 'out1', execId: '' })]);
    expect(out.text).toBe('to-stdout\n');
    expect(err.text).toBe('to-stderr\n');
    expect(out.end).toMatch(/read meet eof/);
    expect(err.end).toMatch(/read meet eof/);
    expect(wait.status).toBe(3);
    // WaitProcess again: same answer (the host may ask twice)
    expect((await client.waitProcess({ containerId: 'out1', execId: 'out1' })).status).toBe(3);
    await client.removeContainer({ containerId: 'out1' });
  }, 60_000);

  it('exec: output and exit code; SignalProcess SIGKILL gives 137; SIGTERM to an init without a handler kills it', async () => {
    await create('run1', ['sleep', '1000']);
    await client.startContainer({ containerId: 'run1' });
    await client.execProcess({
      containerId: 'run1',
      execId: 'exec1',
      process: { Args: ['sh', '-c', 'echo exec-out; hostname; exit 7'], Env: ['PATH=/bin'], Cwd: '/', User: { UID: 0, GID: 0 } },
    });
    const [out, wait] = await Promise.all([readAll(client, 'stdout', 'run1', 'exec1'), client.waitProcess({ containerId: 'run1', execId: 'exec1' })]);
    expect(out.text).toBe('exec-out\nrun1\n');
    expect(wait.status).toBe(7);

    await client.execProcess({ containerId: 'run1', execId: 'exec2', process: { Args: ['sleep', '1000'], Env: ['PATH=/bin'], Cwd: '/' } });
    await client.signalProcess({ containerId: 'run1', execId: 'exec2', signal: SIGKILL });
    expect((await client.waitProcess({ containerId: 'run1', execId: 'exec2' })).status).toBe(137);

    // Kata's runtime signals the init with exec id = container id
    await client.signalProcess({ containerId: 'run1', execId: 'run1', signal: SIGTERM });
    expect((await client.waitProcess({ containerId: 'run1', execId: '' })).status).toBe(137);
    await client.removeContainer({ containerId: 'run1' });
  }, 60_000);

  it('stdin through WriteStdin and CloseStdin', async () => {
    await create('cat1', ['cat']);
    await client.startContainer({ containerId: 'cat1' });
    const reading = readAll(client, 'stdout', 'cat1');
    const w = await client.writeStdin({ containerId: 'cat1', execId: '', data: Buffer.from('hello through stdin\n') });
    expect(w.len).toBe(20);
    await client.closeStdin({ containerId: 'cat1', execId: '' });
    expect((await reading).text).toBe('hello through stdin\n');
    expect((await client.waitProcess({ containerId: 'cat1', execId: '' })).status).toBe(0);
    await client.removeContainer({ containerId: 'cat1' });
  }, 60_000);

  it('terminal: one stream through the pty, TtyWinResize seen by stty', async () => {
    await create('tty1', ['sh', '-c', 'read line; stty size; echo got-$line'], { terminal: true });
    await client.startContainer({ containerId: 'tty1' });
    await client.ttyWinResize({ containerId: 'tty1', execId: '', row: 41, column: 123 });
    const reading = readAll(client, 'stdout', 'tty1');
    await client.writeStdin({ containerId: 'tty1', execId: '', data: Buffer.from('abc\n') });
    const out = await reading;
    expect(out.text).toContain('41 123');
    expect(out.text).toContain('got-abc');
    expect(out.end).toMatch(/eof/);
    // a terminal has no separate stderr
    await expect(client.readStderr({ containerId: 'tty1', execId: '', len: 100 })).rejects.toThrow(/eof/);
    expect((await client.waitProcess({ containerId: 'tty1', execId: '' })).status).toBe(0);
    await client.removeContainer({ containerId: 'tty1' });

    // exec with a terminal
    await create('tty2', ['sleep', '1000']);
    await client.startContainer({ containerId: 'tty2' });
    await client.execProcess({
      containerId: 'tty2',
      execId: 'texec',
      process: { Terminal: true, ConsoleSize: { Height: 30, Width: 90 }, Args: ['sh', '-c', 'stty size; tty'], Env: ['PATH=/bin'], Cwd: '/' },
    });
    const execOut = await readAll(client, 'stdout', 'tty2', 'texec');
    expect(execOut.text).toMatch(/30 90\r?\n\/dev\/pts\/\d+/);
    expect((await client.waitProcess({ containerId: 'tty2', execId: 'texec' })).status).toBe(0);
    await client.removeContainer({ containerId: 'tty2' });
  }, 60_000);

  it('StatsContainer: the container cgroup numbers', async () => {
    await create('stat1', ['sh', '-c', 'sleep 1000 & sleep 1000 & wait']);
    await client.startContainer({ containerId: 'stat1' });
    for (let i = 0; i < 100 && containerPids('stat1').length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    const s = await client.statsContainer({ containerId: 'stat1' });
    const cg = s.cgroupStats!;
    expect(cg.pidsStats!.current).toBe(3n);
    expect(cg.memoryStats!.usage!.usage).toBeGreaterThan(0n);
    expect(cg.cpuStats!.cpuUsage!.totalUsage).toBeGreaterThan(0n);
    // no network stats from a host (they would be the host's interfaces)
    expect(s.networkStats).toEqual([]);
    // kill with exec id "": every process of the container
    const pids = containerPids('stat1');
    expect(pids.length).toBe(3);
    await client.signalProcess({ containerId: 'stat1', execId: '', signal: SIGKILL });
    expect((await client.waitProcess({ containerId: 'stat1', execId: '' })).status).toBe(137);
    for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
    expect(pids.filter(alive)).toEqual([]);
    await client.removeContainer({ containerId: 'stat1' });
  }, 60_000);

  it('pause, resume and update', async () => {
    await create('pause1', ['sleep', '1000']);
    await client.startContainer({ containerId: 'pause1' });
    await client.pauseContainer({ containerId: 'pause1' });
    const freezer = cgroupFile('pause1', 'freezer.state');
    if (freezer) expect(fs.readFileSync(freezer, 'utf8').trim()).toBe('FROZEN');
    await client.resumeContainer({ containerId: 'pause1' });
    if (freezer) expect(fs.readFileSync(freezer, 'utf8').trim()).toBe('THAWED');
    await client.updateContainer({ containerId: 'pause1', resources: { Pids: { Limit: 42n } } });
    const pidsMax = cgroupFile('pause1', 'pids.max');
    expect(pidsMax && fs.readFileSync(pidsMax, 'utf8').trim()).toBe('42');
    await client.removeContainer({ containerId: 'pause1' });
  }, 60_000);

  it('a runc spec as containerd makes it, converted by the host side (ociSpecToProto), runs', async () => {
    rootfs('runc1');
    const dir = path.join(work, 'runc-spec');
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('runc', ['spec'], { cwd: dir });
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    json.process.terminal = false;
    json.process.args = ['sh', '-c', 'cat /proc/self/cgroup >/dev/null; echo runc-spec-ok'];
    json.root.path = `${GUEST_SHARED}/runc1/rootfs`;
    await client.createContainer({ containerId: 'runc1', OCI: ociSpecToProto(json) });
    await client.startContainer({ containerId: 'runc1' });
    const [out, wait] = await Promise.all([readAll(client, 'stdout', 'runc1'), client.waitProcess({ containerId: 'runc1', execId: '' })]);
    expect(out.text).toBe('runc-spec-ok\n');
    expect(wait.status).toBe(0);
    await client.removeContainer({ containerId: 'runc1' });
  }, 60_000);

  it('large output arrives whole, in pieces of at most len bytes; unread output blocks the writer, not the agent memory', async () => {
    const size = 3 * 1024 * 1024;
    await create('big1', ['sh', '-c', `head -c ${size} /dev/zero | tr '\\0' a`]);
    await client.closeStdin({ containerId: 'big1', execId: '' });
    await client.startContainer({ containerId: 'big1' });
    // the host does not read for a while: the writer must block, not the agent's memory grow
    await new Promise((r) => setTimeout(r, 500));
    // 3 MiB cannot fit in the pipe plus the agent's 1 MiB queue: the writer is still there
    expect(containerPids('big1').length).toBeGreaterThan(0);
    let total = 0;
    let biggest = 0;
    let onlyA = true;
    for (;;) {
      try {
        const r = await client.readStdout({ containerId: 'big1', execId: '', len: 100_000 }, { timeoutMs: 20_000 });
        total += r.data.length;
        biggest = Math.max(biggest, r.data.length);
        if (onlyA && !Buffer.from(r.data).every((b) => b === 0x61)) onlyA = false;
      } catch (err) {
        expect((err as Error).message).toMatch(/read meet eof/);
        break;
      }
    }
    expect(total).toBe(size);
    expect(biggest).toBeLessThanOrEqual(100_000);
    expect(onlyA).toBe(true);
    expect((await client.waitProcess({ containerId: 'big1', execId: '' })).status).toBe(0);
    await client.removeContainer({ containerId: 'big1' });
  }, 60_000);

  it('GetOOMEvent names a container whose process the kernel OOM-killed', async () => {
    await create('oom1', ['tail', '/dev/zero'], { memoryLimit: 16 * 1024 * 1024 });
    await client.closeStdin({ containerId: 'oom1', execId: '' });
    const oom = client.getOomEvent({});
    await client.startContainer({ containerId: 'oom1' });
    expect((await client.waitProcess({ containerId: 'oom1', execId: '' })).status).toBe(137);
    expect((await oom).containerId).toBe('oom1');
    await client.removeContainer({ containerId: 'oom1' });
  }, 60_000);

  it("a pod: app containers join the sandbox container's IPC, UTS and PID namespaces the host names", async () => {
    await create('sandbox1', ['sleep', '1001']);
    await client.startContainer({ containerId: 'sandbox1' });
    rootfs('app1');
    const spec = kataSpec('app1', ['sh', '-c', 'hostname; cat /proc/1/cmdline; echo']);
    spec.Hostname = '';
    // as containerd writes them for a pod with shareProcessNamespace: the pause container's (host) paths
    spec.Linux!.Namespaces = ['pid', 'ipc', 'uts', 'mount'].map((t) => ({ Type: t, Path: t === 'mount' ? '' : `/proc/4242/ns/${t}` }));
    await client.createContainer({ containerId: 'app1', OCI: spec });
    await client.closeStdin({ containerId: 'app1', execId: '' });
    await client.startContainer({ containerId: 'app1' });
    const [out, wait] = await Promise.all([readAll(client, 'stdout', 'app1'), client.waitProcess({ containerId: 'app1', execId: '' })]);
    expect(wait.status).toBe(0);
    expect(out.text.split('\n')[0]).toBe('sandbox1');
    expect(out.text).toContain('sleep\u00001001');
    await client.removeContainer({ containerId: 'app1' });
    await client.removeContainer({ containerId: 'sandbox1' });
  }, 60_000);

  it('storages: a local volume made for the container, bind-mounted by the spec, gone with the container', async () => {
    rootfs('vol1');
    const spec = kataSpec('vol1', ['sh', '-c', 'echo written > /data/file']);
    const volume = '/run/kata-containers/sandbox/local/vol1-data';
    spec.Mounts!.push({ destination: '/data', type: 'bind', source: volume, options: ['rbind', 'rw'] });
    await client.createContainer({ containerId: 'vol1', OCI: spec, storages: [{ driver: 'local', source: 'local', fstype: 'local', mountPoint: volume, options: ['mode=0777'] }] });
    await client.closeStdin({ containerId: 'vol1', execId: '' });
    await client.startContainer({ containerId: 'vol1' });
    expect((await client.waitProcess({ containerId: 'vol1', execId: '' })).status).toBe(0);
    // host-test mode: /run/kata-containers/... lives under the agent's run dir
    const onHost = path.join(work, 'run', 'sandbox/local/vol1-data');
    expect(fs.readFileSync(path.join(onHost, 'file'), 'utf8')).toBe('written\n');
    await client.removeContainer({ containerId: 'vol1' });
    expect(fs.existsSync(onHost)).toBe(false);
    rootfs('vol2');
    await expect(
      client.createContainer({ containerId: 'vol2', OCI: kataSpec('vol2', ['true']), storages: [{ driver: 'blk', source: '/dev/vdb', fstype: 'ext4', mountPoint: '/run/kata-containers/sandbox/x' }] }),
    ).rejects.toMatchObject({ code: 'Unimplemented' });
  }, 60_000);

  it('bad input answers with a code and the agent keeps serving', async () => {
    await expect(client.startContainer({ containerId: 'nope' })).rejects.toMatchObject({ code: 'NotFound' });
    await expect(client.waitProcess({ containerId: 'nope', execId: '' })).rejects.toMatchObject({ code: 'NotFound' });
    await expect(client.readStdout({ containerId: 'nope', execId: '', len: 10 })).rejects.toMatchObject({ code: 'NotFound' });
    await expect(client.signalProcess({ containerId: 'nope', execId: '', signal: 9 })).rejects.toMatchObject({ code: 'NotFound' });
    await expect(client.createContainer({ containerId: 'nospec' })).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(client.createContainer({ containerId: '../escape', OCI: kataSpec('x', ['true']) })).rejects.toMatchObject({ code: 'InvalidArgument' });
    rootfs('bad1');
    const noArgs = kataSpec('bad1', []);
    await expect(client.createContainer({ containerId: 'bad1', OCI: noArgs })).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(client.createContainer({ containerId: 'norootfs', OCI: kataSpec('norootfs', ['true']) })).rejects.toMatchObject({ code: 'InvalidArgument' });
    const badNs = kataSpec('bad1', ['true']);
    badNs.Linux!.Namespaces = [{ Type: 'bogus' }];
    await expect(client.createContainer({ containerId: 'bad1', OCI: badNs })).rejects.toMatchObject({ code: 'InvalidArgument' });
    await create('dup1', ['true']);
    await expect(client.createContainer({ containerId: 'dup1', OCI: kataSpec('dup1', ['true']) })).rejects.toMatchObject({ code: 'AlreadyExists' });
    await expect(client.execProcess({ containerId: 'dup1', execId: 'e1', process: { Args: ['true'] } })).rejects.toMatchObject({ code: 'FailedPrecondition' });
    await client.removeContainer({ containerId: 'dup1' });
    await expect(client.getMetrics({})).rejects.toMatchObject({ code: 'Unimplemented' });
    await expect(client.onlineCpuMem({})).rejects.toThrow(/hotplug/);
    await expect(client.setGuestDateTime({})).rejects.toMatchObject({ code: 'Unimplemented' });
    await expect(client.copyFile({ path: '/etc/x' })).rejects.toMatchObject({ code: 'InvalidArgument' });
    // devices and kernel modules are named in the refusal
    rootfs('dev1');
    await expect(client.createContainer({ containerId: 'dev1', OCI: kataSpec('dev1', ['true']), devices: [{ id: 'vda', type: 'blk' }] })).rejects.toThrow(/devices \(blk\)/);
    // undecodable payloads and unknown methods, straight over ttrpc
    const raw = await TtrpcClient.connect(socket());
    try {
      await expect(raw.call('grpc.AgentService', 'CreateContainer', Buffer.from([0x0a, 0xff, 0xff]))).rejects.toMatchObject({ code: Code.Internal });
      await expect(raw.call('grpc.AgentService', 'ReseedRandomDev', new Uint8Array(0))).rejects.toMatchObject({ code: Code.Unimplemented });
    } finally {
      await raw.close();
    }
    expect((await client.check()).status).toBe(1);
    // a failed create leaves no bundle and no cgroup behind
    expect(fs.readdirSync(path.join(work, 'run')).filter((f) => !f.startsWith('.'))).toEqual([]);
  }, 60_000);

  it('CopyFile writes a file in pieces below /run/kata-containers, then a symlink', async () => {
    const file = '/run/kata-containers/shared/containers/copied/etc/hosts';
    const content = Buffer.from('127.0.0.1 localhost\n::1 localhost\n');
    await client.copyFile({ path: file, fileSize: BigInt(content.length), fileMode: 0o100644, dirMode: 0o750, uid: 0, gid: 0, offset: 0n, data: content.subarray(0, 10) });
    const onHost = path.join(shared, 'copied/etc/hosts');
    expect(fs.existsSync(onHost)).toBe(false); // not complete yet
    await client.copyFile({ path: file, fileSize: BigInt(content.length), fileMode: 0o100644, dirMode: 0o750, uid: 0, gid: 0, offset: 10n, data: content.subarray(10) });
    expect(fs.readFileSync(onHost)).toEqual(content);
    expect(fs.statSync(onHost).mode & 0o7777).toBe(0o644);
    expect(fs.statSync(path.dirname(onHost)).mode & 0o7777).toBe(0o750);
    await client.copyFile({ path: '/run/kata-containers/shared/containers/copied/link', fileMode: 0o120777, data: Buffer.from('etc/hosts') });
    expect(fs.readlinkSync(path.join(shared, 'copied/link'))).toBe('etc/hosts');
    await expect(client.copyFile({ path: '/run/kata-containers/../../etc/passwd', data: Buffer.from('x') })).rejects.toMatchObject({ code: 'InvalidArgument' });
    fs.rmSync(path.join(shared, 'copied'), { recursive: true });
  });

  it('GetGuestDetails answers', async () => {
    const d = await client.getGuestDetails({ memBlockSize: true, memHotplugProbe: true });
    expect(d.agentDetails?.storageHandlers).toContain('virtio-fs');
    expect(d.agentDetails?.initDaemon).toBe(false);
  });

  it('RemoveContainer and DestroySandbox leave no process, cgroup or bundle, and the agent exits', async () => {
    await create('last1', ['sleep', '1000']);
    await client.startContainer({ containerId: 'last1' });
    await create('last2', ['sh', '-c', 'sleep 1000 & exec sleep 1000']);
    await client.startContainer({ containerId: 'last2' });
    let pids: number[] = [];
    for (let i = 0; i < 100 && pids.length < 3; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 20));
      pids = [...containerPids('last1'), ...containerPids('last2')];
    }
    expect(pids.length).toBe(3);
    // waits in flight end with the exit of the killed init
    const waits = [client.waitProcess({ containerId: 'last1', execId: '' }), client.waitProcess({ containerId: 'last2', execId: '' })];
    await client.removeContainer({ containerId: 'last1' });
    expect((await waits[0]!).status).toBe(137);
    expect(cgroupFile('last1', 'cgroup.procs')).toBeUndefined();
    await expect(client.waitProcess({ containerId: 'last1', execId: '' })).rejects.toMatchObject({ code: 'NotFound' });
    await client.destroySandbox({});
    expect((await waits[1]!).status).toBe(137);
    expect(await agentExit).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(cgroupDirsUnder(cgroupParent)).toEqual([]);
    expect(fs.readdirSync(path.join(work, 'run')).filter((f) => !f.startsWith('.'))).toEqual([]);
    expect(fs.existsSync(socket())).toBe(false);
    expect(agentLog).not.toMatch(/agent failed|reaper/);
  }, 60_000);
});
