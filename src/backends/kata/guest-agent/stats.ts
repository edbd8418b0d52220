/**
 * The native backend's cgroup metrics (containerd's v1 or v2 shape, src/sys/cgroups.ts) as
 * Kata's CgroupStats, which follows the runc/libcontainer v1 names. A VM guest runs cgroup2
 * only; v1 is here for the agent running on a v1/hybrid host in tests.
 */
import type { CgroupMetrics } from '../../../core/backend.js';
import type { V1Metrics, V2Metrics } from '../../../sys/cgroups.js';
import { CgroupStats, type BlkioStatsEntry } from '../../../proto/gen/kata/agent.js';

export function cgroupStatsOf(m: CgroupMetrics): CgroupStats {
  return m.version === 1 ? fromV1(m.data as V1Metrics) : fromV2(m.data as V2Metrics);
}

function fromV1(d: V1Metrics): CgroupStats {
  const mem = d.memory;
  const blk = d.blkio;
  const entries = (list: { op: string; major: bigint; minor: bigint; value: bigint }[] | undefined): BlkioStatsEntry[] =>
    (list ?? []).map((e) => ({ major: e.major, minor: e.minor, op: e.op, value: e.value }));
  const hugetlb: CgroupStats['hugetlbStats'] = {};
  for (const h of d.hugetlb ?? []) hugetlb[h.pagesize] = { usage: h.usage, maxUsage: h.max, failcnt: h.failcnt };
  const stats: Record<string, bigint> = {};
  if (mem) {
    for (const [k, v] of Object.entries(mem)) if (typeof v === 'bigint') stats[snake(k)] = v;
  }
  return CgroupStats.fromPartial({
    cpuStats: d.cpu
      ? {
          cpuUsage: d.cpu.usage
            ? { totalUsage: d.cpu.usage.total, percpuUsage: d.cpu.usage.perCpu, usageInKernelmode: d.cpu.usage.kernel, usageInUsermode: d.cpu.usage.user }
            : undefined,
          throttlingData: d.cpu.throttling
            ? { periods: d.cpu.throttling.periods, throttledPeriods: d.cpu.throttling.throttledPeriods, throttledTime: d.cpu.throttling.throttledTime }
            : undefined,
        }
      : undefined,
    memoryStats: mem
      ? {
          cache: mem.cache,
          usage: mem.usage && { usage: mem.usage.usage, maxUsage: mem.usage.max, failcnt: mem.usage.failcnt, limit: mem.usage.limit },
          swapUsage: mem.swap && { usage: mem.swap.usage, maxUsage: mem.swap.max, failcnt: mem.swap.failcnt, limit: mem.swap.limit },
          kernelUsage: mem.kernel && { usage: mem.kernel.usage, maxUsage: mem.kernel.max, failcnt: mem.kernel.failcnt, limit: mem.kernel.limit },
          useHierarchy: true,
          stats,
        }
      : undefined,
    pidsStats: d.pids ? { current: d.pids.current, limit: d.pids.limit } : undefined,
    blkioStats: blk
      ? {
          ioServiceBytesRecursive: entries(blk.ioServiceBytesRecursive),
          ioServicedRecursive: entries(blk.ioServicedRecursive),
          ioQueuedRecursive: entries(blk.ioQueuedRecursive),
          ioServiceTimeRecursive: entries(blk.ioServiceTimeRecursive),
          ioWaitTimeRecursive: entries(blk.ioWaitTimeRecursive),
          ioMergedRecursive: entries(blk.ioMergedRecursive),
          ioTimeRecursive: entries(blk.ioTimeRecursive),
          sectorsRecursive: entries(blk.sectorsRecursive),
        }
      : undefined,
    hugetlbStats: hugetlb,
  });
}

/**
 * cgroup2 → the v1 names, as kata-agent's cgroups crate reports a v2 guest: usage_usec etc.
 * in nanoseconds, memory.current as usage, memory.max as limit (max = no limit: 0),
 * io.stat's rbytes/wbytes as service bytes Read/Write, rios/wios as serviced.
 */
function fromV2(d: V2Metrics): CgroupStats {
  const usec = (v: bigint | undefined) => (v ?? 0n) * 1000n;
  const mem = d.memory;
  const ioBytes: BlkioStatsEntry[] = [];
  const ioOps: BlkioStatsEntry[] = [];
  for (const e of d.io?.usage ?? []) {
    ioBytes.push({ major: e.major, minor: e.minor, op: 'Read', value: e.rbytes }, { major: e.major, minor: e.minor, op: 'Write', value: e.wbytes });
    ioOps.push({ major: e.major, minor: e.minor, op: 'Read', value: e.rios }, { major: e.major, minor: e.minor, op: 'Write', value: e.wios });
  }
  const hugetlb: CgroupStats['hugetlbStats'] = {};
  for (const h of d.hugetlb ?? []) hugetlb[h.pagesize] = { usage: h.current, maxUsage: h.max, failcnt: h.failcnt };
  const stats: Record<string, bigint> = {};
  if (mem) {
    for (const [k, v] of Object.entries(mem)) if (typeof v === 'bigint') stats[snake(k)] = v;
  }
  return CgroupStats.fromPartial({
    cpuStats: d.cpu
      ? {
          cpuUsage: { totalUsage: usec(d.cpu.usageUsec), percpuUsage: [], usageInKernelmode: usec(d.cpu.systemUsec), usageInUsermode: usec(d.cpu.userUsec) },
          throttlingData: { periods: d.cpu.nrPeriods, throttledPeriods: d.cpu.nrThrottled, throttledTime: usec(d.cpu.throttledUsec) },
        }
      : undefined,
    memoryStats: mem
      ? {
          cache: mem.file,
          usage: { usage: mem.usage, maxUsage: mem.maxUsage ?? 0n, failcnt: d.memoryEvents?.max ?? 0n, limit: mem.usageLimit },
          swapUsage: { usage: mem.swapUsage, maxUsage: mem.swapMaxUsage ?? 0n, failcnt: 0n, limit: mem.swapLimit },
          useHierarchy: true,
          stats,
        }
      : undefined,
    pidsStats: d.pids ? { current: d.pids.current, limit: d.pids.limit } : undefined,
    blkioStats: { ioServiceBytesRecursive: ioBytes, ioServicedRecursive: ioOps },
    hugetlbStats: hugetlb,
  });
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
