/**
 * The native backend's plan: what TypeScript compiles from an OCI config and the C
 * executor (helper/*.c, built to dist/native/tsshim-exec) carries out.
 *
 * ── Design note ───────────────────────────────────────────────────────────────────────
 *
 * Split of work. Namespace work cannot happen inside Node (setns/unshare affect one
 * thread of a multithreaded process, fork through FFI crashes), so a small C helper does
 * it. All policy stays here: config.json is parsed and validated in spec.ts (errors name
 * the field), paths are resolved, defaults applied (devices, /dev symlinks, cgroup mounts),
 * cgroups are created and written (cgroup-manager.ts), and what is left for the helper is
 * a flat list of system calls to make in a fixed phase order. The helper decides nothing.
 *
 * Plan format: binary TLV, written by Node into a unix socket (the helper's control fd).
 *   header  u32 magic "TSPL" | u32 version | u32 body length
 *   record  u16 tag | u16 0 | u32 length | payload
 *   payload fields in a fixed order per tag: u32 / u64 little-endian; strings as
 *           u32 n | n bytes | NUL; blobs (the seccomp BPF program) as u32 n | n bytes.
 * Why binary and not JSON lines: the C side then needs no parser beyond bounds-checked
 * reads (the helper runs as root on input derived from untrusted images and configs: the
 * less parsing there, the better), strings are used in place (their NUL is part of the
 * encoding), nothing needs escaping, and encoding is a few Buffer writes. Records that
 * order matters for (mounts, symlinks, devices; sysctls, readonly, masked) are kept in
 * plan order. Tag numbers are shared with helper/plan.h (a unit test compares them).
 * Why a socket and not a memfd: one round trip, and the same socket carries the replies.
 *
 * Starting the helper: in the shim (exits from the process's Reaper) it is started with
 * posix_spawn through FFI (vfork-style; forking Node costs ~1.5 ms) and reaped by the
 * Reaper, its exit hidden from the core; elsewhere (tsrun) through child_process. The
 * helper resets signal dispositions and the mask, and closes every fd above its control
 * fd, whatever its spawner left it.
 *
 * Frames back (helper → Node, same socket): u32 length | u8 type | payload
 *   PID   (1) i32 pid        the container process exists: ours to kill if anything fails
 *   OK    (2) i32 pid        create: set up and blocked until start; exec: execve done
 *   ERROR (3) i32 errno | message   what failed, with the path or value it failed on
 *   HOOKS (4) i32 pid        (plans with HookPause) the container process waits after its
 *                            mounts, before pivot_root: Node runs the prestart and
 *                            createRuntime hooks, then writes one byte (1) on the socket;
 *                            closing it instead makes the helper kill the container process.
 *                            createContainer/startContainer hooks run in the container
 *                            (helper/hooks.c) with a state compiled here (PlanHooks).
 * Inside the helper, helper and container child talk over a SOCK_SEQPACKET pair:
 * GO (ids mapped, cgroups joined, oom_score_adj set), READY, ERROR(errno, message).
 * The sync socket is close-on-exec, so for `exec` its EOF after READY means execve
 * succeeded, and an ERROR after READY means it failed.
 *
 * Create/start split (like runc's exec.fifo, without /proc inside the container): the
 * helper makes <state>/exec.fifo and opens it O_RDONLY|O_NONBLOCK before clone; the
 * child, fully set up, poll()s it. A FIFO read end reports nothing until a writer has
 * come, so it sleeps until `start` opens the write end (O_NONBLOCK: ENXIO means nobody
 * waits, i.e. not in the created state) and writes one byte. The child then execs. An
 * empty close (delete before start) makes it exit quietly.
 *
 * Create: the helper joins namespaces given by path (user first, mnt last), clones the
 * child with the new ones, into its cgroup2 directory (clone3 CLONE_INTO_CGROUP), writes
 * uid/gid maps and oom_score_adj, then sends GO; the child moves itself into its v1
 * cgroups ("0" into each `tasks` file) and, for a new cgroup namespace, unshares it
 * there. Why the child moves itself: a migration by another process (a pid written to
 * cgroup.procs) takes the kernel's global cgroup_threadgroup_rwsem for writing, which
 * waits for an RCU grace period, ~10 ms on this machine, more than everything else a
 * create does; a thread moving itself skips that lock. In a new user namespace the
 * child cannot write the host's cgroup files, so the helper migrates it there (while
 * the child works on its mounts). The helper exits after OK: the container init is
 * re-parented to the caller's subreaper (the shim's Reaper, told with want(pid)).
 *
 * Exec: the helper opens /proc/<init>/ns/* (all of them, while paths mean the host's),
 * joins only the pid namespace itself (it applies to children), forks into the cgroup2
 * directory, and the child, still host root in the host's mount namespace, moves itself
 * into the v1 cgroups, then joins the other namespaces (user first, mnt last; setns(mnt)
 * also puts it at the container's root).
 *
 * Protecting the helper (CVE-2019-5736 class): an exec child is inside the container's
 * pid namespace before it calls execve, and a container process could reach our binary
 * through /proc/<pid>/exe (or by making the exec target `#!/proc/self/exe`). With
 * --sealed the helper first re-executes itself from a memfd copy sealed against writes
 * (F_SEAL_WRITE|GROW|SHRINK|SEAL), so what is reachable is that copy, never the file on
 * the host; the exec child is also non-dumpable until execve. The backend passes
 * --sealed for every exec, and for a create unless the container gets a new pid
 * namespace (then nothing else in the container can see the child before it execs).
 *
 * Mount targets: every path inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT),
 * and mounts target the opened object via /proc/self/fd/<n>; a symlink in the image
 * (absolute or ..-laden) resolves inside the rootfs and cannot point a mount at the host.
 *
 * State: <root>/<id>/state.json (like runc's), written by the backend after create and
 * updated by start; <root>/<id>/exec.fifo exists from create until start. <root> is the
 * backend's root (e.g. /run/tsshim/native/<namespace>), mode 0700.
 */

