/**
 * The native backend's cgroup placement and resource writes, on fake cgroup trees (plain
 * directories laid out like a v1 and a v2 host): which files get which values, and the
 * errors that name the field.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CgroupManager, sharesToWeight } from '../../src/backends/native/cgroup-manager.js';
import { parseResources } from '../../src/backends/native/spec.js';
import { parseCgroupLayout } from '../../src/sys/cgroups.js';

let base: string;
beforeEach(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-native-cg-'));
});
afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

const read = (...p: string[]) => fs.readFileSync(path.join(...p), 'utf8');

function v1Manager(): CgroupManager {
  const lines = ['memory', 'cpu,cpuacct', 'cpuset', 'pids', 'devices', 'freezer'].map((c, i) => {
    fs.mkdirSync(path.join(base, c));
    return `${30 + i} 20 0:${30 + i} / ${base}/${c} rw - cgroup cgroup rw,${c}`;
  });
  fs.writeFileSync(path.join(base, 'cpuset', 'cpuset.cpus'), '0-1');
  fs.writeFileSync(path.join(base, 'cpuset', 'cpuset.mems'), '0');
  return new CgroupManager(parseCgroupLayout(lines.join('\n')));
}

function v2Manager(): CgroupManager {
  fs.writeFileSync(path.join(base, 'cgroup.controllers'), 'cpu memory pids');
  fs.writeFileSync(path.join(base, 'cgroup.subtree_control'), '');
  return new CgroupManager(parseCgroupLayout(`30 20 0:30 / ${base} rw - cgroup2 cgroup2 rw`));
}

describe('CgroupManager on v1', () => {
  it('creates the path in every hierarchy, copying cpuset cpus and mems down', () => {
    const m = v1Manager();
    const set = m.create('/parent/c1');
    expect(set.path).toBe('/parent/c1');
    for (const c of ['memory', 'cpu,cpuacct', 'cpuset', 'pids', 'devices', 'freezer']) expect(fs.statSync(path.join(base, c, 'parent/c1')).isDirectory()).toBe(true);
    expect(read(base, 'cpuset/parent/cpuset.cpus')).toBe('0-1');
    expect(read(base, 'cpuset/parent/c1/cpuset.mems')).toBe('0');
    expect(m.procsFiles(set)).toContain(path.join(base, 'memory/parent/c1/cgroup.procs'));
    // a process that can move itself writes "0" to the v1 tasks files; else the helper migrates it
    expect(m.placement(set, true)).toEqual({ procs: [], self: expect.arrayContaining([path.join(base, 'memory/parent/c1/tasks')]), cloneInto: undefined });
    expect(m.placement(set, false).procs).toEqual(m.procsFiles(set));
    expect(set.created.length).toBe(12);
  });

  it('writes resources to the v1 files', () => {
    const m = v1Manager();
    const set = m.create('/c1');
    fs.writeFileSync(path.join(base, 'memory/c1/memory.limit_in_bytes'), '9223372036854771712');
    fs.writeFileSync(path.join(base, 'memory/c1/memory.memsw.limit_in_bytes'), '9223372036854771712');
    m.apply(
      set,
      parseResources({
        memory: { limit: 1 << 20, swap: 2 << 20, reservation: 1 << 19, swappiness: 10 },
        cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
        pids: { limit: 0 },
        devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }],
      }),
    );
    expect(read(base, 'memory/c1/memory.limit_in_bytes')).toBe(String(1 << 20));
    expect(read(base, 'memory/c1/memory.memsw.limit_in_bytes')).toBe(String(2 << 20));
    expect(read(base, 'memory/c1/memory.soft_limit_in_bytes')).toBe(String(1 << 19));
    expect(read(base, 'memory/c1/memory.swappiness')).toBe('10');
    expect(read(base, 'cpu,cpuacct/c1/cpu.shares')).toBe('512');
    expect(read(base, 'cpu,cpuacct/c1/cpu.cfs_quota_us')).toBe('50000');
    expect(read(base, 'cpu,cpuacct/c1/cpu.cfs_period_us')).toBe('100000');
    expect(read(base, 'cpuset/c1/cpuset.cpus')).toBe('0');
    expect(read(base, 'pids/c1/pids.max')).toBe('max');
    // plain files keep only the last write; the rule order is checked on the real kernel
    expect(read(base, 'devices/c1/devices.allow')).toBe('c 10:200 rwm');
  });

  it('refuses cgroup2 files on a v1 host, naming the field', () => {
    const m = v1Manager();
    const set = m.create('/c1');
    expect(() => m.apply(set, parseResources({ unified: { 'memory.max': '1' } }))).toThrow('linux.resources.unified: cgroup2 files given, but this host runs cgroup v1 controllers (v1)');
  });

  it('removes what a failed create made', async () => {
    const m = v1Manager();
    const set = m.create('/p/c1');
    await m.destroyCreated(set);
    // (the fake cpuset dirs hold plain files, which real cgroupfs directories do not block on)
    for (const c of ['memory', 'pids', 'freezer']) expect(fs.existsSync(path.join(base, c, 'p'))).toBe(false);
  });
});

describe('CgroupManager on v2', () => {
  it('enables controllers down the path and writes v2 resources', () => {
    const m = v2Manager();
    const set = m.create('/parent/c1');
    expect(set.unified).toBe(path.join(base, 'parent/c1'));
    expect(read(base, 'cgroup.subtree_control')).toBe('+cpu +memory +pids');
    expect(m.procsFiles(set)).toEqual([path.join(base, 'parent/c1/cgroup.procs')]);
    expect(m.placement(set, true)).toEqual({ procs: [], self: [], cloneInto: path.join(base, 'parent/c1') });
    fs.writeFileSync(path.join(base, 'parent/c1/memory.swap.max'), 'max');
    m.apply(
      set,
      parseResources({
        memory: { limit: 1 << 20, swap: 3 << 20, reservation: 1 << 19 },
        cpu: { shares: 1024, quota: -1, period: 50000 },
        pids: { limit: 7 },
        unified: { 'memory.high': '900000' },
      }),
    );
    expect(read(base, 'parent/c1/memory.max')).toBe(String(1 << 20));
    expect(read(base, 'parent/c1/memory.swap.max')).toBe(String(2 << 20)); // memory+swap minus memory
    expect(read(base, 'parent/c1/memory.low')).toBe(String(1 << 19));
    expect(read(base, 'parent/c1/cpu.weight')).toBe(String(sharesToWeight(1024n)));
    expect(read(base, 'parent/c1/cpu.max')).toBe('max 50000');
    expect(read(base, 'parent/c1/pids.max')).toBe('7');
    expect(read(base, 'parent/c1/memory.high')).toBe('900000');
  });

  it('converts cpu shares to weights like runc', () => {
    expect(sharesToWeight(2n)).toBe(1n);
    expect(sharesToWeight(1024n)).toBe(39n);
    expect(sharesToWeight(262144n)).toBe(10000n);
  });

  it('freezes through cgroup.freeze and waits for cgroup.events', async () => {
    const m = v2Manager();
    const set = m.create('/c1');
    fs.writeFileSync(path.join(base, 'c1/cgroup.events'), 'populated 1\nfrozen 1\n');
    await m.freeze(set);
    expect(read(base, 'c1/cgroup.freeze')).toBe('1');
    expect(m.isFrozen(set)).toBe(true);
  });
});

describe('v2 controller delegation', () => {
  it("enables the controllers in every ancestor's subtree_control, the leaf's parent included", () => {
    const m = new CgroupManager(parseCgroupLayout(`30 20 0:30 / ${base} rw - cgroup2 cgroup2 rw`));
    // a pure v2 machine (a Kata guest): the parent of the leaf does not exist yet
    fs.writeFileSync(path.join(base, 'cgroup.controllers'), 'cpu');
    fs.writeFileSync(path.join(base, 'cgroup.subtree_control'), '');
    const pod = path.join(base, 'pod');
    fs.mkdirSync(pod);
    fs.writeFileSync(path.join(pod, 'cgroup.controllers'), 'cpu');
    fs.writeFileSync(path.join(pod, 'cgroup.subtree_control'), '');
    m.create('/pod/ctr');
    expect(read(base, 'cgroup.subtree_control')).toBe('+cpu');
    // the one a container's cpu.weight depends on (it was skipped: EACCES in the guest)
    expect(read(pod, 'cgroup.subtree_control')).toBe('+cpu');
  });
});
