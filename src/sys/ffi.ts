/**
 * Every foreign call of the shim, behind typed functions. This is the only module that
 * touches ffi-rs. libc is opened on the first call, never at import time: loading ffi-rs
 * costs 10-20 ms, which a `delete` or `-v` invocation must not pay.
 *
 * ffi-rs facts this module is built around (see host-notes):
 * - `errno` is only meaningful when the return value says the call failed.
 * - variadic functions (prctl, ioctl, fcntl) are declared with fixed 64-bit integer args.
 * - a Buffer passed as U8Array is seen in place by C: fine for flat structs (siginfo_t,
 *   winsize). Structs that hold pointers (msghdr) must live in malloc'd memory whose
 *   address we know, so they are built in one `NativeArena`.
 */
import { closeSync, existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type * as FfiRs from 'ffi-rs';
import { ShimError, type ErrorCode } from '../core/errors.js';

/** A failed system call, with the errno name ('EAGAIN') and number. */
export class SysError extends ShimError {
  readonly errno: string;
  readonly errnoCode: number;
  readonly syscall: string;
  constructor(syscall: string, errnoCode: number, detail?: string) {
    const errno = errnoName(errnoCode);
    super(errorCodeFor(errno), `${syscall}${detail ? ` ${detail}` : ''}: ${errno} (errno ${errnoCode})`);
    this.name = 'SysError';
    this.errno = errno;
    this.errnoCode = errnoCode;
    this.syscall = syscall;
  }
}

let errnoNames: Map<number, string> | undefined;
function errnoName(code: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(osConstants.errno)) {
      // EWOULDBLOCK == EAGAIN and EDEADLOCK == EDEADLK on Linux: keep the usual names
      if (!errnoNames.has(value)) errnoNames.set(value, name);
    }
  }
  return errnoNames.get(code) ?? `errno${code}`;
}

function errorCodeFor(errno: string): ErrorCode {
  switch (errno) {
    case 'ENOENT':
    case 'ESRCH':
    case 'ECHILD':
      return 'NotFound';
    case 'EEXIST':
    case 'EBUSY':
      return 'AlreadyExists';
    case 'EPERM':
    case 'EACCES':
      return 'PermissionDenied';
    case 'EINVAL':
    case 'EBADF':
    case 'ENOTTY':
    case 'ENOTSOCK':
      return 'InvalidArgument';
    case 'EAGAIN':
    case 'EINTR':
      return 'Unavailable';
    case 'ENOMEM':
    case 'EMFILE':
    case 'ENFILE':
    case 'ENOSPC':
      return 'ResourceExhausted';
    default:
      return 'Internal';
  }
}

// ---- constants (x86_64 / generic Linux) ----------------------------------------------

const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;

const P_ALL = 0;
const P_PID = 1;
const WNOHANG = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;

/** si_code values for SIGCHLD */
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;

const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
const FIONREAD = 0x541b;

const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;

const MSG_DONTWAIT = 0x40;
const MSG_CTRUNC = 0x08;
const MSG_CMSG_CLOEXEC = 0x40000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_SEMAPHORE = 1;

export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
export const MS_MOVE = 8192;
export const MS_REC = 16384;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
export const MS_SHARED = 1 << 20;

export const MNT_FORCE = 1;
export const MNT_DETACH = 2;
export const MNT_EXPIRE = 4;
export const UMOUNT_NOFOLLOW = 8;

// ---- lazy libc -----------------------------------------------------------------------

const LIB = 'libc';

type Ffi = typeof FfiRs;
interface WithErrno<T> {
  value: T;
  errnoCode: number;
}
type Fn<T> = (args: unknown[]) => WithErrno<T>;

interface Libc {
  ffi: Ffi;
  prctl: Fn<number>;
  prctlOut: Fn<number>;
  waitid: Fn<number>;
  ioctlBuf: Fn<number>;
  fcntl: Fn<number>;
  eventfd: Fn<number>;
  recvmsg: Fn<number>;
  sendmsg: Fn<number>;
  dup2: Fn<number>;
  mount: Fn<number>;
  umount2: Fn<number>;
  malloc: (args: unknown[]) => number;
  mallocTrim: (args: unknown[]) => number;
  memsetExternal: (args: unknown[]) => FfiRs.JsExternal;
  socketpair: Fn<number>;
  pipe2: Fn<number>;
  close: Fn<number>;
  posixSpawn: Fn<number>;
  spawnActionsInit: Fn<number>;
  spawnAttrInit: Fn<number>;
  spawnAttrDestroy: Fn<number>;
  spawnAttrSetFlags: Fn<number>;
  spawnAttrSetSigMask: Fn<number>;
  spawnAttrSetSigDefault: Fn<number>;
  spawnActionsDestroy: Fn<number>;
  spawnActionsAddDup2: Fn<number>;
  spawnActionsAddOpen: Fn<number>;
  poll: Fn<number>;
  accept4: Fn<number>;
  socket: Fn<number>;
  connect: Fn<number>;
}

