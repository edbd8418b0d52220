/**
 * OCI runtime config validation: config.json (or an exec's process object) in, a typed
 * spec out, or a ShimError that names the field: `InvalidArgument` for a config that is
 * wrong, `Unimplemented` for a valid one asking for something this backend does not do
 * (never silently ignored). Only what the native backend reads is typed; unknown fields
 * are left alone, as the runtime spec asks of runtimes.
 *
 * JSON numbers above 2^53 lose precision in JSON.parse; 64-bit limits that mean
 * "unlimited" (RLIM_INFINITY, 2^64-1) round up to 2^64 and are read as that maximum.
 */
import { invalidArgument, unimplemented } from '../../core/errors.js';
import { NAMESPACES, type NamespaceType } from './plan.js';

export interface OciUser {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids: number[];
}

export interface OciCapabilities {
  bounding: string[];
  effective: string[];
  inheritable: string[];
  permitted: string[];
  ambient: string[];
}

export interface OciRlimit {
  type: string;
  soft: bigint;
  hard: bigint;
}

export interface OciProcess {
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  user: OciUser;
  args: string[];
  env: string[];
  cwd: string;
  capabilities?: OciCapabilities;
  rlimits: OciRlimit[];
  noNewPrivileges: boolean;
  apparmorProfile?: string;
  selinuxLabel?: string;
  oomScoreAdj?: number;
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface OciNamespace {
  type: NamespaceType;
  path?: string;
}

export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciDevice {
  type: 'c' | 'b' | 'u' | 'p';
  path: string;
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface OciDeviceRule {
  allow: boolean;
  type: 'a' | 'c' | 'b';
  major: number; // -1: any
  minor: number; // -1: any
  access: string;
}

export interface OciThrottleDevice {
  major: number;
  minor: number;
  rate: bigint;
}

export interface OciResources {
  devices: OciDeviceRule[];
  memory?: {
    limit?: bigint;
    reservation?: bigint;
    swap?: bigint;
    swappiness?: bigint;
    disableOOMKiller?: boolean;
  };
  cpu?: {
    shares?: bigint;
    quota?: bigint;
    period?: bigint;
    realtimeRuntime?: bigint;
    realtimePeriod?: bigint;
    cpus?: string;
    mems?: string;
    idle?: bigint;
  };
  pids?: { limit: bigint };
  blockIO?: {
    weight?: number;
    leafWeight?: number;
    weightDevice: Array<{ major: number; minor: number; weight?: number; leafWeight?: number }>;
    throttleReadBpsDevice: OciThrottleDevice[];
    throttleWriteBpsDevice: OciThrottleDevice[];
    throttleReadIOPSDevice: OciThrottleDevice[];
    throttleWriteIOPSDevice: OciThrottleDevice[];
  };
  hugepageLimits: Array<{ pageSize: string; limit: bigint }>;
  network?: { classID?: number; priorities: Array<{ name: string; priority: number }> };
  unified: Record<string, string>;
}

export interface OciSeccompArg {
  index: number;
  value: bigint;
  valueTwo: bigint;
  op: string;
}

export interface OciSeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args: OciSeccompArg[];
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  flags: string[];
  syscalls: OciSeccompRule[];
}

export type OciTimeOffsets = Partial<Record<'monotonic' | 'boottime', { secs: number; nanosecs: number }>>;

export interface OciLinux {
  namespaces: OciNamespace[];
  timeOffsets: OciTimeOffsets;
  uidMappings: OciIdMapping[];
  gidMappings: OciIdMapping[];
  devices: OciDevice[];
  cgroupsPath?: string;
  resources?: OciResources;
  rootfsPropagation?: string;
  seccomp?: OciSeccomp;
  sysctl: Record<string, string>;
  maskedPaths: string[];
  readonlyPaths: string[];
  mountLabel?: string;
}

export interface OciSpec {
  ociVersion: string;
  root: { path: string; readonly: boolean };
  mounts: OciMount[];
  process: OciProcess;
  hostname?: string;
  domainname?: string;
  annotations: Record<string, string>;
  hooks: OciHooks;
  linux: OciLinux;
}

type Json = unknown;
type Obj = Record<string, Json>;

const U32_MAX = 0xffffffff;
const U64_MAX = (1n << 64n) - 1n;
const I64_MAX = (1n << 63n) - 1n;

/** A failed check: the field's path in the config and what it must be. */
function bad(path: string, must: string): never {
  throw invalidArgument(`${path}: ${must}`);
}

function isObj(v: Json): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: Json, path: string): Obj {
  if (!isObj(v)) bad(path, 'must be an object');
  return v;
}

