/**
 * `tsrun events --stats` in runc's JSON shape (libcontainer's types.Stats): the same keys,
 * in the same order, with the fields runc leaves out when zero left out. Built from the
 * cgroup metrics the shim reports to containerd, plus the few cgroup files runc shows that
 * those metrics do not carry (memory.stat as `raw`, cpuset, per-CPU kernel/user time).
 */
import { join } from 'node:path';
import { readKV, readText, type CgroupMetricsData, type V1BlkIOEntry, type V1MemoryEntry } from '../../../sys/cgroups.js';

/** cgroup directories of the container that runc reads directly */
export interface RuncStatsDirs {
  memory?: string;
  cpuset?: string;
  cpuacct?: string;
}

type Json = Record<string, unknown>;

function read(dir: string | undefined, file: string): string | undefined {
  return dir ? readText(join(dir, file))?.trim() : undefined;
}

function numbers(text: string | undefined): bigint[] | undefined {
  return text ? text.split(/\s+/).filter(Boolean).map(BigInt) : undefined;
}

/** "0-2,4" → [0, 1, 2, 4] */
function cpuList(text: string | undefined): number[] | undefined {
  if (!text) return undefined;
  const out: number[] = [];
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let i = a!; i <= (b ?? a!); i++) out.push(i);
  }
  return out;
}

/** memory.stat as runc's `raw` map */
function memoryStat(dir: string | undefined): Record<string, bigint> | undefined {
  const kv = dir ? readKV(join(dir, 'memory.stat')) : undefined;
  return kv && Object.fromEntries(kv);
}

/** sets key only when value is non-zero / non-empty (Go's omitempty) */
function put(o: Json, key: string, value: unknown): void {
  if (value === undefined || value === 0n || value === 0 || (Array.isArray(value) && value.length === 0)) return;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0) return;
  o[key] = value;
}

function memoryEntry(e: V1MemoryEntry | undefined): Json {
  const o: Json = { limit: e?.limit ?? 0n };
  put(o, 'usage', e?.usage);
  put(o, 'max', e?.max);
  o.failcnt = e?.failcnt ?? 0n;
  return o;
}

function blkioEntries(list: V1BlkIOEntry[] | undefined): Json[] | undefined {
  return list?.map((e) => ({ major: e.major, minor: e.minor, op: e.op, value: e.value }));
}

function cpusetOf(dir: string | undefined): Json {
  if (!dir) return {};
  const n = (f: string) => Number(read(dir, `cpuset.${f}`) ?? 0);
  const o: Json = {};
  put(o, 'cpus', cpuList(read(dir, 'cpuset.cpus')));
  o.cpu_exclusive = n('cpu_exclusive');
  put(o, 'mems', cpuList(read(dir, 'cpuset.mems')));
  o.mem_hardwall = n('mem_hardwall');
  o.mem_exclusive = n('mem_exclusive');
  o.memory_migrate = n('memory_migrate');
  o.memory_spread_page = n('memory_spread_page');
  o.memory_spread_slab = n('memory_spread_slab');
  o.memory_pressure = n('memory_pressure');
  o.sched_load_balance = n('sched_load_balance');
  o.sched_relax_domain_level = n('sched_relax_domain_level');
  return o;
}