let libc: Libc | undefined;

/**
 * ffi-rs's loader tells glibc from musl with process.report.getReport(), which gathers a
 * whole diagnostic report (~6 ms, on every shim boot). On a glibc system (the dynamic
 * loader's name says so) we answer that question for it, during the require only.
 */
function requireFfiRs(): Ffi {
  const report = process.report as unknown as { getReport: () => unknown } | undefined;
  if (!report || !existsSync('/lib64/ld-linux-x86-64.so.2') && !existsSync('/lib/ld-linux-aarch64.so.1')) {
    return loadFfiRsModule();
  }
  const original = report.getReport;
  report.getReport = () => ({ header: { glibcVersionRuntime: 'glibc' } });
  try {
    return loadFfiRsModule();
  } finally {
    report.getReport = original;
  }
}

/**
 * Our CommonJS bundles (the daemon, tsrun) have a `require`, and this literal
 * require('ffi-rs') puts ffi-rs's JS loader into them, under their code cache; only its
 * native part is resolved from node_modules at run time (scripts/build-cached-bundle.mjs).
 * Unbundled (tests, dist/src) there is no `require`; createRequire is only looked up then,
 * since importing node:module loads the ES module loader behind it (~1 ms of a boot).
 */
function loadFfiRsModule(): Ffi {
  if (typeof require === 'function') return require('ffi-rs') as Ffi;
  return process.getBuiltinModule('node:module').createRequire(import.meta.url)('ffi-rs') as Ffi;
}

function load(): Libc {
  if (libc) return libc;
  const ffi = requireFfiRs();
  const D = ffi.DataType;
  ffi.open({ library: LIB, path: 'libc.so.6' });
  // ffi.define() names the C function after the key; aliases (prctlOut) need their own
  const fn =
    (funcName: string, retType: FfiRs.DataType, paramsType: FfiRs.DataType[], errno = true) =>
    (paramsValue: unknown[]) =>
      ffi.load({ library: LIB, funcName, retType, paramsType, paramsValue, errno }) as never;
  libc = {
    ffi,
    prctl: fn('prctl', D.I32, [D.I32, D.I64, D.I64, D.I64, D.I64]),
    // prctl options whose arg2 is an int* the kernel writes to
    prctlOut: fn('prctl', D.I32, [D.I32, D.U8Array]),
    waitid: fn('waitid', D.I32, [D.I32, D.I32, D.U8Array, D.I32]),
    ioctlBuf: fn('ioctl', D.I32, [D.I32, D.I64, D.U8Array]),
    fcntl: fn('fcntl', D.I32, [D.I32, D.I32, D.I64]),
    eventfd: fn('eventfd', D.I32, [D.I32, D.I32]),
    recvmsg: fn('recvmsg', D.I64, [D.I32, D.I64, D.I32]),
    sendmsg: fn('sendmsg', D.I64, [D.I32, D.I64, D.I32]),
    dup2: fn('dup2', D.I32, [D.I32, D.I32]),
    mount: fn('mount', D.I32, [D.String, D.String, D.String, D.I64, D.String]),
    umount2: fn('umount2', D.I32, [D.String, D.I32]),
    malloc: fn('malloc', D.I64, [D.I64], false),
    mallocTrim: fn('malloc_trim', D.I32, [D.I64], false),
    // memset returns its first argument: how we get an External for a known address
    memsetExternal: fn('memset', D.External, [D.I64, D.I32, D.I64], false),
    socketpair: fn('socketpair', D.I32, [D.I32, D.I32, D.I32, D.U8Array]),
    pipe2: fn('pipe2', D.I32, [D.U8Array, D.I32]),
    close: fn('close', D.I32, [D.I32]),
    // posix_spawn and its file actions return an error number instead of setting errno; they
    // are still loaded with errno: true, because only then does ffi-rs hand back the
    // { value } the callers read (with false it returns the bare number)
    posixSpawn: fn('posix_spawn', D.I32, [D.I64, D.String, D.I64, D.I64, D.I64, D.I64]),
    spawnActionsInit: fn('posix_spawn_file_actions_init', D.I32, [D.I64]),
    spawnAttrInit: fn('posix_spawnattr_init', D.I32, [D.I64]),
    spawnAttrDestroy: fn('posix_spawnattr_destroy', D.I32, [D.I64]),
    spawnAttrSetFlags: fn('posix_spawnattr_setflags', D.I32, [D.I64, D.I32]),
    spawnAttrSetSigMask: fn('posix_spawnattr_setsigmask', D.I32, [D.I64, D.I64]),
    spawnAttrSetSigDefault: fn('posix_spawnattr_setsigdefault', D.I32, [D.I64, D.I64]),
    spawnActionsDestroy: fn('posix_spawn_file_actions_destroy', D.I32, [D.I64]),
    spawnActionsAddDup2: fn('posix_spawn_file_actions_adddup2', D.I32, [D.I64, D.I32, D.I32]),
    spawnActionsAddOpen: fn('posix_spawn_file_actions_addopen', D.I32, [D.I64, D.I32, D.String, D.I32, D.I32]),
    poll: fn('poll', D.I32, [D.U8Array, D.I64, D.I32]),
    accept4: fn('accept4', D.I32, [D.I32, D.I64, D.I64, D.I32]),
    socket: fn('socket', D.I32, [D.I32, D.I32, D.I32]),
    connect: fn('connect', D.I32, [D.I32, D.U8Array, D.I32]),
  };
  return libc;
}