function optObj(v: Json, path: string): Obj | undefined {
  return v === undefined || v === null ? undefined : obj(v, path);
}

function str(v: Json, path: string): string {
  if (typeof v !== 'string') bad(path, 'must be a string');
  if (v.includes('\0')) bad(path, 'must not contain a NUL character');
  return v;
}

function optStr(v: Json, path: string): string | undefined {
  return v === undefined || v === null ? undefined : str(v, path);
}

function bool(v: Json, path: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') bad(path, 'must be a boolean');
  return v;
}

function arr(v: Json, path: string): Json[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) bad(path, 'must be an array');
  return v;
}

function strArr(v: Json, path: string): string[] {
  return arr(v, path).map((x, i) => str(x, `${path}[${i}]`));
}

function int(v: Json, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(path, `must be an integer from ${min} to ${max}`);
  return v;
}

function optInt(v: Json, path: string, min: number, max: number): number | undefined {
  return v === undefined || v === null ? undefined : int(v, path, min, max);
}

function u32(v: Json, path: string): number {
  return int(v, path, 0, U32_MAX);
}

/** a 64-bit integer; a double that rounded past the range's end is its end */
function big(v: Json, path: string, min: bigint, max: bigint): bigint {
  if (typeof v !== 'number' || !Number.isInteger(v)) bad(path, 'must be an integer');
  const b = BigInt(v);
  if (b > max && b - max <= 4096n) return max;
  if (b < min || b > max) bad(path, `must be an integer from ${min} to ${max}`);
  return b;
}

function optU64(v: Json, path: string): bigint | undefined {
  return v === undefined || v === null ? undefined : big(v, path, 0n, U64_MAX);
}

function optI64(v: Json, path: string): bigint | undefined {
  return v === undefined || v === null ? undefined : big(v, path, -I64_MAX - 1n, I64_MAX);
}

function nonEmptyStr(v: Json, path: string): string {
  const s = str(v, path);
  if (s === '') bad(path, 'must not be empty');
  return s;
}

function absPath(v: Json, path: string): string {
  const s = str(v, path);
  if (!s.startsWith('/')) bad(path, `must be an absolute path (got ${JSON.stringify(s)})`);
  return s;
}

function strMap(v: Json, path: string): Record<string, string> {
  const o = optObj(v, path);
  const out: Record<string, string> = {};
  if (!o) return out;
  for (const [k, x] of Object.entries(o)) out[k] = str(x, `${path}.${k}`);
  return out;
}

/** features a config may ask for that this backend does not implement: named, never ignored */
function notSupported(path: string, what = 'is not supported by the native backend yet'): never {
  throw unimplemented(`${path}: ${what}`);
}

function nonEmpty(v: Json): boolean {
  if (v === undefined || v === null) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isObj(v)) return Object.keys(v).length > 0;
  return true;
}

// ---- process -----------------------------------------------------------------------------

function parseUser(v: Json, path: string): OciUser {
  const o = obj(v, path);
  return {
    uid: u32(o.uid, `${path}.uid`),
    gid: u32(o.gid, `${path}.gid`),
    umask: optInt(o.umask, `${path}.umask`, 0, 0o777),
    additionalGids: arr(o.additionalGids, `${path}.additionalGids`).map((g, i) => u32(g, `${path}.additionalGids[${i}]`)),
  };
}

function parseCapabilities(v: Json, path: string): OciCapabilities | undefined {
  const o = optObj(v, path);
  if (!o) return undefined;
  const set = (k: string) => strArr(o[k], `${path}.${k}`);
  return { bounding: set('bounding'), effective: set('effective'), inheritable: set('inheritable'), permitted: set('permitted'), ambient: set('ambient') };
}

function parseRlimits(v: Json, path: string): OciRlimit[] {
  const seen = new Set<string>();
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    const type = str(o.type, `${p}.type`);
    if (seen.has(type)) bad(`${p}.type`, `${type} is set twice`);
    seen.add(type);
    const soft = big(o.soft, `${p}.soft`, 0n, U64_MAX);
    const hard = big(o.hard, `${p}.hard`, 0n, U64_MAX);
    if (soft > hard) bad(p, `soft limit ${soft} is above hard limit ${hard}`);
    return { type, soft, hard };
  });
}

