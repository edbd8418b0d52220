/**
 * cgroup reads: where a process's cgroups are, which cgroup layout the host has, and
 * the metrics containerd expects from Stats, in the shapes of
 * `io.containerd.cgroups.v1.Metrics` and `io.containerd.cgroups.v2.Metrics` (camelCase
 * field names, bigint for uint64, every scalar present, missing files read as zero), so
 * the protocol edge can encode them as they are.
 *
 * Which shape: containerd's runc shim reports v1 metrics unless the host is purely
 * unified, so hybrid hosts (v1 controllers + an empty cgroup2 at /sys/fs/cgroup/unified)
 * get v1 metrics too.
 *
 * Everything here is synchronous and cheap (a few small sysfs reads); nothing is cached
 * except the mount layout and the huge page sizes, which do not change while we run.
 */
import { readdirSync, readFileSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

// ---- layout --------------------------------------------------------------------------

export type CgroupMode = 'v1' | 'v2' | 'hybrid';

export interface CgroupMount {
  /** where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory */
  mountPoint: string;
  /** which cgroup of the hierarchy is mounted there ('/' unless bind-mounted from a subtree) */
  root: string;
  /** v1 controllers of this hierarchy ('memory', 'cpu', 'name=systemd'...); [] for cgroup2 */
  controllers: string[];
}

export interface CgroupLayout {
  mode: CgroupMode;
  v1: CgroupMount[];
  unified: CgroupMount | undefined;
}

const V1_CONTROLLERS = new Set([
  'cpuset', 'cpu', 'cpuacct', 'blkio', 'memory', 'devices', 'freezer', 'net_cls',
  'perf_event', 'net_prio', 'hugetlb', 'pids', 'rdma', 'misc', 'debug',
]);

/** mountinfo escapes space, tab, newline and backslash as \ooo */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/<pid>/mountinfo text into the cgroup layout. */
export function parseCgroupLayout(mountinfo: string): CgroupLayout {
  const v1: CgroupMount[] = [];
  let unified: CgroupMount | undefined;
  for (const line of mountinfo.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    if (pre.length < 5) continue;
    const root = unescapeMountField(pre[3]!);
    const mountPoint = unescapeMountField(pre[4]!);
    if (fstype === 'cgroup2') {
      unified ??= { mountPoint, root, controllers: [] };
    } else if (fstype === 'cgroup') {
      const controllers = superOpts.split(',').filter((o) => V1_CONTROLLERS.has(o) || o.startsWith('name='));
      if (controllers.length === 0) continue;
      // the same hierarchy may be mounted twice (bind mounts): the first one wins
      if (v1.some((m) => m.controllers.join(',') === controllers.join(','))) continue;
      v1.push({ mountPoint, root, controllers });
    }
  }
  const hasV1Controllers = v1.some((m) => m.controllers.some((c) => !c.startsWith('name=')));
  const mode: CgroupMode = hasV1Controllers ? (unified ? 'hybrid' : 'v1') : unified ? 'v2' : 'v1';
  return { mode, v1, unified };
}

let cachedLayout: CgroupLayout | undefined;

/** The layout of this host, read once from /proc/self/mountinfo. */
export function cgroupLayout(): CgroupLayout {
  cachedLayout ??= parseCgroupLayout(readFileSync('/proc/self/mountinfo', 'utf8'));
  return cachedLayout;
}

export function cgroupMode(): CgroupMode {
  return cgroupLayout().mode;
}

// ---- a process's cgroups -------------------------------------------------------------

/** cgroup paths as /proc/<pid>/cgroup shows them (relative to each hierarchy's root). */
export interface ProcessCgroups {
  /** v1 controller → path, e.g. { memory: '/default/redis', 'name=systemd': '/...' } */
  v1: Record<string, string>;
  /** the cgroup2 path ("0::<path>") */
  unified: string | undefined;
}

export function parseProcCgroup(text: string): ProcessCgroups {
  const out: ProcessCgroups = { v1: {}, unified: undefined };
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const id = line.slice(0, a);
    const controllers = line.slice(a + 1, b);
    const path = line.slice(b + 1);
    if (id === '0' && controllers === '') out.unified = path;
    else for (const c of controllers.split(',')) if (c) out.v1[c] = path;
  }
  return out;
}

