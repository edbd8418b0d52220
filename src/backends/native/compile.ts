/**
 * The plan compiler: a validated OCI spec (spec.ts) plus what the backend decided
 * (rootfs path, cgroup, exec fifo, console socket) → the Plan the helper executes.
 * Policy lives here: runc-compatible defaults (default devices and /dev symlinks, the
 * cgroup filesystem inside the container, rootfs propagation), cross-field checks
 * (hostname needs a UTS namespace, a sysctl needs its namespace, mappings need a user
 * namespace), and the choice of mknod or bind for devices.
 *
 * Pure except for stat()s of bind sources and the rootfs (which decide file vs directory
 * targets and let a missing source fail here, naming the field, rather than in the helper).
 */
import { Stats, existsSync, readFileSync, statSync } from 'node:fs';
import { basename, posix, resolve } from 'node:path';
import { effectiveDeviceRules } from './cgroup-manager.js';
import { compileDeviceFilter } from './device-filter.js';
import { planHooks } from './hooks.js';
import { RECURSIVE_ATTR_OPTIONS } from './mount-attrs.js';
import { invalidArgument, unimplemented } from '../../core/errors.js';
import type { CgroupLayout } from '../../sys/cgroups.js';
import type { CgroupPlacement, CgroupSet } from './cgroup-manager.js';
import { CAPABILITIES, RLIMITS, capabilityNames, hostCapabilities, type HostCapabilities } from './linux-names.js';
import {
  MS,
  MountKind,
  NAMESPACES,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  type CapabilitySets,
  type FinalOp,
  type NamespaceStep,
  type NamespaceType,
  type Plan,
  type ProcessPlan,
  type RootfsOp,
} from './plan.js';
import type { OciCapabilities, OciMount, OciProcess, OciSpec } from './spec.js';
import { compileSeccomp } from './seccomp.js';

export interface CompileWarning {
  field: string;
  message: string;
}

export interface CreateContext {
  /** the container's id (in the state its hooks get) */
  id: string;
  /** absolute bundle directory (relative root.path and bind sources resolve against it) */
  bundle: string;
  cgroup: CgroupSet;
  cgroupLayout: CgroupLayout;
  /** how the init gets into its cgroups */
  placement: CgroupPlacement;
  /** <state>/exec.fifo: the create/start split */
  execFifo: string;
  consoleSocket?: string;
  host?: HostCapabilities;
  /** defaults: read from /sys */
  apparmorEnabled?: boolean;
  selinuxEnabled?: boolean;
}

export interface ExecContext {
  initPid: number;
  /** namespace types the container was created with (new or joined) */
  namespaces: NamespaceType[];
  /** the container has its own user namespace */
  userNamespace: boolean;
  placement: CgroupPlacement;
  consoleSocket?: string;
  host?: HostCapabilities;
  apparmorEnabled?: boolean;
  selinuxEnabled?: boolean;
}

export interface Compiled {
  plan: Plan;
  warnings: CompileWarning[];
}

// ---- mount options ---------------------------------------------------------------------

const FLAG_OPTIONS: Record<string, { set?: number; clear?: number }> = {
  defaults: {},
  ro: { set: MS.RDONLY },
  rw: { clear: MS.RDONLY },
  nosuid: { set: MS.NOSUID },
  suid: { clear: MS.NOSUID },
  nodev: { set: MS.NODEV },
  dev: { clear: MS.NODEV },
  noexec: { set: MS.NOEXEC },
  exec: { clear: MS.NOEXEC },
  sync: { set: MS.SYNCHRONOUS },
  async: { clear: MS.SYNCHRONOUS },
  dirsync: { set: MS.DIRSYNC },
  remount: { set: MS.REMOUNT },
  mand: { set: MS.MANDLOCK },
  nomand: { clear: MS.MANDLOCK },
  atime: { clear: MS.NOATIME },
  noatime: { set: MS.NOATIME },
  diratime: { clear: MS.NODIRATIME },
  nodiratime: { set: MS.NODIRATIME },
  relatime: { set: MS.RELATIME },
  norelatime: { clear: MS.RELATIME },
  strictatime: { set: MS.STRICTATIME },
  nostrictatime: { clear: MS.STRICTATIME },
  lazytime: { set: MS.LAZYTIME },
  nolazytime: { clear: MS.LAZYTIME },
  silent: { set: MS.SILENT },
  loud: { clear: MS.SILENT },
  nosymfollow: { set: MS.NOSYMFOLLOW },
  symfollow: { clear: MS.NOSYMFOLLOW },
  bind: { set: MS.BIND },
  rbind: { set: MS.BIND | MS.REC },
};