/** process object of config.json, or of an exec request */
export function parseProcess(v: Json, path = 'process'): OciProcess {
  const o = obj(v, path);
  const args = arr(o.args, `${path}.args`);
  if (args.length === 0) bad(`${path}.args`, 'must be a non-empty array of strings');
  for (const [k, what] of [
    ['ioPriority', 'ioPriority'],
    ['scheduler', 'scheduler'],
    ['execCPUAffinity', 'execCPUAffinity'],
  ] as const) {
    if (nonEmpty(o[k])) notSupported(`${path}.${what}`);
  }
  const env = strArr(o.env, `${path}.env`);
  env.forEach((e, i) => {
    if (!e.includes('=')) bad(`${path}.env[${i}]`, `must be KEY=value (got ${JSON.stringify(e)})`);
  });
  const cs = optObj(o.consoleSize, `${path}.consoleSize`);
  return {
    terminal: bool(o.terminal, `${path}.terminal`),
    consoleSize: cs && { height: u32(cs.height, `${path}.consoleSize.height`), width: u32(cs.width, `${path}.consoleSize.width`) },
    user: parseUser(o.user ?? { uid: 0, gid: 0 }, `${path}.user`),
    args: args.map((a, i) => str(a, `${path}.args[${i}]`)),
    env,
    cwd: absPath(o.cwd ?? '/', `${path}.cwd`),
    capabilities: parseCapabilities(o.capabilities, `${path}.capabilities`),
    rlimits: parseRlimits(o.rlimits, `${path}.rlimits`),
    noNewPrivileges: bool(o.noNewPrivileges, `${path}.noNewPrivileges`),
    apparmorProfile: optStr(o.apparmorProfile, `${path}.apparmorProfile`),
    selinuxLabel: optStr(o.selinuxLabel, `${path}.selinuxLabel`),
    oomScoreAdj: optInt(o.oomScoreAdj, `${path}.oomScoreAdj`, -1000, 1000),
  };
}

// ---- linux -------------------------------------------------------------------------------

function parseNamespaces(v: Json, path: string): OciNamespace[] {
  const seen = new Set<string>();
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    const type = str(o.type, `${p}.type`);
    if (!(type in NAMESPACES)) bad(`${p}.type`, `unknown namespace type ${JSON.stringify(type)} (one of ${Object.keys(NAMESPACES).join(', ')})`);
    if (seen.has(type)) bad(`${p}.type`, `namespace ${type} is listed twice`);
    seen.add(type);
    const nsPath = optStr(o.path, `${p}.path`);
    if (nsPath !== undefined && !nsPath.startsWith('/')) bad(`${p}.path`, 'must be an absolute path');
    return { type: type as NamespaceType, path: nsPath || undefined };
  });
}

function parseIdMappings(v: Json, path: string): OciIdMapping[] {
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    const m = { containerID: u32(o.containerID, `${p}.containerID`), hostID: u32(o.hostID, `${p}.hostID`), size: u32(o.size, `${p}.size`) };
    if (m.size === 0) bad(`${p}.size`, 'must be at least 1');
    return m;
  });
}

function parseDevices(v: Json, path: string): OciDevice[] {
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    const type = str(o.type, `${p}.type`);
    if (type !== 'c' && type !== 'b' && type !== 'u' && type !== 'p') bad(`${p}.type`, 'must be one of c, b, u, p');
    const needsNumbers = type !== 'p';
    return {
      type,
      path: absPath(o.path, `${p}.path`),
      major: needsNumbers ? int(o.major, `${p}.major`, 0, U32_MAX) : 0,
      minor: needsNumbers ? int(o.minor, `${p}.minor`, 0, U32_MAX) : 0,
      fileMode: optInt(o.fileMode, `${p}.fileMode`, 0, 0o7777),
      uid: o.uid === undefined || o.uid === null ? undefined : u32(o.uid, `${p}.uid`),
      gid: o.gid === undefined || o.gid === null ? undefined : u32(o.gid, `${p}.gid`),
    };
  });
}

