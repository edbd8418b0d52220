/**
 * The systemd driver's unit properties (src/backends/native/systemd-cgroup.ts): what systemd
 * is told about a container's resources and devices, per cgroup version. The values are
 * those runc gives systemd for the same spec.
 */
import { describe, expect, it } from 'vitest';
import { cpuQuotaPerSecUSec, deviceProperties, resourceProperties } from '../../src/backends/native/systemd-cgroup.js';
import { parseResources } from '../../src/backends/native/spec.js';

const INFINITY = (1n << 64n) - 1n;
const asMap = (props: Array<{ name: string; value: unknown }>) => Object.fromEntries(props.map((p) => [p.name, p.value]));

describe('resourceProperties', () => {
  const r = parseResources(
    { memory: { limit: 64 * 1024 * 1024, reservation: 32 * 1024 * 1024, swap: 128 * 1024 * 1024 }, cpu: { shares: 512, quota: 50000, period: 100000 }, pids: { limit: 100 }, blockIO: { weight: 500 } },
    'linux.resources',
  );

  it('cgroup v1 and hybrid: MemoryLimit, CPUShares, quota, TasksMax, BlockIOWeight', () => {
    for (const mode of ['v1', 'hybrid'] as const) {
      expect(asMap(resourceProperties(r, mode))).toEqual({
        MemoryLimit: 67108864n,
        CPUShares: 512n,
        CPUQuotaPeriodUSec: 100000n,
        CPUQuotaPerSecUSec: 500000n,
        TasksMax: 100n,
        BlockIOWeight: 500n,
      });
    }
  });

  it('cgroup v2: MemoryMax, MemoryLow, swap alone, CPUWeight converted from shares', () => {
    expect(asMap(resourceProperties(r, 'v2'))).toEqual({
      MemoryMax: 67108864n,
      MemoryLow: 33554432n,
      MemorySwapMax: 67108864n,
      CPUWeight: 20n,
      CPUQuotaPeriodUSec: 100000n,
      CPUQuotaPerSecUSec: 500000n,
      TasksMax: 100n,
    });
  });

  it('unlimited values are infinity; nothing given, nothing set', () => {
    const u = parseResources({ memory: { limit: -1 }, pids: { limit: -1 }, cpu: { quota: -1, period: 100000 } }, 'r');
    expect(asMap(resourceProperties(u, 'v2'))).toMatchObject({ MemoryMax: INFINITY, TasksMax: INFINITY, CPUQuotaPerSecUSec: INFINITY });
    expect(resourceProperties(parseResources({}, 'r'), 'v1')).toEqual([]);
    expect(resourceProperties(undefined, 'v1')).toEqual([]);
  });

  it('a quota that is not a whole percent of a CPU rounds up to the next 10 ms per second', () => {
    expect(cpuQuotaPerSecUSec(12345n, 100000n)).toBe(130000n);
    expect(cpuQuotaPerSecUSec(20000n, undefined)).toBe(200000n);
    expect(cpuQuotaPerSecUSec(undefined, undefined)).toBeUndefined();
  });
});

describe('deviceProperties', () => {
  const groups = () => new Map([['char:136', 'char-pts']]);

  it("containerd's deny-all plus allows becomes DevicePolicy=strict with the allowed nodes", () => {
    const props = deviceProperties(
      [
        { allow: false, type: 'a', major: -1, minor: -1, access: 'rwm' },
        { allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' },
      ],
      groups,
    )!;
    const m = asMap(props) as { DevicePolicy: string; DeviceAllow: Array<[string, string]> };
    expect(m.DevicePolicy).toBe('strict');
    expect(m.DeviceAllow).toContainEqual(['/dev/char/10:229', 'rwm']);
    // the default allow list comes along: wildcards and a major's group
    expect(m.DeviceAllow).toContainEqual(['char-*', 'm']);
    expect(m.DeviceAllow).toContainEqual(['block-*', 'm']);
    expect(m.DeviceAllow).toContainEqual(['char-pts', 'rwm']);
    expect(m.DeviceAllow).toContainEqual(['/dev/char/1:3', 'rwm']);
  });

  it('allow-all needs no policy; rules systemd cannot say give none', () => {
    expect(deviceProperties([{ allow: true, type: 'a', major: -1, minor: -1, access: 'rwm' }], groups)).toEqual([]);
    expect(deviceProperties([{ allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, { allow: false, type: 'c', major: 5, minor: 1, access: 'w' }], groups)).toBeUndefined();
  });
});