/** /proc/<pid>/cgroup; throws ENOENT (as a Node error) when the process is gone. */
export function readProcessCgroups(pid: number | 'self'): ProcessCgroups {
  return parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
}

/** The same path in every hierarchy: what runc does with an OCI `cgroupsPath` on cgroupfs. */
export function cgroupsAt(path: string, layout: CgroupLayout = cgroupLayout()): ProcessCgroups {
  const v1: Record<string, string> = {};
  for (const m of layout.v1) for (const c of m.controllers) v1[c] = path;
  return { v1, unified: layout.unified ? path : undefined };
}

function joinUnderMount(m: CgroupMount, path: string): string {
  // a mount of a subtree shows paths that start with that subtree
  let rel = path;
  if (m.root !== '/' && (path === m.root || path.startsWith(m.root + '/'))) rel = path.slice(m.root.length);
  return join(m.mountPoint, rel || '/');
}

/** Directory of a v1 controller's cgroup, or undefined when that controller is not mounted. */
export function v1Dir(cgroups: ProcessCgroups, controller: string, layout: CgroupLayout = cgroupLayout()): string | undefined {
  const path = cgroups.v1[controller];
  const m = layout.v1.find((x) => x.controllers.includes(controller));
  if (path === undefined || !m) return undefined;
  return joinUnderMount(m, path);
}

/** Directory of the cgroup2 cgroup, or undefined without a cgroup2 mount. */
export function unifiedDir(cgroups: ProcessCgroups, layout: CgroupLayout = cgroupLayout()): string | undefined {
  if (cgroups.unified === undefined || !layout.unified) return undefined;
  return joinUnderMount(layout.unified, cgroups.unified);
}

/** Directory holding the memory controller files (v1 memory hierarchy, or cgroup2 on v2 hosts). */
export function memoryDir(cgroups: ProcessCgroups, layout: CgroupLayout = cgroupLayout()): string | undefined {
  return layout.mode === 'v2' ? unifiedDir(cgroups, layout) : v1Dir(cgroups, 'memory', layout);
}

// ---- small readers -------------------------------------------------------------------

const U64_MAX = (1n << 64n) - 1n;

export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // missing controller/file, or the cgroup went away
  }
}

/** uint64 from text; negative values (v1 reports -1 for some limits) read as 0 */
function toU64(s: string | undefined, maxValue = U64_MAX): bigint {
  if (s === undefined) return 0n;
  const t = s.trim();
  if (t === 'max') return maxValue;
  if (/^\d+$/.test(t)) return BigInt(t);
  return 0n;
}

function readU64(path: string, maxValue = U64_MAX): bigint {
  return toU64(readText(path), maxValue);
}

/** "key value" lines → map */
export function readKV(path: string): Map<string, bigint> | undefined {
  const text = readText(path);
  if (text === undefined) return undefined;
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const [k, v, extra] = line.trim().split(/\s+/);
    if (k && v !== undefined && extra === undefined) out.set(k, toU64(v));
  }
  return out;
}

function pick<K extends string>(kv: Map<string, bigint> | undefined, fields: Record<K, string>): Record<K, bigint> {
  const out = {} as Record<K, bigint>;
  for (const [field, key] of Object.entries(fields) as Array<[K, string]>) out[field] = kv?.get(key) ?? 0n;
  return out;
}

let cachedHugePageSizes: string[] | undefined;

/** Huge page sizes as cgroup file names spell them ("2MB", "1GB"). */
export function hugePageSizes(): string[] {
  if (cachedHugePageSizes) return cachedHugePageSizes;
  const sizes: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/sys/kernel/mm/hugepages');
  } catch {
    // no huge pages on this kernel
  }
  for (const n of names) {
    const m = /^hugepages-(\d+)kB$/.exec(n);
    if (!m) continue;
    const kb = Number(m[1]);
    sizes.push(kb >= 1 << 20 ? `${kb >> 20}GB` : kb >= 1 << 10 ? `${kb >> 10}MB` : `${kb}KB`);
  }
  cachedHugePageSizes = sizes;
  return sizes;
}