function parseDeviceRules(v: Json, path: string): OciDeviceRule[] {
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    const type = optStr(o.type, `${p}.type`) ?? 'a';
    if (type !== 'a' && type !== 'c' && type !== 'b') bad(`${p}.type`, 'must be one of a, c, b');
    const access = optStr(o.access, `${p}.access`) ?? 'rwm';
    if (!/^[rwm]{1,3}$/.test(access)) bad(`${p}.access`, 'must be a combination of r, w, m');
    if (typeof o.allow !== 'boolean') bad(`${p}.allow`, 'must be a boolean');
    return {
      allow: o.allow,
      type,
      major: o.major === undefined || o.major === null ? -1 : int(o.major, `${p}.major`, -1, U32_MAX),
      minor: o.minor === undefined || o.minor === null ? -1 : int(o.minor, `${p}.minor`, -1, U32_MAX),
      access,
    };
  });
}

function parseThrottle(v: Json, path: string): OciThrottleDevice[] {
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    return { major: int(o.major, `${p}.major`, 0, U32_MAX), minor: int(o.minor, `${p}.minor`, 0, U32_MAX), rate: big(o.rate, `${p}.rate`, 0n, U64_MAX) };
  });
}

/** linux.resources, also the body of an Update */
export function parseResources(v: Json, path = 'linux.resources'): OciResources {
  const o = obj(v, path);
  const mem = optObj(o.memory, `${path}.memory`);
  const cpu = optObj(o.cpu, `${path}.cpu`);
  const pids = optObj(o.pids, `${path}.pids`);
  const bio = optObj(o.blockIO, `${path}.blockIO`);
  const net = optObj(o.network, `${path}.network`);
  if (nonEmpty(o.rdma)) notSupported(`${path}.rdma`);
  if (mem && (nonEmpty(mem.kernel) || nonEmpty(mem.kernelTCP))) {
    // deprecated by the kernel (v1 kmem accounting is gone); runc ignores them too
  }
  return {
    devices: parseDeviceRules(o.devices, `${path}.devices`),
    memory: mem && {
      limit: optI64(mem.limit, `${path}.memory.limit`),
      reservation: optI64(mem.reservation, `${path}.memory.reservation`),
      swap: optI64(mem.swap, `${path}.memory.swap`),
      swappiness: optU64(mem.swappiness, `${path}.memory.swappiness`),
      disableOOMKiller: mem.disableOOMKiller === undefined ? undefined : bool(mem.disableOOMKiller, `${path}.memory.disableOOMKiller`),
    },
    cpu: cpu && {
      shares: optU64(cpu.shares, `${path}.cpu.shares`),
      quota: optI64(cpu.quota, `${path}.cpu.quota`),
      period: optU64(cpu.period, `${path}.cpu.period`),
      realtimeRuntime: optI64(cpu.realtimeRuntime, `${path}.cpu.realtimeRuntime`),
      realtimePeriod: optU64(cpu.realtimePeriod, `${path}.cpu.realtimePeriod`),
      cpus: optStr(cpu.cpus, `${path}.cpu.cpus`),
      mems: optStr(cpu.mems, `${path}.cpu.mems`),
      idle: optI64(cpu.idle, `${path}.cpu.idle`),
    },
    pids: pids && { limit: big(pids.limit, `${path}.pids.limit`, -I64_MAX - 1n, I64_MAX) },
    blockIO: bio && {
      weight: optInt(bio.weight, `${path}.blockIO.weight`, 0, 65535),
      leafWeight: optInt(bio.leafWeight, `${path}.blockIO.leafWeight`, 0, 65535),
      weightDevice: arr(bio.weightDevice, `${path}.blockIO.weightDevice`).map((x, i) => {
        const p = `${path}.blockIO.weightDevice[${i}]`;
        const d = obj(x, p);
        return {
          major: int(d.major, `${p}.major`, 0, U32_MAX),
          minor: int(d.minor, `${p}.minor`, 0, U32_MAX),
          weight: optInt(d.weight, `${p}.weight`, 0, 65535),
          leafWeight: optInt(d.leafWeight, `${p}.leafWeight`, 0, 65535),
        };
      }),
      throttleReadBpsDevice: parseThrottle(bio.throttleReadBpsDevice, `${path}.blockIO.throttleReadBpsDevice`),
      throttleWriteBpsDevice: parseThrottle(bio.throttleWriteBpsDevice, `${path}.blockIO.throttleWriteBpsDevice`),
      throttleReadIOPSDevice: parseThrottle(bio.throttleReadIOPSDevice, `${path}.blockIO.throttleReadIOPSDevice`),
      throttleWriteIOPSDevice: parseThrottle(bio.throttleWriteIOPSDevice, `${path}.blockIO.throttleWriteIOPSDevice`),
    },
    hugepageLimits: arr(o.hugepageLimits, `${path}.hugepageLimits`).map((x, i) => {
      const p = `${path}.hugepageLimits[${i}]`;
      const h = obj(x, p);
      const pageSize = str(h.pageSize, `${p}.pageSize`);
      if (!/^\d+[KMG]B$/.test(pageSize)) bad(`${p}.pageSize`, 'must look like 2MB or 1GB');
      return { pageSize, limit: big(h.limit, `${p}.limit`, 0n, U64_MAX) };
    }),
    network: net && {
      classID: net.classID === undefined || net.classID === null ? undefined : u32(net.classID, `${path}.network.classID`),
      priorities: arr(net.priorities, `${path}.network.priorities`).map((x, i) => {
        const p = `${path}.network.priorities[${i}]`;
        const n = obj(x, p);
        return { name: str(n.name, `${p}.name`), priority: u32(n.priority, `${p}.priority`) };
      }),
    },
    unified: (() => {
      const u = strMap(o.unified, `${path}.unified`);
      for (const k of Object.keys(u)) if (k.includes('/') || k.startsWith('.')) bad(`${path}.unified.${k}`, 'must name a file of the cgroup itself');
      return u;
    })(),
  };
}