/** Must match enum plan_tag in helper/plan.h. */
export const PlanTag = {
  Flags: 1,
  Namespace: 2,
  UidMap: 3,
  GidMap: 4,
  CgroupProcs: 5,
  OomScoreAdj: 6,
  ConsoleSocket: 7,
  ExecFifo: 8,
  Hostname: 9,
  Domainname: 10,
  Rootfs: 11,
  RootPropagation: 12,
  CgroupSelf: 13,
  CgroupCloneInto: 14,
  DeviceFilter: 15,
  TimeOffsets: 16,
  Mount: 20,
  Mkdir: 21,
  Symlink: 22,
  Mknod: 23,
  BindDevice: 24,
  Remount: 25,
  SetAttr: 26,
  Sysctl: 30,
  Mask: 31,
  Readonly: 32,
  Arg: 40,
  Env: 41,
  Cwd: 42,
  User: 43,
  Group: 44,
  Rlimit: 45,
  Caps: 46,
  Seccomp: 47,
  Apparmor: 48,
  PreserveFds: 49,
  ConsoleSize: 54,
  Hook: 50,
  HookArg: 51,
  HookEnv: 52,
  HookState: 53,
} as const;

/** Must match enum plan_flag in helper/plan.h. */
export const PlanFlag = {
  Terminal: 1 << 0,
  NoNewPrivs: 1 << 1,
  RootReadonly: 1 << 2,
  NoPivot: 1 << 3,
  WaitStart: 1 << 4,
  DevConsole: 1 << 5,
  SetgroupsDeny: 1 << 6,
  Setsid: 1 << 7,
  HookPause: 1 << 8,
} as const;

/** Must match enum hook_kind and HOOK_PID_WIDTH in helper/plan.h. */
export const HookKindCode = { createContainer: 0, startContainer: 1 } as const;
export const HOOK_PID_WIDTH = 10;

export const PLAN_MAGIC = 0x4c505354; // "TSPL"
export const PLAN_VERSION = 1;

/** Must match enum mount_kind in helper/plan.h. */
export const MountKind = { Fs: 0, BindDir: 1, BindFile: 2 } as const;
export type MountKindValue = (typeof MountKind)[keyof typeof MountKind];

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export type RootfsOp =
  | { op: 'mount'; source: string; target: string; fstype: string; flags: number; propagation: number; data: string; kind: MountKindValue }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'symlink'; linkTarget: string; path: string }
  | { op: 'mknod'; path: string; mode: number; major: number; minor: number; uid: number; gid: number }
  | { op: 'bindDevice'; hostPath: string; path: string }
  | { op: 'remount'; path: string; flags: number }
  /** mount_setattr(2) with AT_RECURSIVE: MOUNT_ATTR_* bits on the mount at path and below */
  | { op: 'setattr'; path: string; set: number; clear: number };