/** major:minor → /dev/<name>, from /proc/partitions (first name wins) */
function blockDevices(procRoot: string): Map<string, string> {
  const out = new Map<string, string>();
  const text = readText(join(procRoot, 'partitions')) ?? '';
  for (const line of text.split('\n').slice(2)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const key = `${f[0]}:${f[1]}`;
    if (!out.has(key)) out.set(key, `/dev/${f[3]}`);
  }
  return out;
}

/** Where files that are not in the cgroup come from; tests point these at fixtures. */
export interface MetricsEnv {
  procRoot?: string;
  hugePageSizes?: string[];
}

// ---- v1 metrics ----------------------------------------------------------------------

export interface V1HugetlbStat { usage: bigint; max: bigint; failcnt: bigint; pagesize: string }
export interface V1PidsStat { current: bigint; limit: bigint }
export interface V1CPUUsage { total: bigint; kernel: bigint; user: bigint; perCpu: bigint[] }
export interface V1Throttle { periods: bigint; throttledPeriods: bigint; throttledTime: bigint }
export interface V1CPUStat { usage: V1CPUUsage | undefined; throttling: V1Throttle | undefined }
export interface V1MemoryEntry { limit: bigint; usage: bigint; max: bigint; failcnt: bigint }
export interface V1MemoryStat {
  cache: bigint; rss: bigint; rssHuge: bigint; mappedFile: bigint; dirty: bigint; writeback: bigint;
  pgPgIn: bigint; pgPgOut: bigint; pgFault: bigint; pgMajFault: bigint;
  inactiveAnon: bigint; activeAnon: bigint; inactiveFile: bigint; activeFile: bigint; unevictable: bigint;
  hierarchicalMemoryLimit: bigint; hierarchicalSwapLimit: bigint;
  totalCache: bigint; totalRss: bigint; totalRssHuge: bigint; totalMappedFile: bigint; totalDirty: bigint;
  totalWriteback: bigint; totalPgPgIn: bigint; totalPgPgOut: bigint; totalPgFault: bigint;
  totalPgMajFault: bigint; totalInactiveAnon: bigint; totalActiveAnon: bigint; totalInactiveFile: bigint;
  totalActiveFile: bigint; totalUnevictable: bigint;
  usage: V1MemoryEntry | undefined; swap: V1MemoryEntry | undefined;
  kernel: V1MemoryEntry | undefined; kernelTcp: V1MemoryEntry | undefined;
}
export interface V1BlkIOEntry { op: string; device: string; major: bigint; minor: bigint; value: bigint }
export interface V1BlkIOStat {
  ioServiceBytesRecursive: V1BlkIOEntry[]; ioServicedRecursive: V1BlkIOEntry[];
  ioQueuedRecursive: V1BlkIOEntry[]; ioServiceTimeRecursive: V1BlkIOEntry[];
  ioWaitTimeRecursive: V1BlkIOEntry[]; ioMergedRecursive: V1BlkIOEntry[];
  ioTimeRecursive: V1BlkIOEntry[]; sectorsRecursive: V1BlkIOEntry[];
}
export interface RdmaEntry { device: string; hcaHandles: number; hcaObjects: number }
export interface RdmaStat { current: RdmaEntry[]; limit: RdmaEntry[] }
export interface NetworkStat {
  name: string; rxBytes: bigint; rxPackets: bigint; rxErrors: bigint; rxDropped: bigint;
  txBytes: bigint; txPackets: bigint; txErrors: bigint; txDropped: bigint;
}
export interface V1CgroupStats { nrSleeping: bigint; nrRunning: bigint; nrStopped: bigint; nrUninterruptible: bigint; nrIoWait: bigint }
export interface V1MemoryOomControl { oomKillDisable: bigint; underOom: bigint; oomKill: bigint }

/** io.containerd.cgroups.v1.Metrics */
export interface V1Metrics {
  hugetlb: V1HugetlbStat[];
  pids: V1PidsStat | undefined;
  cpu: V1CPUStat | undefined;
  memory: V1MemoryStat | undefined;
  blkio: V1BlkIOStat | undefined;
  rdma: RdmaStat | undefined;
  network: NetworkStat[];
  cgroupStats: V1CgroupStats | undefined;
  memoryOomControl: V1MemoryOomControl | undefined;
}