function parseSeccomp(v: Json, path: string): OciSeccomp | undefined {
  const o = optObj(v, path);
  if (!o) return undefined;
  if (nonEmpty(o.listenerPath)) notSupported(`${path}.listenerPath`, 'seccomp user notification is not supported by the native backend yet');
  return {
    defaultAction: str(o.defaultAction, `${path}.defaultAction`),
    defaultErrnoRet: optInt(o.defaultErrnoRet, `${path}.defaultErrnoRet`, 0, 4095),
    architectures: strArr(o.architectures, `${path}.architectures`),
    flags: strArr(o.flags, `${path}.flags`),
    syscalls: arr(o.syscalls, `${path}.syscalls`).map((x, i) => {
      const p = `${path}.syscalls[${i}]`;
      const r = obj(x, p);
      const names = strArr(r.names, `${p}.names`);
      if (names.length === 0) bad(`${p}.names`, 'must name at least one syscall');
      return {
        names,
        action: str(r.action, `${p}.action`),
        errnoRet: optInt(r.errnoRet, `${p}.errnoRet`, 0, 4095),
        args: arr(r.args, `${p}.args`).map((a, j) => {
          const ap = `${p}.args[${j}]`;
          const ao = obj(a, ap);
          return {
            index: int(ao.index, `${ap}.index`, 0, 5),
            value: big(ao.value ?? 0, `${ap}.value`, 0n, U64_MAX),
            valueTwo: big(ao.valueTwo ?? 0, `${ap}.valueTwo`, 0n, U64_MAX),
            op: str(ao.op, `${ap}.op`),
          };
        }),
      };
    }),
  };
}

/** linux.timeOffsets: clock → offset, for a new time namespace */
function parseTimeOffsets(v: Json, path: string): OciTimeOffsets {
  const o = optObj(v, path);
  const out: OciTimeOffsets = {};
  if (!o) return out;
  for (const [clock, value] of Object.entries(o)) {
    if (clock !== 'monotonic' && clock !== 'boottime') bad(`${path}.${clock}`, 'is not a clock a time namespace can offset (monotonic, boottime)');
    const c = obj(value, `${path}.${clock}`);
    const secs = c.secs ?? 0;
    const nanosecs = c.nanosecs ?? 0;
    if (typeof secs !== 'number' || !Number.isSafeInteger(secs)) bad(`${path}.${clock}.secs`, 'must be a whole number of seconds');
    if (typeof nanosecs !== 'number' || !Number.isInteger(nanosecs) || nanosecs < 0 || nanosecs >= 1e9) bad(`${path}.${clock}.nanosecs`, 'must be a whole number below 1000000000');
    out[clock] = { secs, nanosecs };
  }
  return out;
}