/** after pivot_root, in this order */
export type FinalOp = { op: 'sysctl'; key: string; value: string } | { op: 'readonly'; path: string } | { op: 'mask'; path: string };

export interface Rlimit {
  resource: number;
  soft: bigint;
  hard: bigint;
}

export interface CapabilitySets {
  bounding: bigint;
  effective: bigint;
  inheritable: bigint;
  permitted: bigint;
  ambient: bigint;
}

export interface ProcessPlan {
  args: string[];
  env: string[];
  cwd: string;
  user?: { uid: number; gid: number; umask?: number; additionalGids: number[] };
  rlimits: Rlimit[];
  capabilities?: CapabilitySets;
  noNewPrivileges: boolean;
  terminal: boolean;
  /** the pty's size, set before the process runs (an exec runs at once: sizing it afterwards raced) */
  consoleSize?: { height: number; width: number };
  /** compiled BPF program (8 bytes per instruction) and SECCOMP_FILTER_FLAG_* */
  seccomp?: { program: Buffer; flags: number };
  /** AppArmor profile the process gets at execve (absent: the caller's, as runc leaves it) */
  apparmorProfile?: string;
  oomScoreAdj?: number;
  preserveFds: number;
}

export interface NamespaceStep {
  /** CLONE_NEW* value */
  type: number;
  /** join the namespace at this path; absent: create a new one */
  path?: string;
}

/**
 * The OCI hooks the helper handles. createContainer and startContainer run in the
 * container (helper/hooks.c) with a state JSON compiled here, whose pid field (exactly
 * HOOK_PID_WIDTH bytes at pidOffset, space-padded) the container process fills with its
 * own pid. pause: the container process stops before pivot_root and the helper sends
 * FRAME_HOOKS, for the prestart and createRuntime hooks the Node side runs.
 */
export interface PlanHooks {
  pause: boolean;
  inContainer: Array<{ kind: 0 | 1; path: string; args: string[]; env: string[]; timeout?: number }>;
  states: Array<{ which: 0 | 1; json: string; pidOffset: number }>;
}

export interface Plan {
  namespaces: NamespaceStep[];
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
  /** deny setgroups(2) in a new user namespace (no supplementary groups can be set then) */
  setgroupsDeny: boolean;
  /** cgroup.procs files the helper writes the container process's pid into (a slow migration) */
  cgroupProcs: string[];
  /** v1 `tasks` files the container process writes "0" to, moving itself (fast) */
  cgroupSelf: string[];
  /** cgroup2 directory the container process is cloned into (clone3 CLONE_INTO_CGROUP) */
  cgroupCloneInto?: string;
  /** for a new time namespace: the /proc/self/timens_offsets text ("<clock> <s> <ns>\n"...) */
  timeOffsets?: string;
  /**
   * device rules as an eBPF program for that cgroup2 directory (device-filter.ts);
   * required: a failure to attach it fails create (pure cgroup2); where the v1 devices
   * controller enforces the same rules (hybrid), the helper goes on without it
   */
  deviceFilter?: { cgroup: string; program: Buffer; required: boolean };
  consoleSocket?: string;
  execFifo?: string;
  hostname?: string;
  domainname?: string;
  /** absolute host path; absent for exec */
  rootfs?: string;
  rootPropagation: number;
  rootReadonly: boolean;
  noPivot: boolean;
  /** bind the pty slave onto /dev/console */
  devConsole: boolean;
  setsid: boolean;
  rootfsOps: RootfsOp[];
  finalOps: FinalOp[];
  process: ProcessPlan;
  hooks?: PlanHooks;
}

/** Builds the byte stream: fields are appended to a growing list of chunks. */
class PlanWriter {
  private readonly chunks: Buffer[] = [];
  private record: Buffer[] = [];