/** The C return value, or a SysError when it is negative (errno is only read then). */
function check<T extends number>(syscall: string, r: WithErrno<T>, detail?: string): T {
  if (r.value < 0) throw new SysError(syscall, r.errnoCode, detail);
  return r.value;
}

/** True once libc has been opened (lets tests assert laziness). */
export function isLoaded(): boolean {
  return libc !== undefined;
}

// ---- process / reaping ---------------------------------------------------------------

/** prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to this process. */
export function setChildSubreaper(on = true): void {
  check('prctl(PR_SET_CHILD_SUBREAPER)', load().prctl([PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0]));
}

/** prctl(PR_GET_CHILD_SUBREAPER) */
export function isChildSubreaper(): boolean {
  const out = Buffer.alloc(4);
  check('prctl(PR_GET_CHILD_SUBREAPER)', load().prctlOut([PR_GET_CHILD_SUBREAPER, out]));
  return out.readInt32LE(0) !== 0;
}

/** One waitable child as seen by waitid. */
export interface ChildExit {
  pid: number;
  /** si_code: CLD_EXITED, CLD_KILLED or CLD_DUMPED */
  code: number;
  /** si_status: the exit code (CLD_EXITED) or the signal number */
  status: number;
}

/** exit code as a shell reports it: the code, or 128 + signal number */
export function exitStatusOf(e: ChildExit): number {
  return e.code === CLD_EXITED ? e.status : 128 + e.status;
}

// siginfo_t is 128 bytes; one buffer is enough because JS is single-threaded
let siginfo: Buffer | undefined;

function readSiginfo(buf: Buffer): ChildExit | null {
  const pid = buf.readInt32LE(16);
  if (pid === 0) return null; // WNOHANG and nothing waitable
  return { pid, code: buf.readInt32LE(8), status: buf.readInt32LE(24) };
}

/**
 * waitid(P_ALL, 0, &si, WEXITED|WNOHANG|WNOWAIT): the first zombie child, left waitable.
 * null when no child has exited yet, or when there are no children at all.
 */
export function waitidPeekAny(): ChildExit | null {
  siginfo ??= Buffer.alloc(128);
  siginfo.fill(0);
  const r = load().waitid([P_ALL, 0, siginfo, WEXITED | WNOHANG | WNOWAIT]);
  if (r.value < 0) {
    if (errnoName(r.errnoCode) === 'ECHILD') return null;
    throw new SysError('waitid(P_ALL)', r.errnoCode);
  }
  return readSiginfo(siginfo);
}

/**
 * waitid(P_PID, pid, &si, WEXITED|WNOHANG): reaps `pid` if it has exited.
 * null when it is still running. Throws SysError ECHILD when pid is not our child.
 */
export function waitidReap(pid: number): { pid: number; exitStatus: number; exit: ChildExit } | null {
  siginfo ??= Buffer.alloc(128);
  siginfo.fill(0);
  check('waitid(P_PID)', load().waitid([P_PID, pid, siginfo, WEXITED | WNOHANG]), String(pid));
  const e = readSiginfo(siginfo);
  return e ? { pid: e.pid, exitStatus: exitStatusOf(e), exit: e } : null;
}

// ---- terminals -----------------------------------------------------------------------

