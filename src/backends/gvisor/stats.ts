/**
 * `runsc events --stats` → containerd's cgroup v1 Metrics, the shape gVisor's own shim
 * reports (CRI ContainerStats and `ctr task metrics` read memory usage, cpu usage and pids
 * from it). The numbers are the sandbox's view of the container, not a host cgroup's.
 */
import type { V1MemoryEntry, V1Metrics } from '../../sys/cgroups.js';
import type { RunscStats } from './runsc-cli.js';

function u64(n: number | undefined): bigint {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? BigInt(Math.trunc(n)) : 0n;
}

function memoryEntry(e: { limit?: number; usage?: number; max?: number; failcnt?: number } | undefined): V1MemoryEntry | undefined {
  if (!e) return undefined;
  return { limit: u64(e.limit), usage: u64(e.usage), max: u64(e.max), failcnt: u64(e.failcnt) };
}

export function metricsFromRunscStats(s: RunscStats): V1Metrics {
  const raw = s.memory?.raw ?? {};
  const rss = u64(raw.rss ?? raw.total_rss);
  const cache = u64(s.memory?.cache ?? raw.cache);
  const zero = 0n;
  return {
    hugetlb: [],
    pids: s.pids ? { current: u64(s.pids.current), limit: u64(s.pids.limit) } : undefined,
    cpu: s.cpu?.usage
      ? {
          usage: {
            total: u64(s.cpu.usage.total),
            kernel: u64(s.cpu.usage.kernel),
            user: u64(s.cpu.usage.user),
            perCpu: (s.cpu.usage.percpu ?? []).map(u64),
          },
          throttling: undefined,
        }
      : undefined,
    memory: s.memory
      ? {
          cache,
          rss,
          rssHuge: zero,
          mappedFile: u64(raw.mapped_file),
          dirty: zero,
          writeback: zero,
          pgPgIn: zero,
          pgPgOut: zero,
          pgFault: zero,
          pgMajFault: zero,
          inactiveAnon: zero,
          activeAnon: zero,
          inactiveFile: u64(raw.inactive_file ?? raw.total_inactive_file),
          activeFile: zero,
          unevictable: zero,
          hierarchicalMemoryLimit: u64(s.memory.usage?.limit),
          hierarchicalSwapLimit: zero,
          totalCache: cache,
          totalRss: rss,
          totalRssHuge: zero,
          totalMappedFile: u64(raw.mapped_file),
          totalDirty: zero,
          totalWriteback: zero,
          totalPgPgIn: zero,
          totalPgPgOut: zero,
          totalPgFault: zero,
          totalPgMajFault: zero,
          totalInactiveAnon: zero,
          totalActiveAnon: zero,
          totalInactiveFile: u64(raw.total_inactive_file ?? raw.inactive_file),
          totalActiveFile: zero,
          totalUnevictable: zero,
          usage: memoryEntry(s.memory.usage),
          swap: memoryEntry(s.memory.swap),
          kernel: memoryEntry(s.memory.kernel),
          kernelTcp: memoryEntry(s.memory.kernelTCP),
        }
      : undefined,
    blkio: undefined,
    rdma: undefined,
    network: [],
    cgroupStats: undefined,
    memoryOomControl: undefined,
  };
}