/** v1 controller directories to read; an absent one leaves its part of the metrics out. */
export interface V1Dirs {
  memory?: string;
  cpu?: string;
  cpuacct?: string;
  pids?: string;
  blkio?: string;
  hugetlb?: string;
}

export function v1Dirs(cgroups: ProcessCgroups, layout: CgroupLayout = cgroupLayout()): V1Dirs {
  const out: V1Dirs = {};
  for (const c of ['memory', 'cpu', 'cpuacct', 'pids', 'blkio', 'hugetlb'] as const) {
    const d = v1Dir(cgroups, c, layout);
    if (d !== undefined) out[c] = d;
  }
  return out;
}

/** USER_HZ: cpuacct.stat counts in these ticks (always 100 on Linux) */
const CLOCK_TICKS = 100n;
const NS_PER_S = 1_000_000_000n;

const V1_MEMORY_STAT_KEYS = {
  cache: 'cache', rss: 'rss', rssHuge: 'rss_huge', mappedFile: 'mapped_file', dirty: 'dirty',
  writeback: 'writeback', pgPgIn: 'pgpgin', pgPgOut: 'pgpgout', pgFault: 'pgfault',
  pgMajFault: 'pgmajfault', inactiveAnon: 'inactive_anon', activeAnon: 'active_anon',
  inactiveFile: 'inactive_file', activeFile: 'active_file', unevictable: 'unevictable',
  hierarchicalMemoryLimit: 'hierarchical_memory_limit', hierarchicalSwapLimit: 'hierarchical_memsw_limit',
  totalCache: 'total_cache', totalRss: 'total_rss', totalRssHuge: 'total_rss_huge',
  totalMappedFile: 'total_mapped_file', totalDirty: 'total_dirty', totalWriteback: 'total_writeback',
  totalPgPgIn: 'total_pgpgin', totalPgPgOut: 'total_pgpgout', totalPgFault: 'total_pgfault',
  totalPgMajFault: 'total_pgmajfault', totalInactiveAnon: 'total_inactive_anon',
  totalActiveAnon: 'total_active_anon', totalInactiveFile: 'total_inactive_file',
  totalActiveFile: 'total_active_file', totalUnevictable: 'total_unevictable',
} as const;

function v1MemoryEntry(dir: string, prefix: string): V1MemoryEntry {
  return {
    usage: readU64(join(dir, `${prefix}usage_in_bytes`)),
    max: readU64(join(dir, `${prefix}max_usage_in_bytes`)),
    failcnt: readU64(join(dir, `${prefix}failcnt`)),
    limit: readU64(join(dir, `${prefix}limit_in_bytes`)),
  };
}

function readV1Memory(dir: string): { memory: V1MemoryStat; oom: V1MemoryOomControl | undefined } | undefined {
  const stat = readKV(join(dir, 'memory.stat'));
  if (!stat) return undefined;
  const oomKV = readKV(join(dir, 'memory.oom_control'));
  return {
    memory: {
      ...pick(stat, V1_MEMORY_STAT_KEYS),
      usage: v1MemoryEntry(dir, 'memory.'),
      swap: v1MemoryEntry(dir, 'memory.memsw.'),
      kernel: v1MemoryEntry(dir, 'memory.kmem.'),
      kernelTcp: v1MemoryEntry(dir, 'memory.kmem.tcp.'),
    },
    oom: oomKV && pick(oomKV, { oomKillDisable: 'oom_kill_disable', underOom: 'under_oom', oomKill: 'oom_kill' }),
  };
}

function readV1Cpu(cpuacct: string | undefined, cpu: string | undefined): V1CPUStat | undefined {
  let usage: V1CPUUsage | undefined;
  if (cpuacct !== undefined) {
    const total = readText(join(cpuacct, 'cpuacct.usage'));
    if (total !== undefined) {
      const ticks = readKV(join(cpuacct, 'cpuacct.stat'));
      const perCpu = (readText(join(cpuacct, 'cpuacct.usage_percpu')) ?? '')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((v) => toU64(v));
      usage = {
        total: toU64(total),
        user: ((ticks?.get('user') ?? 0n) * NS_PER_S) / CLOCK_TICKS,
        kernel: ((ticks?.get('system') ?? 0n) * NS_PER_S) / CLOCK_TICKS,
        perCpu,
      };
    }
  }
  let throttling: V1Throttle | undefined;
  if (cpu !== undefined) {
    const st = readKV(join(cpu, 'cpu.stat'));
    if (st) throttling = pick(st, { periods: 'nr_periods', throttledPeriods: 'nr_throttled', throttledTime: 'throttled_time' });
  }
  if (!usage && !throttling) return undefined;
  return {
    usage: usage ?? { total: 0n, kernel: 0n, user: 0n, perCpu: [] },
    throttling: throttling ?? { periods: 0n, throttledPeriods: 0n, throttledTime: 0n },
  };
}