/** ioctl(fd, TIOCSWINSZ, {rows, cols, 0, 0}) */
export function setWinsize(fd: number, rows: number, cols: number): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows, 0);
  ws.writeUInt16LE(cols, 2);
  check('ioctl(TIOCSWINSZ)', load().ioctlBuf([fd, TIOCSWINSZ, ws]), `fd ${fd}`);
}

/** ioctl(fd, TIOCGWINSZ) */
export function getWinsize(fd: number): { rows: number; cols: number } {
  const ws = Buffer.alloc(8);
  check('ioctl(TIOCGWINSZ)', load().ioctlBuf([fd, TIOCGWINSZ, ws]), `fd ${fd}`);
  return { rows: ws.readUInt16LE(0), cols: ws.readUInt16LE(2) };
}

/** ioctl(fd, FIONREAD): bytes written to a pipe and not read yet (either end of it) */
export function unreadBytes(fd: number): number {
  const n = Buffer.alloc(4);
  check('ioctl(FIONREAD)', load().ioctlBuf([fd, FIONREAD, n]), `fd ${fd}`);
  return n.readInt32LE(0);
}

// ---- fd flags ------------------------------------------------------------------------

export function setNonBlocking(fd: number, on: boolean): void {
  const l = load();
  const flags = check('fcntl(F_GETFL)', l.fcntl([fd, F_GETFL, 0]), `fd ${fd}`);
  const next = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (next !== flags) check('fcntl(F_SETFL)', l.fcntl([fd, F_SETFL, next]), `fd ${fd}`);
}

export function isNonBlocking(fd: number): boolean {
  return (check('fcntl(F_GETFL)', load().fcntl([fd, F_GETFL, 0]), `fd ${fd}`) & O_NONBLOCK) !== 0;
}

export function setCloseOnExec(fd: number, on: boolean): void {
  const l = load();
  const flags = check('fcntl(F_GETFD)', l.fcntl([fd, F_GETFD, 0]), `fd ${fd}`);
  const next = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if (next !== flags) check('fcntl(F_SETFD)', l.fcntl([fd, F_SETFD, next]), `fd ${fd}`);
}

/** a second descriptor for the same open file, close-on-exec, numbered 3 or above */
export function dupCloseOnExec(fd: number): number {
  return check('fcntl(F_DUPFD_CLOEXEC)', load().fcntl([fd, F_DUPFD_CLOEXEC, 3]), `fd ${fd}`);
}

export function isCloseOnExec(fd: number): boolean {
  return (check('fcntl(F_GETFD)', load().fcntl([fd, F_GETFD, 0]), `fd ${fd}`) & FD_CLOEXEC) !== 0;
}

/** eventfd(initval, flags); close it with fs.closeSync. */
export function eventfd(initval = 0, flags = EFD_CLOEXEC): number {
  return check('eventfd', load().eventfd([initval, flags]));
}

// ---- SCM_RIGHTS ----------------------------------------------------------------------

/**
 * Native memory for recvmsg: msghdr, one iovec, a control buffer and a data buffer, in
 * one malloc'd block (never freed: it is reused by every call, JS being single-threaded).
 */
interface NativeArena {
  addr: number;
  view: Buffer;
}

const MSGHDR_OFF = 0; // 56 bytes
const IOVEC_OFF = 64; // 16 bytes
const CONTROL_OFF = 128; // CMSG_SPACE(16 fds * 4) = 80 bytes
const CONTROL_LEN = 80;
const DATA_OFF = 256;
const DATA_LEN = 4096; // runc sends the terminal's name (up to PATH_MAX) as data
const ARENA_LEN = DATA_OFF + DATA_LEN;

let arena: NativeArena | undefined;

function nativeArena(): NativeArena {
  if (arena) return arena;
  const l = load();
  const addr = l.malloc([ARENA_LEN]);
  if (!addr) throw new SysError('malloc', osConstants.errno.ENOMEM);
  const ext = l.memsetExternal([addr, 0, ARENA_LEN]);
  arena = { addr, view: l.ffi.createExternalBuffer(ext, ARENA_LEN) };
  return arena;
}

/** What one recvmsg returned. */
export type FdMessage =
  | { kind: 'fds'; fds: number[]; data: Buffer }
  | { kind: 'data'; data: Buffer } // bytes without descriptors
  | { kind: 'eof' }
  | { kind: 'again' };

/**
 * One non-blocking recvmsg on a unix stream socket, collecting SCM_RIGHTS descriptors.
 * Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and owned by the caller.
 */
