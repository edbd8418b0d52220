/**
 * cgroup Metrics (shim-v2-protocol.md §7.1): samples round-trip, the fields CRI reads
 * sit at the upstream field numbers, and uint64 counters survive values above 2^53.
 */
import { describe, expect, it } from 'vitest';
import * as v1 from '../../src/proto/gen/cgroups/v1/metrics.js';
import * as v2 from '../../src/proto/gen/cgroups/v2/metrics.js';
import { StatsResponse } from '../../src/proto/gen/containerd/task/v2/shim.js';
import { packMessage, TypeUrl, unpackAny } from '../../src/proto/typeurls.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const U64_MAX = 2n ** 64n - 1n;

describe('io.containerd.cgroups.v1.Metrics', () => {
  const sample = v1.Metrics.fromPartial({
    hugetlb: [{ usage: 1n, max: 2n, failcnt: 3n, pagesize: '2MB' }],
    pids: { current: 4n, limit: 1024n },
    cpu: {
      usage: { total: 123_456_789_012n, kernel: 1n, user: 2n, perCpu: [10n, 20n, U64_MAX] },
      throttling: { periods: 5n, throttledPeriods: 6n, throttledTime: 7n },
    },
    memory: {
      cache: 1n, rss: 2n, totalRss: 3n, totalInactiveFile: 4096n, totalPgFault: 5n, totalPgMajFault: 6n, totalUnevictable: 7n,
      hierarchicalMemoryLimit: U64_MAX,
      usage: { limit: 9_223_372_036_854_771_712n, usage: 8_388_608n, max: 9n, failcnt: 0n },
      swap: { usage: 1n }, kernel: { usage: 2n }, kernelTcp: { usage: 3n },
    },
    blkio: { ioServiceBytesRecursive: [{ op: 'Read', device: 'sda', major: 8n, minor: 0n, value: 4096n }], sectorsRecursive: [{ op: 'Total', value: 1n }] },
    rdma: { current: [{ device: 'mlx', hcaHandles: 1, hcaObjects: 2 }], limit: [] },
    network: [{ name: 'eth0', rxBytes: 1n, txBytes: 2n, txDropped: 3n }],
    cgroupStats: { nrSleeping: 1n, nrRunning: 2n, nrIoWait: 3n },
    memoryOomControl: { oomKillDisable: 0n, underOom: 1n, oomKill: 2n },
  });

  it('round-trips a full sample, including uint64 values above 2^53', () => {
    const decoded = v1.Metrics.decode(v1.Metrics.encode(sample).finish());
    expect(decoded).toEqual(sample);
    expect(decoded.cpu?.usage?.perCpu[2]).toBe(U64_MAX);
    expect(decoded.memory?.hierarchicalMemoryLimit).toBe(U64_MAX);
  });

  it('puts the fields CRI reads at their upstream numbers', () => {
    // cpu(3){usage(1){total(1)=300}}
    expect(hex(v1.Metrics.encode(v1.Metrics.fromPartial({ cpu: { usage: { total: 300n } } })).finish())).toBe('1a050a0308ac02');
    // memory(4){usage(33, LEN){usage(2)=5, limit(1)=6}, total_inactive_file(30)=7}
    const mem = v1.MemoryStat.encode(v1.MemoryStat.fromPartial({ totalInactiveFile: 7n, usage: { limit: 6n, usage: 5n } })).finish();
    expect(hex(mem)).toBe('f001078a0204080610 05'.replace(/ /g, ''));
    // total_rss(19), total_pg_fault(26), total_pg_maj_fault(27)
    expect(hex(v1.MemoryStat.encode(v1.MemoryStat.fromPartial({ totalRss: 1n, totalPgFault: 2n, totalPgMajFault: 3n })).finish())).toBe(
      '980101d00102d80103',
    );
    // memory_oom_control is field 9, cgroup_stats field 8, network field 7 (repeated)
    expect(hex(v1.Metrics.encode(v1.Metrics.fromPartial({ memoryOomControl: { oomKill: 1n } })).finish())).toBe('4a021801');
    expect(hex(v1.Metrics.encode(v1.Metrics.fromPartial({ cgroupStats: { nrIoWait: 1n } })).finish())).toBe('42022801');
  });

  it('packs into the StatsResponse Any with the bare type URL', () => {
    const response = StatsResponse.encode({ stats: packMessage(TypeUrl.CgroupsV1Metrics, v1.Metrics, sample) }).finish();
    const any = StatsResponse.decode(response).stats;
    expect(any?.typeUrl).toBe('io.containerd.cgroups.v1.Metrics');
    expect(unpackAny(any, TypeUrl.CgroupsV1Metrics, v1.Metrics)).toEqual(sample);
    expect(unpackAny(any, TypeUrl.CgroupsV2Metrics, v2.Metrics)).toBeUndefined();
    expect(v1.protobufPackage).toBe('io.containerd.cgroups.v1');
  });
});