function readBlkioFile(path: string, devices: Map<string, string>): V1BlkIOEntry[] | undefined {
  const text = readText(path);
  if (text === undefined) return undefined;
  const out: V1BlkIOEntry[] = [];
  for (const line of text.split('\n')) {
    // "8:0 Read 1234" or "8:0 1234"; "Total 1234" is skipped
    const f = line.trim().split(/[\s:]+/);
    if (f.length < 3 || !/^\d+$/.test(f[0]!) || !/^\d+$/.test(f[1]!)) continue;
    const op = f.length >= 4 ? f[2]! : '';
    const value = f.length >= 4 ? f[3] : f[2];
    out.push({ op, device: devices.get(`${f[0]}:${f[1]}`) ?? '', major: BigInt(f[0]!), minor: BigInt(f[1]!), value: toU64(value) });
  }
  return out;
}

function readV1Blkio(dir: string, procRoot: string): V1BlkIOStat {
  const devices = blockDevices(procRoot);
  const stat: V1BlkIOStat = {
    ioServiceBytesRecursive: [], ioServicedRecursive: [], ioQueuedRecursive: [],
    ioServiceTimeRecursive: [], ioWaitTimeRecursive: [], ioMergedRecursive: [],
    ioTimeRecursive: [], sectorsRecursive: [],
  };
  // CFQ files first (what containerd reads); kernels without CFQ only have throttle.*
  const cfq: Array<[keyof V1BlkIOStat, string]> = [
    ['sectorsRecursive', 'blkio.sectors_recursive'],
    ['ioServiceBytesRecursive', 'blkio.io_service_bytes_recursive'],
    ['ioServicedRecursive', 'blkio.io_serviced_recursive'],
    ['ioQueuedRecursive', 'blkio.io_queued_recursive'],
    ['ioServiceTimeRecursive', 'blkio.io_service_time_recursive'],
    ['ioWaitTimeRecursive', 'blkio.io_wait_time_recursive'],
    ['ioMergedRecursive', 'blkio.io_merged_recursive'],
    ['ioTimeRecursive', 'blkio.time_recursive'],
  ];
  let found = 0;
  for (const [field, file] of cfq) {
    const entries = readBlkioFile(join(dir, file), devices);
    if (entries) {
      stat[field] = entries;
      found += entries.length;
    }
  }
  if (found > 0) return stat;
  const throttle: Array<[keyof V1BlkIOStat, string]> = [
    ['ioServicedRecursive', 'blkio.throttle.io_serviced'],
    ['ioServiceBytesRecursive', 'blkio.throttle.io_service_bytes'],
  ];
  for (const [field, file] of throttle) {
    stat[field] = readBlkioFile(join(dir, `${file}_recursive`), devices) ?? readBlkioFile(join(dir, file), devices) ?? [];
  }
  return stat;
}

function readV1Hugetlb(dir: string, sizes: string[]): V1HugetlbStat[] {
  const out: V1HugetlbStat[] = [];
  for (const pagesize of sizes) {
    const usage = readText(join(dir, `hugetlb.${pagesize}.usage_in_bytes`));
    if (usage === undefined) continue;
    out.push({
      pagesize,
      usage: toU64(usage),
      max: readU64(join(dir, `hugetlb.${pagesize}.max_usage_in_bytes`)),
      failcnt: readU64(join(dir, `hugetlb.${pagesize}.failcnt`)),
    });
  }
  return out;
}

