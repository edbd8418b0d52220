/**
 * OCI runtime-spec JSON (config.json) <-> Kata's `grpc.Spec` (src/proto/defs/kata/oci.proto).
 *
 * Kata's message is a near copy of the Go runtime-spec structs without pointers: a field
 * that is optional in the JSON (Go pointer) has no presence on the wire, so an absent value
 * and zero are the same thing there. Kata's runtime sends 0/""/false for absent values and
 * kata-agent reads them back as absent; we do the same, which makes the pair lossless for
 * every field oci.proto has, with these rules:
 *  - fields the JSON requires (user.uid, process.cwd, root.path, mount.destination,
 *    linux device major/minor, rlimit hard/soft, ...) are always written back;
 *  - optional numbers (memory.limit, cpu.shares, oomScoreAdj, hook timeout, ...) are written
 *    back when non-zero: an explicit 0 in the JSON comes back absent (the one thing the wire
 *    cannot carry);
 *  - device cgroup major/minor are the exception, since "b 8:0" must not become "b 8:*": an
 *    absent one ("*") is sent as -1, which kata-agent reads as absent just like the 0 Kata's
 *    runtime sends, and an explicit 0 stays 0. Read back, a negative value is absent, and so is
 *    0 in a rule for all device types (where Kata's runtime puts 0 and the number means
 *    nothing); 0 in a "b"/"c" rule is a real 0;
 *  - optional strings, booleans, lists and maps are written back when non-empty / true;
 *  - seccomp errnoRet keeps its presence (Kata made it a oneof).
 * JSON fields oci.proto has no place for (user.umask, linux.resources.unified,
 * seccomp.defaultErrnoRet, process.scheduler, ...) cannot reach an agent; ociSpecToProto
 * lists the ones it met in `dropped` so the caller can tell the user.
 *
 * 64-bit numbers: proto int64/uint64 are bigints here; JSON numbers above 2^53 are already
 * rounded by JSON.parse, so they are clamped into the field's range (RLIM_INFINITY parses
 * as 2^64 and becomes 2^64-1), and written back as the nearest JSON number.
 */
import { ShimError } from '../../core/errors.js';
import type {
  Box,
  Hook,
  Hooks,
  Linux,
  LinuxBlockIO,
  LinuxCapabilities,
  LinuxCPU,
  LinuxDevice,
  LinuxDeviceCgroup,
  LinuxHugepageLimit,
  LinuxIDMapping,
  LinuxInterfacePriority,
  LinuxIntelRdt,
  LinuxMemory,
  LinuxNamespace,
  LinuxNetwork,
  LinuxPids,
  LinuxResources,
  LinuxSeccomp,
  LinuxSeccompArg,
  LinuxSyscall,
  LinuxThrottleDevice,
  LinuxWeightDevice,
  Mount,
  POSIXRlimit,
  Process,
  Root,
  Spec,
  User,
} from '../../proto/gen/kata/oci.js';

type Json = Record<string, unknown>;

const U32_MAX = 0xffffffff;
/** what we send for an absent device cgroup major/minor ("*") */
const DEVICE_WILDCARD = -1n;
const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);
const U64_MAX = (1n << 64n) - 1n;

/* ------------------------------------------------------------------------------------
 * JSON -> proto
 * ------------------------------------------------------------------------------------ */

/**
 * Reads one JSON object, remembering which keys were used so that the ones left over
 * (fields oci.proto cannot carry) can be reported.
 */
class Reader {
  private readonly used = new Set<string>();

  constructor(
    private readonly raw: Json,
    readonly path: string,
    private readonly dropped: string[] | undefined,
  ) {}