function parseLinux(v: Json, path: string): OciLinux {
  const o = optObj(v, path) ?? {};
  for (const k of ['intelRdt', 'personality', 'memoryPolicy', 'netDevices']) {
    if (nonEmpty(o[k])) notSupported(`${path}.${k}`);
  }
  const cgroupsPath = optStr(o.cgroupsPath, `${path}.cgroupsPath`);
  return {
    namespaces: parseNamespaces(o.namespaces, `${path}.namespaces`),
    timeOffsets: parseTimeOffsets(o.timeOffsets, `${path}.timeOffsets`),
    uidMappings: parseIdMappings(o.uidMappings, `${path}.uidMappings`),
    gidMappings: parseIdMappings(o.gidMappings, `${path}.gidMappings`),
    devices: parseDevices(o.devices, `${path}.devices`),
    cgroupsPath: cgroupsPath || undefined,
    resources: o.resources === undefined || o.resources === null ? undefined : parseResources(o.resources, `${path}.resources`),
    rootfsPropagation: optStr(o.rootfsPropagation, `${path}.rootfsPropagation`) || undefined,
    seccomp: parseSeccomp(o.seccomp, `${path}.seccomp`),
    sysctl: strMap(o.sysctl, `${path}.sysctl`),
    maskedPaths: strArr(o.maskedPaths, `${path}.maskedPaths`).map((p, i) => absPath(p, `${path}.maskedPaths[${i}]`)),
    readonlyPaths: strArr(o.readonlyPaths, `${path}.readonlyPaths`).map((p, i) => absPath(p, `${path}.readonlyPaths[${i}]`)),
    mountLabel: optStr(o.mountLabel, `${path}.mountLabel`),
  };
}

function parseMounts(v: Json, path: string): OciMount[] {
  return arr(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    if (nonEmpty(o.uidMappings) || nonEmpty(o.gidMappings)) notSupported(`${p}.uidMappings`, 'idmapped mounts are not supported by the native backend yet');
    return {
      // relative is accepted, as runc 1.1 does (the plan compiler warns and resolves it)
      destination: nonEmptyStr(o.destination, `${p}.destination`),
      type: optStr(o.type, `${p}.type`) ?? '',
      source: optStr(o.source, `${p}.source`) ?? '',
      options: strArr(o.options, `${p}.options`),
    };
  });
}

export const HOOK_KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

export interface OciHook {
  path: string;
  args: string[];
  env: string[];
  /** seconds */
  timeout?: number;
}

export type OciHooks = Partial<Record<HookKind, OciHook[]>>;

function parseHooks(v: Json, path: string): OciHooks {
  const o = optObj(v, path);
  const out: OciHooks = {};
  if (!o) return out;
  for (const kind of HOOK_KINDS) {
    const list = o[kind];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) bad(`${path}.${kind}`, 'must be an array');
    out[kind] = list.map((h, i) => {
      const p = `${path}.${kind}[${i}]`;
      const ho = obj(h, p);
      const timeout = ho.timeout;
      if (timeout !== undefined && timeout !== null && !(typeof timeout === 'number' && Number.isInteger(timeout) && timeout > 0)) {
        bad(`${p}.timeout`, 'must be a positive whole number of seconds');
      }
      return { path: absPath(ho.path, `${p}.path`), args: strArr(ho.args, `${p}.args`), env: strArr(ho.env, `${p}.env`), timeout: (timeout as number | undefined | null) ?? undefined };
    });
  }
  return out;
}

/** config.json of a bundle → validated spec */
export function parseSpec(v: Json): OciSpec {
  const o = obj(v, 'config');
  const root = obj(o.root, 'root');
  const hooks = parseHooks(o.hooks, 'hooks');
  if (o.process === undefined || o.process === null) bad('process', 'is required to create a container');
  const hostname = optStr(o.hostname, 'hostname');
  if (hostname !== undefined && Buffer.byteLength(hostname) > 64) bad('hostname', 'must be at most 64 bytes');
  const domainname = optStr(o.domainname, 'domainname');
  if (domainname !== undefined && Buffer.byteLength(domainname) > 64) bad('domainname', 'must be at most 64 bytes');
  for (const k of ['solaris', 'windows', 'vm', 'zos']) if (nonEmpty(o[k])) notSupported(k, 'is for another platform');
  return {
    ociVersion: str(o.ociVersion, 'ociVersion'),
    root: { path: str(root.path, 'root.path'), readonly: bool(root.readonly, 'root.readonly') },
    mounts: parseMounts(o.mounts, 'mounts'),
    process: parseProcess(o.process),
    hostname: hostname || undefined,
    domainname: domainname || undefined,
    annotations: strMap(o.annotations, 'annotations'),
    hooks,
    linux: parseLinux(o.linux, 'linux'),
  };
}

/** Parses config.json text, naming the file in a syntax error. */
export function parseSpecText(text: string, file = 'config.json'): OciSpec {
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`${file}: not valid JSON: ${(err as Error).message}`, err);
  }
  return parseSpec(json);
}
