/**
 * Spare daemons (src/shim/spare.ts, the launcher's adopt_spare/spawn_spare): a `start`
 * that finds a booted spare hands it the group, and the result must be indistinguishable
 * from a daemon the launcher spawned; every way a spare can be missing or broken must
 * cost a cold start, never a failed `start`; and no spare outlives its containerd.
 *
 * containerd is faked by a unix socket listening at its address (all a spare looks at).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { groupKey, socketPath, unixAddress, DEFAULT_SOCKET_DIR } from '../../src/shim/address.js';
import { readAnnotations } from '../../src/shim/start.js';
import { DEFAULT_CONFIG_PATH } from '../../src/shim/config.js';
import { configCachePath } from '../../src/shim/config-cache.js';
import { ConnectRequest, ConnectResponse, ShutdownRequest } from '../../src/proto/gen/containerd/task/v2/shim.js';
import { TASK_SERVICE_V2 } from '../../src/proto/typeurls.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { Any } from '../../src/proto/gen/google/protobuf/any.js';
import { Options as RuncOptions } from '../../src/proto/gen/containerd/runc/v1/options.js';
import { TypeUrl } from '../../src/proto/typeurls.js';
import { cgroupLayout, readProcessCgroups } from '../../src/sys/cgroups.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LAUNCHER = path.join(ROOT, 'bin/containerd-shim-tsshim-v2');
const NS = `tsshim-spare-${process.pid}`;
// the launcher's fast start (and so spares) needs the default config, i.e. no config file
const fastPathPossible = !fs.existsSync(DEFAULT_CONFIG_PATH);

let dir: string;
const servers: net.Server[] = [];
const sockets = new Set<string>();
const caches = new Set<string>();

async function fakeContainerd(name: string): Promise<{ address: string; close: () => Promise<void> }> {
  const address = path.join(dir, name);
  const server = net.createServer((c) => c.destroy());
  await new Promise<void>((resolve) => server.listen(address, resolve));
  servers.push(server);
  return { address, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TTRPC_ADDRESS: path.join(dir, 'none.ttrpc'), ...extra };
}

function start(id: string, bundle: string, address: string, env: Record<string, string> = {}, input?: Uint8Array) {
  const r = spawnSync(LAUNCHER, ['-namespace', NS, '-address', address, '-publish-binary', '/bin/false', '-id', id, 'start'], {
    cwd: bundle,
    env: baseEnv(env),
    input: input ? Buffer.from(input) : Buffer.alloc(0),
    timeout: 20_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function makeBundle(name: string): string {
  const b = path.join(dir, name);
  fs.mkdirSync(path.join(b, 'rootfs'), { recursive: true });
  return b;
}

function expectedSock(bundle: string, id: string, address: string, socketDir = DEFAULT_SOCKET_DIR): string {
  const sock = socketPath(socketDir, address, NS, groupKey(readAnnotations(bundle), id, 'pod'));
  sockets.add(sock);
  return sock;
}

function cmdline(pid: number): string[] {
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    while (args.length > 0 && args[args.length - 1] === '') args.pop();
    return args;
  } catch {
    return [];
  }
}

/** non-empty entries of /proc/<pid>/environ */
function environ(pid: number): string[] {
  return fs
    .readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .filter((e) => e !== '');
}

function procStat(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  const state = procStat(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(25)) if (cond()) return true;
  return cond();
}

/** live spares waiting for containerd at `address` (named so by spare.ts once booted) */
function sparesOf(address: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const argv = cmdline(Number(e));
    if (argv[0] === 'tsshim-spare' && argv[2] === address && alive(Number(e))) out.push(Number(e));
  }
  return out;
}

/** a spare of `address` still booting or booted (its argv Node's until it names itself) */
function bootingSpare(address: string): number | undefined {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .find((pid) => {
      const argv = cmdline(pid);
      return (argv.includes('-spare') || argv[0] === 'tsshim-spare') && argv.includes(address) && alive(pid);
    });
}

/** the one booted spare of `address` (after a start spawned it) */
async function bootedSpare(address: string): Promise<number> {
  expect(await waitFor(() => sparesOf(address).length === 1, 20_000)).toBe(true);
  return sparesOf(address)[0]!;
}