export function readV1Metrics(dirs: V1Dirs, env: MetricsEnv = {}): V1Metrics {
  const mem = dirs.memory !== undefined ? readV1Memory(dirs.memory) : undefined;
  let pids: V1PidsStat | undefined;
  if (dirs.pids !== undefined) {
    const current = readText(join(dirs.pids, 'pids.current'));
    // v1 reports an unlimited pids.max as limit 0
    if (current !== undefined) pids = { current: toU64(current), limit: readU64(join(dirs.pids, 'pids.max'), 0n) };
  }
  return {
    hugetlb: dirs.hugetlb !== undefined ? readV1Hugetlb(dirs.hugetlb, env.hugePageSizes ?? hugePageSizes()) : [],
    pids,
    cpu: readV1Cpu(dirs.cpuacct, dirs.cpu),
    memory: mem?.memory,
    blkio: dirs.blkio !== undefined ? readV1Blkio(dirs.blkio, env.procRoot ?? '/proc') : undefined,
    rdma: undefined,
    network: [],
    cgroupStats: undefined,
    memoryOomControl: mem?.oom,
  };
}

// ---- v2 metrics ----------------------------------------------------------------------

export interface PSIData { avg10: number; avg60: number; avg300: number; total: bigint }
export interface PSIStats { some: PSIData | undefined; full: PSIData | undefined }
export interface V2PidsStat { current: bigint; limit: bigint }
export interface V2CPUStat {
  usageUsec: bigint; userUsec: bigint; systemUsec: bigint; nrPeriods: bigint; nrThrottled: bigint;
  throttledUsec: bigint; psi: PSIStats | undefined; nrBursts: bigint; burstUsec: bigint;
}
export interface V2MemoryStat {
  anon: bigint; file: bigint; kernelStack: bigint; slab: bigint; sock: bigint; shmem: bigint;
  fileMapped: bigint; fileDirty: bigint; fileWriteback: bigint; anonThp: bigint;
  inactiveAnon: bigint; activeAnon: bigint; inactiveFile: bigint; activeFile: bigint; unevictable: bigint;
  slabReclaimable: bigint; slabUnreclaimable: bigint; pgfault: bigint; pgmajfault: bigint;
  workingsetRefault: bigint; workingsetActivate: bigint; workingsetNodereclaim: bigint;
  pgrefill: bigint; pgscan: bigint; pgsteal: bigint; pgactivate: bigint; pgdeactivate: bigint;
  pglazyfree: bigint; pglazyfreed: bigint; thpFaultAlloc: bigint; thpCollapseAlloc: bigint;
  usage: bigint; usageLimit: bigint; swapUsage: bigint; swapLimit: bigint;
  maxUsage: bigint; swapMaxUsage: bigint; psi: PSIStats | undefined;
  workingsetRefaultAnon: bigint; workingsetRefaultFile: bigint;
  workingsetActivateAnon: bigint; workingsetActivateFile: bigint;
}
export interface V2MemoryEvents { low: bigint; high: bigint; max: bigint; oom: bigint; oomKill: bigint; oomGroupKill: bigint }
export interface V2IOEntry { major: bigint; minor: bigint; rbytes: bigint; wbytes: bigint; rios: bigint; wios: bigint }
export interface V2IOStat { usage: V2IOEntry[]; psi: PSIStats | undefined }
export interface V2HugeTlbStat { current: bigint; max: bigint; pagesize: string; failcnt: bigint }

/** io.containerd.cgroups.v2.Metrics */
export interface V2Metrics {
  pids: V2PidsStat | undefined;
  cpu: V2CPUStat | undefined;
  memory: V2MemoryStat | undefined;
  rdma: RdmaStat | undefined;
  io: V2IOStat | undefined;
  hugetlb: V2HugeTlbStat[];
  memoryEvents: V2MemoryEvents | undefined;
  network: NetworkStat[];
}