  static of(value: unknown, path: string, dropped: string[] | undefined): Reader | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'object' || Array.isArray(value)) throw bad(path, 'an object', value);
    return new Reader(value as Json, path, dropped);
  }

  private take(key: string): unknown {
    this.used.add(key);
    const v = this.raw[key];
    return v === null ? undefined : v;
  }

  sub(key: string): Reader | undefined {
    return Reader.of(this.take(key), this.at(key), this.dropped);
  }

  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  str(key: string): string {
    const v = this.take(key);
    if (v === undefined) return '';
    if (typeof v !== 'string') throw bad(this.at(key), 'a string', v);
    return v;
  }

  bool(key: string): boolean {
    const v = this.take(key);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw bad(this.at(key), 'a boolean', v);
    return v;
  }

  u32(key: string): number {
    const v = this.take(key);
    if (v === undefined) return 0;
    const n = integer(v, this.at(key));
    if (n < 0n || n > BigInt(U32_MAX)) throw bad(this.at(key), 'a 32-bit unsigned integer', v);
    return Number(n);
  }

  i64(key: string): bigint {
    const v = this.take(key);
    if (v === undefined) return 0n;
    const n = integer(v, this.at(key));
    return n > I64_MAX ? I64_MAX : n < I64_MIN ? I64_MIN : n;
  }

  u64(key: string): bigint {
    const v = this.take(key);
    if (v === undefined) return 0n;
    const n = integer(v, this.at(key));
    if (n < 0n) throw bad(this.at(key), 'an unsigned integer', v);
    return n > U64_MAX ? U64_MAX : n;
  }

  /** int64 with presence: `absent` when the key is absent. */
  optI64(key: string, absent: bigint): bigint {
    const v = this.raw[key];
    if (v !== undefined && v !== null) return this.i64(key);
    this.used.add(key);
    return absent;
  }

  /** uint32 with presence: undefined when absent. */
  optU32(key: string): number | undefined {
    const v = this.raw[key];
    if (v !== undefined && v !== null) return this.u32(key);
    this.used.add(key);
    return undefined;
  }

  strs(key: string): string[] {
    return this.list(key, (v, path) => {
      if (typeof v !== 'string') throw bad(path, 'a string', v);
      return v;
    });
  }

  u32s(key: string): number[] {
    return this.list(key, (v, path) => {
      const n = integer(v, path);
      if (n < 0n || n > BigInt(U32_MAX)) throw bad(path, 'a 32-bit unsigned integer', v);
      return Number(n);
    });
  }

  objs<T>(key: string, convert: (r: Reader) => T): T[] {
    return this.list(key, (v, path) => convert(Reader.of(v, path, this.dropped) ?? new Reader({}, path, this.dropped)));
  }

  list<T>(key: string, convert: (v: unknown, path: string) => T): T[] {
    const v = this.take(key);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw bad(this.at(key), 'an array', v);
    return v.map((item, i) => convert(item, `${this.at(key)}[${i}]`));
  }

  strMap(key: string): Record<string, string> {
    const r = this.sub(key);
    if (!r) return {};
    const out: Record<string, string> = {};
    for (const k of r.keys()) out[k] = r.str(k);
    return out;
  }

  keys(): string[] {
    return Object.keys(this.raw);
  }

  /** Reports the keys nobody read (with a value: null and undefined say nothing). */
  done(): void {
    if (!this.dropped) return;
    for (const [k, v] of Object.entries(this.raw)) {
      if (!this.used.has(k) && v !== undefined && v !== null) this.dropped.push(this.at(k));
    }
  }
}

function bad(path: string, expected: string, got: unknown): ShimError {
  const shown = typeof got === 'bigint' ? `${got}` : JSON.stringify(got);
  return new ShimError('InvalidArgument', `OCI spec: ${path} must be ${expected}, got ${shown?.slice(0, 80) ?? String(got)}`);
}

function integer(v: unknown, path: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isFinite(v) && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  throw bad(path, 'an integer', v);
}

function convert<T>(r: Reader | undefined, fn: (r: Reader) => T): T | undefined {
  if (!r) return undefined;
  const out = fn(r);
  r.done();
  return out;
}

/**
 * OCI config.json -> Kata's Spec. Throws ShimError InvalidArgument (with the JSON path) for
 * a value of the wrong type. Fields with no place in oci.proto are appended to `dropped`
 * (JSON paths, e.g. "process.user.umask") when given.
 */
export function ociSpecToProto(json: Record<string, unknown>, dropped?: string[]): Spec {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ShimError('InvalidArgument', 'OCI spec: not an object');
  const root = new Reader(json, '', dropped);
  const spec = specFrom(root);
  root.done();
  return spec;
}

function specFrom(r: Reader): Spec {
  // Solaris/Windows: Kata's placeholders, never filled (its runtime skips them too).
  return {
    Version: r.str('ociVersion'),
    Process: convert(r.sub('process'), processFrom),
    Root: convert(r.sub('root'), (x): Root => ({ Path: x.str('path'), Readonly: x.bool('readonly') })),
    Hostname: r.str('hostname'),
    Mounts: r.objs('mounts', (x) => done(x, mountFrom(x))),
    Hooks: convert(r.sub('hooks'), hooksFrom),
    Annotations: r.strMap('annotations'),
    Linux: convert(r.sub('linux'), linuxFrom),
    Solaris: undefined,
    Windows: undefined,
  };
}