export function recvFdMessage(sockFd: number): FdMessage {
  const a = nativeArena();
  const v = a.view;
  v.fill(0, 0, DATA_OFF);
  // struct iovec { void *iov_base; size_t iov_len; }
  v.writeBigUInt64LE(BigInt(a.addr + DATA_OFF), IOVEC_OFF);
  v.writeBigUInt64LE(BigInt(DATA_LEN), IOVEC_OFF + 8);
  // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags }
  v.writeBigUInt64LE(BigInt(a.addr + IOVEC_OFF), MSGHDR_OFF + 16);
  v.writeBigUInt64LE(1n, MSGHDR_OFF + 24);
  v.writeBigUInt64LE(BigInt(a.addr + CONTROL_OFF), MSGHDR_OFF + 32);
  v.writeBigUInt64LE(BigInt(CONTROL_LEN), MSGHDR_OFF + 40);
  const r = load().recvmsg([sockFd, a.addr + MSGHDR_OFF, MSG_DONTWAIT | MSG_CMSG_CLOEXEC]);
  if (r.value < 0) {
    const name = errnoName(r.errnoCode);
    if (name === 'EAGAIN') return { kind: 'again' };
    throw new SysError('recvmsg', r.errnoCode, `fd ${sockFd}`);
  }
  const fds: number[] = [];
  const controllen = Number(v.readBigUInt64LE(MSGHDR_OFF + 40));
  // walk the cmsghdr list: { size_t len; int level; int type; data[] }, 8-byte aligned
  let off = 0;
  while (off + 16 <= controllen) {
    const len = Number(v.readBigUInt64LE(CONTROL_OFF + off));
    if (len < 16) break;
    const level = v.readInt32LE(CONTROL_OFF + off + 8);
    const type = v.readInt32LE(CONTROL_OFF + off + 12);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let p = 16; p + 4 <= len; p += 4) fds.push(v.readInt32LE(CONTROL_OFF + off + p));
    }
    off += (len + 7) & ~7;
  }
  const flags = v.readInt32LE(MSGHDR_OFF + 48);
  const data = Buffer.from(v.subarray(DATA_OFF, DATA_OFF + r.value));
  if (flags & MSG_CTRUNC && fds.length === 0) {
    throw new SysError('recvmsg', osConstants.errno.EMSGSIZE, 'control data truncated');
  }
  if (fds.length > 0) return { kind: 'fds', fds, data };
  if (r.value === 0) return { kind: 'eof' };
  return { kind: 'data', data };
}

/**
 * Receives one descriptor sent with SCM_RIGHTS on a non-blocking unix socket.
 * null when nothing has arrived yet (EAGAIN). Extra descriptors in the same message are
 * closed. Throws ShimError 'Unavailable' if the peer closed without sending one.
 */
export function recvFd(sockFd: number): number | null {
  for (;;) {
    const m = recvFdMessage(sockFd);
    switch (m.kind) {
      case 'again':
        return null;
      case 'eof':
        throw new ShimError('Unavailable', `peer closed fd ${sockFd} without sending a descriptor`);
      case 'data':
        continue; // bytes ahead of the descriptor: keep reading
      case 'fds':
        for (const extra of m.fds.slice(1)) closeSync(extra);
        return m.fds[0]!;
    }
  }
}

const MSG_NOSIGNAL = 0x4000;
const POLLOUT = 4;

/**
 * Sends data with fds (SCM_RIGHTS, at most 16) on a unix stream socket, all of it: a
 * non-blocking socket whose buffer is full is waited on (poll). The fds stay the caller's.
 */
export function sendFdMessage(sockFd: number, data: Buffer, fds: number[] = []): void {
  if (fds.length > 16) throw new SysError('sendmsg', osConstants.errno.EINVAL, 'more than 16 fds');
  if (data.length === 0 || data.length > DATA_LEN) throw new SysError('sendmsg', osConstants.errno.EMSGSIZE, `${data.length} bytes`);
  const a = nativeArena();
  const v = a.view;
  let off = 0;
  while (off < data.length) {
    v.fill(0, 0, DATA_OFF);
    const chunk = data.subarray(off);
    chunk.copy(v, DATA_OFF);
    v.writeBigUInt64LE(BigInt(a.addr + DATA_OFF), IOVEC_OFF);
    v.writeBigUInt64LE(BigInt(chunk.length), IOVEC_OFF + 8);
    v.writeBigUInt64LE(BigInt(a.addr + IOVEC_OFF), MSGHDR_OFF + 16);
    v.writeBigUInt64LE(1n, MSGHDR_OFF + 24);
    // the fds go with the first byte only
    if (off === 0 && fds.length > 0) {
      const len = 16 + fds.length * 4;
      v.writeBigUInt64LE(BigInt(len), CONTROL_OFF);
      v.writeInt32LE(SOL_SOCKET, CONTROL_OFF + 8);
      v.writeInt32LE(SCM_RIGHTS, CONTROL_OFF + 12);
      fds.forEach((fd, i) => v.writeInt32LE(fd, CONTROL_OFF + 16 + i * 4));
      v.writeBigUInt64LE(BigInt(a.addr + CONTROL_OFF), MSGHDR_OFF + 32);
      v.writeBigUInt64LE(BigInt((len + 7) & ~7), MSGHDR_OFF + 40);
    }
    const r = load().sendmsg([sockFd, a.addr + MSGHDR_OFF, MSG_NOSIGNAL | MSG_DONTWAIT]);
    if (r.value < 0) {
      const name = errnoName(r.errnoCode);
      if (name === 'EAGAIN') {
        waitWritable(sockFd, 1000);
        continue;
      }
      if (name === 'EINTR') continue;
      throw new SysError('sendmsg', r.errnoCode, `fd ${sockFd}`);
    }
    off += r.value;
  }
}