const V2_MEMORY_STAT_KEYS = {
  anon: 'anon', file: 'file', kernelStack: 'kernel_stack', slab: 'slab', sock: 'sock', shmem: 'shmem',
  fileMapped: 'file_mapped', fileDirty: 'file_dirty', fileWriteback: 'file_writeback', anonThp: 'anon_thp',
  inactiveAnon: 'inactive_anon', activeAnon: 'active_anon', inactiveFile: 'inactive_file',
  activeFile: 'active_file', unevictable: 'unevictable', slabReclaimable: 'slab_reclaimable',
  slabUnreclaimable: 'slab_unreclaimable', pgfault: 'pgfault', pgmajfault: 'pgmajfault',
  workingsetRefault: 'workingset_refault', workingsetActivate: 'workingset_activate',
  workingsetNodereclaim: 'workingset_nodereclaim', pgrefill: 'pgrefill', pgscan: 'pgscan',
  pgsteal: 'pgsteal', pgactivate: 'pgactivate', pgdeactivate: 'pgdeactivate', pglazyfree: 'pglazyfree',
  pglazyfreed: 'pglazyfreed', thpFaultAlloc: 'thp_fault_alloc', thpCollapseAlloc: 'thp_collapse_alloc',
  workingsetRefaultAnon: 'workingset_refault_anon', workingsetRefaultFile: 'workingset_refault_file',
  workingsetActivateAnon: 'workingset_activate_anon', workingsetActivateFile: 'workingset_activate_file',
} as const;

/** "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" lines of a *.pressure file */
function readPSI(path: string): PSIStats | undefined {
  const text = readText(path);
  if (text === undefined) return undefined;
  const out: PSIStats = { some: undefined, full: undefined };
  for (const line of text.split('\n')) {
    const [kind, ...pairs] = line.trim().split(/\s+/);
    if (kind !== 'some' && kind !== 'full') continue;
    const d: PSIData = { avg10: 0, avg60: 0, avg300: 0, total: 0n };
    for (const p of pairs) {
      const [k, v = ''] = p.split('=');
      if (k === 'avg10' || k === 'avg60' || k === 'avg300') d[k] = Number(v) || 0;
      else if (k === 'total') d.total = toU64(v);
    }
    out[kind] = d;
  }
  return out;
}

function readV2IO(dir: string): V2IOEntry[] {
  const out: V2IOEntry[] = [];
  for (const line of (readText(join(dir, 'io.stat')) ?? '').split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const mm = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!mm) continue;
    const e: V2IOEntry = { major: BigInt(mm[1]!), minor: BigInt(mm[2]!), rbytes: 0n, wbytes: 0n, rios: 0n, wios: 0n };
    for (const p of pairs) {
      const [k, v] = p.split('=');
      if (k === 'rbytes' || k === 'wbytes' || k === 'rios' || k === 'wios') e[k] = toU64(v);
    }
    out.push(e);
  }
  return out;
}

function readRdma(path: string): RdmaEntry[] {
  const out: RdmaEntry[] = [];
  for (const line of (readText(path) ?? '').split('\n')) {
    const [device, ...pairs] = line.trim().split(/\s+/);
    if (!device || pairs.length !== 2) continue;
    const e: RdmaEntry = { device, hcaHandles: 0, hcaObjects: 0 };
    for (const p of pairs) {
      const [k, v = ''] = p.split('=');
      const n = v === 'max' ? 0xffffffff : Number(v) >>> 0;
      if (k === 'hca_handle') e.hcaHandles = n;
      else if (k === 'hca_object') e.hcaObjects = n;
    }
    out.push(e);
  }
  return out;
}