function done<T>(r: Reader, value: T): T {
  r.done();
  return value;
}

/** OCI process JSON -> Kata's Process (also what ExecProcessRequest.process carries). */
export function ociProcessToProto(json: Record<string, unknown>, dropped?: string[]): Process {
  const r = Reader.of(json, 'process', dropped);
  if (!r) throw new ShimError('InvalidArgument', 'OCI process: not an object');
  return done(r, processFrom(r));
}

function processFrom(r: Reader): Process {
  return {
    Terminal: r.bool('terminal'),
    ConsoleSize: convert(r.sub('consoleSize'), (x): Box => ({ Height: x.u32('height'), Width: x.u32('width') })),
    User: convert(
      r.sub('user'),
      (x): User => ({ UID: x.u32('uid'), GID: x.u32('gid'), AdditionalGids: x.u32s('additionalGids'), Username: x.str('username') }),
    ),
    Args: r.strs('args'),
    Env: r.strs('env'),
    Cwd: r.str('cwd'),
    Capabilities: convert(
      r.sub('capabilities'),
      (x): LinuxCapabilities => ({
        Bounding: x.strs('bounding'),
        Effective: x.strs('effective'),
        Inheritable: x.strs('inheritable'),
        Permitted: x.strs('permitted'),
        Ambient: x.strs('ambient'),
      }),
    ),
    Rlimits: r.objs('rlimits', (x): POSIXRlimit => done(x, { Type: x.str('type'), Hard: x.u64('hard'), Soft: x.u64('soft') })),
    NoNewPrivileges: r.bool('noNewPrivileges'),
    ApparmorProfile: r.str('apparmorProfile'),
    OOMScoreAdj: r.i64('oomScoreAdj'),
    SelinuxLabel: r.str('selinuxLabel'),
  };
}

function mountFrom(r: Reader): Mount {
  return { destination: r.str('destination'), source: r.str('source'), type: r.str('type'), options: r.strs('options') };
}

function hookFrom(r: Reader): Hook {
  return done(r, { Path: r.str('path'), Args: r.strs('args'), Env: r.strs('env'), Timeout: r.i64('timeout') });
}

function hooksFrom(r: Reader): Hooks {
  return {
    Prestart: r.objs('prestart', hookFrom),
    Poststart: r.objs('poststart', hookFrom),
    Poststop: r.objs('poststop', hookFrom),
    CreateRuntime: r.objs('createRuntime', hookFrom),
    CreateContainer: r.objs('createContainer', hookFrom),
    StartContainer: r.objs('startContainer', hookFrom),
  };
}

function idMappingFrom(r: Reader): LinuxIDMapping {
  return done(r, { HostID: r.u32('hostID'), ContainerID: r.u32('containerID'), Size: r.u32('size') });
}

function linuxFrom(r: Reader): Linux {
  return {
    UIDMappings: r.objs('uidMappings', idMappingFrom),
    GIDMappings: r.objs('gidMappings', idMappingFrom),
    Sysctl: r.strMap('sysctl'),
    Resources: convert(r.sub('resources'), resourcesFrom),
    CgroupsPath: r.str('cgroupsPath'),
    Namespaces: r.objs('namespaces', (x): LinuxNamespace => done(x, { Type: x.str('type'), Path: x.str('path') })),
    Devices: r.objs(
      'devices',
      (x): LinuxDevice =>
        done(x, {
          Path: x.str('path'),
          Type: x.str('type'),
          Major: x.i64('major'),
          Minor: x.i64('minor'),
          FileMode: x.u32('fileMode'),
          UID: x.u32('uid'),
          GID: x.u32('gid'),
        }),
    ),
    Seccomp: convert(r.sub('seccomp'), seccompFrom),
    RootfsPropagation: r.str('rootfsPropagation'),
    MaskedPaths: r.strs('maskedPaths'),
    ReadonlyPaths: r.strs('readonlyPaths'),
    MountLabel: r.str('mountLabel'),
    IntelRdt: convert(r.sub('intelRdt'), (x): LinuxIntelRdt => ({ L3CacheSchema: x.str('l3CacheSchema') })),
  };
}

/** OCI linux.resources JSON (also what `ctr task update` / CRI UpdateContainerResources send) -> Kata's LinuxResources. */
export function ociResourcesToProto(json: Record<string, unknown>, dropped?: string[]): LinuxResources {
  const r = Reader.of(json, 'linux.resources', dropped);
  if (!r) throw new ShimError('InvalidArgument', 'OCI resources: not an object');
  return done(r, resourcesFrom(r));
}