const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** options that ask for something not implemented yet: refused by name, never dropped */
const UNSUPPORTED_OPTIONS = new Set(['tmpcopyup', 'idmap', 'ridmap', 'ratime', 'rnorelatime', 'rnostrictatime']);

export interface ParsedMountOptions {
  flags: number;
  propagation: number;
  data: string[];
  /** recursive attributes to set / clear on the mount and all its submounts (0: none) */
  recursiveAttrSet: number;
  recursiveAttrClear: number;
}

export function parseMountOptions(options: string[], field: string): ParsedMountOptions {
  let flags = 0;
  let propagation = 0;
  let recursiveAttrSet = 0;
  let recursiveAttrClear = 0;
  const data: string[] = [];
  options.forEach((opt, i) => {
    const f = FLAG_OPTIONS[opt];
    const r = RECURSIVE_ATTR_OPTIONS[opt];
    if (f) {
      flags = (flags | (f.set ?? 0)) & ~(f.clear ?? 0);
    } else if (r) {
      // the later option wins, as with the plain flags
      // (an access-time mode clears the whole access-time field, as the kernel requires)
      recursiveAttrSet = (recursiveAttrSet & ~(r.clear ?? 0)) | (r.set ?? 0);
      recursiveAttrClear = (recursiveAttrClear & ~(r.set ?? 0)) | (r.clear ?? 0);
    } else if (opt in PROPAGATION) {
      propagation |= PROPAGATION[opt]!;
    } else if (UNSUPPORTED_OPTIONS.has(opt)) {
      throw unimplemented(`${field}[${i}]: mount option "${opt}" is not supported by the native backend yet`);
    } else if (opt.startsWith('X-') || opt.startsWith('x-')) {
      // userspace-only annotations (fstab/mount(8) style): nothing for the kernel
    } else {
      data.push(opt);
    }
  });
  return { flags, propagation, data, recursiveAttrSet, recursiveAttrClear };
}