describe('io.containerd.cgroups.v2.Metrics', () => {
  const psi = { some: { avg10: 0.5, avg60: 1.25, avg300: 0, total: 12345n }, full: { avg10: 0.1, total: 1n } };
  const sample = v2.Metrics.fromPartial({
    pids: { current: 3n, limit: 0n },
    cpu: { usageUsec: 1_000_000n, userUsec: 600_000n, systemUsec: 400_000n, nrPeriods: 1n, nrThrottled: 2n, throttledUsec: 3n, psi, nrBursts: 4n, burstUsec: 5n },
    memory: {
      anon: 1n, file: 2n, inactiveFile: 4096n, pgfault: 10n, pgmajfault: 1n, workingsetRefault: 2n,
      usage: 8_388_608n, usageLimit: U64_MAX, swapUsage: 0n, swapLimit: 1n, maxUsage: 9n, swapMaxUsage: 10n, psi,
      workingsetRefaultAnon: 39n, workingsetRefaultFile: 40n, workingsetActivateAnon: 41n, workingsetActivateFile: 42n,
    },
    rdma: { current: [{ device: 'mlx', hcaHandles: 1, hcaObjects: 2 }] },
    io: { usage: [{ major: 8n, minor: 0n, rbytes: 1n, wbytes: 2n, rios: 3n, wios: 4n }], psi },
    hugetlb: [{ current: 1n, max: 2n, pagesize: '2MB', failcnt: 3n }],
    memoryEvents: { low: 1n, high: 2n, max: 3n, oom: 4n, oomKill: 5n, oomGroupKill: 6n },
    network: [{ name: 'eth0', rxBytes: 1n }],
  });

  it('round-trips a full sample, including PSI doubles and the newer fields', () => {
    const decoded = v2.Metrics.decode(v2.Metrics.encode(sample).finish());
    expect(decoded).toEqual(sample);
    expect(decoded.memory?.usageLimit).toBe(U64_MAX);
    expect(decoded.cpu?.psi?.some?.avg60).toBe(1.25);
  });

  it('puts the fields CRI reads at their upstream numbers', () => {
    // Metrics.memory is field 4 (3 is unused): tag 0x22
    expect(hex(v2.Metrics.encode(v2.Metrics.fromPartial({ memory: { anon: 1n } })).finish())).toBe('22020801');
    // cpu(2){usage_usec(1)}
    expect(hex(v2.Metrics.encode(v2.Metrics.fromPartial({ cpu: { usageUsec: 1n } })).finish())).toBe('12020801');
    // usage(32)=5, usage_limit(33)=6, inactive_file(13)=7, pgfault(18)=8, pgmajfault(19)=9
    const mem = v2.MemoryStat.fromPartial({ usage: 5n, usageLimit: 6n, inactiveFile: 7n, pgfault: 8n, pgmajfault: 9n });
    expect(hex(v2.MemoryStat.encode(mem).finish())).toBe('6807900108980109800205880206');
    // workingset_activate_file(42) and psi(38, LEN)
    expect(hex(v2.MemoryStat.encode(v2.MemoryStat.fromPartial({ workingsetActivateFile: 1n })).finish())).toBe('d00201');
    expect(hex(v2.MemoryStat.encode(v2.MemoryStat.fromPartial({ psi: { some: { avg10: 1 } } })).finish())).toBe(
      'b2020b0a0909000000000000f03f', // some(1){avg10(1, fixed64 little-endian 1.0)}
    );
    // memory_events(8){oom_kill(5)}, hugetlb(7){failcnt(4)}
    expect(hex(v2.Metrics.encode(v2.Metrics.fromPartial({ memoryEvents: { oomKill: 1n } })).finish())).toBe('42022801');
    expect(hex(v2.Metrics.encode(v2.Metrics.fromPartial({ hugetlb: [{ failcnt: 1n }] })).finish())).toBe('3a022001');
  });

  it('packs into the StatsResponse Any with the bare type URL', () => {
    const any = packMessage(TypeUrl.CgroupsV2Metrics, v2.Metrics, sample);
    expect(any.typeUrl).toBe('io.containerd.cgroups.v2.Metrics');
    expect(unpackAny(any, TypeUrl.CgroupsV2Metrics, v2.Metrics)).toEqual(sample);
    expect(v2.protobufPackage).toBe('io.containerd.cgroups.v2');
  });
});