/** pids holding a socket that listens at sock */
function daemonPids(sock: string): number[] {
  const inodes = new Set<string>();
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[7] === sock && f[3] === '00010000') inodes.add(f[6]!);
  }
  const out: number[] = [];
  if (inodes.size === 0) return out;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${e}/fd`);
    } catch {
      continue;
    }
    const holds = fds.some((fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${e}/fd/${fd}`));
        return m !== null && inodes.has(m[1]!);
      } catch {
        return false;
      }
    });
    if (holds && alive(Number(e))) out.push(Number(e));
  }
  return out;
}

/** Connect answers with the daemon's pid; Shutdown ends it */
async function connectAndShutdown(sock: string, id: string): Promise<number> {
  const client = await TtrpcClient.connect(sock, { timeoutMs: 10_000 });
  try {
    const conn = ConnectResponse.decode(
      await client.call(TASK_SERVICE_V2, 'Connect', ConnectRequest.encode(ConnectRequest.fromPartial({ id })).finish(), { timeoutMs: 10_000 }),
    );
    await client.call(TASK_SERVICE_V2, 'Shutdown', ShutdownRequest.encode(ShutdownRequest.fromPartial({ id })).finish(), { timeoutMs: 10_000 });
    return conn.shimPid;
  } finally {
    client.close();
  }
}