/** normalizes a container path: absolute, no "..", no doubled or trailing slashes */
function containerPath(p: string): string {
  const n = posix.normalize(posix.join('/', p));
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

// ---- processes -------------------------------------------------------------------------

function capMask(names: string[], field: string, host: HostCapabilities | undefined, warnings: CompileWarning[]): bigint {
  let mask = 0n;
  names.forEach((name, i) => {
    const n = CAPABILITIES[name];
    if (n === undefined) {
      // runc 1.1 ignores a name it does not know (lower case and CAP_-less names included),
      // with a warning, and runs the container
      warnings.push({ field: `${field}[${i}]`, message: `unknown capability ${JSON.stringify(name)}; ignored` });
      return;
    }
    const bit = 1n << BigInt(n);
    if (host && !(host.bounding & bit)) {
      // a capability this runtime does not hold itself cannot be handed on (capset would
      // fail); runc drops such capabilities with a warning too
      warnings.push({ field: `${field}[${i}]`, message: `${name} is not available on this host; not granted` });
      return;
    }
    mask |= bit;
  });
  return mask;
}

function compileCapabilities(c: OciCapabilities | undefined, field: string, host: HostCapabilities | undefined, warnings: CompileWarning[]): CapabilitySets | undefined {
  if (!c) return undefined;
  const sets = {
    bounding: capMask(c.bounding, `${field}.bounding`, host, warnings),
    effective: capMask(c.effective, `${field}.effective`, host, warnings),
    inheritable: capMask(c.inheritable, `${field}.inheritable`, host, warnings),
    permitted: capMask(c.permitted, `${field}.permitted`, host, warnings),
    ambient: capMask(c.ambient, `${field}.ambient`, host, warnings),
  };
  // the kernel raises an ambient capability only if it is permitted and inheritable;
  // runc's default spec lists ambient ones without inheritable, and runc drops them too
  const stray = sets.ambient & ~(sets.permitted & sets.inheritable);
  if (stray) {
    warnings.push({ field: `${field}.ambient`, message: `not permitted and inheritable, so not raised: ${capabilityNames(stray).join(', ')}` });
    sets.ambient &= ~stray;
  }
  return sets;
}

interface ProcessContext {
  host?: HostCapabilities;
  userNamespace: boolean;
  apparmorEnabled: boolean;
  selinuxEnabled: boolean;
  seccomp?: ProcessPlan['seccomp'];
}

function compileProcess(p: OciProcess, field: string, ctx: ProcessContext, warnings: CompileWarning[]): ProcessPlan {
  if (p.selinuxLabel && ctx.selinuxEnabled) throw unimplemented(`${field}.selinuxLabel: SELinux labels are not supported by the native backend yet`);
  const rlimits = p.rlimits.map((r, i) => {
    const resource = RLIMITS[r.type];
    if (resource === undefined) throw invalidArgument(`${field}.rlimits[${i}].type: unknown rlimit ${JSON.stringify(r.type)}`);
    return { resource, soft: r.soft, hard: r.hard };
  });
  return {
    args: p.args,
    env: p.env,
    cwd: p.cwd,
    user: { uid: p.user.uid, gid: p.user.gid, umask: p.user.umask ?? 0o022, additionalGids: p.user.additionalGids },
    rlimits,
    // in a new user namespace the process holds every capability of that namespace
    capabilities: compileCapabilities(p.capabilities, `${field}.capabilities`, ctx.userNamespace ? undefined : ctx.host, warnings),
    noNewPrivileges: p.noNewPrivileges,
    terminal: p.terminal,
    ...(p.terminal && p.consoleSize ? { consoleSize: p.consoleSize } : {}),
    seccomp: ctx.seccomp,
    // like runc: a profile applies only where AppArmor is on (containerd names one for every
    // CRI container on such hosts); elsewhere it is ignored
    ...(p.apparmorProfile && ctx.apparmorEnabled ? { apparmorProfile: p.apparmorProfile } : {}),
    oomScoreAdj: p.oomScoreAdj,
    preserveFds: 0,
  };
}

// ---- create ------------------------------------------------------------------------------

/** sysctls a container may set, by the namespace that isolates them (runc's rules) */
function sysctlNamespace(key: string): NamespaceType | undefined {
  if (key.startsWith('net.')) return 'network';
  if (key.startsWith('fs.mqueue.')) return 'ipc';
  if (['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced'].includes(key)) return 'ipc';
  if (key === 'kernel.hostname' || key === 'kernel.domainname') return 'uts';
  return undefined;
}

const DEFAULT_DEVICES = [
  { path: '/dev/null', major: 1, minor: 3 },
  { path: '/dev/zero', major: 1, minor: 5 },
  { path: '/dev/full', major: 1, minor: 7 },
  { path: '/dev/tty', major: 5, minor: 0 },
  { path: '/dev/random', major: 1, minor: 8 },
  { path: '/dev/urandom', major: 1, minor: 9 },
];

/** the `cgroup` filesystem inside the container, expanded per host layout */
function cgroupMountOps(m: OciMount, field: string, ctx: CreateContext, cgroupNs: boolean): RootfsOp[] {
  const target = containerPath(m.destination);
  const { flags } = parseMountOptions(m.options, `${field}.options`);
  const perMount = flags & (MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.RDONLY);
  if (ctx.cgroupLayout.mode === 'v2') {
    if (cgroupNs) return [{ op: 'mount', source: 'cgroup', target, fstype: 'cgroup2', flags: perMount, propagation: 0, data: '', kind: MountKind.Fs }];
    // without a cgroup namespace a fresh cgroup2 mount would show the host's whole tree
    return [{ op: 'mount', source: ctx.cgroup.unified!, target, fstype: '', flags: MS.BIND | MS.REC | perMount, propagation: 0, data: '', kind: MountKind.BindDir }];
  }
  // v1 (and hybrid): a tmpfs holding one directory per hierarchy, each a bind of the
  // container's own cgroup there (what runc does without a cgroup namespace)
  const ops: RootfsOp[] = [
    { op: 'mount', source: 'tmpfs', target, fstype: 'tmpfs', flags: perMount & ~MS.RDONLY, propagation: 0, data: 'mode=755', kind: MountKind.Fs },
  ];
  for (const mount of ctx.cgroupLayout.v1) {
    const key = mount.controllers.join(',');
    const name = basename(mount.mountPoint);
    const dir = ctx.cgroup.v1[key];
    if (!dir) continue;
    ops.push({ op: 'mount', source: dir, target: `${target}/${name}`, fstype: '', flags: MS.BIND | MS.REC | perMount, propagation: 0, data: '', kind: MountKind.BindDir });
    // co-mounted controllers ("cpu,cpuacct") are reachable by each name, as on the host
    for (const c of mount.controllers) {
      const plain = c.startsWith('name=') ? c.slice(5) : c;
      if (plain !== name) ops.push({ op: 'symlink', linkTarget: name, path: `${target}/${plain}` });
    }
  }
  // The hierarchies are read-only binds; the tmpfs holding them stays writable even for a
  // read-only mount, as runc 1.1 leaves it (seen under containerd 1.6 and 2.1 on a hybrid host).
  return ops;
}

function resolveRootPropagation(v: string | undefined): number {
  if (v === undefined) return MS.SLAVE | MS.REC;
  const f = PROPAGATION[v];
  if (f === undefined) throw invalidArgument(`linux.rootfsPropagation: must be one of ${Object.keys(PROPAGATION).join(', ')} (got ${JSON.stringify(v)})`);
  return f;
}

function readFlag(file: string, yes: RegExp): boolean {
  try {
    return yes.test(readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
}

export function apparmorEnabled(): boolean {
  return readFlag('/sys/module/apparmor/parameters/enabled', /^Y/);
}

export function selinuxEnabled(): boolean {
  return existsSync('/sys/fs/selinux/enforce');
}

/** config.json → the plan of `create` */
export function compileCreate(spec: OciSpec, ctx: CreateContext): Compiled {
  const warnings: CompileWarning[] = [];
  const linux = spec.linux;
  const nsTypes = new Map(linux.namespaces.map((n) => [n.type, n]));
  const userNs = nsTypes.has('user');

  // ---- namespaces and ids
  if (!nsTypes.has('mount')) throw invalidArgument('linux.namespaces: a mount namespace is required');
  if (userNs && !nsTypes.get('user')!.path && (linux.uidMappings.length === 0 || linux.gidMappings.length === 0)) {
    throw invalidArgument('linux.uidMappings: a new user namespace needs uidMappings and gidMappings');
  }
  if (!userNs && (linux.uidMappings.length > 0 || linux.gidMappings.length > 0)) {
    throw invalidArgument('linux.uidMappings: mappings are set, but linux.namespaces has no user namespace');
  }
  if (spec.hostname !== undefined && !nsTypes.has('uts')) throw invalidArgument('hostname: setting a hostname needs a UTS namespace in linux.namespaces');
  if (spec.domainname !== undefined && !nsTypes.has('uts')) throw invalidArgument('domainname: setting a domainname needs a UTS namespace in linux.namespaces');
  const namespaces: NamespaceStep[] = linux.namespaces.map((n) => ({ type: NAMESPACES[n.type].flag, path: n.path }));
  const timeNs = nsTypes.get('time');
  const offsets = Object.entries(linux.timeOffsets);
  if (offsets.length > 0 && (!timeNs || timeNs.path)) throw invalidArgument('linux.timeOffsets: offsets need a new time namespace in linux.namespaces');

  // ---- rootfs
  const rootfs = resolve(ctx.bundle, spec.root.path);
  const rootStat = statOrNull(rootfs);
  if (!rootStat?.isDirectory()) throw invalidArgument(`root.path: ${rootfs} is not a directory`);

  // ---- mounts, in spec order, then devices
  const ops: RootfsOp[] = [];
  let devMount: 'tmpfs' | 'bind' | undefined;
  let devPts = false;
  spec.mounts.forEach((m, i) => {
    const field = `mounts[${i}]`;
    const target = containerPath(m.destination);
    if (!m.destination.startsWith('/')) {
      // runc 1.1 takes a relative destination as relative to the container's root, with a
      // warning that a future release will refuse it
      warnings.push({ field: `${field}.destination`, message: `${JSON.stringify(m.destination)} is not absolute; mounted on ${target}, as runc does (runc says it will refuse this in a future release)` });
    }
    if (target === '/') throw invalidArgument(`${field}.destination: cannot mount over the container's root`);
    if (m.type === 'cgroup' || m.type === 'cgroup2') {
      ops.push(...cgroupMountOps(m, field, ctx, nsTypes.has('cgroup')));
      return;
    }
    const o = parseMountOptions(m.options, `${field}.options`);
    const isBind = m.type === 'bind' || (o.flags & MS.BIND) !== 0;
    if (isBind) {
      if (!m.source) throw invalidArgument(`${field}.source: a bind mount needs a source`);
      const source = resolve(ctx.bundle, m.source);
      const st = statOrNull(source);
      if (!st) throw invalidArgument(`${field}.source: ${source} does not exist`);
      ops.push({
        op: 'mount',
        source,
        target,
        fstype: '',
        flags: o.flags | MS.BIND,
        propagation: o.propagation,
        data: '',
        kind: st.isDirectory() ? MountKind.BindDir : MountKind.BindFile,
      });
      if (target === '/dev') devMount = 'bind';
    } else {
      if (!m.type) throw invalidArgument(`${field}.type: required for a mount that is not a bind mount`);
      ops.push({ op: 'mount', source: m.source || m.type, target, fstype: m.type, flags: o.flags, propagation: o.propagation, data: o.data.join(','), kind: MountKind.Fs });
      if (target === '/dev' && m.type === 'tmpfs') devMount = 'tmpfs';
      if (target === '/dev/pts' && m.type === 'devpts') devPts = true;
    }
    if (o.recursiveAttrSet || o.recursiveAttrClear) ops.push({ op: 'setattr', path: target, set: o.recursiveAttrSet, clear: o.recursiveAttrClear });
  });

  // devices: the spec's, then runc's defaults, unless the host's /dev is bound in
  const devices = linux.devices.map((d) => ({ ...d, fileMode: d.fileMode ?? 0o666, uid: d.uid ?? 0, gid: d.gid ?? 0 }));
  if (devMount !== 'bind') {
    for (const d of DEFAULT_DEVICES) {
      if (!devices.some((x) => containerPath(x.path) === d.path)) devices.push({ type: 'c', path: d.path, major: d.major, minor: d.minor, fileMode: 0o666, uid: 0, gid: 0 });
    }
  }
  devices.forEach((d, i) => {
    const p = containerPath(d.path);
    if (!p.startsWith('/dev/')) throw invalidArgument(`linux.devices[${i}].path: must be under /dev (got ${d.path})`);
    // a privileged container lists the host's /dev/ptmx; on a /dev tmpfs with devpts, runc
    // replaces it with the pts/ptmx link made below
    if (p === '/dev/ptmx' && devMount === 'tmpfs' && devPts) return;
    if (userNs) {
      // no mknod in a user namespace: bind the host's node (runc does the same)
      if (d.type === 'p') throw unimplemented(`linux.devices[${i}]: FIFOs cannot be created in a user namespace`);
      ops.push({ op: 'bindDevice', hostPath: p, path: p });
    } else {
      const type = d.type === 'b' ? S_IFBLK : d.type === 'p' ? S_IFIFO : S_IFCHR;
      ops.push({ op: 'mknod', path: p, mode: type | (d.fileMode & 0o7777), major: d.major, minor: d.minor, uid: d.uid, gid: d.gid });
    }
  });
  if (devMount === 'tmpfs') {
    for (const [link, target] of [
      ['/dev/fd', '/proc/self/fd'],
      ['/dev/stdin', '/proc/self/fd/0'],
      ['/dev/stdout', '/proc/self/fd/1'],
      ['/dev/stderr', '/proc/self/fd/2'],
    ] as const) {
      ops.push({ op: 'symlink', linkTarget: target, path: link });
    }
    if (devPts) ops.push({ op: 'symlink', linkTarget: 'pts/ptmx', path: '/dev/ptmx' });
  }

  // ---- after pivot_root: sysctls, readonly paths, masked paths (runc's order)
  const finalOps: FinalOp[] = [];
  for (const [key, value] of Object.entries(linux.sysctl)) {
    const ns = sysctlNamespace(key);
    if (!ns) throw invalidArgument(`linux.sysctl.${key}: not isolated by any namespace; it would change the host`);
    const entry = nsTypes.get(ns);
    if (!entry) throw invalidArgument(`linux.sysctl.${key}: needs a ${ns} namespace in linux.namespaces`);
    if (key.includes('/') || key.split('.').some((part) => part === '' || part === '..')) throw invalidArgument(`linux.sysctl.${key}: not a sysctl name`);
    finalOps.push({ op: 'sysctl', key: key.replace(/\./g, '/'), value });
  }
  for (const p of linux.readonlyPaths) finalOps.push({ op: 'readonly', path: containerPath(p) });
  for (const p of linux.maskedPaths) finalOps.push({ op: 'mask', path: containerPath(p) });

  const seccomp = linux.seccomp ? compileSeccomp(linux.seccomp, 'linux.seccomp') : undefined;
  if (seccomp?.unknownSyscalls.length) {
    warnings.push({ field: 'linux.seccomp.syscalls', message: `not on this architecture, skipped: ${seccomp.unknownSyscalls.join(', ')}` });
  }
  const process = compileProcess(
    spec.process,
    'process',
    {
      host: ctx.host ?? hostCapabilities(),
      userNamespace: userNs,
      apparmorEnabled: ctx.apparmorEnabled ?? apparmorEnabled(),
      selinuxEnabled: ctx.selinuxEnabled ?? selinuxEnabled(),
      seccomp,
    },
    warnings,
  );

  const plan: Plan = {
    namespaces,
    uidMappings: linux.uidMappings,
    gidMappings: linux.gidMappings,
    setgroupsDeny: false,
    cgroupProcs: ctx.placement.procs,
    cgroupSelf: ctx.placement.self,
    cgroupCloneInto: ctx.placement.cloneInto,
    consoleSocket: process.terminal ? ctx.consoleSocket : undefined,
    execFifo: ctx.execFifo,
    hostname: spec.hostname,
    domainname: spec.domainname,
    rootfs,
    rootPropagation: resolveRootPropagation(linux.rootfsPropagation),
    rootReadonly: spec.root.readonly,
    noPivot: false,
    devConsole: process.terminal && devMount === 'tmpfs',
    setsid: true,
    rootfsOps: ops,
    finalOps,
    process,
  };
  const deviceRules = linux.resources?.devices ?? [];
  if (deviceRules.length > 0 && ctx.cgroup.unified) {
    plan.deviceFilter = {
      cgroup: ctx.cgroup.unified,
      program: compileDeviceFilter(effectiveDeviceRules(deviceRules)),
      required: !ctx.cgroupLayout.v1.some((m) => m.controllers.includes('devices')),
    };
  }
  // written to /proc/self/timens_offsets by the helper, between unshare and clone
  if (offsets.length > 0) plan.timeOffsets = offsets.map(([clock, o]) => `${clock} ${o.secs} ${o.nanosecs}\n`).join('');
  plan.hooks = planHooks(spec.hooks, { ociVersion: spec.ociVersion, id: ctx.id, bundle: ctx.bundle, annotations: spec.annotations });
  if (process.terminal && !ctx.consoleSocket) throw invalidArgument('process.terminal: a terminal needs a console socket');
  return { plan, warnings };
}

/** an exec's process object → the plan of `exec` into the running container */
export function compileExec(proc: OciProcess, ctx: ExecContext): Compiled {
  const warnings: CompileWarning[] = [];
  const namespaces: NamespaceStep[] = ctx.namespaces
    .map((t) => ({ type: NAMESPACES[t].flag, path: `/proc/${ctx.initPid}/ns/${NAMESPACES[t].file}` }));
  const process = compileProcess(
    proc,
    'process',
    {
      host: ctx.host ?? hostCapabilities(),
      userNamespace: ctx.userNamespace,
      apparmorEnabled: ctx.apparmorEnabled ?? apparmorEnabled(),
      selinuxEnabled: ctx.selinuxEnabled ?? selinuxEnabled(),
      seccomp: undefined,
    },
    warnings,
  );
  if (process.terminal && !ctx.consoleSocket) throw invalidArgument('process.terminal: a terminal needs a console socket');
  return {
    plan: {
      namespaces,
      uidMappings: [],
      gidMappings: [],
      setgroupsDeny: false,
      cgroupProcs: ctx.placement.procs,
      cgroupSelf: ctx.placement.self,
      cgroupCloneInto: ctx.placement.cloneInto,
      consoleSocket: process.terminal ? ctx.consoleSocket : undefined,
      rootPropagation: 0,
      rootReadonly: false,
      noPivot: false,
      devConsole: false,
      setsid: false,
      rootfsOps: [],
      finalOps: [],
      process,
    },
    warnings,
  };
}