  begin(): void {
    this.record = [];
  }

  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.record.push(b);
    return this;
  }

  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.record.push(b);
    return this;
  }

  u64(v: bigint | number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
    this.record.push(b);
    return this;
  }

  str(s: string): this {
    const bytes = Buffer.from(s, 'utf8');
    // the C side keeps strings in place as C strings: an embedded NUL would cut them
    if (bytes.includes(0)) throw new TypeError(`plan string contains a NUL byte: ${JSON.stringify(s)}`);
    this.u32(bytes.length);
    this.record.push(bytes, Buffer.alloc(1));
    return this;
  }

  blob(b: Buffer): this {
    this.u32(b.length);
    this.record.push(b);
    return this;
  }

  end(tag: number): void {
    const payload = Buffer.concat(this.record);
    const head = Buffer.alloc(8);
    head.writeUInt16LE(tag, 0);
    head.writeUInt16LE(0, 2);
    head.writeUInt32LE(payload.length, 4);
    this.chunks.push(head, payload);
  }

  finish(): Buffer {
    const body = Buffer.concat(this.chunks);
    const head = Buffer.alloc(12);
    head.writeUInt32LE(PLAN_MAGIC, 0);
    head.writeUInt32LE(PLAN_VERSION, 4);
    head.writeUInt32LE(body.length, 8);
    return Buffer.concat([head, body]);
  }
}

export function planFlags(plan: Plan): number {
  let f = 0;
  if (plan.process.terminal) f |= PlanFlag.Terminal;
  if (plan.process.noNewPrivileges) f |= PlanFlag.NoNewPrivs;
  if (plan.rootReadonly) f |= PlanFlag.RootReadonly;
  if (plan.noPivot) f |= PlanFlag.NoPivot;
  if (plan.execFifo) f |= PlanFlag.WaitStart;
  if (plan.devConsole) f |= PlanFlag.DevConsole;
  if (plan.setgroupsDeny) f |= PlanFlag.SetgroupsDeny;
  if (plan.setsid) f |= PlanFlag.Setsid;
  if (plan.hooks?.pause) f |= PlanFlag.HookPause;
  return f;
}