function weightDeviceFrom(r: Reader): LinuxWeightDevice {
  return done(r, { Major: r.i64('major'), Minor: r.i64('minor'), Weight: r.u32('weight'), LeafWeight: r.u32('leafWeight') });
}

function throttleDeviceFrom(r: Reader): LinuxThrottleDevice {
  return done(r, { Major: r.i64('major'), Minor: r.i64('minor'), Rate: r.u64('rate') });
}

function resourcesFrom(r: Reader): LinuxResources {
  return {
    Devices: r.objs(
      'devices',
      (x): LinuxDeviceCgroup =>
        done(x, {
          Allow: x.bool('allow'),
          Type: x.str('type'),
          Major: x.optI64('major', DEVICE_WILDCARD),
          Minor: x.optI64('minor', DEVICE_WILDCARD),
          Access: x.str('access'),
        }),
    ),
    Memory: convert(
      r.sub('memory'),
      (x): LinuxMemory => ({
        Limit: x.i64('limit'),
        Reservation: x.i64('reservation'),
        Swap: x.i64('swap'),
        Kernel: x.i64('kernel'),
        KernelTCP: x.i64('kernelTCP'),
        Swappiness: x.u64('swappiness'),
        DisableOOMKiller: x.bool('disableOOMKiller'),
      }),
    ),
    CPU: convert(
      r.sub('cpu'),
      (x): LinuxCPU => ({
        Shares: x.u64('shares'),
        Quota: x.i64('quota'),
        Period: x.u64('period'),
        RealtimeRuntime: x.i64('realtimeRuntime'),
        RealtimePeriod: x.u64('realtimePeriod'),
        Cpus: x.str('cpus'),
        Mems: x.str('mems'),
      }),
    ),
    Pids: convert(r.sub('pids'), (x): LinuxPids => ({ Limit: x.i64('limit') })),
    BlockIO: convert(
      r.sub('blockIO'),
      (x): LinuxBlockIO => ({
        Weight: x.u32('weight'),
        LeafWeight: x.u32('leafWeight'),
        WeightDevice: x.objs('weightDevice', weightDeviceFrom),
        ThrottleReadBpsDevice: x.objs('throttleReadBpsDevice', throttleDeviceFrom),
        ThrottleWriteBpsDevice: x.objs('throttleWriteBpsDevice', throttleDeviceFrom),
        ThrottleReadIOPSDevice: x.objs('throttleReadIOPSDevice', throttleDeviceFrom),
        ThrottleWriteIOPSDevice: x.objs('throttleWriteIOPSDevice', throttleDeviceFrom),
      }),
    ),
    HugepageLimits: r.objs('hugepageLimits', (x): LinuxHugepageLimit => done(x, { Pagesize: x.str('pageSize'), Limit: x.u64('limit') })),
    Network: convert(
      r.sub('network'),
      (x): LinuxNetwork => ({
        ClassID: x.u32('classID'),
        Priorities: x.objs('priorities', (p): LinuxInterfacePriority => done(p, { Name: p.str('name'), Priority: p.u32('priority') })),
      }),
    ),
  };
}

function seccompFrom(r: Reader): LinuxSeccomp {
  return {
    DefaultAction: r.str('defaultAction'),
    Architectures: r.strs('architectures'),
    Flags: r.strs('flags'),
    Syscalls: r.objs(
      'syscalls',
      (x): LinuxSyscall =>
        done(x, {
          Names: x.strs('names'),
          Action: x.str('action'),
          errnoret: x.optU32('errnoRet'),
          Args: x.objs(
            'args',
            (a): LinuxSeccompArg =>
              done(a, { Index: a.u64('index'), Value: a.u64('value'), ValueTwo: a.u64('valueTwo'), Op: a.str('op') }),
          ),
        }),
    ),
  };
}

/* ------------------------------------------------------------------------------------
 * proto -> JSON
 * ------------------------------------------------------------------------------------ */

/** Builds a JSON object, leaving out what the rules above say is absent. */
class Writer {
  readonly out: Json = {};

  /** always written (a field the JSON requires) */
  req(key: string, value: unknown): this {
    this.out[key] = value;
    return this;
  }

  str(key: string, v: string): this {
    if (v !== '') this.out[key] = v;
    return this;
  }

