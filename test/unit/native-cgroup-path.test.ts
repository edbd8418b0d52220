/**
 * Where linux.cgroupsPath puts a container under each cgroup driver, as runc reads it
 * (src/backends/native/cgroup-path.ts). The cgroupfs cases were checked against runc 1.1 on
 * this host: a relative path, systemd's slice:prefix:name form included, is made relative
 * to the runtime's own cgroup in each v1 hierarchy.
 */
import { describe, expect, it } from 'vitest';
import { expandSlice, resolveCgroupfsPaths, resolveSystemdUnit } from '../../src/backends/native/cgroup-path.js';
import { parseCgroupLayout, parseProcCgroup } from '../../src/sys/cgroups.js';

const hybrid = parseCgroupLayout(
  [
    '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
    '35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
    '40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd',
    '41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
  ].join('\n'),
);
const v2 = parseCgroupLayout('30 20 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw');
const own = parseProcCgroup(['4:memory:/session/abc', '2:cpu,cpuacct:/', '1:name=systemd:/user.slice', '0::/shim.scope'].join('\n'));
const ownV2 = parseProcCgroup('0::/system.slice/containerd.service');
const noOwn = () => {
  throw new Error('an absolute path must not read the runtime own cgroup');
};

describe('cgroupfs driver: linux.cgroupsPath as runc reads it', () => {
  it('an absolute path is the same in every hierarchy, cleaned', () => {
    const p = resolveCgroupfsPaths('/default//c1/', 'c1', hybrid, noOwn);
    expect(p).toEqual({ path: '/default/c1', v1: { cpu: '/default/c1', cpuacct: '/default/c1', memory: '/default/c1', 'name=systemd': '/default/c1' }, unified: '/default/c1' });
    expect(() => resolveCgroupfsPaths('/', 'c1', hybrid, noOwn)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(() => resolveCgroupfsPaths('/a/..', 'c1', hybrid, noOwn)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });

  it("systemd's slice:prefix:name form is an ordinary relative directory name under each hierarchy's own cgroup", () => {
    const name = 'kubepods-burstable-pod1234.slice:cri-containerd:abc';
    const p = resolveCgroupfsPaths(name, 'abc', hybrid, () => own);
    expect(p.v1.memory).toBe(`/session/abc/${name}`);
    expect(p.v1.cpu).toBe(`/${name}`);
    expect(p.v1['name=systemd']).toBe(`/user.slice/${name}`);
    // runc's v1 manager puts the cgroup2 side of a hybrid host at the root
    expect(p.unified).toBe(`/${name}`);
    expect(p.path).toBe(p.unified);
  });

  it('no path is the id, relative; .. never climbs above the start', () => {
    expect(resolveCgroupfsPaths(undefined, 'c1', hybrid, () => own).v1.memory).toBe('/session/abc/c1');
    expect(resolveCgroupfsPaths('', 'c1', hybrid, () => own).v1.memory).toBe('/session/abc/c1');
    expect(resolveCgroupfsPaths('../../x', 'c1', hybrid, () => own).v1.memory).toBe('/session/abc/x');
  });

  it('on a pure cgroup2 host a relative path starts at the parent of the own cgroup (fs2)', () => {
    expect(resolveCgroupfsPaths('pod.slice:cri:x', 'x', v2, () => ownV2)).toEqual({ path: '/system.slice/pod.slice:cri:x', v1: {}, unified: '/system.slice/pod.slice:cri:x' });
  });
});

describe('systemd driver: slice:prefix:name', () => {
  it('expands slices by their dashes', () => {
    expect(expandSlice('kubepods-burstable-pod1234.slice')).toBe('/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice');
    expect(expandSlice('system.slice')).toBe('/system.slice');
    expect(expandSlice('-.slice')).toBe('/');
    for (const bad of ['foo', 'a--b.slice', '-a.slice', 'a-.slice', 'a/b.slice', '.slice']) {
      expect(() => expandSlice(bad), bad).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    }
  });

  it('names the scope prefix-name.scope in its slice, as kubelet and containerd expect', () => {
    expect(resolveSystemdUnit('kubepods-besteffort-pod9.slice:cri-containerd:abc', 'abc')).toEqual({
      unit: 'cri-containerd-abc.scope',
      slice: 'kubepods-besteffort-pod9.slice',
      path: '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/cri-containerd-abc.scope',
    });
    // runc's defaults: no path is system.slice:runc:<id>; an empty slice is system.slice
    expect(resolveSystemdUnit(undefined, 'c1')).toMatchObject({ unit: 'runc-c1.scope', path: '/system.slice/runc-c1.scope' });
    expect(resolveSystemdUnit(':tsshim:c1', 'c1')).toMatchObject({ unit: 'tsshim-c1.scope', slice: 'system.slice' });
    // a name that is a slice makes the container a slice of its own
    expect(resolveSystemdUnit('machine.slice::mine.slice', 'c1')).toMatchObject({ unit: 'mine.slice', path: '/machine.slice/mine.slice' });
  });

  it('refuses what is not slice:prefix:name, saying what it expects', () => {
    for (const bad of ['/default/c1', 'a:b', 'a.slice:b:c:d', 'notaslice:p:n', 'a.slice:p:']) {
      expect(() => resolveSystemdUnit(bad, 'c1'), bad).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    }
    expect(() => resolveSystemdUnit('/default/c1', 'c1')).toThrow(/slice:prefix:name/);
  });
});