function kill(pid: number, sig: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

beforeAll(() => {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-spare-'));
});

afterAll(async () => {
  for (const s of sockets) {
    for (const pid of daemonPids(s)) kill(pid);
    fs.rmSync(s, { force: true });
  }
  for (const s of servers) await new Promise((r) => s.close(r));
  // a spare exits within a second of its containerd's socket going away
  if (dir) expect(await waitFor(() => fs.readdirSync('/proc').every((e) => !cmdline(Number(e)).includes(dir) || !/^\d+$/.test(e)), 5000)).toBe(true);
  for (const c of caches) fs.rmSync(c, { force: true });
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!fastPathPossible)('spare daemons', () => {
  it('an adopted spare is the daemon a spawn would have made: environment, cwd, cgroup, session, stdio, name; it serves and shuts down', async () => {
    const cd = await fakeContainerd('a.sock');
    const env = { NAMESPACE: 'first-namespace', GRPC_ADDRESS: cd.address, SOME_SETTING: 'x y' };
    const b1 = makeBundle('adopt1');
    const b2 = makeBundle('adopt2');
    const sock1 = expectedSock(b1, 'a1', cd.address);
    const sock2 = expectedSock(b2, 'a2', cd.address);

    // no spare yet: a spawned daemon, and a spare boots for the next start
    const first = start('a1', b1, cd.address, env);
    const firstReturned = Date.now();
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(first.stdout).toBe(unixAddress(sock1));
    const spawned = daemonPids(sock1);
    expect(spawned).toHaveLength(1);
    // it boots only on idle CPU time at first (policy, field 41 of stat: 5 = SCHED_IDLE),
    // every thread; seen in time only when this process got the CPU soon enough to look
    const statOf = (pid: number, index: number) => fs.readdirSync(`/proc/${pid}/task`).map((t) => Number(procStat(Number(t))?.[index]));
    const niceOf = (pid: number) => statOf(pid, 16);
    const policyOf = (pid: number) => statOf(pid, 38);
    const autogroupNice = (pid: number) => (fs.existsSync(`/proc/${pid}/autogroup`) ? fs.readFileSync(`/proc/${pid}/autogroup`, 'utf8').split(' nice ')[1]?.trim() : 'none');
    let booting: number | undefined;
    await waitFor(() => (booting = bootingSpare(cd.address)) !== undefined, 5000);
    if (booting !== undefined && Date.now() - firstReturned < 150) {
      expect(new Set(policyOf(booting))).toEqual(new Set([5]));
      if (fs.existsSync(`/proc/${booting}/autogroup`)) expect(autogroupNice(booting)).toBe('19');
    }
    const spare = await bootedSpare(cd.address);
    expect(spare).not.toBe(spawned[0]);
    // a spare is idle where it cannot hold anything: /, /dev/null stdio, its own session
    expect(fs.readlinkSync(`/proc/${spare}/cwd`)).toBe('/');
    for (const fd of [0, 1, 2]) expect(fs.readlinkSync(`/proc/${spare}/fd/${fd}`)).toBe('/dev/null');
    // … and a daemon's priority once the start that booted it is well past (the launcher's
    // delayed boost), so that a node without idle CPU still gets it booted
    expect(await waitFor(() => policyOf(spare).every((p) => p === 0), 3000)).toBe(true);
    expect(new Set(niceOf(spare))).toEqual(new Set(niceOf(spawned[0]!)));
    if (fs.existsSync(`/proc/${spare}/autogroup`)) expect(autogroupNice(spare)).toBe(autogroupNice(spawned[0]!));

    const t0 = Date.now();
    // containerd sets NAMESPACE per namespace: the only variable a spare's key ignores
    const second = start('a2', b2, cd.address, { ...env, NAMESPACE: NS });
    const took = Date.now() - t0;
    expect(second.stderr).toBe('');
    expect(second.status).toBe(0);
    expect(second.stdout).toBe(unixAddress(sock2));
    expect(fs.readFileSync(path.join(b2, 'address'), 'utf8')).toBe(unixAddress(sock2));
    // the spare took the group
    expect(daemonPids(sock2)).toEqual([spare]);
    expect(took).toBeLessThan(2000);

    const adopted = spare;
    const cold = spawned[0]!;
    // the environment of its own start (not the spare's), exactly as a spawned daemon's
    const strip = (e: string[], key: string) => e.filter((x) => !x.startsWith('TSSHIM_GROUP=') && !x.startsWith('NAMESPACE=')).concat(`GROUP:${key}`);
    expect(environ(adopted)).toContain(`NAMESPACE=${NS}`);
    expect(environ(adopted)).toContain('TSSHIM_GROUP=a2');
    expect(environ(adopted).some((e) => e.startsWith('TSSHIM_SPARE_PAD='))).toBe(false);
    expect(strip(environ(adopted), 'x').sort()).toEqual(strip(environ(cold), 'x').sort());
    // cwd: the bundle; cgroup: ours (the launcher's caller's); session; stdio; name
    expect(fs.readlinkSync(`/proc/${adopted}/cwd`)).toBe(b2);
    expect(fs.readFileSync(`/proc/${adopted}/cgroup`, 'utf8')).toBe(fs.readFileSync(`/proc/${cold}/cgroup`, 'utf8'));
    expect(fs.readFileSync(`/proc/${adopted}/oom_score_adj`, 'utf8')).toBe(fs.readFileSync(`/proc/${cold}/oom_score_adj`, 'utf8'));
    expect(Number(procStat(adopted)?.[3])).toBe(adopted);
    expect(new Set(niceOf(adopted))).toEqual(new Set(niceOf(cold)));
    expect(new Set(policyOf(adopted))).toEqual(new Set(policyOf(cold)));
    expect(new Set(policyOf(cold))).toEqual(new Set([0]));
    expect(autogroupNice(adopted)).toBe(autogroupNice(cold));
    for (const fd of [0, 1, 2]) expect(fs.readlinkSync(`/proc/${adopted}/fd/${fd}`)).toBe('/dev/null');
    expect(await waitFor(() => cmdline(adopted)[0] === LAUNCHER)).toBe(true);
    expect(cmdline(adopted)).toEqual([LAUNCHER, '-namespace', NS, '-id', 'a2', '-address', cd.address]);
    expect(fs.readFileSync(`/proc/${adopted}/comm`, 'utf8')).toBe(fs.readFileSync(`/proc/${cold}/comm`, 'utf8'));
    // the spare's control socket is not among its fds any more: only the group's listener
    const sockFds = fs.readdirSync(`/proc/${adopted}/fd`).filter((fd) => /^socket:/.test(fs.readlinkSync(`/proc/${adopted}/fd/${fd}`)));
    expect(sockFds.length).toBeGreaterThanOrEqual(1);

    // a new spare waits for the next start
    expect(await waitFor(() => sparesOf(cd.address).length === 1 && sparesOf(cd.address)[0] !== adopted, 20_000)).toBe(true);

    expect(await connectAndShutdown(sock2, 'a2')).toBe(adopted);
    expect(await connectAndShutdown(sock1, 'a1')).toBe(cold);
    expect(await waitFor(() => !alive(adopted) && !alive(cold))).toBe(true);
    expect(fs.existsSync(sock2)).toBe(false);

    // containerd goes away: so does its spare, within a second or two
    const last = sparesOf(cd.address);
    await cd.close();
    expect(await waitFor(() => last.every((p) => !alive(p)), 5000)).toBe(true);
  });

  it('ShimCgroup of runc options: the adopted spare is moved there, in every hierarchy, as a spawned daemon is', async () => {
    const layout = cgroupLayout();
    const hierarchies = [...layout.v1.map((m) => m.mountPoint), ...(layout.unified ? [layout.unified.mountPoint] : [])];
    const cgroup = `/tsshim-spare-${process.pid}`;
    for (const h of hierarchies) {
      fs.mkdirSync(path.join(h, cgroup), { recursive: true });
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (fs.existsSync(path.join(h, cgroup, f))) fs.writeFileSync(path.join(h, cgroup, f), fs.readFileSync(path.join(h, f)));
      }
    }
    const options = Any.encode(
      Any.fromPartial({ typeUrl: TypeUrl.RuncOptions, value: Buffer.from(RuncOptions.encode(RuncOptions.fromPartial({ shimCgroup: cgroup })).finish()) }),
    ).finish();
    const cd = await fakeContainerd('g.sock');
    try {
      const b0 = makeBundle('g0');
      const sock0 = expectedSock(b0, 'g0', cd.address);
      expect(start('g0', b0, cd.address, {}, options).status).toBe(0);
      const spare = await bootedSpare(cd.address);
      // the spare waits where its launcher was (containerd's cgroup), not in the shim cgroup
      expect(fs.readFileSync(`/proc/${spare}/cgroup`, 'utf8')).toBe(fs.readFileSync('/proc/self/cgroup', 'utf8'));
      const b1 = makeBundle('g1');
      const sock1 = expectedSock(b1, 'g1', cd.address);
      const r = start('g1', b1, cd.address, {}, options);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(daemonPids(sock1)).toEqual([spare]);
      const cg = readProcessCgroups(spare);
      for (const m of layout.v1) for (const c of m.controllers) expect(cg.v1[c], c).toBe(cgroup);
      if (layout.unified) expect(cg.unified).toBe(cgroup);
      expect(fs.readFileSync(`/proc/${spare}/cgroup`, 'utf8')).toBe(fs.readFileSync(`/proc/${daemonPids(sock0)[0]}/cgroup`, 'utf8'));
      await connectAndShutdown(sock1, 'g1');
      await connectAndShutdown(sock0, 'g0');
    } finally {
      await cd.close();
      await waitFor(() => sparesOf(cd.address).length === 0, 5000);
      for (const h of hierarchies) {
        for (let i = 0; i < 100; i++) {
          try {
            fs.rmdirSync(path.join(h, cgroup));
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
            await sleep(50);
          }
        }
      }
    }
  });

  it('a killed spare, a stopped (hung) spare and a spare of another containerd each cost a cold start, not a failed one', async () => {
    const a = await fakeContainerd('k.sock');
    const other = await fakeContainerd('other.sock');
    // the control socket of a spare that died without removing it (as one killed does)
    const dead = path.join(DEFAULT_SOCKET_DIR, `spare-dead${process.pid}`);
    // (a socket file whose socket is gone: any file no socket is bound to stands for one)
    fs.writeFileSync(dead, '');
    const b0 = makeBundle('k0');
    start('k0', b0, a.address);
    expectedSock(b0, 'k0', a.address);
    // a start that boots a spare sweeps dead ones' sockets
    expect(fs.existsSync(dead)).toBe(false);

    // killed
    const killed = await bootedSpare(a.address);
    kill(killed);
    expect(await waitFor(() => !alive(killed))).toBe(true);
    const b1 = makeBundle('k1');
    const sock1 = expectedSock(b1, 'k1', a.address);
    const r1 = start('k1', b1, a.address);
    expect(r1.stderr).toBe('');
    expect(r1.status).toBe(0);
    expect(r1.stdout).toBe(unixAddress(sock1));
    const d1 = daemonPids(sock1);
    expect(d1).toHaveLength(1);
    expect(d1[0]).not.toBe(killed);
    expect(await connectAndShutdown(sock1, 'k1')).toBe(d1[0]);

    // hung: it never answers; the start gives up on it after a short wait
    const hung = await bootedSpare(a.address);
    kill(hung, 'SIGSTOP');
    const b2 = makeBundle('k2');
    const sock2 = expectedSock(b2, 'k2', a.address);
    const t0 = Date.now();
    const r2 = start('k2', b2, a.address);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r2.status).toBe(0);
    expect(r2.stdout).toBe(unixAddress(sock2));
    const d2 = daemonPids(sock2);
    expect(d2).toHaveLength(1);
    expect(d2[0]).not.toBe(hung);
    kill(hung, 'SIGCONT');
    // woken, it finds its launcher gone and exits without serving anything
    expect(await waitFor(() => !alive(hung), 5000)).toBe(true);
    expect(await connectAndShutdown(sock2, 'k2')).toBe(d2[0]);

    // the hung spare still held its control socket, so that start booted no new one: the next does
    const b2b = makeBundle('k2b');
    const sock2b = expectedSock(b2b, 'k2b', a.address);
    expect(start('k2b', b2b, a.address).status).toBe(0);
    await connectAndShutdown(sock2b, 'k2b');

    // another containerd's spare is never used
    const spareOfA = await bootedSpare(a.address);
    const b3 = makeBundle('k3');
    const sock3 = expectedSock(b3, 'k3', other.address);
    const r3 = start('k3', b3, other.address);
    expect(r3.status).toBe(0);
    expect(r3.stdout).toBe(unixAddress(sock3));
    const d3 = daemonPids(sock3);
    expect(d3).toHaveLength(1);
    expect(d3[0]).not.toBe(spareOfA);
    expect(alive(spareOfA)).toBe(true);
    expect(await connectAndShutdown(sock3, 'k3')).toBe(d3[0]);

    // … nor one booted with another environment (what Node reads when it boots)
    const b4 = makeBundle('k4');
    const sock4 = expectedSock(b4, 'k4', a.address);
    const r4 = start('k4', b4, a.address, { TZ: 'UTC' });
    expect(r4.status).toBe(0);
    const d4 = daemonPids(sock4);
    expect(d4[0]).not.toBe(spareOfA);
    expect(alive(spareOfA)).toBe(true);
    expect(await connectAndShutdown(sock4, 'k4')).toBe(d4[0]);

    await a.close();
    await other.close();
    expect(await waitFor(() => sparesOf(a.address).length === 0 && sparesOf(other.address).length === 0, 5000)).toBe(true);
  });

  it('a spare starved while it boots (every CPU busy) is given a daemon\'s priority by the next start, which it then serves', async () => {
    const cd = await fakeContainerd('s.sock');
    // one busy loop per CPU at normal priority: a SCHED_IDLE spare gets next to no CPU
    // (each ends by itself if this test process dies first)
    const hogs = os.cpus().map(() => spawn('sh', ['-c', `while kill -0 ${process.pid} 2>/dev/null; do :; done`], { stdio: 'ignore' }));
    try {
      const b1 = makeBundle('s1');
      const sock1 = expectedSock(b1, 's1', cd.address);
      expect(start('s1', b1, cd.address).status).toBe(0);
      // the spare process exists (its argv still Node's: not booted far enough to be named)
      let booting: number | undefined;
      expect(await waitFor(() => (booting = bootingSpare(cd.address)) !== undefined)).toBe(true);
      const b2 = makeBundle('s2');
      const sock2 = expectedSock(b2, 's2', cd.address);
      const r2 = start('s2', b2, cd.address);
      expect(r2.stderr).toBe('');
      expect(r2.status).toBe(0);
      // that spare serves it: it was not given up on as one that answers too late
      expect(daemonPids(sock2)).toEqual([booting]);
      const policies = fs.readdirSync(`/proc/${booting}/task`).map((t) => Number(procStat(Number(t))?.[38]));
      expect(new Set(policies)).toEqual(new Set([0]));
      await connectAndShutdown(sock1, 's1');
      await connectAndShutdown(sock2, 's2');
    } finally {
      for (const h of hogs) h.kill('SIGKILL');
    }
    await cd.close();
    expect(await waitFor(() => sparesOf(cd.address).length === 0, 5000)).toBe(true);
  });

  it('a changed config file: the spare of the old file is not used; `spare = false` boots none', async () => {
    const cd = await fakeContainerd('c.sock');
    const config = path.join(dir, 'tsshim.toml');
    caches.add(configCachePath(config));
    const HOUR_AGO = new Date(Date.now() - 3600_000);
    fs.writeFileSync(config, '[shim]\nspare_idle = 60\n');
    fs.utimesSync(config, HOUR_AGO, HOUR_AGO);
    const env = { TSSHIM_CONFIG: config };
    // the first start is Node's (it caches what the file says); the next fast one boots a spare
    for (const id of ['c0', 'c1']) {
      const b = makeBundle(id);
      expectedSock(b, id, cd.address);
      expect(start(id, b, cd.address, env).status).toBe(0);
    }
    const spare = await bootedSpare(cd.address);

    /** the first start after a change is Node's; the second is the launcher's, with or without a spare */
    const coldStarts = async (ids: string[], notBy: number[]) => {
      for (const id of ids) {
        const b = makeBundle(id);
        const sock = expectedSock(b, id, cd.address);
        const r = start(id, b, cd.address, env);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        expect(r.stdout).toBe(unixAddress(sock));
        const d = daemonPids(sock);
        expect(d).toHaveLength(1);
        for (const p of notBy) expect(d[0]).not.toBe(p);
        expect(await connectAndShutdown(sock, id)).toBe(d[0]);
      }
    };
    // same size, another mtime: the old spare does not match any more; a new one boots
    fs.writeFileSync(config, '[shim]\nspare_idle = 90\n');
    fs.utimesSync(config, new Date(Date.now() - 1800_000), new Date(Date.now() - 1800_000));
    await coldStarts(['c2', 'c3'], [spare]);
    expect(await waitFor(() => sparesOf(cd.address).length === 2, 20_000)).toBe(true);
    const spares = sparesOf(cd.address);
    expect(spares).toContain(spare);
    // spare = false: none used, none booted
    fs.writeFileSync(config, '[shim]\nspare = false\n');
    fs.utimesSync(config, new Date(Date.now() - 900_000), new Date(Date.now() - 900_000));
    await coldStarts(['c4', 'c5'], spares);
    await sleep(1000);
    expect(sparesOf(cd.address).sort()).toEqual([...spares].sort());
    await cd.close();
    expect(await waitFor(() => spares.every((p) => !alive(p)), 5000)).toBe(true);
  });

  it('a full socket dir: no room for a spare, the start still succeeds', async () => {
    const cd = await fakeContainerd('f.sock');
    const socketDir = `/tmp/tsshim-full-${process.pid}`;
    fs.mkdirSync(socketDir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'nr_inodes=16,size=1m', 'tsshim-full', socketDir]);
    try {
      const config = path.join(dir, 'full.toml');
      caches.add(configCachePath(config));
      fs.writeFileSync(config, `[shim]\nsocket_dir = "${socketDir}"\n`);
      const HOUR_AGO = new Date(Date.now() - 3600_000);
      fs.utimesSync(config, HOUR_AGO, HOUR_AGO);
      const env = { TSSHIM_CONFIG: config };
      const b0 = makeBundle('f0');
      const sock0 = expectedSock(b0, 'f0', cd.address, socketDir);
      expect(start('f0', b0, cd.address, env).status).toBe(0); // Node: caches the config
      // fill the file system, then free exactly one inode: the group's socket fits, a spare's does not
      const fillers: string[] = [];
      for (let i = 0; ; i++) {
        try {
          const f = path.join(socketDir, `fill-${i}`);
          fs.writeFileSync(f, '');
          fillers.push(f);
        } catch {
          break;
        }
      }
      fs.rmSync(fillers.pop()!);
      const b1 = makeBundle('f1');
      const sock1 = expectedSock(b1, 'f1', cd.address, socketDir);
      const r = start('f1', b1, cd.address, env);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(unixAddress(sock1));
      await sleep(1000);
      expect(sparesOf(cd.address)).toEqual([]);
      const d = daemonPids(sock1);
      expect(d).toHaveLength(1);
      expect(await connectAndShutdown(sock1, 'f1')).toBe(d[0]);
      expect(await connectAndShutdown(sock0, 'f0')).toBeGreaterThan(0);
    } finally {
      for (const s of [...sockets].filter((s) => s.startsWith(socketDir))) for (const pid of daemonPids(s)) kill(pid);
      await sleep(200);
      spawnSync('umount', ['-l', socketDir]);
      fs.rmSync(socketDir, { recursive: true, force: true });
      await cd.close();
    }
  });
});
