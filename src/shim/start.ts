/**
 * `containerd-shim-tsshim-v2 … start`: find or create the group's socket, make sure a
 * daemon serves it, write ./address, print the address, exit. containerd waits for this
 * process on every container start, so it loads as little as it can: no logger, no
 * ttrpc, no backend. The daemon inherits the listening socket as fd 3, so containerd can
 * connect (and queue its first request) before the daemon has finished booting.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import type { ShimArgs } from './args.js';
import { groupKey, probeSocket, socketPath, unixAddress } from './address.js';
import { readStartInput, type StartInput } from './start-input.js';
import { stampConfigFile, writeConfigCache } from './config-cache.js';
import { daemonNodeFlags, daemonEntry, daemonEnv } from './daemon-launch.js';
import { builtin, childProcess } from '../sys/lazy-builtins.js';

export async function runStart(args: ShimArgs): Promise<string | Uint8Array> {
  const input: StartInput = readStartInput(args);
  const { loadConfig, DEFAULT_CONFIG_PATH } = await import('./config.js');
  // the config FILE this start reads (named by the runtime options, TSSHIM_CONFIG or the
  // default path, as loadConfig picks it): the C launcher reuses what it says while unchanged
  const cachedFile = input.configBody?.trim() ? undefined : input.configPath || process.env.TSSHIM_CONFIG || DEFAULT_CONFIG_PATH;
  const stamp = cachedFile ? stampConfigFile(cachedFile) : undefined;
  const config = loadConfig({ path: input.configPath, body: input.configBody });
  const bundle = process.cwd();
  const annotations = readAnnotations(bundle);
  const key = groupKey(annotations, args.id, config.shim.group);
  const socketDir = input.socketDir || config.shim.socketDir;
  const sock = socketPath(socketDir, args.address, args.namespace, key);
  const address = unixAddress(sock);

  mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  const server = await listenOrReuse(sock);
  if (server) {
    try {
      chmodSync(sock, 0o600);
      if (input.shimCgroup) (await import('./shim-cgroup.js')).checkShimCgroup(input.shimCgroup);
      const pid = spawnDaemon(args, sock, server, key, input);
      // the first container's ShimCgroup: its daemon serves the whole group
      if (input.shimCgroup) await joinOrKill(pid, input.shimCgroup);
    } catch (err) {
      // leave nothing behind: the socket we bound is useless without a daemon
      try {
        unlinkSync(sock);
      } catch {
        /* already gone */
      }
      throw err;
    }
  }
  writeAtomic(join(bundle, 'address'), address);
  if (cachedFile && stamp) writeConfigCache(cachedFile, stamp, config.shim);
  return input.bootstrap ? input.bootstrap.encodeResult(address) : address;
}

/** the spec's annotations as grouping sees them (the C launcher must agree: test/component/launcher.test.ts) */
export function readAnnotations(bundle: string): Record<string, unknown> | undefined {
  try {
    const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    return spec && typeof spec.annotations === 'object' ? spec.annotations : undefined;
  } catch {
    // a broken config.json is reported by Create, with the field; grouping falls back to the id
    return undefined;
  }
}

/**
 * Bind the group socket, or return undefined when a live daemon already serves it.
 * A socket file nobody answers on is stale (its daemon died) and is replaced. A
 * concurrent start of the same group may be between bind and listen, so a refused
 * connect is retried briefly before the file is judged stale.
 */
async function listenOrReuse(sock: string): Promise<Server | undefined> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const err = await tryListen(sock);
    if (!err) return lastServer;
    if (err.code !== 'EADDRINUSE') throw err;
    if (await answers(sock)) return undefined;
    await new Promise((r) => setTimeout(r, 10 * (attempt + 1)));
    if (await answers(sock)) return undefined;
    try {
      unlinkSync(sock);
    } catch {
      /* someone else removed it */
    }
  }
  throw new Error(`cannot bind shim socket ${sock}`);
}

let lastServer: Server | undefined;
function tryListen(sock: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = builtin('node:net').createServer();
    server.once('error', (err) => resolve(err as NodeJS.ErrnoException));
    server.listen({ path: sock, backlog: 512 }, () => {
      lastServer = server;
      resolve(undefined);
    });
  });
}

async function answers(sock: string): Promise<boolean> {
  return (await probeSocket(sock)) === 'answers';
}

async function joinOrKill(pid: number, cgroup: string): Promise<void> {
  const { joinShimCgroup } = await import('./shim-cgroup.js');
  try {
    joinShimCgroup(pid, cgroup);
  } catch (err) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    throw err;
  }
}

function spawnDaemon(args: ShimArgs, sock: string, server: Server, key: string, input: StartInput): number {
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const argv = [
    ...daemonNodeFlags(),
    daemonEntry(),
    '-namespace',
    args.namespace,
    '-address',
    args.address,
    '-publish-binary',
    args.publishBinary,
    '-id',
    args.id,
    '-socket',
    sock,
    ...(args.debug || input.debug ? ['-debug'] : []),
    'serve',
  ];
  const child = childProcess().spawn(process.execPath, argv, {
    detached: true,
    // Nothing may inherit containerd's pipes: containerd waits for them to close.
    stdio: ['ignore', 'ignore', 'ignore', fd],
    env: daemonEnv(process.env, key, input.ttrpcAddress ? { TTRPC_ADDRESS: input.ttrpcAddress } : {}),
  });
  child.once('error', () => undefined); // a failed spawn is reported below, through the missing pid
  child.unref();
  if (!child.pid) throw new Error('cannot start the shim daemon');
  adjustOomScore(child.pid);
  return child.pid;
}

/** the daemon gets containerd's oom_score_adj + 1, like the reference shim */
function adjustOomScore(pid: number): void {
  try {
    const parent = parseInt(readFileSync(`/proc/${process.ppid}/oom_score_adj`, 'utf8'), 10);
    if (Number.isFinite(parent)) writeFileSync(`/proc/${pid}/oom_score_adj`, String(Math.min(parent + 1, 1000)));
  } catch {
    // a negative score needs CAP_SYS_RESOURCE; keeping the default is harmless
  }
}

export function writeAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o644 });
  renameSync(tmp, file);
}
