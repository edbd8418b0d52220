/**
 * The C launcher (bin/containerd-shim-tsshim-v2, src/launcher): its fast `start` and
 * `delete` must answer exactly what the TypeScript shim answers, and hand everything
 * else to Node with the same argv and stdin.
 *
 * How a test knows whether Node ran: NODE_OPTIONS naming a missing --require module makes
 * every Node start fail (exit 1). A fast path that succeeds under it did not start Node
 * for the action itself; the daemon a fast `start` spawns dies at once under it, leaving
 * a stale socket file that the test removes.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { groupKey, socketPath, unixAddress, DEFAULT_SOCKET_DIR } from '../../src/shim/address.js';
import { readAnnotations } from '../../src/shim/start.js';
import { DEFAULT_CONFIG_PATH, DEFAULT_SPARE_IDLE_SEC, type GroupScope } from '../../src/shim/config.js';
import { configCachePath } from '../../src/shim/config-cache.js';
import { DAEMON_GLIBC_TUNABLES } from '../../src/shim/daemon-launch.js';
import { Any } from '../../src/proto/gen/google/protobuf/any.js';
import { Options as RuntimeOptions } from '../../src/proto/gen/runtimeoptions/v1/options.js';
import { Options as RuncOptions } from '../../src/proto/gen/containerd/runc/v1/options.js';
import { CreateOptions as LinuxRuncCreateOptions } from '../../src/proto/gen/containerd/linux/runc/runc.js';
import { cgroupLayout, readProcessCgroups } from '../../src/sys/cgroups.js';
import { DeleteResponse, ConnectRequest, ConnectResponse, ShutdownRequest } from '../../src/proto/gen/containerd/task/v2/shim.js';
import { TASK_SERVICE_V2, TypeUrl } from '../../src/proto/typeurls.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';

/** runc options as the Go client's WithShimCgroup sends them: runc Options (runc runtimes) or the legacy CreateOptions */
function runcOptions(o: { shimCgroup?: string; legacy?: boolean; binaryName?: string }): Uint8Array {
  if (o.legacy) {
    const value = LinuxRuncCreateOptions.encode(LinuxRuncCreateOptions.fromPartial({ shimCgroup: o.shimCgroup, ioUid: 0, noPivotRoot: true })).finish();
    return Any.encode(Any.fromPartial({ typeUrl: TypeUrl.LinuxRuncCreateOptions, value: Buffer.from(value) })).finish();
  }
  const value = RuncOptions.encode(RuncOptions.fromPartial({ shimCgroup: o.shimCgroup, binaryName: o.binaryName, systemdCgroup: false, ioGid: 5 })).finish();
  return Any.encode(Any.fromPartial({ typeUrl: TypeUrl.RuncOptions, value: Buffer.from(value) })).finish();
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LAUNCHER = path.join(ROOT, 'bin/containerd-shim-tsshim-v2');
const NS = `tsshim-launcher-${process.pid}`;
/** every Node start fails under this */
const NO_NODE = { NODE_OPTIONS: '--require=/nonexistent/tsshim-no-node.cjs' };
/** with a default config file the launcher defers to Node (unless a Node start cached it), so the fast paths are not observable */
const fastPathPossible = !fs.existsSync(DEFAULT_CONFIG_PATH);

let dir: string;
let containerdAddress: string;
const sockets = new Set<string>();
/** config cache files the tests caused (they live in the real default socket dir) */
const caches = new Set<string>();

/** HOME-independent, no inherited tsshim settings */
function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TTRPC_ADDRESS: path.join(dir, 'none.ttrpc'), ...extra };
}

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function runShim(
  action: string,
  o: { id: string; bundle: string; env?: Record<string, string>; input?: Uint8Array; address?: string; flags?: string[]; bin?: string; noBundleFlag?: boolean },
): Run {
  const argv =
    action === '-v'
      ? ['-v']
      : [
          '-namespace',
          NS,
          '-address',
          o.address ?? containerdAddress,
          '-publish-binary',
          '/bin/false',
          '-id',
          o.id,
          ...(action === 'delete' && !o.noBundleFlag ? ['-bundle', o.bundle] : []),
          ...(o.flags ?? []),
          action,
        ];
  const r = spawnSync(o.bin ?? LAUNCHER, argv, {
    cwd: o.bundle,
    env: baseEnv(o.env),
    input: o.input ? Buffer.from(o.input) : Buffer.alloc(0),
    timeout: 20_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

function makeBundle(name: string, config?: string): string {
  const b = path.join(dir, name);
  fs.mkdirSync(path.join(b, 'rootfs'), { recursive: true });
  if (config !== undefined) fs.writeFileSync(path.join(b, 'config.json'), config);
  return b;
}

/** what the TypeScript start computes for this bundle */
function expectedAddress(bundle: string, id: string, address = containerdAddress): string {
  const key = groupKey(readAnnotations(bundle), id, 'pod');
  return unixAddress(socketPath(DEFAULT_SOCKET_DIR, address, NS, key));
}

/**
 * pids of daemons serving sock: the processes holding the socket listening there (the
 * daemon's command line reads like the runc shim's, without the socket)
 */
function daemonPids(sock: string): number[] {
  const inodes = new Set<string>();
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = listening
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

/** /proc/<pid>/cmdline as arguments, without the NUL padding a rewritten one ends with */
function cmdline(pid: number): string[] {
  const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  while (args.length > 0 && args[args.length - 1] === '') args.pop();
  return args;
}

/** the daemon's command line once it has booted and renamed itself (process-name.ts) */
async function bootedCmdline(pid: number, argv0: string): Promise<string[]> {
  for (let i = 0; i < 400 && cmdline(pid)[0] !== argv0; i++) await new Promise((r) => setTimeout(r, 25));
  return cmdline(pid);
}

/** fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, …] */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** a zombie counts as gone: its parent (often pid 1 here, which reaps slowly) is not us */
function alive(pid: number): boolean {
  const state = procStat(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
}

/** kill whatever serves sock and remove the socket file */
async function cleanupSocket(sock: string): Promise<void> {
  for (const pid of daemonPids(sock)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await waitGone(pid);
  }
  fs.rmSync(sock, { force: true });
}

function sockOf(address: string): string {
  const sock = address.slice('unix://'.length);
  sockets.add(sock);
  return sock;
}

beforeAll(() => {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-launcher-'));
  containerdAddress = path.join(dir, 'containerd.sock');
});

afterAll(async () => {
  for (const s of sockets) await cleanupSocket(s);
  for (const c of caches) fs.rmSync(c, { force: true });
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const SB = 'io.kubernetes.cri.sandbox-id';
const RG = 'io.containerd.runc.v2.group';
const TG = 'io.containerd.tsshim.v2.group';

/** config.json variants; `fast` = the launcher answers without Node; `t` makes values unique */
const variants: Array<{ name: string; fast: boolean; config: (t: string) => string | undefined; address?: (a: string) => string }> = [
  { name: 'no config.json', fast: true, config: () => undefined },
  { name: 'broken JSON', fast: true, config: (t) => `{"annotations": {"${SB}": "sb-${t}"}` },
  { name: 'empty file', fast: true, config: () => '' },
  { name: 'annotations absent', fast: true, config: () => '{"ociVersion":"1.0.2"}' },
  { name: 'sandbox id', fast: true, config: (t) => JSON.stringify({ annotations: { [SB]: `sb-${t}` } }) },
  { name: 'runc group', fast: true, config: (t) => JSON.stringify({ annotations: { [RG]: `rg-${t}` } }) },
  { name: 'tsshim group', fast: true, config: (t) => JSON.stringify({ annotations: { [TG]: `tg-${t}` } }) },
  { name: 'all three: tsshim group wins', fast: true, config: (t) => JSON.stringify({ annotations: { [SB]: `sb-${t}`, [RG]: `rg-${t}`, [TG]: `tg-${t}` } }) },
  { name: 'runc group beats sandbox id', fast: true, config: (t) => JSON.stringify({ annotations: { [SB]: `sb-${t}`, [RG]: `rg-${t}` } }) },
  { name: 'empty group falls through', fast: true, config: (t) => JSON.stringify({ annotations: { [TG]: '', [SB]: `sb-${t}` } }) },
  { name: 'non-string group is ignored', fast: true, config: (t) => `{"annotations":{"${TG}":42,"${RG}":{"x":"y"},"${SB}":"sb-${t}"}}` },
  {
    name: 'nested objects and arrays before annotations',
    fast: true,
    config: (t) =>
      `{"ociVersion":"1.0.2","process":{"args":["sh","-c","{\\"annotations\\":1}"],"env":[],"user":{"uid":0,"gid":0}},` +
      `"mounts":[{"destination":"/proc","options":["a","b"]},[[[]]],{}],"linux":{"annotations":{"${SB}":"wrong-${t}"}},` +
      `"annotations":{"x":{"${SB}":"nested-wrong-${t}"},"y":["${SB}"],"${SB}":"sb-${t}"}}`,
  },
  {
    name: 'whitespace: tabs, CRLF, spaces around colons',
    fast: true,
    config: (t) => JSON.stringify({ process: { args: ['a'] }, annotations: { [RG]: `rg-${t}` } }, null, '\t').replace(/\n/g, '\r\n').replace(/":/g, '"  :  '),
  },
  { name: 'leading and trailing whitespace', fast: true, config: (t) => ` \n\t{ "annotations" : { "${SB}" : "sb-${t}" } } \r\n` },
  { name: 'annotations null', fast: true, config: () => '{"annotations":null}' },
  { name: 'annotations array', fast: true, config: (t) => `{"annotations":["${SB}","sb-${t}"]}` },
  { name: 'top-level array', fast: true, config: (t) => `[{"annotations":{"${SB}":"sb-${t}"}}]` },
  { name: 'duplicate annotations: last wins', fast: true, config: (t) => `{"annotations":{"${SB}":"first-${t}"},"annotations":{"${SB}":"second-${t}"}}` },
  { name: 'later non-object annotations wins', fast: true, config: (t) => `{"annotations":{"${SB}":"first-${t}"},"annotations":7}` },
  { name: 'duplicate key inside: a later non-string wins', fast: true, config: (t) => `{"annotations":{"${TG}":"first-${t}","${SB}":"sb-${t}","${TG}":5}}` },
  { name: 'duplicate key inside: last wins', fast: true, config: (t) => `{"annotations":{"${SB}":"first-${t}","${SB}":"second-${t}"}}` },
  { name: 'numbers and literals', fast: true, config: (t) => `{"a":-1.5e+10,"b":[true,false,null,0,12.0E-3,-0],"annotations":{"${RG}":"g-${t}"}}` },
  { name: 'invalid number', fast: true, config: (t) => `{"a":01,"annotations":{"${SB}":"sb-${t}"}}` },
  { name: 'control character in a string', fast: true, config: (t) => `{"a":"x\ty","annotations":{"${SB}":"sb-${t}"}}` },
  { name: 'byte order mark', fast: true, config: (t) => `\ufeff{"annotations":{"${SB}":"sb-${t}"}}` },
  { name: 'trailing garbage', fast: true, config: (t) => `{"annotations":{"${SB}":"sb-${t}"}} x` },
  { name: 'escapes and UTF-8 elsewhere', fast: true, config: (t) => `{"process":{"args":["a\\"b\\\\c\\u00e9\\n","é"]},"annotations":{"é":"\\u0041","${SB}":"sb-${t}"}}` },
  { name: 'group key with a slash', fast: true, config: (t) => JSON.stringify({ annotations: { [SB]: `pod/${t}` } }) },
  { name: 'unix:// address', fast: true, config: (t) => JSON.stringify({ annotations: { [SB]: `sb-${t}` } }), address: (a) => `unix://${a}` },
  { name: 'escaped value (Node decides)', fast: false, config: (t) => `{"annotations":{"${SB}":"sb\\u002d${t}"}}` },
  { name: 'escaped key (Node decides)', fast: false, config: (t) => `{"annotations":{"io.kubernetes.cri.sandbox\\u002did":"sb-${t}"}}` },
  { name: 'non-ASCII group key (Node decides)', fast: false, config: (t) => JSON.stringify({ annotations: { [SB]: `pöd-${t}` } }) },
  { name: '".." in the group key (Node decides)', fast: false, config: (t) => JSON.stringify({ annotations: { [SB]: `x/../sb-${t}` } }) },
];

describe('launcher start: grouping and socket name agree with address.ts', () => {
  variants.forEach((v, i) => {
    it(`${v.name}`, async () => {
      const id = `t${i}`;
      const bundle = makeBundle(`v${i}`, v.config(`${process.pid}-${i}`));
      const address = v.address ? v.address(containerdAddress) : containerdAddress;
      const want = expectedAddress(bundle, id, address);
      const sock = sockOf(want);
      await cleanupSocket(sock);

      if (v.fast && fastPathPossible) {
        // no Node for `start` itself (the spawned daemon dies at once under NO_NODE)
        const r = runShim('start', { id, bundle, address, env: NO_NODE });
        // whatever it bound is cleaned up, even if it is the wrong one
        if (r.stdout.toString().startsWith('unix://')) sockOf(r.stdout.toString());
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        expect(r.stdout.toString()).toBe(want);
        expect(fs.readFileSync(path.join(bundle, 'address'), 'utf8')).toBe(want);
        expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
        expect(fs.readdirSync(bundle).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      } else if (!v.fast) {
        // Node is needed: under NO_NODE start fails and binds nothing
        const r = runShim('start', { id, bundle, address, env: NO_NODE });
        expect(r.status).not.toBe(0);
        expect(fs.existsSync(sock)).toBe(false);
        // and with Node it works
        const ok = runShim('start', { id, bundle, address });
        if (ok.stdout.toString().startsWith('unix://')) sockOf(ok.stdout.toString().trim());
        expect(ok.stderr).toBe('');
        expect(ok.status).toBe(0);
        expect(ok.stdout.toString().trim()).toBe(want);
        expect(fs.readFileSync(path.join(bundle, 'address'), 'utf8')).toBe(want);
      }
      await cleanupSocket(sock);
    });
  });
});

describe('launcher start: the daemon', () => {
  it('is spawned once per group, serves the socket, gets TSSHIM_ARGV0/TSSHIM_GROUP, our malloc tunables and no NODE_EXTRA_CA_CERTS', async () => {
    const key = `pod-${process.pid}`;
    const config = JSON.stringify({ annotations: { [SB]: key } });
    const b1 = makeBundle('d1', config);
    const b2 = makeBundle('d2', config);
    const b3 = makeBundle('d3', config);
    // an alias name, as containerd would run it (the TS side reads the backend from it)
    const alias = path.join(dir, 'containerd-shim-tsshim-crun-v2');
    fs.symlinkSync(LAUNCHER, alias);
    const want = expectedAddress(b1, 'd1');
    const sock = sockOf(want);
    await cleanupSocket(sock);

    const first = runShim('start', { id: 'd1', bundle: b1, bin: alias, env: { NODE_EXTRA_CA_CERTS: '/nonexistent.pem', GLIBC_TUNABLES: 'glibc.malloc.tcache_count=7' } });
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(first.stdout.toString()).toBe(want);
    const pids = daemonPids(sock);
    expect(pids).toHaveLength(1);
    const daemon = pids[0]!;
    const env = fs.readFileSync(`/proc/${daemon}/environ`, 'utf8').split('\0');
    expect(env).toContain(`TSSHIM_ARGV0=${alias}`);
    expect(env).toContain(`TSSHIM_GROUP=${key}`);
    expect(env.some((e) => e.startsWith('NODE_EXTRA_CA_CERTS='))).toBe(false);
    // containerd's tunables first, then ours (the daemon takes ours out of process.env at
    // boot). glibc ends each value it parsed with a NUL in the original string, which is
    // what /proc/<pid>/environ shows: ':' may read as '\0'.
    const raw = fs.readFileSync(`/proc/${daemon}/environ`, 'latin1');
    expect(raw).toMatch(new RegExp(`(^|\0)GLIBC_TUNABLES=glibc\\.malloc\\.tcache_count=7[:\0]${DAEMON_GLIBC_TUNABLES.replaceAll('.', '\\.')}\0`));
    // named like the runc shim: `ps`, `pgrep containerd-shim` and `pgrep -f` find it
    expect(await bootedCmdline(daemon, alias)).toEqual([alias, '-namespace', NS, '-id', 'd1', '-address', containerdAddress]);
    expect(fs.readFileSync(`/proc/${daemon}/comm`, 'utf8')).toBe('containerd-shim\n');
    expect(execFileSync('pgrep', ['-f', `^${alias} -namespace ${NS} -id d1 -address `], { encoding: 'utf8' }).trim().split('\n')).toEqual([String(daemon)]);
    expect(execFileSync('pgrep', ['-x', 'containerd-shim'], { encoding: 'utf8' }).trim().split('\n')).toContain(String(daemon));
    // its own session, /dev/null stdio (containerd waits for its pipes to close)
    expect(Number(procStat(daemon)?.[3])).toBe(daemon); // session id
    for (const fd of [0, 1, 2]) expect(fs.readlinkSync(`/proc/${daemon}/fd/${fd}`)).toBe('/dev/null');

    // same group again: same address, no second daemon
    const second = runShim('start', { id: 'd2', bundle: b2 });
    expect(second.status).toBe(0);
    expect(second.stdout.toString()).toBe(want);
    expect(fs.readFileSync(path.join(b2, 'address'), 'utf8')).toBe(want);
    expect(daemonPids(sock)).toEqual([daemon]);
    if (fastPathPossible) {
      // … and without Node at all
      const third = runShim('start', { id: 'd3', bundle: b3, env: NO_NODE });
      expect(third.status).toBe(0);
      expect(third.stdout.toString()).toBe(want);
      expect(daemonPids(sock)).toEqual([daemon]);
    }

    // the daemon really serves the socket
    const client = await TtrpcClient.connect(sock, { timeoutMs: 10_000 });
    try {
      const conn = ConnectResponse.decode(
        await client.call(TASK_SERVICE_V2, 'Connect', ConnectRequest.encode(ConnectRequest.fromPartial({ id: 'd1' })).finish(), { timeoutMs: 10_000 }),
      );
      expect(conn.shimPid).toBe(daemon);
      await client.call(TASK_SERVICE_V2, 'Shutdown', ShutdownRequest.encode(ShutdownRequest.fromPartial({ id: 'd1' })).finish(), { timeoutMs: 10_000 });
    } finally {
      client.close();
    }
    await waitGone(daemon);
    expect(alive(daemon)).toBe(false);
    expect(fs.existsSync(sock)).toBe(false);
  });

  it.skipIf(!fastPathPossible)('a stale socket file goes to Node, which replaces it', async () => {
    const bundle = makeBundle('stale', JSON.stringify({ annotations: { [SB]: `stale-${process.pid}` } }));
    const want = expectedAddress(bundle, 's1');
    const sock = sockOf(want);
    await cleanupSocket(sock);
    // a fast start whose daemon cannot run leaves a socket nobody listens on
    expect(runShim('start', { id: 's1', bundle, env: NO_NODE }).status).toBe(0);
    for (let i = 0; i < 200 && daemonPids(sock).length > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(fs.existsSync(sock)).toBe(true);
    // connect is refused: the launcher defers to Node …
    expect(runShim('start', { id: 's1', bundle, env: NO_NODE }).status).not.toBe(0);
    // … which replaces the stale socket and starts a daemon
    const r = runShim('start', { id: 's1', bundle });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.toString().trim()).toBe(want);
    expect(daemonPids(sock)).toHaveLength(1);
    await cleanupSocket(sock);
  });
});

describe('launcher start: stdin', () => {
  function runtimeOptions(configPath: string): Uint8Array {
    const value = RuntimeOptions.encode(RuntimeOptions.fromPartial({ configPath })).finish();
    return Any.encode(Any.fromPartial({ typeUrl: TypeUrl.RuntimeOptions, value: Buffer.from(value) })).finish();
  }

  it('non-empty stdin goes to Node with the same bytes', async () => {
    const bundle = makeBundle('stdin', JSON.stringify({ annotations: { [SB]: `stdin-${process.pid}` } }));
    const want = expectedAddress(bundle, 'i1');
    const sock = sockOf(want);
    await cleanupSocket(sock);
    // Node ran: it fails under NO_NODE
    expect(runShim('start', { id: 'i1', bundle, env: NO_NODE, input: runtimeOptions('') }).status).not.toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
    // Node saw the bytes: the config file named in them is read (and rejected)
    const bad = path.join(dir, 'bad.toml');
    fs.writeFileSync(bad, 'backend = "nonsense"\n');
    const rejected = runShim('start', { id: 'i1', bundle, input: runtimeOptions(bad) });
    expect(rejected.status).not.toBe(0);
    expect(rejected.stdout.toString()).toMatch(/backend must be one of/);
    // and a valid one works
    const ok = runShim('start', { id: 'i1', bundle, input: runtimeOptions('') });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout.toString().trim()).toBe(want);
    expect(daemonPids(sock)).toHaveLength(1);
    await cleanupSocket(sock);
  });

  it('TSSHIM_CONFIG naming a missing or relative file goes to Node', () => {
    const bundle = makeBundle('cfg', '{}');
    for (const file of [path.join(dir, 'none.toml'), 'relative.toml']) {
      const r = runShim('start', { id: 'c1', bundle, env: { ...NO_NODE, TSSHIM_CONFIG: file } });
      expect(r.status, file).not.toBe(0);
    }
  });
});

describe('launcher start: runtime options naming a config file (CRI)', () => {
  const HOUR_AGO = () => new Date(Date.now() - 3600_000);

  function options(configPath: string, o: { typeUrl?: string; body?: string; extra?: Uint8Array } = {}): Uint8Array {
    const value = RuntimeOptions.encode(
      RuntimeOptions.fromPartial({ configPath, configBody: o.body === undefined ? undefined : Buffer.from(o.body) }),
    ).finish();
    const v = o.extra ? Buffer.concat([value, o.extra]) : Buffer.from(value);
    return Any.encode(Any.fromPartial({ typeUrl: o.typeUrl ?? TypeUrl.RuntimeOptions, value: v })).finish();
  }

  /** a config file old enough to be cached (a fresh one is not: see config-cache.ts) */
  function configFile(name: string, text: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    fs.utimesSync(file, HOUR_AGO(), HOUR_AGO());
    caches.add(configCachePath(file));
    return file;
  }

  /** what the TypeScript start computes */
  function expectedFor(bundle: string, id: string, scope: GroupScope, socketDir = DEFAULT_SOCKET_DIR): string {
    return unixAddress(socketPath(socketDir, containerdAddress, NS, groupKey(readAnnotations(bundle), id, scope)));
  }

  /** a start that must go through Node: fails without it, then works with it */
  function nodeStart(id: string, bundle: string, input: Uint8Array, want: string, env: Record<string, string> = {}): void {
    const without = runShim('start', { id, bundle, env: { ...env, ...NO_NODE }, input });
    if (without.stdout.toString().startsWith('unix://')) sockOf(without.stdout.toString());
    expect(without.status).not.toBe(0);
    const r = runShim('start', { id, bundle, input, env });
    if (r.stdout.toString().startsWith('unix://')) sockOf(r.stdout.toString().trim());
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.toString().trim()).toBe(want);
  }

  /** a start without Node (its daemon, if it spawns one, dies at once) */
  function fastStart(id: string, bundle: string, input: Uint8Array, want: string, env: Record<string, string> = {}): void {
    const r = runShim('start', { id, bundle, env: { ...env, ...NO_NODE }, input });
    if (r.stdout.toString().startsWith('unix://')) sockOf(r.stdout.toString());
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe(want);
    expect(fs.readFileSync(path.join(bundle, 'address'), 'utf8')).toBe(want);
  }

  it('the first start goes through Node and caches the file; later ones do not need Node until the file changes', async () => {
    const cfg = configFile('pod.toml', '[shim]\ngroup = "pod"\n');
    const input = options(cfg);
    const podA = JSON.stringify({ annotations: { [SB]: `cache-a-${process.pid}` } });
    const b1 = makeBundle('opt1', podA);
    const b2 = makeBundle('opt2', podA);
    const b3 = makeBundle('opt3', JSON.stringify({ annotations: { [SB]: `cache-b-${process.pid}` } }));
    const want = expectedFor(b1, 'o1', 'pod');
    const sock = sockOf(want);
    await cleanupSocket(sock);
    fs.rmSync(configCachePath(cfg), { force: true });

    nodeStart('o1', b1, input, want);
    const st = fs.statSync(cfg);
    expect(fs.readFileSync(configCachePath(cfg), 'utf8')).toBe(`${Math.trunc(st.mtimeMs)} ${st.size} pod ${DEFAULT_SPARE_IDLE_SEC} ${DEFAULT_SOCKET_DIR}\n`);
    const daemons = daemonPids(sock);
    expect(daemons).toHaveLength(1);

    // another container of the pod: the running daemon, no Node
    fastStart('o2', b2, input, want);
    expect(daemonPids(sock)).toEqual(daemons);
    // a new pod: its own socket, no Node
    const want3 = expectedFor(b3, 'o3', 'pod');
    expect(want3).not.toBe(want);
    fastStart('o3', b3, input, want3);
    await cleanupSocket(sockOf(want3));
    // a prefixed type URL means the same
    fastStart('o2', b2, options(cfg, { typeUrl: `type.googleapis.com/${TypeUrl.RuntimeOptions}` }), want);

    // Node decides: a config body, an unknown field, another type, a relative path, a JSON type URL
    const odd: Array<[string, Uint8Array]> = [
      ['config body', options(cfg, { body: '[shim]\ngroup = "pod"\n' })],
      ['unknown field', options(cfg, { extra: Uint8Array.from([0x20, 0x01]) })],
      ['another type', options(cfg, { typeUrl: 'containerd.runhcs.v1.Options' })],
      ['JSON type', options(cfg, { typeUrl: `types.containerd.io/${TypeUrl.RuntimeOptions}` })],
      ['relative path', options(path.relative(b2, cfg))],
      ['truncated', options(cfg).subarray(0, 20)],
    ];
    for (const [what, bytes] of odd) {
      expect(runShim('start', { id: 'o2', bundle: b2, env: NO_NODE, input: bytes }).status, what).not.toBe(0);
    }

    // touched: mtime differs, Node again (which caches the new stamp)
    const later = new Date(Date.now() - 1800_000);
    fs.utimesSync(cfg, later, later);
    nodeStart('o2', b2, input, want);
    fastStart('o2', b2, input, want);
    // same mtime, other size: Node again
    fs.appendFileSync(cfg, '# grown\n');
    fs.utimesSync(cfg, later, later);
    nodeStart('o2', b2, input, want);
    // a file modified just now is not cached (it could change again within the same millisecond)
    fs.appendFileSync(cfg, '# again\n');
    nodeStart('o2', b2, input, want);
    expect(fs.readFileSync(configCachePath(cfg), 'utf8')).not.toContain(`${fs.statSync(cfg).size} pod`);
    expect(runShim('start', { id: 'o2', bundle: b2, env: NO_NODE, input }).status).not.toBe(0);
    expect(daemonPids(sock)).toEqual(daemons);
    await cleanupSocket(sock);
  });

  it('TSSHIM_CONFIG naming the file: the first start goes through Node and caches it; later ones do not need Node until the file changes', async () => {
    const cfg = configFile('env.toml', '[shim]\ngroup = "pod"\n');
    const env = { TSSHIM_CONFIG: cfg };
    const none = new Uint8Array(0);
    const pod = JSON.stringify({ annotations: { [SB]: `env-${process.pid}` } });
    const b1 = makeBundle('env1', pod);
    const b2 = makeBundle('env2', pod);
    const want = expectedFor(b1, 'e1', 'pod');
    const sock = sockOf(want);
    await cleanupSocket(sock);
    fs.rmSync(configCachePath(cfg), { force: true });

    nodeStart('e1', b1, none, want, env);
    const st = fs.statSync(cfg);
    expect(fs.readFileSync(configCachePath(cfg), 'utf8')).toBe(`${Math.trunc(st.mtimeMs)} ${st.size} pod ${DEFAULT_SPARE_IDLE_SEC} ${DEFAULT_SOCKET_DIR}\n`);
    const daemons = daemonPids(sock);
    expect(daemons).toHaveLength(1);
    fastStart('e2', b2, none, want, env);
    // runc options name no config: TSSHIM_CONFIG still does, same fast path
    fastStart('e2', b2, runcOptions({}), want, env);
    expect(daemonPids(sock)).toEqual(daemons);

    // the file changed: Node again, which records the new fingerprint
    const later = new Date(Date.now() - 1800_000);
    fs.appendFileSync(cfg, '# changed\n');
    fs.utimesSync(cfg, later, later);
    nodeStart('e2', b2, none, want, env);
    fastStart('e2', b2, none, want, env);
    // a changed group scope is what the new fingerprint carries
    fs.writeFileSync(cfg, '[shim]\ngroup = "container"\n');
    fs.utimesSync(cfg, HOUR_AGO(), HOUR_AGO());
    const wantContainer = expectedFor(b2, 'e2', 'container');
    expect(wantContainer).not.toBe(want);
    await cleanupSocket(sockOf(wantContainer));
    nodeStart('e2', b2, none, wantContainer, env);
    fastStart('e2', b2, none, wantContainer, env);
    await cleanupSocket(sockOf(wantContainer));
    await cleanupSocket(sock);
  });

  it('scopes "container" and "namespace" and a socket_dir: the address TS computes', async () => {
    const socketDir = path.join(dir, 's');
    // shim.socket_dir is at most 42 characters long
    const dirLine = socketDir.length <= 42 ? `socket_dir = "${socketDir}"\n` : '';
    const sdir = dirLine ? socketDir : DEFAULT_SOCKET_DIR;
    for (const scope of ['container', 'namespace'] as const) {
      const cfg = configFile(`${scope}.toml`, `[shim]\ngroup = "${scope}"\n${dirLine}`);
      const input = options(cfg);
      const t = `${scope}-${process.pid}`;
      const bundles = [
        { id: `${scope}-first`, spec: JSON.stringify({ annotations: { [SB]: `sb-${t}` } }) },
        { id: `${scope}-sandbox`, spec: JSON.stringify({ annotations: { [SB]: `sb-${t}` } }) },
        { id: `${scope}-none`, spec: undefined },
        { id: `${scope}-tsgroup`, spec: JSON.stringify({ annotations: { [SB]: `sb-${t}`, [TG]: `tg-${t}` } }) },
        { id: `${scope}-runcgroup`, spec: JSON.stringify({ annotations: { [SB]: `sb-${t}`, [RG]: `rg-${t}` } }) },
      ].map((b) => ({ ...b, bundle: makeBundle(b.id, b.spec) }));
      fs.rmSync(configCachePath(cfg), { force: true });
      const [first, ...rest] = bundles;
      const firstWant = expectedFor(first!.bundle, first!.id, scope, sdir);
      await cleanupSocket(sockOf(firstWant));
      nodeStart(first!.id, first!.bundle, input, firstWant);
      expect(fs.readFileSync(configCachePath(cfg), 'utf8')).toMatch(new RegExp(` ${scope} ${DEFAULT_SPARE_IDLE_SEC} ${sdir}\n$`));
      for (const b of rest) {
        const want = expectedFor(b.bundle, b.id, scope, sdir);
        if (want !== firstWant) await cleanupSocket(sockOf(want));
        fastStart(b.id, b.bundle, input, want);
        if (want !== firstWant) await cleanupSocket(sockOf(want));
      }
      // the scope really changed the key
      const plain = expectedFor(bundles[1]!.bundle, bundles[1]!.id, scope, sdir);
      expect(plain).not.toBe(expectedFor(bundles[1]!.bundle, bundles[1]!.id, 'pod', sdir));
      await cleanupSocket(sockOf(firstWant));
    }
  });
});

describe('launcher start: ShimCgroup of runc options', () => {
  // every cgroup hierarchy of this host: v1 controllers and cgroup2 (unified on hybrid)
  const layout = cgroupLayout();
  const hierarchies = [...layout.v1.map((m) => m.mountPoint), ...(layout.unified ? [layout.unified.mountPoint] : [])];
  const parent = `/tsshim-launcher-${process.pid}`;
  /** fails every Node start but the daemon's: proves a start took the C fast path while its daemon runs */
  let onlyDaemonNode: Record<string, string>;

  beforeAll(() => {
    for (const h of hierarchies) {
      for (const c of ['first', 'second', 'ts']) {
        fs.mkdirSync(path.join(h, parent, c), { recursive: true });
        // a v1 cpuset cgroup takes no process before it has cpus and mems (ENOSPC)
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          for (const d of [path.join(h, parent), path.join(h, parent, c)]) {
            if (fs.existsSync(path.join(d, f))) fs.writeFileSync(path.join(d, f), fs.readFileSync(path.join(h, f)));
          }
        }
      }
    }
    const preload = path.join(dir, 'only-daemon.cjs');
    fs.writeFileSync(preload, "if (!process.argv.includes('serve')) { process.stdout.write('node ran'); process.exit(97); }\n");
    onlyDaemonNode = { NODE_OPTIONS: `--require=${preload}` };
  });

  afterAll(async () => {
    for (const h of hierarchies) {
      for (const c of ['first', 'second', 'ts', '']) {
        const d = path.join(h, parent, c);
        for (let i = 0; i < 100; i++) {
          try {
            fs.rmdirSync(d);
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
            await new Promise((r) => setTimeout(r, 50)); // a killed daemon still leaving
          }
        }
      }
    }
  });

  /** every hierarchy's line of /proc/<pid>/cgroup names `cgroup` */
  function expectIn(pid: number, cgroup: string): void {
    const cg = readProcessCgroups(pid);
    for (const m of layout.v1) for (const c of m.controllers) expect(cg.v1[c], `${c} of ${pid}`).toBe(cgroup);
    if (layout.unified) expect(cg.unified, `cgroup2 of ${pid}`).toBe(cgroup);
  }

  it('the fast start moves its new daemon into the cgroup, in every hierarchy; the group keeps the first container\'s', async () => {
    const pod = JSON.stringify({ annotations: { [SB]: `cg-${process.pid}` } });
    const b1 = makeBundle('cg1', pod);
    const b2 = makeBundle('cg2', pod);
    const want = expectedAddress(b1, 'g1');
    const sock = sockOf(want);
    await cleanupSocket(sock);
    for (const legacy of [false, true]) {
      const r = runShim('start', { id: 'g1', bundle: b1, env: onlyDaemonNode, input: runcOptions({ shimCgroup: `${parent}/first`, legacy, binaryName: 'runc' }) });
      expect(r.stdout.toString(), legacy ? 'CreateOptions' : 'Options').toBe(want);
      expect(r.status).toBe(0);
      const [daemon] = daemonPids(sock);
      expectIn(daemon!, `${parent}/first`);
      // another container of the pod: the running daemon stays where the first one put it
      const second = runShim('start', { id: 'g2', bundle: b2, env: onlyDaemonNode, input: runcOptions({ shimCgroup: `${parent}/second` }) });
      expect(second.status).toBe(0);
      expect(daemonPids(sock)).toEqual([daemon]);
      expectIn(daemon!, `${parent}/first`);
      await cleanupSocket(sock);
    }
  });

  it('the TypeScript start does the same', async () => {
    // an escaped annotation value: only Node can group it
    const b = makeBundle('cgts', `{"annotations":{"${SB}":"cg\\u002dts-${process.pid}"}}`);
    const input = runcOptions({ shimCgroup: `${parent}/ts` });
    expect(runShim('start', { id: 't1', bundle: b, env: onlyDaemonNode, input }).stdout.toString()).toBe('node ran');
    const r = runShim('start', { id: 't1', bundle: b, input });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const sock = sockOf(r.stdout.toString().trim());
    const [daemon] = daemonPids(sock);
    expectIn(daemon!, `${parent}/ts`);
    await cleanupSocket(sock);
  });

  it('a cgroup no hierarchy has fails start, and leaves no daemon and no socket (fast and TypeScript start)', async () => {
    const missing = `${parent}/missing`;
    const fast = makeBundle('cgmiss', JSON.stringify({ annotations: { [SB]: `cgm-${process.pid}` } }));
    const viaNode = makeBundle('cgmissts', `{"annotations":{"${SB}":"cgm\\u002dts-${process.pid}"}}`);
    for (const [bundle, env] of [
      [fast, onlyDaemonNode],
      [viaNode, {}],
    ] as const) {
      const r = runShim('start', { id: 'm1', bundle, env, input: runcOptions({ shimCgroup: missing }) });
      expect(r.status).not.toBe(0);
      expect(r.stdout.toString()).toMatch(new RegExp(`^tsshim start: cannot move the shim into its cgroup ${missing}`));
    }
    const sock = expectedAddress(fast, 'm1').slice('unix://'.length);
    expect(fs.existsSync(sock)).toBe(false);
    const shims = fs.readdirSync('/proc').filter((e) => {
      try {
        return /^\d+$/.test(e) && alive(Number(e)) && cmdline(Number(e)).join(' ').includes(` -namespace ${NS} -id m1 `);
      } catch {
        return false;
      }
    });
    expect(shims).toEqual([]);
  });
});

describe('launcher delete', () => {
  function decodeNow(r: Run, before: number) {
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const resp = DeleteResponse.decode(r.stdout);
    const at = Number(resp.exitedAt!.seconds) * 1000 + resp.exitedAt!.nanos / 1e6;
    expect(at).toBeGreaterThanOrEqual(before - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 1000);
    return resp;
  }

  it.skipIf(!fastPathPossible)('after the daemon marked the bundle: answers without Node', () => {
    const bundle = makeBundle('del1', '{}');
    fs.writeFileSync(path.join(bundle, 'init.pid'), '4321');
    fs.writeFileSync(path.join(bundle, '.tsshim-deleted'), '');
    const before = Date.now();
    const resp = decodeNow(runShim('delete', { id: 'del1', bundle, env: NO_NODE }), before);
    expect(resp.pid).toBe(4321);
    expect(resp.exitStatus).toBe(137);
    // bundle from the cwd when -bundle is absent; no init.pid → pid 0
    fs.rmSync(path.join(bundle, 'init.pid'));
    const noPid = decodeNow(runShim('delete', { id: 'del1', bundle, env: NO_NODE, noBundleFlag: true }), before);
    expect(noPid.pid).toBe(0);
    expect(noPid.exitStatus).toBe(137);
  });

  it('without the marker: the Node delete runs', () => {
    const bundle = makeBundle('del2', '{}');
    fs.writeFileSync(path.join(bundle, 'init.pid'), '987\n');
    expect(runShim('delete', { id: 'del2', bundle, env: NO_NODE }).status).not.toBe(0);
    const resp = decodeNow(runShim('delete', { id: 'del2', bundle }), Date.now());
    expect(resp.pid).toBe(987);
    expect(resp.exitStatus).toBe(137);
  });

  it('marker but something mounted at rootfs: the Node delete runs (and unmounts)', () => {
    const bundle = makeBundle('del3', '{}');
    fs.writeFileSync(path.join(bundle, '.tsshim-deleted'), '');
    const rootfs = path.join(bundle, 'rootfs');
    execFileSync('mount', ['-t', 'tmpfs', 'tsshim-launcher-test', rootfs]);
    try {
      expect(runShim('delete', { id: 'del3', bundle, env: NO_NODE }).status).not.toBe(0);
      const resp = decodeNow(runShim('delete', { id: 'del3', bundle }), Date.now());
      expect(resp.exitStatus).toBe(137);
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${rootfs} `);
    } finally {
      spawnSync('umount', [rootfs]);
    }
  });
});

describe('launcher: everything else goes to Node', () => {
  it('-v', () => {
    const bundle = makeBundle('v', '{}');
    const r = runShim('-v', { id: '', bundle });
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toContain(`Runtime: node ${process.version}`);
    expect(runShim('-v', { id: '', bundle, env: NO_NODE }).status).not.toBe(0);
  });

  it('unknown flags and actions', () => {
    const bundle = makeBundle('unknown', '{}');
    expect(runShim('start', { id: 'u1', bundle, flags: ['-future-flag', 'x'], env: NO_NODE }).status).not.toBe(0);
    const r = runShim('frobnicate', { id: 'u1', bundle });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown action "frobnicate"/);
  });
});