/**
 * Blocks the whole process until fd can take more data (or hung up, or timeoutMs passed):
 * for a synchronous writer that found a non-blocking fd full. True when fd is ready.
 */
export function waitWritable(fd: number, timeoutMs: number): boolean {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(POLLOUT, 4);
  const r = load().poll([pfd, 1, Math.max(0, Math.trunc(timeoutMs))]);
  return r.value > 0;
}

/** dup2(2): newFd becomes a copy of oldFd (not close-on-exec) */
export function dup2(oldFd: number, newFd: number): void {
  check('dup2', load().dup2([oldFd, newFd]), `fd ${oldFd} -> ${newFd}`);
}

// ---- mounts --------------------------------------------------------------------------

/** mount(2). Absent source/fstype/data are passed as empty strings (ffi-rs has no NULL for strings). */
export function mount(source: string | undefined, target: string, fstype: string | undefined, flags: number, data?: string): void {
  check('mount', load().mount([source ?? '', target, fstype ?? '', flags, data ?? '']), target);
}

/** umount2(2), e.g. with MNT_DETACH */
export function umount2(target: string, flags = 0): void {
  check('umount2', load().umount2([target, flags]), target);
}

// ---- spawning without fork ---------------------------------------------------------------

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;
const O_RDWR = 2;

/** socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC): two connected unix stream sockets */
export function socketpair(): [number, number] {
  const out = Buffer.alloc(8);
  check('socketpair', load().socketpair([AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out]));
  return [out.readInt32LE(0), out.readInt32LE(4)];
}

/**
 * pipe2(O_CLOEXEC): a real anonymous pipe, [read end, write end]. Node has no pipe(2), and
 * src/io/pipe.ts needs a mkfifo command, which a minimal VM guest does not have.
 */
export function pipe(): [number, number] {
  const out = Buffer.alloc(8);
  check('pipe2', load().pipe2([out, SOCK_CLOEXEC])); // O_CLOEXEC == SOCK_CLOEXEC on Linux
  return [out.readInt32LE(0), out.readInt32LE(4)];
}

const POLLIN = 1;

/**
 * Blocks the whole process (the event loop too) until fd is readable, hung up, or
 * timeoutMs passed. Only for a process that has nothing else to do meanwhile: a spare
 * daemon waiting to be adopted (src/shim/spare.ts). True when fd is ready.
 */
export function waitReadable(fd: number, timeoutMs: number): boolean {
  // struct pollfd { int fd; short events; short revents; }
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(POLLIN, 4);
  const r = load().poll([pfd, 1, Math.max(0, Math.trunc(timeoutMs))]);
  if (r.value < 0) {
    if (errnoName(r.errnoCode) === 'EINTR') return false;
    throw new SysError('poll', r.errnoCode, `fd ${fd}`);
  }
  return r.value > 0;
}

/** accept4(fd, NULL, NULL, SOCK_CLOEXEC): a blocking, close-on-exec connection */
export function acceptConnection(listenFd: number): number {
  return check('accept4', load().accept4([listenFd, 0, 0, SOCK_CLOEXEC]), `fd ${listenFd}`);
}

const SOCK_NONBLOCK = 0o4000;
const SUN_PATH_MAX = 108;

/**
 * A unix stream socket connected to `address` (a path, or an abstract name starting with a
 * NUL) with the address's exact length. Node and libuv pad an abstract name to the whole
 * sun_path, so they cannot reach a socket bound with a shorter one, as runsc 2022's control
 * socket is. The connect is non-blocking: a listener whose backlog is full fails (EAGAIN)
 * instead of blocking the process. The fd (close-on-exec, non-blocking) is the caller's.
 */