export function runcStats(metrics: CgroupMetricsData, dirs: RuncStatsDirs): Json {
  const cpu: Json = {};
  const usage: Json = {};
  const throttling: Json = {};
  const memory: Json = {};
  const pids: Json = {};
  const blkio: Json = {};
  const hugetlb: Json = {};
  if (metrics.version === 1) {
    const m = metrics.data;
    put(usage, 'total', m.cpu?.usage?.total);
    put(usage, 'percpu', m.cpu?.usage?.perCpu);
    put(usage, 'percpu_kernel', numbers(read(dirs.cpuacct, 'cpuacct.usage_percpu_sys')));
    put(usage, 'percpu_user', numbers(read(dirs.cpuacct, 'cpuacct.usage_percpu_user')));
    usage.kernel = m.cpu?.usage?.kernel ?? 0n;
    usage.user = m.cpu?.usage?.user ?? 0n;
    put(throttling, 'periods', m.cpu?.throttling?.periods);
    put(throttling, 'throttledPeriods', m.cpu?.throttling?.throttledPeriods);
    put(throttling, 'throttledTime', m.cpu?.throttling?.throttledTime);
    put(memory, 'cache', m.memory?.cache);
    memory.usage = memoryEntry(m.memory?.usage);
    memory.swap = memoryEntry(m.memory?.swap);
    memory.kernel = memoryEntry(m.memory?.kernel);
    memory.kernelTCP = memoryEntry(m.memory?.kernelTcp);
    put(pids, 'current', m.pids?.current);
    put(pids, 'limit', m.pids?.limit);
    const b = m.blkio;
    put(blkio, 'ioServiceBytesRecursive', blkioEntries(b?.ioServiceBytesRecursive));
    put(blkio, 'ioServicedRecursive', blkioEntries(b?.ioServicedRecursive));
    put(blkio, 'ioQueueRecursive', blkioEntries(b?.ioQueuedRecursive));
    put(blkio, 'ioServiceTimeRecursive', blkioEntries(b?.ioServiceTimeRecursive));
    put(blkio, 'ioWaitTimeRecursive', blkioEntries(b?.ioWaitTimeRecursive));
    put(blkio, 'ioMergedRecursive', blkioEntries(b?.ioMergedRecursive));
    put(blkio, 'ioTimeRecursive', blkioEntries(b?.ioTimeRecursive));
    put(blkio, 'sectorsRecursive', blkioEntries(b?.sectorsRecursive));
    for (const h of m.hugetlb) {
      const e: Json = {};
      put(e, 'usage', h.usage);
      put(e, 'max', h.max);
      e.failcnt = h.failcnt;
      hugetlb[h.pagesize] = e;
    }
  } else {
    // cgroup v2: runc's fs2 fills the same structure from cpu.stat, memory.* and pids.*
    const m = metrics.data;
    put(usage, 'total', m.cpu ? m.cpu.usageUsec * 1000n : undefined);
    usage.kernel = m.cpu ? m.cpu.systemUsec * 1000n : 0n;
    usage.user = m.cpu ? m.cpu.userUsec * 1000n : 0n;
    put(throttling, 'periods', m.cpu?.nrPeriods);
    put(throttling, 'throttledPeriods', m.cpu?.nrThrottled);
    put(throttling, 'throttledTime', m.cpu ? m.cpu.throttledUsec * 1000n : undefined);
    put(memory, 'cache', m.memory?.file);
    memory.usage = memoryEntry(m.memory ? { limit: m.memory.usageLimit, usage: m.memory.usage, max: m.memory.maxUsage, failcnt: 0n } : undefined);
    memory.swap = memoryEntry(m.memory ? { limit: m.memory.swapLimit, usage: m.memory.swapUsage, max: m.memory.swapMaxUsage, failcnt: 0n } : undefined);
    memory.kernel = memoryEntry(undefined);
    memory.kernelTCP = memoryEntry(undefined);
    put(pids, 'current', m.pids?.current);
    put(pids, 'limit', m.pids?.limit);
    for (const h of m.hugetlb) {
      const e: Json = {};
      put(e, 'usage', h.current);
      put(e, 'max', h.max);
      e.failcnt = h.failcnt;
      hugetlb[h.pagesize] = e;
    }
  }
  cpu.usage = usage;
  cpu.throttling = throttling;
  put(memory, 'raw', memoryStat(dirs.memory));
  return {
    cpu,
    cpuset: cpusetOf(dirs.cpuset),
    memory,
    pids,
    blkio,
    hugetlb,
    intel_rdt: {},
    network_interfaces: null,
  };
}

/** JSON with bigints as plain numbers, as Go writes uint64 */
export function goJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000${v}\u0000` : v)).replace(/"\\u0000(\d+)\\u0000"/g, '$1');
}