  bool(key: string, v: boolean): this {
    if (v) this.out[key] = true;
    return this;
  }

  num(key: string, v: number | bigint): this {
    if (v !== 0 && v !== 0n) this.out[key] = jsonNumber(v);
    return this;
  }

  list<T>(key: string, v: readonly T[], map: (x: T) => unknown = (x) => x): this {
    if (v.length > 0) this.out[key] = v.map(map);
    return this;
  }

  map(key: string, v: Record<string, string>): this {
    if (Object.keys(v).length > 0) this.out[key] = { ...v };
    return this;
  }

  obj<T>(key: string, v: T | undefined, map: (x: T) => Json): this {
    if (v !== undefined) this.out[key] = map(v);
    return this;
  }
}

function jsonNumber(v: number | bigint): number {
  return typeof v === 'bigint' ? Number(v) : v;
}

/** Kata's Spec -> OCI config.json (as a plain object, ready for JSON.stringify). */
export function ociSpecFromProto(spec: Spec): Record<string, unknown> {
  return new Writer()
    .req('ociVersion', spec.Version)
    .obj('process', spec.Process, ociProcessFromProto)
    .obj('root', spec.Root, (x) => new Writer().req('path', x.Path).bool('readonly', x.Readonly).out)
    .str('hostname', spec.Hostname)
    .list('mounts', spec.Mounts, (m) =>
      new Writer().req('destination', m.destination).str('type', m.type).str('source', m.source).list('options', m.options).out,
    )
    .obj('hooks', spec.Hooks, hooksJson)
    .map('annotations', spec.Annotations)
    .obj('linux', spec.Linux, linuxJson).out;
}

/** Kata's Process -> OCI process JSON. */
export function ociProcessFromProto(p: Process): Record<string, unknown> {
  return new Writer()
    .bool('terminal', p.Terminal)
    .obj('consoleSize', p.ConsoleSize, (b) => ({ height: b.Height, width: b.Width }))
    .obj(
      'user',
      p.User,
      (u) => new Writer().req('uid', u.UID).req('gid', u.GID).list('additionalGids', u.AdditionalGids).str('username', u.Username).out,
    )
    .list('args', p.Args)
    .list('env', p.Env)
    .req('cwd', p.Cwd)
    .obj(
      'capabilities',
      p.Capabilities,
      (c) =>
        new Writer()
          .list('bounding', c.Bounding)
          .list('effective', c.Effective)
          .list('inheritable', c.Inheritable)
          .list('permitted', c.Permitted)
          .list('ambient', c.Ambient).out,
    )
    .list('rlimits', p.Rlimits, (l) => ({ type: l.Type, hard: jsonNumber(l.Hard), soft: jsonNumber(l.Soft) }))
    .bool('noNewPrivileges', p.NoNewPrivileges)
    .str('apparmorProfile', p.ApparmorProfile)
    .num('oomScoreAdj', p.OOMScoreAdj)
    .str('selinuxLabel', p.SelinuxLabel).out;
}

function hookJson(h: Hook): Json {
  return new Writer().req('path', h.Path).list('args', h.Args).list('env', h.Env).num('timeout', h.Timeout).out;
}

function hooksJson(h: Hooks): Json {
  return new Writer()
    .list('prestart', h.Prestart, hookJson)
    .list('createRuntime', h.CreateRuntime, hookJson)
    .list('createContainer', h.CreateContainer, hookJson)
    .list('startContainer', h.StartContainer, hookJson)
    .list('poststart', h.Poststart, hookJson)
    .list('poststop', h.Poststop, hookJson).out;
}

function idMappingJson(m: LinuxIDMapping): Json {
  return { containerID: m.ContainerID, hostID: m.HostID, size: m.Size };
}

function linuxJson(l: Linux): Json {
  return new Writer()
    .list('uidMappings', l.UIDMappings, idMappingJson)
    .list('gidMappings', l.GIDMappings, idMappingJson)
    .map('sysctl', l.Sysctl)
    .obj('resources', l.Resources, ociResourcesFromProto)
    .str('cgroupsPath', l.CgroupsPath)
    .list('namespaces', l.Namespaces, (n) => new Writer().req('type', n.Type).str('path', n.Path).out)
    .list(
      'devices',
      l.Devices,
      (d) =>
        new Writer()
          .req('path', d.Path)
          .req('type', d.Type)
          .req('major', jsonNumber(d.Major))
          .req('minor', jsonNumber(d.Minor))
          .num('fileMode', d.FileMode)
          .num('uid', d.UID)
          .num('gid', d.GID).out,
    )
    .obj('seccomp', l.Seccomp, seccompJson)
    .str('rootfsPropagation', l.RootfsPropagation)
    .list('maskedPaths', l.MaskedPaths)
    .list('readonlyPaths', l.ReadonlyPaths)
    .str('mountLabel', l.MountLabel)
    .obj('intelRdt', l.IntelRdt, (i) => new Writer().str('l3CacheSchema', i.L3CacheSchema).out).out;
}