export function connectUnix(address: string): number {
  const name = Buffer.from(address, 'utf8');
  const shown = address.replace(/\0/g, '@');
  if (name.length === 0 || name.length > SUN_PATH_MAX) throw new SysError('connect', osConstants.errno.ENAMETOOLONG, shown);
  // struct sockaddr_un: sa_family_t (u16), then the name; the length says where it ends
  const sockaddr = Buffer.alloc(2 + name.length);
  sockaddr.writeUInt16LE(AF_UNIX, 0);
  name.copy(sockaddr, 2);
  const l = load();
  const fd = check('socket', l.socket([AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0]));
  const r = l.connect([fd, sockaddr, sockaddr.length]);
  if (r.value < 0) {
    l.close([fd]);
    throw new SysError('connect', r.errnoCode, shown);
  }
  return fd;
}

/** close(2) for fds that Node does not own */
export function closeFd(fd: number): void {
  check('close', load().close([fd]), `fd ${fd}`);
}

/**
 * malloc_trim(0): gives the C heap's free pages back to the kernel, in every arena and in
 * the middle of a heap too (glibc only trims the top by itself). True when some memory
 * was released.
 */
export function mallocTrim(): boolean {
  return load().mallocTrim([0]) === 1;
}

/** ffi-rs's name for the node executable itself (dlopen(NULL)), opened on first use */
const SELF = 'node-self';
let selfOpen = false;

/**
 * node::LowMemoryNotification(), a C++ function the node executable exports for embedders:
 * V8 collects all it can (full GCs in memory-saving mode), shrinks its new space and gives
 * its emptied pages back. Node has no JS API for it; `global.gc()` is a plain full GC and
 * frees none of that. Blocks for the GCs (15–30 ms for a shim here). Throws when the node
 * binary does not export the symbol (a build without its C++ API).
 */
export function v8LowMemoryNotification(): void {
  // load(): ffi-rs as the libc functions already have it (requiring it again would redo
  // its glibc check on every idle trim)
  const { ffi } = load();
  if (!selfOpen) {
    // ffi-rs hands an empty path to dlopen as is: glibc then returns the main program
    ffi.open({ library: SELF, path: '' });
    selfOpen = true;
  }
  ffi.load({ library: SELF, funcName: '_ZN4node21LowMemoryNotificationEv', retType: ffi.DataType.Void, paramsType: [], paramsValue: [] });
}

/** One fd of a spawned process: a copy of one of ours, or /dev/null. */
export interface SpawnFd {
  child: number;
  from: number | 'devnull';
}

/**
 * Native memory for posix_spawn: the pid slot, the file actions object, argv and envp
 * (NULL-terminated pointer arrays) and their strings, in one malloc'd block reused by
 * every call (JS is single-threaded; posix_spawn copies what it needs before returning).
 */
const SPAWN_PID_OFF = 0;
const SPAWN_ACTIONS_OFF = 64; // posix_spawn_file_actions_t is 80 bytes on glibc x86_64
const SPAWN_PTRS_OFF = 256;
const SPAWN_MAX_PTRS = 224; // argv and envp entries, NULLs included
const SPAWN_STRINGS_OFF = SPAWN_PTRS_OFF + SPAWN_MAX_PTRS * 8;
const SPAWN_ARENA_LEN = 64 * 1024;
// posix_spawnattr_t (336 bytes on glibc x86_64) and two sigset_t (128 bytes) at the end
const SPAWN_ATTR_OFF = SPAWN_ARENA_LEN - 1024;
const SPAWN_SIGMASK_OFF = SPAWN_ARENA_LEN - 512;
const SPAWN_SIGDEF_OFF = SPAWN_ARENA_LEN - 256;
const SPAWN_STRINGS_END = SPAWN_ATTR_OFF;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
let spawnArena: NativeArena | undefined;

function spawnMemory(): NativeArena {
  if (spawnArena) return spawnArena;
  const l = load();
  const addr = l.malloc([SPAWN_ARENA_LEN]);
  if (!addr) throw new SysError('malloc', osConstants.errno.ENOMEM);
  // a zero-length memset only hands the address back as an External: every byte a spawn
  // reads is written first, and untouched pages stay out of the shim's resident memory
  const ext = l.memsetExternal([addr, 0, 0]);
  spawnArena = { addr, view: l.ffi.createExternalBuffer(ext, SPAWN_ARENA_LEN) };
  return spawnArena;
}

