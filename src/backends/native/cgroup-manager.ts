/**
 * Cgroup placement and resources for the native backend, cgroupfs driver: the same
 * path in every v1 hierarchy (and in the cgroup2 tree on hybrid and v2 hosts), as runc
 * does with an OCI `cgroupsPath`. Directories are made and resources written here, in
 * Node, before the helper runs; the helper only writes the container's pid into the
 * `cgroup.procs` files this module lists.
 *
 * Everything is synchronous: cgroupfs reads and writes never block on I/O, and create
 * is on the latency path (an async fs call costs a thread-pool round trip each).
 *
 * Reading (stats, pids, OOM) reuses src/sys/cgroups.ts. Device rules on cgroup2 are an
 * eBPF program (device-filter.ts), compiled into the plan and attached by the helper.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { ShimError, invalidArgument, unimplemented } from '../../core/errors.js';
import { type CgroupLayout, type ProcessCgroups, cgroupLayout, listPids } from '../../sys/cgroups.js';
import { type CgroupPaths, uniformCgroupPaths } from './cgroup-path.js';
import type { OciDeviceRule, OciResources } from './spec.js';

/** One container's cgroup: its path and the directory in each hierarchy. */
export interface CgroupSet {
  /** as /proc/<pid>/cgroup shows it, e.g. /default/redis (the cgroup2 one when they differ) */
  path: string;
  /** the path in each hierarchy (they differ for a relative cgroupsPath) */
  paths: CgroupPaths;
  /** v1 hierarchy directories, keyed by the hierarchy's controllers joined with ',' */
  v1: Record<string, string>;
  /** the cgroup2 directory (v2 hosts; the unified tree on hybrid hosts) */
  unified?: string;
  /** directories this create made (removed on a failed create) */
  created: string[];
}

/** where the helper puts a container process: see CgroupManager.placement */
export interface CgroupPlacement {
  procs: string[];
  self: string[];
  cloneInto?: string;
}

/** devices every container may use, whatever its rules say (runc's default allow list) */
const DEFAULT_ALLOWED_DEVICES: OciDeviceRule[] = [
  { allow: true, type: 'c', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'b', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { allow: true, type: 'c', major: 136, minor: -1, access: 'rwm' }, // pts
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }, // tun
];

/**
 * A container's device rules as enforced: its own, then the default allow list. The v1
 * devices controller and the cgroup2 eBPF filter (device-filter.ts) both get this list.
 */
export function effectiveDeviceRules(rules: OciDeviceRule[]): OciDeviceRule[] {
  return [...rules, ...DEFAULT_ALLOWED_DEVICES];
}

const FREEZE_TIMEOUT_MS = 5_000;
const EMPTY_TIMEOUT_MS = 5_000;

function dirsFor(paths: CgroupPaths, layout: CgroupLayout): Omit<CgroupSet, 'created'> {
  const v1: Record<string, string> = {};
  for (const m of layout.v1) v1[m.controllers.join(',')] = join(m.mountPoint, paths.v1[m.controllers[0]!] ?? paths.path);
  const unified = layout.unified ? join(layout.unified.mountPoint, paths.unified ?? paths.path) : undefined;
  return { path: paths.path, paths, v1, unified };
}

function sysErrno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/** writes one cgroup file; failures name the spec field and the file */
function writeCg(dir: string, file: string, value: string, field: string): void {
  try {
    writeFileSync(join(dir, file), value);
  } catch (err) {
    const code = sysErrno(err);
    const msg = `${field}: cannot write ${JSON.stringify(value)} to ${join(dir, file)}: ${code ?? (err as Error).message}`;
    throw code === 'EINVAL' || code === 'ERANGE' || code === 'EBUSY' ? invalidArgument(msg, err) : new ShimError('Internal', msg, { cause: err });
  }
}

function exists(p: string): boolean {
  return existsSync(p);
}

function readTrim(p: string): string {
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    return '';
  }
}

/** v1 cpuset cgroups start empty: each new level copies cpus and mems from its parent */
function mkdirCpuset(dir: string, root: string, created: string[]): void {
  if (exists(dir)) return;
  const parent = dirname(dir);
  if (parent !== root && parent.startsWith(root)) mkdirCpuset(parent, root, created);
  mkdirSync(dir);
  created.push(dir);
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    if (!readTrim(join(dir, f))) writeFileSync(join(dir, f), readTrim(join(parent, f)));
  }
}

