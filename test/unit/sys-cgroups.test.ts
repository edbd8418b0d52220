import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics as GenV1Metrics } from '../../src/proto/gen/cgroups/v1/metrics.js';
import { Metrics as GenV2Metrics } from '../../src/proto/gen/cgroups/v2/metrics.js';
import {
  cgroupLayout,
  cgroupsAt,
  listPids,
  memoryDir,
  parseCgroupLayout,
  parseProcCgroup,
  readCgroupMetrics,
  readOomKillCount,
  readProcessCgroups,
  readV1Metrics,
  readV2Metrics,
  unifiedDir,
  v1Dir,
  type V1Metrics,
  type V2Metrics,
} from '../../src/sys/cgroups.js';

// compile-time proof that our shapes are what the generated protobuf code encodes
const _v1: GenV1Metrics = {} as V1Metrics;
const _v2: GenV2Metrics = {} as V2Metrics;
void _v1;
void _v2;

const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup hugetlb rw,hugetlb
`;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tsshim-cg-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function files(dir: string, entries: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(entries)) writeFileSync(join(dir, name), content);
  return dir;
}

describe('layout and process cgroups', () => {
  it('detects hybrid, v1 and v2 layouts from mountinfo', () => {
    const hybrid = parseCgroupLayout(HYBRID_MOUNTINFO);
    expect(hybrid.mode).toBe('hybrid');
    expect(hybrid.unified?.mountPoint).toBe('/sys/fs/cgroup/unified');
    expect(hybrid.v1.find((m) => m.controllers.includes('memory'))?.mountPoint).toBe('/sys/fs/cgroup/memory');
    expect(hybrid.v1.find((m) => m.controllers.includes('name=systemd'))).toBeDefined();

    const v1 = parseCgroupLayout(HYBRID_MOUNTINFO.split('\n').filter((l) => !l.includes('cgroup2')).join('\n'));
    expect(v1.mode).toBe('v1');
    expect(v1.unified).toBeUndefined();

    const v2 = parseCgroupLayout('30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n');
    expect(v2.mode).toBe('v2');
    expect(v2.v1).toEqual([]);

    const combined = parseCgroupLayout('32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n');
    expect(combined.v1[0]?.controllers).toEqual(['cpu', 'cpuacct']);
  });

  it('parses /proc/<pid>/cgroup and resolves directories, also under a subtree mount', () => {
    const cg = parseProcCgroup('4:memory:/default/c1\n3:cpu,cpuacct:/default/c1\n1:name=systemd:/x:y\n0::/default/c1\n');
    expect(cg.v1).toEqual({ memory: '/default/c1', cpu: '/default/c1', cpuacct: '/default/c1', 'name=systemd': '/x:y' });
    expect(cg.unified).toBe('/default/c1');
    const layout = parseCgroupLayout(HYBRID_MOUNTINFO);
    expect(v1Dir(cg, 'memory', layout)).toBe('/sys/fs/cgroup/memory/default/c1');
    expect(v1Dir(cg, 'blkio', layout)).toBeUndefined();
    expect(unifiedDir(cg, layout)).toBe('/sys/fs/cgroup/unified/default/c1');
    expect(memoryDir(cg, layout)).toBe('/sys/fs/cgroup/memory/default/c1');

    const sub = parseCgroupLayout('35 31 0:32 /default /mnt/mem rw - cgroup cgroup rw,memory\n');
    expect(v1Dir(cg, 'memory', sub)).toBe('/mnt/mem/c1');

    const pure = parseCgroupLayout('30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n');
    expect(memoryDir(cg, pure)).toBe('/sys/fs/cgroup/default/c1');
    expect(cgroupsAt('/k8s/p1', layout).v1.memory).toBe('/k8s/p1');
  });

  it("reads this machine's layout and own cgroups", () => {
    const layout = cgroupLayout();
    expect(['v1', 'v2', 'hybrid']).toContain(layout.mode);
    const self = readProcessCgroups('self');
    const dir = memoryDir(self, layout);
    expect(dir && existsSync(dir)).toBe(true);
    expect(() => readProcessCgroups(999_999_999)).toThrow(/ENOENT/);
  });
});

describe('v1 metrics', () => {
  it('reads every part from a v1 fixture, in ns and bigint', () => {
    const d = join(tmp, 'v1');
    const m = readV1Metrics(
      {
        memory: files(join(d, 'memory'), {
          'memory.stat': 'cache 100\nrss 200\nrss_huge 0\npgpgin 7\npgmajfault 2\nhierarchical_memory_limit 9223372036854771712\nhierarchical_memsw_limit 9223372036854771712\ntotal_rss 300\ntotal_inactive_file 40\ntotal_pgfault 11\ntotal_pgmajfault 3\n',
          'memory.usage_in_bytes': '4096\n',
          'memory.limit_in_bytes': '8388608\n',
          'memory.max_usage_in_bytes': '8192\n',
          'memory.failcnt': '5\n',
          'memory.kmem.usage_in_bytes': '123\n',
          'memory.kmem.tcp.limit_in_bytes': '9223372036854771712\n',
          'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
        }),
        cpuacct: files(join(d, 'cpuacct'), {
          'cpuacct.usage': '123456789\n',
          'cpuacct.usage_percpu': '100 200 \n',
          'cpuacct.stat': 'user 5\nsystem 3\n',
        }),
        cpu: files(join(d, 'cpu'), { 'cpu.stat': 'nr_periods 10\nnr_throttled 2\nthrottled_time 999\nnr_bursts 0\n' }),
        pids: files(join(d, 'pids'), { 'pids.current': '3\n', 'pids.max': 'max\n' }),
        blkio: files(join(d, 'blkio'), {
          'blkio.throttle.io_service_bytes_recursive': '8:0 Read 100\n8:0 Write 200\n8:16 Read 1\nTotal 301\n',
          'blkio.throttle.io_serviced': '8:0 Read 1\n8:0 Write 2\nTotal 3\n',
        }),
        hugetlb: files(join(d, 'hugetlb'), {
          'hugetlb.2MB.usage_in_bytes': '2097152\n',
          'hugetlb.2MB.max_usage_in_bytes': '4194304\n',
          'hugetlb.2MB.failcnt': '1\n',
        }),
      },
      {
        procRoot: files(join(d, 'proc'), { partitions: 'major minor  #blocks  name\n\n   8        0   1000 sda\n   8       16   1000 sdb\n' }),
        hugePageSizes: ['1GB', '2MB'],
      },
    );
    expect(m.memory?.cache).toBe(100n);
    expect(m.memory?.pgPgIn).toBe(7n);
    expect(m.memory?.hierarchicalSwapLimit).toBe(9223372036854771712n);
    expect(m.memory?.totalRss).toBe(300n);
    expect(m.memory?.totalInactiveFile).toBe(40n);
    expect(m.memory?.totalPgMajFault).toBe(3n);
    expect(m.memory?.dirty).toBe(0n); // absent key reads as zero
    expect(m.memory?.usage).toEqual({ usage: 4096n, limit: 8388608n, max: 8192n, failcnt: 5n });
    expect(m.memory?.swap).toEqual({ usage: 0n, limit: 0n, max: 0n, failcnt: 0n }); // no memsw files
    expect(m.memory?.kernel?.usage).toBe(123n);
    expect(m.memory?.kernelTcp?.limit).toBe(9223372036854771712n);
    expect(m.memoryOomControl).toEqual({ oomKillDisable: 0n, underOom: 0n, oomKill: 2n });
    expect(m.cpu?.usage).toEqual({ total: 123456789n, user: 50_000_000n, kernel: 30_000_000n, perCpu: [100n, 200n] });
    expect(m.cpu?.throttling).toEqual({ periods: 10n, throttledPeriods: 2n, throttledTime: 999n });
    expect(m.pids).toEqual({ current: 3n, limit: 0n });
    expect(m.blkio?.ioServiceBytesRecursive).toEqual([
      { op: 'Read', device: '/dev/sda', major: 8n, minor: 0n, value: 100n },
      { op: 'Write', device: '/dev/sda', major: 8n, minor: 0n, value: 200n },
      { op: 'Read', device: '/dev/sdb', major: 8n, minor: 16n, value: 1n },
    ]);
    expect(m.blkio?.ioServicedRecursive).toHaveLength(2); // non-recursive fallback
    expect(m.blkio?.sectorsRecursive).toEqual([]);
    expect(m.hugetlb).toEqual([{ pagesize: '2MB', usage: 2097152n, max: 4194304n, failcnt: 1n }]);
    expect(m.network).toEqual([]);
    // the generated protobuf code accepts and round-trips it
    const back = GenV1Metrics.decode(GenV1Metrics.encode(m).finish());
    expect(back.memory?.totalInactiveFile).toBe(40n);
    expect(back.cpu?.usage?.perCpu).toEqual([100n, 200n]);
  });

  it('leaves absent controllers and files out instead of failing', () => {
    const m = readV1Metrics({ memory: join(tmp, 'missing'), pids: join(tmp, 'missing') });
    expect(m.memory).toBeUndefined();
    expect(m.pids).toBeUndefined();
    expect(m.cpu).toBeUndefined();
    expect(m.hugetlb).toEqual([]);
    expect(() => GenV1Metrics.encode(m).finish()).not.toThrow();
  });

  it('prefers CFQ blkio files when they have entries', () => {
    const d = files(join(tmp, 'cfq'), {
      'blkio.io_serviced_recursive': '8:0 Read 4\nTotal 4\n',
      'blkio.sectors_recursive': '8:0 16\n',
      'blkio.throttle.io_serviced': '8:0 Read 99\n',
    });
    const m = readV1Metrics({ blkio: d }, { procRoot: join(tmp, 'noproc') });
    expect(m.blkio?.ioServicedRecursive).toEqual([{ op: 'Read', device: '', major: 8n, minor: 0n, value: 4n }]);
    expect(m.blkio?.sectorsRecursive).toEqual([{ op: '', device: '', major: 8n, minor: 0n, value: 16n }]);
  });
});

describe('v2 metrics', () => {
  it('reads every part from a v2 fixture', () => {
    const d = files(join(tmp, 'v2'), {
      'cpu.stat': 'usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 5\nnr_throttled 1\nthrottled_usec 20\nnr_bursts 0\nburst_usec 0\n',
      'cpu.pressure': 'some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
      'memory.stat': 'anon 4096\nfile 8192\ninactive_file 1024\npgfault 77\npgmajfault 1\nworkingset_refault_anon 3\n',
      'memory.current': '12288\n',
      'memory.max': 'max\n',
      'memory.swap.current': '0\n',
      'memory.swap.max': '0\n',
      'memory.peak': '20000\n',
      'memory.events': 'low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n',
      'io.stat': '8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n253:1 rbytes=10 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
      'pids.current': '7\n',
      'pids.max': '100\n',
      'hugetlb.2MB.current': '0\n',
      'hugetlb.2MB.max': 'max\n',
      'hugetlb.2MB.events': 'max 2\n',
      'rdma.current': 'mlx4_0 hca_handle=2 hca_object=2000\n',
    });
    const m = readV2Metrics(d, { hugePageSizes: ['2MB', '1GB'] });
    expect(m.cpu).toMatchObject({ usageUsec: 1000n, userUsec: 600n, systemUsec: 400n, nrPeriods: 5n, nrThrottled: 1n, throttledUsec: 20n });
    expect(m.cpu?.psi?.some).toEqual({ avg10: 1.5, avg60: 0.25, avg300: 0, total: 12345n });
    expect(m.memory).toMatchObject({ anon: 4096n, file: 8192n, inactiveFile: 1024n, pgfault: 77n, pgmajfault: 1n, workingsetRefaultAnon: 3n });
    expect(m.memory?.usage).toBe(12288n);
    expect(m.memory?.usageLimit).toBe(18446744073709551615n); // "max"
    expect(m.memory?.maxUsage).toBe(20000n);
    expect(m.memory?.psi).toBeUndefined();
    expect(m.memoryEvents).toEqual({ low: 0n, high: 0n, max: 4n, oom: 2n, oomKill: 1n, oomGroupKill: 0n });
    expect(m.io?.usage).toEqual([
      { major: 8n, minor: 0n, rbytes: 1n, wbytes: 2n, rios: 3n, wios: 4n },
      { major: 253n, minor: 1n, rbytes: 10n, wbytes: 0n, rios: 1n, wios: 0n },
    ]);
    expect(m.pids).toEqual({ current: 7n, limit: 100n });
    expect(m.hugetlb).toEqual([{ pagesize: '2MB', current: 0n, max: 18446744073709551615n, failcnt: 2n }]);
    expect(m.rdma?.current).toEqual([{ device: 'mlx4_0', hcaHandles: 2, hcaObjects: 2000 }]);
    const back = GenV2Metrics.decode(GenV2Metrics.encode(m).finish());
    expect(back.memory?.usageLimit).toBe(18446744073709551615n);
    expect(back.memoryEvents?.oomKill).toBe(1n);
    expect(readOomKillCount(d)).toBe(1n);
  });

  it('reads the real cgroup2 hierarchy of this machine (core files only on a hybrid host)', () => {
    const dir = unifiedDir(readProcessCgroups('self'));
    if (dir === undefined) return; // no cgroup2 mounted
    const m = readV2Metrics(dir);
    expect(m.cpu?.usageUsec).toBeGreaterThan(0n);
    expect(() => GenV2Metrics.encode(m).finish()).not.toThrow();
  });
});

describe('on this machine', () => {
  it('reads metrics of our own cgroups in the shape the host calls for', () => {
    const r = readCgroupMetrics(readProcessCgroups('self'));
    if (r.version === 1) {
      expect(r.data.memory?.usage?.usage).toBeGreaterThan(0n);
      expect(r.data.memory?.totalRss).toBeGreaterThan(0n);
      expect(r.data.cpu?.usage?.total).toBeGreaterThan(0n);
      expect(r.data.cpu?.usage?.perCpu.length).toBeGreaterThan(0);
      // a root cgroup has no pids.current: only check it where the file exists
      if (r.data.pids) expect(r.data.pids.current).toBeGreaterThan(0n);
      expect(r.data.memoryOomControl).toBeDefined();
      expect(() => GenV1Metrics.encode(r.data).finish()).not.toThrow();
    } else {
      expect(r.data.cpu?.usageUsec).toBeGreaterThan(0n);
      expect(() => GenV2Metrics.encode(r.data).finish()).not.toThrow();
    }
  });

  it('lists pids of a real cgroup and its children, and reads its oom counter', async () => {
    const self = readProcessCgroups('self');
    const mem = memoryDir(self);
    if (!mem || cgroupLayout().mode === 'v2') return; // the v1 memory hierarchy is what this host has
    const name = `tsshim-pids-${process.pid}`;
    const parent = join(mem, name);
    const child = join(parent, 'nested');
    mkdirSync(child, { recursive: true });
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => sleeper.on('exit', resolve));
    try {
      writeFileSync(join(child, 'cgroup.procs'), String(sleeper.pid));
      const cg = { v1: { memory: `${self.v1.memory === '/' ? '' : self.v1.memory}/${name}` }, unified: undefined };
      expect(listPids(cg)).toEqual([sleeper.pid]);
      expect(readOomKillCount(parent)).toBe(0n);
      expect(readCgroupMetrics(cg).version).toBe(1);
    } finally {
      sleeper.kill('SIGKILL');
      await exited;
      rmdirSync(child);
      rmdirSync(parent);
    }
  });
});