/**
 * posix_spawn(file, argv, envp) with the given fds and nothing else of ours (everything
 * Node opens is close-on-exec). glibc spawns with CLONE_VM|CLONE_VFORK: no copy of this
 * process's page tables, unlike fork (child_process), which costs ~1.5 ms for Node. The
 * child is not libuv's: whoever reaps this process's children (src/sys/reaper.ts) reaps
 * it. Signal dispositions are inherited as posix_spawn does: a spawned program that
 * cares (tsshim-exec does) resets them; or `resetSignals` makes the child start with every
 * signal at its default and none blocked (a program that hands them on, as runc does to the
 * container, must not inherit Node's ignored SIGPIPE).
 */
export function posixSpawn(file: string, argv: string[], envp: string[], fds: SpawnFd[], o: { resetSignals?: boolean } = {}): number {
  const l = load();
  const a = spawnMemory();
  const v = a.view;
  if (argv.length + envp.length + 2 > SPAWN_MAX_PTRS) throw new SysError('posix_spawn', osConstants.errno.E2BIG, 'too many arguments');
  // strings and the two pointer arrays
  let strOff = SPAWN_STRINGS_OFF;
  let ptrOff = SPAWN_PTRS_OFF;
  const putList = (list: string[]): number => {
    const start = a.addr + ptrOff;
    for (const s of list) {
      const bytes = Buffer.from(s, 'utf8');
      if (bytes.includes(0)) throw new SysError('posix_spawn', osConstants.errno.EINVAL, 'NUL in an argument');
      if (strOff + bytes.length + 1 > SPAWN_STRINGS_END) throw new SysError('posix_spawn', osConstants.errno.E2BIG, 'arguments too long');
      bytes.copy(v, strOff);
      v[strOff + bytes.length] = 0;
      v.writeBigUInt64LE(BigInt(a.addr + strOff), ptrOff);
      strOff += bytes.length + 1;
      ptrOff += 8;
    }
    v.writeBigUInt64LE(0n, ptrOff);
    ptrOff += 8;
    return start;
  };
  const argvAddr = putList(argv);
  const envpAddr = putList(envp);
  // every source is copied above all targets first, so no dup2 clobbers a later source
  // and none is a no-op dup2 onto itself (which would keep its close-on-exec flag)
  const top = Math.max(3, ...fds.map((f) => f.child + 1));
  const temps: number[] = [];
  const actions = a.addr + SPAWN_ACTIONS_OFF;
  let err = l.spawnActionsInit([actions]).value;
  if (err) throw new SysError('posix_spawn_file_actions_init', err);
  try {
    for (const f of fds) {
      if (f.from === 'devnull') {
        err = l.spawnActionsAddOpen([actions, f.child, '/dev/null', O_RDWR, 0]).value;
      } else {
        const t = check('fcntl(F_DUPFD_CLOEXEC)', l.fcntl([f.from, F_DUPFD_CLOEXEC, top]), `fd ${f.from}`);
        temps.push(t);
        err = l.spawnActionsAddDup2([actions, t, f.child]).value;
      }
      if (err) throw new SysError('posix_spawn_file_actions', err, `fd ${f.child}`);
    }
    let attr = 0;
    if (o.resetSignals) {
      attr = a.addr + SPAWN_ATTR_OFF;
      err = l.spawnAttrInit([attr]).value;
      if (err) throw new SysError('posix_spawnattr_init', err);
      // empty mask; every signal back to SIG_DFL, glibc's internal 32 and 33 too (left out,
      // glibc's spawn sets one with a handler of ours to SIG_IGN, and exec keeps that)
      v.fill(0, SPAWN_SIGMASK_OFF, SPAWN_SIGMASK_OFF + 128);
      v.fill(0, SPAWN_SIGDEF_OFF, SPAWN_SIGDEF_OFF + 128);
      v.writeBigUInt64LE(0xffff_ffff_ffff_ffffn, SPAWN_SIGDEF_OFF);
      err =
        l.spawnAttrSetSigMask([attr, a.addr + SPAWN_SIGMASK_OFF]).value ||
        l.spawnAttrSetSigDefault([attr, a.addr + SPAWN_SIGDEF_OFF]).value ||
        l.spawnAttrSetFlags([attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK]).value;
      if (err) {
        l.spawnAttrDestroy([attr]);
        throw new SysError('posix_spawnattr', err);
      }
    }
    try {
      err = l.posixSpawn([a.addr + SPAWN_PID_OFF, file, actions, attr, argvAddr, envpAddr]).value;
    } finally {
      if (attr) l.spawnAttrDestroy([attr]);
    }
    if (err) throw new SysError('posix_spawn', err, file);
    return v.readInt32LE(SPAWN_PID_OFF);
  } finally {
    l.spawnActionsDestroy([actions]);
    for (const t of temps) l.close([t]);
  }
}
