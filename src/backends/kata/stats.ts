/**
 * The agent's StatsContainer answer → containerd's cgroup v1 Metrics, the shape Kata's own
 * shim reports (CRI ContainerStats and `ctr task metrics` read cpu, memory and pids from
 * it). The numbers are the guest's view of the container's cgroup.
 */
import type { CgroupStats, NetworkStats } from '../../proto/gen/kata/agent.js';
import type { V1MemoryEntry, V1Metrics } from '../../sys/cgroups.js';

function entry(d: { usage: bigint; maxUsage: bigint; failcnt: bigint; limit: bigint } | undefined): V1MemoryEntry | undefined {
  return d ? { usage: d.usage, max: d.maxUsage, failcnt: d.failcnt, limit: d.limit } : undefined;
}

export function metricsFromAgentStats(s: CgroupStats | undefined, net: NetworkStats[] = []): V1Metrics {
  const m = s?.memoryStats;
  const stat = (k: string): bigint => m?.stats[k] ?? 0n;
  const z = 0n;
  const cpu = s?.cpuStats;
  return {
    hugetlb: Object.entries(s?.hugetlbStats ?? {}).map(([pagesize, h]) => ({ pagesize, usage: h.usage, max: h.maxUsage, failcnt: h.failcnt })),
    pids: s?.pidsStats ? { current: s.pidsStats.current, limit: s.pidsStats.limit } : undefined,
    cpu: cpu
      ? {
          usage: cpu.cpuUsage
            ? { total: cpu.cpuUsage.totalUsage, kernel: cpu.cpuUsage.usageInKernelmode, user: cpu.cpuUsage.usageInUsermode, perCpu: cpu.cpuUsage.percpuUsage }
            : undefined,
          throttling: cpu.throttlingData
            ? { periods: cpu.throttlingData.periods, throttledPeriods: cpu.throttlingData.throttledPeriods, throttledTime: cpu.throttlingData.throttledTime }
            : undefined,
        }
      : undefined,
    memory: m
      ? {
          cache: m.cache,
          rss: stat('rss'),
          rssHuge: stat('rss_huge'),
          mappedFile: stat('mapped_file'),
          dirty: stat('dirty'),
          writeback: stat('writeback'),
          pgPgIn: stat('pgpgin'),
          pgPgOut: stat('pgpgout'),
          pgFault: stat('pgfault'),
          pgMajFault: stat('pgmajfault'),
          inactiveAnon: stat('inactive_anon'),
          activeAnon: stat('active_anon'),
          inactiveFile: stat('inactive_file'),
          activeFile: stat('active_file'),
          unevictable: stat('unevictable'),
          hierarchicalMemoryLimit: stat('hierarchical_memory_limit'),
          hierarchicalSwapLimit: stat('hierarchical_memsw_limit'),
          totalCache: stat('total_cache') || m.cache,
          totalRss: stat('total_rss') || stat('rss'),
          totalRssHuge: stat('total_rss_huge'),
          totalMappedFile: stat('total_mapped_file'),
          totalDirty: stat('total_dirty'),
          totalWriteback: stat('total_writeback'),
          totalPgPgIn: stat('total_pgpgin'),
          totalPgPgOut: stat('total_pgpgout'),
          totalPgFault: stat('total_pgfault'),
          totalPgMajFault: stat('total_pgmajfault'),
          totalInactiveAnon: stat('total_inactive_anon'),
          totalActiveAnon: stat('total_active_anon'),
          totalInactiveFile: stat('total_inactive_file') || stat('inactive_file'),
          totalActiveFile: stat('total_active_file'),
          totalUnevictable: stat('total_unevictable'),
          usage: entry(m.usage),
          swap: entry(m.swapUsage),
          kernel: entry(m.kernelUsage),
          kernelTcp: undefined,
        }
      : undefined,
    blkio: undefined,
    rdma: undefined,
    network: net.map((n) => ({
      name: n.name,
      rxBytes: n.rxBytes,
      rxPackets: n.rxPackets,
      rxErrors: n.rxErrors,
      rxDropped: n.rxDropped,
      txBytes: n.txBytes,
      txPackets: n.txPackets,
      txErrors: n.txErrors,
      txDropped: n.txDropped,
    })),
    cgroupStats: undefined,
    memoryOomControl: undefined,
  };
}