function weightDeviceJson(d: LinuxWeightDevice): Json {
  return new Writer().req('major', jsonNumber(d.Major)).req('minor', jsonNumber(d.Minor)).num('weight', d.Weight).num('leafWeight', d.LeafWeight).out;
}

function throttleDeviceJson(d: LinuxThrottleDevice): Json {
  return { major: jsonNumber(d.Major), minor: jsonNumber(d.Minor), rate: jsonNumber(d.Rate) };
}

/** Kata's LinuxResources -> OCI linux.resources JSON. */
export function ociResourcesFromProto(r: LinuxResources): Record<string, unknown> {
  return new Writer()
    .list(
      'devices',
      r.Devices,
      (d) => {
        const w = new Writer().req('allow', d.Allow).str('type', d.Type);
        // 0 from Kata's runtime is its "absent"; it only matters in a rule that names a device type
        const anyType = d.Type === '' || d.Type === 'a';
        if (d.Major >= 0n && !(anyType && d.Major === 0n)) w.req('major', jsonNumber(d.Major));
        if (d.Minor >= 0n && !(anyType && d.Minor === 0n)) w.req('minor', jsonNumber(d.Minor));
        return w.str('access', d.Access).out;
      },
    )
    .obj(
      'memory',
      r.Memory,
      (m) =>
        new Writer()
          .num('limit', m.Limit)
          .num('reservation', m.Reservation)
          .num('swap', m.Swap)
          .num('kernel', m.Kernel)
          .num('kernelTCP', m.KernelTCP)
          .num('swappiness', m.Swappiness)
          .bool('disableOOMKiller', m.DisableOOMKiller).out,
    )
    .obj(
      'cpu',
      r.CPU,
      (c) =>
        new Writer()
          .num('shares', c.Shares)
          .num('quota', c.Quota)
          .num('period', c.Period)
          .num('realtimeRuntime', c.RealtimeRuntime)
          .num('realtimePeriod', c.RealtimePeriod)
          .str('cpus', c.Cpus)
          .str('mems', c.Mems).out,
    )
    .obj('pids', r.Pids, (p) => ({ limit: jsonNumber(p.Limit) }))
    .obj(
      'blockIO',
      r.BlockIO,
      (b) =>
        new Writer()
          .num('weight', b.Weight)
          .num('leafWeight', b.LeafWeight)
          .list('weightDevice', b.WeightDevice, weightDeviceJson)
          .list('throttleReadBpsDevice', b.ThrottleReadBpsDevice, throttleDeviceJson)
          .list('throttleWriteBpsDevice', b.ThrottleWriteBpsDevice, throttleDeviceJson)
          .list('throttleReadIOPSDevice', b.ThrottleReadIOPSDevice, throttleDeviceJson)
          .list('throttleWriteIOPSDevice', b.ThrottleWriteIOPSDevice, throttleDeviceJson).out,
    )
    .list('hugepageLimits', r.HugepageLimits, (h) => ({ pageSize: h.Pagesize, limit: jsonNumber(h.Limit) }))
    .obj(
      'network',
      r.Network,
      (n) => new Writer().num('classID', n.ClassID).list('priorities', n.Priorities, (p) => ({ name: p.Name, priority: p.Priority })).out,
    ).out;
}

function seccompJson(s: LinuxSeccomp): Json {
  return new Writer()
    .req('defaultAction', s.DefaultAction)
    .list('architectures', s.Architectures)
    .list('flags', s.Flags)
    .list('syscalls', s.Syscalls, (c) => {
      const w = new Writer().req('names', [...c.Names]).req('action', c.Action);
      if (c.errnoret !== undefined) w.req('errnoRet', c.errnoret);
      return w.list('args', c.Args, (a) =>
        new Writer().req('index', jsonNumber(a.Index)).req('value', jsonNumber(a.Value)).num('valueTwo', a.ValueTwo).req('op', a.Op).out,
      ).out;
    }).out;
}
