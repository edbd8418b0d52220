/**
 * A spare daemon: the shim daemon bundle, booted ahead of time by the C launcher's
 * `start` (src/launcher/launcher.c) and idle until the next `start` hands it a group to
 * serve. Node's boot (~35 ms to the first answer here, far more on a loaded node) is then
 * paid off containerd's critical path.
 *
 * The launcher binds the spare's control socket (<socket dir>/spare-<key>, the key being
 * a hash of everything that changes a daemon: the containerd address, the launcher's
 * release and name, the config file's identity and the environment) and passes it as
 * fd 3. At most one spare listens per key: the bind is the lock.
 *
 * The exchange, on one connection:
 *   launcher → connects
 *   spare    → "R<pid>\n" (it accepted this connection and no other; the path is unlinked)
 *   launcher   moves <pid> into the shim's cgroup and sets its oom score, as it would for
 *              a daemon it spawned, then sends the group's listening socket (SCM_RIGHTS)
 *              with the payload: u32 LE length, then NUL-terminated strings
 *              "tsshim-spare-1", cwd, argc, argv…, envc, env…
 *   spare      becomes that daemon (cwd, environment, argv, process name, runDaemon)
 *   spare    → "A" once it listens on the socket
 * Anything else (no answer in time, a closed connection) and the launcher kills the spare
 * and spawns a daemon as without one: a spare costs at most one cold start.
 *
 * While idle the process has nothing else to do, so it blocks in poll(2) (the event loop
 * has not started yet) and wakes once a second to check that it is still wanted: it
 * exits after its idle time, when its containerd's socket is gone or replaced (containerd
 * stopped: a spare never outlives its containerd by more than a second), or when its
 * control socket was removed or replaced (the socket dir cleaned up).
 */
import { closeSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { acceptConnection, mallocTrim, recvFdMessage, v8LowMemoryNotification, waitReadable } from '../sys/ffi.js';
import { setCommandLine, setEnvironArea } from './process-name.js';

export const SPARE_FLAG = '-spare';
/** what `ps` shows for a waiting spare: `tsshim-spare -address <containerd> -control <socket>` */
export const SPARE_PROCESS_NAME = 'tsshim-spare';
const CONTROL_FD = 3;
const PAYLOAD_VERSION = 'tsshim-spare-1';
const CHECK_MS = 1000;
/** how long the launcher may take to send the group once we said we are ready */
const PAYLOAD_MS = 2000;
const MAX_PAYLOAD = 4 << 20;

export interface SpareArgs {
  controlPath: string;
  /** containerd's address (unix://… or a path); undefined ("-") for a tsrun spare, which serves no containerd */
  address: string | undefined;
  idleSec: number;
}

/** `… <boot>.cjs -spare <control path> <address | -> <idle s> <padding>`; undefined if not a spare */
export function parseSpareArgs(argv: string[]): SpareArgs | undefined {
  if (argv[0] !== SPARE_FLAG || argv.length < 4) return undefined;
  const idleSec = Number(argv[3]);
  if (!Number.isInteger(idleSec) || idleSec <= 0) return undefined;
  return { controlPath: argv[1]!, address: argv[2] === '-' ? undefined : argv[2]!, idleSec };
}

/** What a `start` hands over. */
export interface Adoption {
  cwd: string;
  /** the daemon's arguments after its entry, as the launcher would spawn it */
  argv: string[];
  env: Record<string, string>;
  /** the group's listening socket (close-on-exec) */
  listenerFd: number;
  /** the connection to the launcher, for the final "A" */
  connection: number;
}

/** What any hand-over carries: fixed header fields, then argv and the environment, and fds. */
export interface HandOver {
  header: string[];
  argv: string[];
  env: Record<string, string>;
  /** received with the payload (close-on-exec), the caller's */
  fds: number[];
  connection: number;
}

/** What a kind of spare expects: its payload's version and header fields, and what `ps` shows while it waits. */
export interface HandOverForm {
  version: string;
  headerFields: number;
  waitingCommandLine: string[];
}

function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

function socketPathOf(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

/**
 * Waits (blocking) for a `start` to adopt us. undefined: idle time over, containerd
 * gone, the control socket gone, or a launcher that did not finish the exchange; the
 * caller exits.
 */
export function waitForAdoption(a: SpareArgs): Adoption | undefined {
  if (a.address === undefined) return undefined;
  const h = waitForHandOver(a, {
    version: PAYLOAD_VERSION,
    headerFields: 1,
    waitingCommandLine: [SPARE_PROCESS_NAME, '-address', a.address, '-control', a.controlPath],
  });
  if (!h) return undefined;
  const [listenerFd, ...extra] = h.fds;
  for (const fd of extra) closeSync(fd);
  if (listenerFd === undefined) {
    closeSync(h.connection);
    return undefined;
  }
  return { cwd: h.header[0]!, argv: h.argv, env: h.env, listenerFd, connection: h.connection };
}

/**
 * Waits (blocking) for the hand-over to a spare of any kind. undefined: idle time over,
 * the control socket gone or replaced, containerd gone (a shim's spare), or a peer that
 * did not finish the exchange; the caller exits.
 */
export function waitForHandOver(a: SpareArgs, form: HandOverForm): HandOver | undefined {
  // what `ps` shows while we wait (the argv area was padded by the launcher for the
  // command line we take on later)
  setCommandLine(form.waitingCommandLine);
  // the file the launcher bound for us just before it started us (a socket's fstat
  // gives the socket's inode, not the file's)
  const controlIno = inode(a.controlPath);
  const containerdSocket = a.address === undefined ? undefined : socketPathOf(a.address);
  const containerdIno = containerdSocket === undefined ? undefined : inode(containerdSocket);
  if (controlIno === undefined || (containerdSocket !== undefined && containerdIno === undefined)) return quit(a, controlIno);
  // what booting left behind (garbage, freed C heap) is given back before the wait, as a
  // daemon does when idle (memory-trimmer.ts): a spare may wait for minutes
  try {
    v8LowMemoryNotification();
  } catch {
    // a node without the symbol: malloc only
  }
  mallocTrim();
  const deadline = Date.now() + a.idleSec * 1000;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return quit(a, controlIno);
    if (waitReadable(CONTROL_FD, Math.min(CHECK_MS, left))) break;
    if ((containerdSocket !== undefined && inode(containerdSocket) !== containerdIno) || inode(a.controlPath) !== controlIno) return quit(a, controlIno);
  }
  const connection = acceptConnection(CONTROL_FD);
  // from here on we belong to this launcher: nobody else may find us
  quit(a, controlIno);
  try {
    writeSync(connection, `R${process.pid}\n`);
    const h = receive(connection, form);
    if (!h) closeSync(connection);
    return h;
  } catch {
    closeSync(connection);
    return undefined;
  }
}

/** stop listening; the path is removed only while it is still ours */
function quit(a: SpareArgs, controlIno: number | undefined): undefined {
  if (controlIno !== undefined && inode(a.controlPath) === controlIno) {
    try {
      unlinkSync(a.controlPath);
    } catch {
      /* gone already */
    }
  }
  closeSync(CONTROL_FD);
  return undefined;
}

function receive(connection: number, form: HandOverForm): HandOver | undefined {
  const deadline = Date.now() + PAYLOAD_MS;
  let fds: number[] | undefined;
  let data = Buffer.alloc(0);
  let want = -1;
  const dropFds = (): undefined => {
    fds?.forEach((fd) => closeSync(fd));
    return undefined;
  };
  while (want < 0 || data.length < want + 4) {
    const left = deadline - Date.now();
    if (left <= 0 || !waitReadable(connection, left)) {
      if (Date.now() >= deadline) return dropFds();
      continue;
    }
    if (fds === undefined) {
      const m = recvFdMessage(connection);
      if (m.kind === 'eof') return dropFds();
      if (m.kind === 'again') continue;
      if (m.kind === 'fds') fds = m.fds;
      data = Buffer.concat([data, m.data]);
    } else {
      const chunk = Buffer.alloc(64 * 1024);
      const n = readSync(connection, chunk);
      if (n === 0) return dropFds();
      data = Buffer.concat([data, chunk.subarray(0, n)]);
    }
    if (want < 0 && data.length >= 4) {
      want = data.readUInt32LE(0);
      if (want > MAX_PAYLOAD) return dropFds();
    }
  }
  if (fds === undefined) return undefined;
  const fields = data.subarray(4, 4 + want).toString('utf8').split('\0');
  let i = 0;
  const next = (): string => {
    if (i >= fields.length) throw new Error('short spare payload');
    return fields[i++]!;
  };
  if (next() !== form.version) return dropFds();
  const header = Array.from({ length: form.headerFields }, next);
  const argv = Array.from({ length: Number(next()) }, next);
  const env: Record<string, string> = {};
  const envc = Number(next());
  for (let k = 0; k < envc; k++) {
    const entry = next();
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { header, argv, env, fds, connection };
}

/** The environment of the process we become: exactly this one, in process.env and in what `ps e` shows. */
export function replaceEnvironment(env: Record<string, string>): void {
  for (const name of Object.keys(process.env)) delete process.env[name];
  Object.assign(process.env, env);
  setEnvironArea(Object.entries(env).map(([k, v]) => `${k}=${v}`));
}

/** Become the daemon a spawned `start` would have made: its cwd and exactly its environment. */
export function applyAdoption(adoption: Adoption): void {
  process.chdir(adoption.cwd);
  replaceEnvironment(adoption.env);
}

/** tell the launcher we serve; it may now print the address */
export function confirmAdoption(adoption: Adoption): void {
  try {
    writeSync(adoption.connection, 'A');
  } finally {
    closeSync(adoption.connection);
  }
}