function mkdirAll(dir: string, created: string[]): void {
  if (exists(dir)) return;
  mkdirAll(dirname(dir), created);
  try {
    mkdirSync(dir);
    created.push(dir);
  } catch (err) {
    if (sysErrno(err) !== 'EEXIST') throw err;
  }
}

/** v2: controllers must be enabled in every ancestor's subtree_control to reach the leaf */
function enableControllers(unifiedRoot: string, leaf: string): void {
  const available = readTrim(join(unifiedRoot, 'cgroup.controllers')).split(/\s+/).filter(Boolean);
  if (available.length === 0) return;
  let dir = unifiedRoot;
  // every ancestor of the leaf, the root and the leaf's parent included
  for (const part of relative(unifiedRoot, leaf).split('/')) {
    const want = readTrim(join(dir, 'cgroup.controllers')).split(/\s+/).filter(Boolean);
    const have = new Set(readTrim(join(dir, 'cgroup.subtree_control')).split(/\s+/).filter(Boolean));
    const missing = want.filter((c) => !have.has(c));
    if (missing.length) {
      try {
        writeFileSync(join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
      } catch {
        // one at a time: a controller that cannot be enabled here (a threaded subtree) must
        // not keep the others from being enabled; its files are absent below
        for (const c of missing) {
          try {
            writeFileSync(join(dir, 'cgroup.subtree_control'), `+${c}`);
          } catch {
            // not here
          }
        }
      }
    }
    dir = join(dir, part);
  }
}

function deviceRuleV1(r: OciDeviceRule): string {
  if (r.type === 'a' && r.major === -1 && r.minor === -1) return 'a';
  const n = (v: number) => (v < 0 ? '*' : String(v));
  return `${r.type} ${n(r.major)}:${n(r.minor)} ${r.access}`;
}

/** -1 or anything ≥ 2^63 means unlimited */
function limitV1(v: bigint): string {
  return v < 0n || v >= 1n << 63n ? '-1' : String(v);
}

function limitV2(v: bigint): string {
  return v < 0n || v >= 1n << 63n ? 'max' : String(v);
}

/** cpu.shares (2..262144) → cpu.weight (1..10000), as runc and crun convert */
export function sharesToWeight(shares: bigint): bigint {
  if (shares === 0n) return 0n;
  return 1n + ((shares - 2n) * 9999n) / 262142n;
}

export class CgroupManager {
  constructor(readonly layout: CgroupLayout = cgroupLayout()) {}

  get mode(): CgroupLayout['mode'] {
    return this.layout.mode;
  }

  /** the set for a place, without touching the filesystem (delete, cleanup after crash) */
  setFor(place: CgroupPaths | string): CgroupSet {
    const paths = typeof place === 'string' ? uniformCgroupPaths(place, this.layout) : place;
    return { ...dirsFor(paths, this.layout), created: [] };
  }

  /** as src/sys/cgroups.ts wants it for metrics and pid lists */
  processCgroups(set: CgroupSet): ProcessCgroups {
    return { v1: { ...set.paths.v1 }, unified: set.paths.unified };
  }

  /** the files the helper writes the container's pid into */
  procsFiles(set: CgroupSet): string[] {
    const files = Object.values(set.v1).map((d) => join(d, 'cgroup.procs'));
    if (set.unified) files.push(join(set.unified, 'cgroup.procs'));
    return files;
  }

  /**
   * How the helper places a container process (see plan.ts): cloned into the cgroup2
   * directory and moving itself into the v1 ones when it can (host root when it
   * starts), else migrated by the helper through cgroup.procs.
   */
  placement(set: CgroupSet, canMoveItself: boolean): CgroupPlacement {
    if (!canMoveItself) return { procs: this.procsFiles(set), self: [] };
    return { procs: [], self: Object.values(set.v1).map((d) => join(d, 'tasks')), cloneInto: set.unified };
  }

  /**
   * Makes the directories; InvalidArgument if the leaf exists and holds processes. With
   * `adopt`, the leaf was just made by systemd for this container (its scope holds the
   * runtime's helper): the hierarchies systemd does not manage are made, nothing is checked.
   */
  create(place: CgroupPaths | string, o: { adopt?: boolean } = {}): CgroupSet {
    const set = this.setFor(place);
    const cgPath = set.path;
    try {
      for (const [key, dir] of Object.entries(set.v1)) {
        const mount = this.layout.v1.find((m) => m.controllers.join(',') === key)!;
        if (mount.controllers.includes('cpuset')) mkdirCpuset(dir, mount.mountPoint, set.created);
        else mkdirAll(dir, set.created);
      }
      if (set.unified) {
        mkdirAll(set.unified, set.created);
        if (this.layout.mode === 'v2') enableControllers(this.layout.unified!.mountPoint, set.unified);
      }
    } catch (err) {
      this.removeCreated(set);
      throw new ShimError('Internal', `create cgroup ${cgPath}: ${(err as Error).message}`, { cause: err });
    }
    // a cgroup we just made is empty; one that was there may belong to another container
    const leafMade = set.created.length > 0 && Object.values(set.v1).concat(set.unified ?? []).every((d) => set.created.includes(d));
    if (!o.adopt && !leafMade && listPids(this.processCgroups(set), this.layout).length > 0) {
      this.removeCreated(set);
      throw invalidArgument(`linux.cgroupsPath: cgroup ${cgPath} already has processes (another container uses it)`);
    }
    return set;
  }

  /** a failed create leaves nothing: removes the directories it made, deepest first */
  async destroyCreated(set: CgroupSet): Promise<void> {
    for (const dir of [...set.created].sort((a, b) => b.length - a.length)) await rmdirRetry(dir).catch(() => undefined);
    set.created = [];
  }

  /** as destroyCreated, for a set no process ever joined */
  private removeCreated(set: CgroupSet): void {
    for (const dir of [...set.created].sort((a, b) => b.length - a.length)) rmdirQuiet(dir);
    set.created = [];
  }

  /** writes resources (create and Update); errors name the field */
  apply(set: CgroupSet, r: OciResources, field = 'linux.resources'): void {
    if (this.layout.mode === 'v2') this.applyV2(set, r, field);
    else this.applyV1(set, r, field);
  }

  private v1Dir(set: CgroupSet, controller: string): string | undefined {
    for (const [key, dir] of Object.entries(set.v1)) if (key.split(',').includes(controller)) return dir;
    return undefined;
  }

  private applyV1(set: CgroupSet, r: OciResources, field: string): void {
    const d = (c: string) => this.v1Dir(set, c);
    const mem = d('memory');
    if (r.memory && mem) {
      const m = r.memory;
      // with swap, limit and memsw.limit must move in the order that keeps limit ≤ memsw
      const current = BigInt(readTrim(join(mem, 'memory.limit_in_bytes')) || '0');
      const writeLimit = () => m.limit !== undefined && writeCg(mem, 'memory.limit_in_bytes', limitV1(m.limit), `${field}.memory.limit`);
      const writeSwap = () => {
        if (m.swap === undefined) return;
        if (!exists(join(mem, 'memory.memsw.limit_in_bytes'))) {
          if (m.swap > 0n) throw invalidArgument(`${field}.memory.swap: swap accounting is not enabled on this host`);
          return;
        }
        writeCg(mem, 'memory.memsw.limit_in_bytes', limitV1(m.swap), `${field}.memory.swap`);
      };
      if (m.swap !== undefined && (m.swap < 0n || (m.limit !== undefined && m.limit > current))) {
        writeSwap();
        writeLimit();
      } else {
        writeLimit();
        writeSwap();
      }
      if (m.reservation !== undefined) writeCg(mem, 'memory.soft_limit_in_bytes', limitV1(m.reservation), `${field}.memory.reservation`);
      if (m.swappiness !== undefined && m.swappiness <= 100n) writeCg(mem, 'memory.swappiness', String(m.swappiness), `${field}.memory.swappiness`);
      if (m.disableOOMKiller) writeCg(mem, 'memory.oom_control', '1', `${field}.memory.disableOOMKiller`);
    }
    const cpu = d('cpu');
    if (r.cpu && cpu) {
      const c = r.cpu;
      if (c.shares) writeCg(cpu, 'cpu.shares', String(c.shares), `${field}.cpu.shares`);
      // period before quota: a quota is checked against the current period
      if (c.period) writeCg(cpu, 'cpu.cfs_period_us', String(c.period), `${field}.cpu.period`);
      if (c.quota !== undefined && c.quota !== 0n) writeCg(cpu, 'cpu.cfs_quota_us', c.quota < 0n ? '-1' : String(c.quota), `${field}.cpu.quota`);
      if (c.realtimePeriod) writeCg(cpu, 'cpu.rt_period_us', String(c.realtimePeriod), `${field}.cpu.realtimePeriod`);
      if (c.realtimeRuntime !== undefined && c.realtimeRuntime !== 0n) writeCg(cpu, 'cpu.rt_runtime_us', String(c.realtimeRuntime), `${field}.cpu.realtimeRuntime`);
      if (c.idle !== undefined && exists(join(cpu, 'cpu.idle'))) writeCg(cpu, 'cpu.idle', String(c.idle), `${field}.cpu.idle`);
    }
    const cpuset = d('cpuset');
    if (r.cpu && cpuset) {
      if (r.cpu.cpus) writeCg(cpuset, 'cpuset.cpus', r.cpu.cpus, `${field}.cpu.cpus`);
      if (r.cpu.mems) writeCg(cpuset, 'cpuset.mems', r.cpu.mems, `${field}.cpu.mems`);
    }
    const pids = d('pids');
    if (r.pids && pids) writeCg(pids, 'pids.max', r.pids.limit > 0n ? String(r.pids.limit) : 'max', `${field}.pids.limit`);
    const blkio = d('blkio');
    if (r.blockIO && blkio) {
      const b = r.blockIO;
      const f = `${field}.blockIO`;
      if (b.weight) writeCg(blkio, exists(join(blkio, 'blkio.weight')) ? 'blkio.weight' : 'blkio.bfq.weight', String(b.weight), `${f}.weight`);
      if (b.leafWeight && exists(join(blkio, 'blkio.leaf_weight'))) writeCg(blkio, 'blkio.leaf_weight', String(b.leafWeight), `${f}.leafWeight`);
      for (const w of b.weightDevice) {
        if (w.weight) writeCg(blkio, 'blkio.weight_device', `${w.major}:${w.minor} ${w.weight}`, `${f}.weightDevice`);
      }
      const throttles: Array<[string, keyof typeof b]> = [
        ['blkio.throttle.read_bps_device', 'throttleReadBpsDevice'],
        ['blkio.throttle.write_bps_device', 'throttleWriteBpsDevice'],
        ['blkio.throttle.read_iops_device', 'throttleReadIOPSDevice'],
        ['blkio.throttle.write_iops_device', 'throttleWriteIOPSDevice'],
      ];
      for (const [file, key] of throttles) {
        for (const t of b[key] as Array<{ major: number; minor: number; rate: bigint }>) writeCg(blkio, file, `${t.major}:${t.minor} ${t.rate}`, `${f}.${key}`);
      }
    }
    const hugetlb = d('hugetlb');
    for (const h of r.hugepageLimits) {
      if (!hugetlb) throw invalidArgument(`${field}.hugepageLimits: the hugetlb controller is not mounted`);
      writeCg(hugetlb, `hugetlb.${h.pageSize}.limit_in_bytes`, String(h.limit), `${field}.hugepageLimits`);
    }
    if (r.network) {
      const cls = d('net_cls');
      const prio = d('net_prio');
      if (r.network.classID !== undefined && cls) writeCg(cls, 'net_cls.classid', String(r.network.classID), `${field}.network.classID`);
      for (const p of r.network.priorities) if (prio) writeCg(prio, 'net_prio.ifpriomap', `${p.name} ${p.priority}`, `${field}.network.priorities`);
    }
    const devices = d('devices');
    if (devices && r.devices.length > 0) {
      for (const rule of effectiveDeviceRules(r.devices)) {
        writeCg(devices, rule.allow ? 'devices.allow' : 'devices.deny', deviceRuleV1(rule), `${field}.devices`);
      }
    }
    if (Object.keys(r.unified).length > 0) {
      throw invalidArgument(`${field}.unified: cgroup2 files given, but this host runs cgroup v1 controllers (${this.layout.mode})`);
    }
  }

  private applyV2(set: CgroupSet, r: OciResources, field: string): void {
    const dir = set.unified!;
    if (r.memory) {
      const m = r.memory;
      if (m.limit !== undefined) writeCg(dir, 'memory.max', limitV2(m.limit), `${field}.memory.limit`);
      if (m.reservation !== undefined) writeCg(dir, 'memory.low', limitV2(m.reservation), `${field}.memory.reservation`);
      if (m.swap !== undefined && exists(join(dir, 'memory.swap.max'))) {
        // OCI swap is memory+swap; cgroup2 counts swap alone
        const swapOnly = m.swap < 0n ? -1n : m.limit !== undefined && m.limit > 0n ? m.swap - m.limit : m.swap;
        if (swapOnly < -1n) throw invalidArgument(`${field}.memory.swap: must be at least memory.limit (memory+swap)`);
        writeCg(dir, 'memory.swap.max', limitV2(swapOnly), `${field}.memory.swap`);
      }
      if (m.disableOOMKiller) throw unimplemented(`${field}.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer`);
    }
    if (r.cpu) {
      const c = r.cpu;
      if (c.shares) writeCg(dir, 'cpu.weight', String(sharesToWeight(c.shares)), `${field}.cpu.shares`);
      if ((c.quota !== undefined && c.quota !== 0n) || c.period) {
        const quota = c.quota === undefined || c.quota === 0n ? readTrim(join(dir, 'cpu.max')).split(' ')[0] ?? 'max' : c.quota < 0n ? 'max' : String(c.quota);
        writeCg(dir, 'cpu.max', `${quota} ${c.period || 100000n}`, `${field}.cpu.quota`);
      }
      if (c.idle !== undefined && exists(join(dir, 'cpu.idle'))) writeCg(dir, 'cpu.idle', String(c.idle), `${field}.cpu.idle`);
      if (c.cpus) writeCg(dir, 'cpuset.cpus', c.cpus, `${field}.cpu.cpus`);
      if (c.mems) writeCg(dir, 'cpuset.mems', c.mems, `${field}.cpu.mems`);
    }
    if (r.pids) writeCg(dir, 'pids.max', r.pids.limit > 0n ? String(r.pids.limit) : 'max', `${field}.pids.limit`);
    if (r.blockIO) {
      const b = r.blockIO;
      if (b.weight) writeCg(dir, 'io.weight', `default ${1n + ((BigInt(b.weight) - 10n) * 9999n) / 990n}`, `${field}.blockIO.weight`);
      const io: Array<[string, keyof typeof b]> = [
        ['rbps', 'throttleReadBpsDevice'],
        ['wbps', 'throttleWriteBpsDevice'],
        ['riops', 'throttleReadIOPSDevice'],
        ['wiops', 'throttleWriteIOPSDevice'],
      ];
      for (const [k, key] of io) {
        for (const t of b[key] as Array<{ major: number; minor: number; rate: bigint }>) writeCg(dir, 'io.max', `${t.major}:${t.minor} ${k}=${t.rate}`, `${field}.blockIO.${key}`);
      }
    }
    for (const h of r.hugepageLimits) writeCg(dir, `hugetlb.${h.pageSize}.max`, String(h.limit), `${field}.hugepageLimits`);
    for (const [file, value] of Object.entries(r.unified)) writeCg(dir, file, value, `${field}.unified.${file}`);
    // device rules: an eBPF program the helper attaches at create (device-filter.ts)
  }

  // ---- freezer -----------------------------------------------------------------------

  private freezerDir(set: CgroupSet): { dir: string; v2: boolean } {
    if (this.layout.mode === 'v2') return { dir: set.unified!, v2: true };
    const dir = this.v1Dir(set, 'freezer');
    if (!dir) throw unimplemented('pause: the freezer controller is not mounted on this host');
    return { dir, v2: false };
  }

  async freeze(set: CgroupSet): Promise<void> {
    await this.setFrozen(set, true);
  }

  async thaw(set: CgroupSet): Promise<void> {
    await this.setFrozen(set, false);
  }

  /** isFrozen, false when there is no freezer to ask */
  isFrozenQuiet(set: CgroupSet): boolean {
    try {
      return this.isFrozen(set);
    } catch {
      return false;
    }
  }

  isFrozen(set: CgroupSet): boolean {
    const { dir, v2 } = this.freezerDir(set);
    if (v2) return /^frozen 1$/m.test(readTrim(join(dir, 'cgroup.events')));
    return readTrim(join(dir, 'freezer.state')) === 'FROZEN';
  }

  /** writes the state and waits until the kernel reports it (v1 passes FREEZING) */
  private async setFrozen(set: CgroupSet, frozen: boolean): Promise<void> {
    const { dir, v2 } = this.freezerDir(set);
    const deadline = Date.now() + FREEZE_TIMEOUT_MS;
    for (let attempt = 0; ; attempt++) {
      // v1 may need the write repeated: tasks forking while FREEZING can leave it there
      if (v2) writeCg(dir, 'cgroup.freeze', frozen ? '1' : '0', 'freeze');
      else if (attempt % 10 === 0) writeCg(dir, 'freezer.state', frozen ? 'FROZEN' : 'THAWED', 'freeze');
      if (this.isFrozen(set) === frozen) return;
      if (Date.now() > deadline) throw new ShimError('DeadlineExceeded', `cgroup ${set.path} did not ${frozen ? 'freeze' : 'thaw'} within ${FREEZE_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, Math.min(1 + attempt, 10)));
    }
  }

  // ---- processes ---------------------------------------------------------------------

  pids(set: CgroupSet): number[] {
    return listPids(this.processCgroups(set), this.layout);
  }

  /** no process directly in the cgroup (one file read; child cgroups are not looked at) */
  isEmpty(set: CgroupSet): boolean {
    const dir = this.v1Dir(set, 'pids') ?? this.v1Dir(set, 'memory') ?? set.unified ?? Object.values(set.v1)[0];
    if (!dir) return true;
    try {
      return readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() === '';
    } catch {
      return true; // no such cgroup
    }
  }

  /** signals every process of the cgroup; SIGKILL under the freezer so no fork escapes */
  async signalAll(set: CgroupSet, signal: number): Promise<number> {
    const useFreezer = signal === 9 && this.hasFreezer(set);
    if (useFreezer) await this.freeze(set);
    let n = 0;
    try {
      for (const pid of this.pids(set)) {
        try {
          process.kill(pid, signal);
          n++;
        } catch {
          // exited meanwhile
        }
      }
    } finally {
      if (useFreezer) await this.thaw(set).catch(() => undefined);
    }
    return n;
  }

  private hasFreezer(set: CgroupSet): boolean {
    try {
      const { dir } = this.freezerDir(set);
      return exists(dir);
    } catch {
      return false;
    }
  }

  /** waits until no process is left in the cgroup */
  async waitEmpty(set: CgroupSet, timeoutMs = EMPTY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; this.pids(set).length > 0; i++) {
      if (Date.now() > deadline) throw new ShimError('DeadlineExceeded', `processes of cgroup ${set.path} still alive after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, Math.min(1 + i, 20)));
    }
  }

  /** removes the container's cgroup (the leaf: parents like /default are shared) */
  async destroy(set: CgroupSet): Promise<void> {
    const dirs = [...Object.values(set.v1), ...(set.unified ? [set.unified] : [])];
    for (const dir of dirs) await rmdirRetry(dir);
  }
}

function rmdirQuiet(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not ours to force
  }
}

/**
 * A cgroup is removable once its last task is fully gone (EBUSY can trail an exit
 * briefly) and its child cgroups are removed (the container may have made some, e.g.
 * systemd inside): those are looked for only when the plain rmdir fails.
 */
async function rmdirRetry(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = sysErrno(err);
      if (code === 'ENOENT') return;
      if ((code !== 'EBUSY' && code !== 'ENOTEMPTY') || i >= 20) {
        throw new ShimError('Internal', `remove cgroup ${dir}: ${code ?? (err as Error).message}`, { cause: err });
      }
      let children = 0;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        children++;
        await rmdirRetry(join(dir, e.name));
      }
      if (children === 0) await new Promise((r) => setTimeout(r, 5));
    }
  }
}