export function readV2Metrics(dir: string, env: MetricsEnv = {}): V2Metrics {
  const cpuStat = readKV(join(dir, 'cpu.stat'));
  const memStat = readKV(join(dir, 'memory.stat'));
  const events = readKV(join(dir, 'memory.events'));
  const pidsCurrent = readText(join(dir, 'pids.current'));
  const hugetlb: V2HugeTlbStat[] = [];
  for (const pagesize of env.hugePageSizes ?? hugePageSizes()) {
    const current = readText(join(dir, `hugetlb.${pagesize}.current`));
    if (current === undefined) continue;
    hugetlb.push({
      pagesize,
      current: toU64(current),
      max: readU64(join(dir, `hugetlb.${pagesize}.max`)),
      failcnt: readKV(join(dir, `hugetlb.${pagesize}.events`))?.get('max') ?? 0n,
    });
  }
  return {
    pids: pidsCurrent !== undefined ? { current: toU64(pidsCurrent), limit: readU64(join(dir, 'pids.max')) } : undefined,
    cpu: cpuStat && {
      ...pick(cpuStat, {
        usageUsec: 'usage_usec', userUsec: 'user_usec', systemUsec: 'system_usec', nrPeriods: 'nr_periods',
        nrThrottled: 'nr_throttled', throttledUsec: 'throttled_usec', nrBursts: 'nr_bursts', burstUsec: 'burst_usec',
      }),
      psi: readPSI(join(dir, 'cpu.pressure')),
    },
    memory: memStat && {
      ...pick(memStat, V2_MEMORY_STAT_KEYS),
      usage: readU64(join(dir, 'memory.current')),
      usageLimit: readU64(join(dir, 'memory.max')),
      swapUsage: readU64(join(dir, 'memory.swap.current')),
      swapLimit: readU64(join(dir, 'memory.swap.max')),
      maxUsage: readU64(join(dir, 'memory.peak')),
      swapMaxUsage: readU64(join(dir, 'memory.swap.peak')),
      psi: readPSI(join(dir, 'memory.pressure')),
    },
    rdma: { current: readRdma(join(dir, 'rdma.current')), limit: readRdma(join(dir, 'rdma.max')) },
    io: { usage: readV2IO(dir), psi: readPSI(join(dir, 'io.pressure')) },
    hugetlb,
    memoryEvents: events && pick(events, { low: 'low', high: 'high', max: 'max', oom: 'oom', oomKill: 'oom_kill', oomGroupKill: 'oom_group_kill' }),
    network: [],
  };
}

// ---- entry points ----------------------------------------------------------------------

export type CgroupMetricsData = { version: 1; data: V1Metrics } | { version: 2; data: V2Metrics };

/**
 * Metrics of a cgroup in the shape the host calls for (v2 only on a purely unified host).
 * Missing controllers or files leave their part zero/absent; a vanished cgroup gives an
 * all-empty result rather than an error (the caller decides whether that is NotFound).
 */
export function readCgroupMetrics(cgroups: ProcessCgroups, layout: CgroupLayout = cgroupLayout(), env: MetricsEnv = {}): CgroupMetricsData {
  if (layout.mode === 'v2') {
    const dir = unifiedDir(cgroups, layout);
    const empty: V2Metrics = { pids: undefined, cpu: undefined, memory: undefined, rdma: undefined, io: undefined, hugetlb: [], memoryEvents: undefined, network: [] };
    return { version: 2, data: dir !== undefined ? readV2Metrics(dir, env) : empty };
  }
  return { version: 1, data: readV1Metrics(v1Dirs(cgroups, layout), env) };
}

/** Pids in a cgroup and its descendants, from cgroup.procs (pids or memory controller, or cgroup2). */
export function listPids(cgroups: ProcessCgroups, layout: CgroupLayout = cgroupLayout()): number[] {
  let dir: string | undefined;
  if (layout.mode === 'v2') dir = unifiedDir(cgroups, layout);
  else {
    for (const c of ['pids', 'memory', 'cpu', 'freezer', 'devices']) {
      dir = v1Dir(cgroups, c, layout);
      if (dir !== undefined) break;
    }
  }
  if (dir === undefined) return [];
  const pids = new Set<number>();
  const walk = (d: string): void => {
    for (const s of (readText(join(d, 'cgroup.procs')) ?? '').split('\n')) {
      const pid = Number(s);
      if (s && pid > 0) pids.add(pid);
    }
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
  };
  walk(dir);
  return [...pids].sort((a, b) => a - b);
}

// ---- OOM counter -----------------------------------------------------------------------

/** Where a memory cgroup directory keeps its oom_kill counter: memory.events (v2) or memory.oom_control (v1). */
export function oomKillCounterFile(memDir: string): string | undefined {
  for (const f of ['memory.events', 'memory.oom_control']) {
    const p = join(memDir, f);
    if (readText(p) !== undefined) return p;
  }
  return undefined;
}

/** The `oom_kill` value of a memory.events / memory.oom_control file, undefined if unreadable. */
export function readOomKillCounter(counterFile: string): bigint | undefined {
  return readKV(counterFile)?.get('oom_kill');
}

/** OOM kills so far in a memory cgroup directory (v1 or v2), undefined when not readable. */
export function readOomKillCount(memDir: string): bigint | undefined {
  const f = oomKillCounterFile(memDir);
  return f === undefined ? undefined : readOomKillCounter(f);
}