/** The plan as the helper reads it from its control fd. */
export function encodePlan(plan: Plan): Buffer {
  const w = new PlanWriter();
  const rec = (tag: number, fill: (w: PlanWriter) => void): void => {
    w.begin();
    fill(w);
    w.end(tag);
  };
  rec(PlanTag.Flags, (w) => w.u32(planFlags(plan)));
  for (const ns of plan.namespaces) rec(PlanTag.Namespace, (w) => w.u32(ns.type).str(ns.path ?? ''));
  for (const m of plan.uidMappings) rec(PlanTag.UidMap, (w) => w.u32(m.containerID).u32(m.hostID).u32(m.size));
  for (const m of plan.gidMappings) rec(PlanTag.GidMap, (w) => w.u32(m.containerID).u32(m.hostID).u32(m.size));
  for (const f of plan.cgroupProcs) rec(PlanTag.CgroupProcs, (w) => w.str(f));
  for (const f of plan.cgroupSelf) rec(PlanTag.CgroupSelf, (w) => w.str(f));
  if (plan.cgroupCloneInto) rec(PlanTag.CgroupCloneInto, (w) => w.str(plan.cgroupCloneInto!));
  if (plan.timeOffsets) rec(PlanTag.TimeOffsets, (w) => w.str(plan.timeOffsets!));
  if (plan.deviceFilter) rec(PlanTag.DeviceFilter, (w) => w.str(plan.deviceFilter!.cgroup).u32(plan.deviceFilter!.required ? 1 : 0).blob(plan.deviceFilter!.program));
  if (plan.process.oomScoreAdj !== undefined) rec(PlanTag.OomScoreAdj, (w) => w.i32(plan.process.oomScoreAdj!));
  if (plan.consoleSocket) rec(PlanTag.ConsoleSocket, (w) => w.str(plan.consoleSocket!));
  if (plan.execFifo) rec(PlanTag.ExecFifo, (w) => w.str(plan.execFifo!));
  if (plan.hostname !== undefined) rec(PlanTag.Hostname, (w) => w.str(plan.hostname!));
  if (plan.domainname !== undefined) rec(PlanTag.Domainname, (w) => w.str(plan.domainname!));
  if (plan.rootfs) {
    rec(PlanTag.Rootfs, (w) => w.str(plan.rootfs!));
    rec(PlanTag.RootPropagation, (w) => w.u64(plan.rootPropagation));
  }
  for (const op of plan.rootfsOps) {
    switch (op.op) {
      case 'mount':
        rec(PlanTag.Mount, (w) => w.str(op.source).str(op.target).str(op.fstype).u64(op.flags).u64(op.propagation).str(op.data).u32(op.kind));
        break;
      case 'mkdir':
        rec(PlanTag.Mkdir, (w) => w.str(op.path).u32(op.mode));
        break;
      case 'symlink':
        rec(PlanTag.Symlink, (w) => w.str(op.linkTarget).str(op.path));
        break;
      case 'mknod':
        rec(PlanTag.Mknod, (w) => w.str(op.path).u32(op.mode).u32(op.major).u32(op.minor).u32(op.uid).u32(op.gid));
        break;
      case 'bindDevice':
        rec(PlanTag.BindDevice, (w) => w.str(op.hostPath).str(op.path));
        break;
      case 'remount':
        rec(PlanTag.Remount, (w) => w.str(op.path).u64(op.flags));
        break;
      case 'setattr':
        rec(PlanTag.SetAttr, (w) => w.str(op.path).u64(op.set).u64(op.clear));
        break;
    }
  }
  for (const op of plan.finalOps) {
    if (op.op === 'sysctl') rec(PlanTag.Sysctl, (w) => w.str(op.key).str(op.value));
    else rec(op.op === 'mask' ? PlanTag.Mask : PlanTag.Readonly, (w) => w.str(op.path));
  }
  const p = plan.process;
  for (const a of p.args) rec(PlanTag.Arg, (w) => w.str(a));
  for (const e of p.env) rec(PlanTag.Env, (w) => w.str(e));
  rec(PlanTag.Cwd, (w) => w.str(p.cwd));
  if (p.user) {
    const u = p.user;
    rec(PlanTag.User, (w) => w.u32(u.uid).u32(u.gid).u32(u.umask ?? 0xffffffff));
    for (const g of u.additionalGids) rec(PlanTag.Group, (w) => w.u32(g));
  }
  for (const r of p.rlimits) rec(PlanTag.Rlimit, (w) => w.u32(r.resource).u64(r.soft).u64(r.hard));
  if (p.capabilities) {
    const c = p.capabilities;
    rec(PlanTag.Caps, (w) => w.u64(c.bounding).u64(c.effective).u64(c.inheritable).u64(c.permitted).u64(c.ambient));
  }
  if (p.seccomp) rec(PlanTag.Seccomp, (w) => w.u32(p.seccomp!.flags).blob(p.seccomp!.program));
  if (p.apparmorProfile) rec(PlanTag.Apparmor, (w) => w.str(p.apparmorProfile!));
  if (p.preserveFds) rec(PlanTag.PreserveFds, (w) => w.u32(p.preserveFds));
  if (p.terminal && p.consoleSize?.height && p.consoleSize.width) rec(PlanTag.ConsoleSize, (w) => w.u32(p.consoleSize!.height).u32(p.consoleSize!.width));
  for (const h of plan.hooks?.inContainer ?? []) {
    rec(PlanTag.Hook, (w) => w.u32(h.kind).u32(h.timeout ?? 0).str(h.path));
    // argv[0] is the first argument; with none, the path (as runc does)
    for (const a of h.args.length > 0 ? h.args : [h.path]) rec(PlanTag.HookArg, (w) => w.str(a));
    for (const e of h.env) rec(PlanTag.HookEnv, (w) => w.str(e));
  }
  for (const st of plan.hooks?.states ?? []) rec(PlanTag.HookState, (w) => w.u32(st.which).u32(st.pidOffset).str(st.json));
  return w.finish();
}

// ---- Linux constants the compiler needs (x86_64 / generic) -----------------------------

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const CLONE_NEWTIME = 0x00000080;

/** OCI namespace type → the flag, and the /proc/<pid>/ns/ file name */
export const NAMESPACES = {
  pid: { flag: CLONE_NEWPID, file: 'pid' },
  network: { flag: CLONE_NEWNET, file: 'net' },
  mount: { flag: CLONE_NEWNS, file: 'mnt' },
  ipc: { flag: CLONE_NEWIPC, file: 'ipc' },
  uts: { flag: CLONE_NEWUTS, file: 'uts' },
  user: { flag: CLONE_NEWUSER, file: 'user' },
  cgroup: { flag: CLONE_NEWCGROUP, file: 'cgroup' },
  time: { flag: CLONE_NEWTIME, file: 'time' },
} as const;
export type NamespaceType = keyof typeof NAMESPACES;

export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  SILENT: 32768,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
