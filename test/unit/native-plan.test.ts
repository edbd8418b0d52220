/**
 * The plan's wire format and the compiler that produces it: numbers shared with the C
 * helper (read from helper/plan.h), record layout, and the policy the compiler applies
 * (defaults, cross-field checks, cgroup mounts, devices in user namespaces).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniformCgroupPaths } from '../../src/backends/native/cgroup-path.js';
import { compileCreate, compileExec, parseMountOptions, type CreateContext } from '../../src/backends/native/compile.js';
import { MS, MountKind, PLAN_MAGIC, PlanFlag, PlanTag, encodePlan, type Plan, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER } from '../../src/backends/native/plan.js';
import { parseProcess, parseSpec } from '../../src/backends/native/spec.js';
import { MOUNT_ATTR } from '../../src/backends/native/mount-attrs.js';
import { parseCgroupLayout } from '../../src/sys/cgroups.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const planH = fs.readFileSync(path.join(here, '../../src/backends/native/helper/plan.h'), 'utf8');

const camel = (s: string) => s.toLowerCase().replace(/(^|_)([a-z])/g, (_m, _u, c: string) => c.toUpperCase());

describe('plan numbers shared with helper/plan.h', () => {
  it('has the same tags', () => {
    const fromC = Object.fromEntries([...planH.matchAll(/^\s*T_([A-Z_]+) = (\d+),/gm)].map((m) => [camel(m[1]!), Number(m[2])]));
    expect(fromC).toEqual({ ...PlanTag });
  });
  it('has the same flags', () => {
    const fromC = Object.fromEntries([...planH.matchAll(/^\s*F_([A-Z_]+) = 1u << (\d+),/gm)].map((m) => [camel(m[1]!), 1 << Number(m[2])]));
    expect(fromC).toEqual({ ...PlanFlag });
  });
  it('has the same magic and mount kinds', () => {
    expect(Number(/PLAN_MAGIC (0x[0-9a-f]+)u/.exec(planH)![1])).toBe(PLAN_MAGIC);
    expect(/MK_FS = 0, MK_BIND_DIR = 1, MK_BIND_FILE = 2/.test(planH)).toBe(true);
    expect(MountKind).toEqual({ Fs: 0, BindDir: 1, BindFile: 2 });
  });
});

function minimalPlan(): Plan {
  return {
    namespaces: [{ type: CLONE_NEWNS }, { type: CLONE_NEWPID, path: '/proc/1/ns/pid' }],
    uidMappings: [],
    gidMappings: [],
    setgroupsDeny: false,
    cgroupProcs: ['/sys/fs/cgroup/pids/x/cgroup.procs'],
    cgroupSelf: ['/sys/fs/cgroup/memory/x/tasks'],
    cgroupCloneInto: '/sys/fs/cgroup/unified/x',
    execFifo: '/run/x/exec.fifo',
    rootfs: '/b/rootfs',
    rootPropagation: MS.SLAVE | MS.REC,
    rootReadonly: true,
    noPivot: false,
    devConsole: false,
    setsid: true,
    rootfsOps: [{ op: 'mkdir', path: '/x', mode: 0o755 }],
    finalOps: [{ op: 'mask', path: '/proc/kcore' }],
    process: { args: ['sh', '-c', 'échö'], env: ['A=1'], cwd: '/', rlimits: [], noNewPrivileges: true, terminal: false, preserveFds: 0 },
  };
}

/** decodes records as helper/plan.c does: tag, length, payload */
function records(buf: Buffer): Array<{ tag: number; payload: Buffer }> {
  expect(buf.readUInt32LE(0)).toBe(PLAN_MAGIC);
  expect(buf.readUInt32LE(4)).toBe(1);
  expect(buf.readUInt32LE(8)).toBe(buf.length - 12);
  const out = [];
  for (let off = 12; off < buf.length; ) {
    const tag = buf.readUInt16LE(off);
    expect(buf.readUInt16LE(off + 2)).toBe(0);
    const len = buf.readUInt32LE(off + 4);
    out.push({ tag, payload: buf.subarray(off + 8, off + 8 + len) });
    off += 8 + len;
  }
  return out;
}

describe('encodePlan', () => {
  it('writes records in phase order with NUL-terminated strings', () => {
    const recs = records(encodePlan(minimalPlan()));
    expect(recs.map((r) => r.tag)).toEqual([
      PlanTag.Flags,
      PlanTag.Namespace,
      PlanTag.Namespace,
      PlanTag.CgroupProcs,
      PlanTag.CgroupSelf,
      PlanTag.CgroupCloneInto,
      PlanTag.ExecFifo,
      PlanTag.Rootfs,
      PlanTag.RootPropagation,
      PlanTag.Mkdir,
      PlanTag.Mask,
      PlanTag.Arg,
      PlanTag.Arg,
      PlanTag.Arg,
      PlanTag.Env,
      PlanTag.Cwd,
    ]);
    expect(recs[0]!.payload.readUInt32LE(0)).toBe(PlanFlag.NoNewPrivs | PlanFlag.RootReadonly | PlanFlag.WaitStart | PlanFlag.Setsid);
    // namespace: u32 flag, str path ("" = new)
    const ns = recs[2]!.payload;
    expect(ns.readUInt32LE(0)).toBe(CLONE_NEWPID);
    expect(ns.readUInt32LE(4)).toBe('/proc/1/ns/pid'.length);
    expect(ns.subarray(8).toString()).toBe('/proc/1/ns/pid\0');
    expect(recs[1]!.payload).toEqual(Buffer.from([0, 0, 2, 0, 0, 0, 0, 0, 0]));
    // UTF-8 byte length, not string length
    const arg = recs[13]!.payload;
    expect(arg.readUInt32LE(0)).toBe(Buffer.byteLength('échö'));
  });

  it('refuses strings with NUL bytes', () => {
    const p = minimalPlan();
    p.process.args = ['a\0b'];
    expect(() => encodePlan(p)).toThrow(/NUL/);
  });

  it('encodes 64-bit values exactly', () => {
    const p = minimalPlan();
    p.process.rlimits = [{ resource: 7, soft: (1n << 64n) - 1n, hard: 5n }];
    const rl = records(encodePlan(p)).find((r) => r.tag === PlanTag.Rlimit)!.payload;
    expect(rl.readUInt32LE(0)).toBe(7);
    expect(rl.readBigUInt64LE(4)).toBe((1n << 64n) - 1n);
    expect(rl.readBigUInt64LE(12)).toBe(5n);
  });
});

describe('parseMountOptions', () => {
  it('splits flags, propagation and data', () => {
    expect(parseMountOptions(['nosuid', 'noexec', 'mode=755', 'ro', 'rprivate', 'size=65536k'], 'm')).toEqual({
      flags: MS.NOSUID | MS.NOEXEC | MS.RDONLY,
      propagation: MS.PRIVATE | MS.REC,
      data: ['mode=755', 'size=65536k'],
      recursiveAttrSet: 0,
      recursiveAttrClear: 0,
    });
    expect(parseMountOptions(['ro', 'rw', 'rbind'], 'm').flags).toBe(MS.BIND | MS.REC);
  });
  it('takes the recursive attributes ("rro", ...) as mount_setattr bits, the later option winning', () => {
    const o = parseMountOptions(['rbind', 'ro', 'rro', 'rnosuid', 'rnoatime'], 'm');
    expect(o.flags).toBe(MS.BIND | MS.REC | MS.RDONLY);
    expect(o.recursiveAttrSet).toBe(MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOATIME);
    expect(o.recursiveAttrClear).toBe(MOUNT_ATTR.ATIME_MASK);
    const back = parseMountOptions(['rro', 'rrw'], 'm');
    expect(back.recursiveAttrSet).toBe(0);
    expect(back.recursiveAttrClear).toBe(MOUNT_ATTR.RDONLY);
  });
  it('refuses what it cannot do, naming the option', () => {
    expect(() => parseMountOptions(['nosuid', 'tmpcopyup'], 'mounts[3].options')).toThrow(
      expect.objectContaining({ code: 'Unimplemented', message: 'mounts[3].options[1]: mount option "tmpcopyup" is not supported by the native backend yet' }),
    );
  });
});

describe('compileCreate', () => {
  let bundle: string;
  const hybridLayout = parseCgroupLayout(
    [
      '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
      '35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
      '40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd',
      '41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    ].join('\n'),
  );
  const ctx = (): CreateContext => ({
    id: 'c1',
    bundle,
    cgroup: {
      path: '/c1',
      paths: uniformCgroupPaths('/c1', hybridLayout),
      v1: { 'cpu,cpuacct': '/sys/fs/cgroup/cpu,cpuacct/c1', memory: '/sys/fs/cgroup/memory/c1', 'name=systemd': '/sys/fs/cgroup/systemd/c1' },
      unified: '/sys/fs/cgroup/unified/c1',
      created: [],
    },
    cgroupLayout: hybridLayout,
    placement: { procs: [], self: ['/sys/fs/cgroup/memory/c1/tasks'], cloneInto: '/sys/fs/cgroup/unified/c1' },
    execFifo: '/run/s/c1/exec.fifo',
    host: { bounding: (1n << 41n) - 1n - (1n << 24n) }, // everything but CAP_SYS_RESOURCE
    apparmorEnabled: false,
    selinuxEnabled: false,
  });
  const spec = (edit?: (s: Record<string, any>) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const s: Record<string, any> = { // eslint-disable-line @typescript-eslint/no-explicit-any
      ociVersion: '1.0.2',
      root: { path: 'rootfs', readonly: true },
      hostname: 'box',
      process: {
        args: ['sh'],
        cwd: '/',
        user: { uid: 1000, gid: 1000, additionalGids: [5] },
        capabilities: { bounding: ['CAP_KILL', 'CAP_SYS_RESOURCE'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
        rlimits: [{ type: 'RLIMIT_NOFILE', soft: 100, hard: 200 }],
        noNewPrivileges: true,
      },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['newinstance'] },
        { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'ro'] },
        { destination: '/data/../etc/hosts', type: 'bind', source: 'hosts', options: ['rbind', 'ro'] },
      ],
      linux: {
        namespaces: [{ type: 'mount' }, { type: 'pid' }, { type: 'uts' }, { type: 'network', path: '/var/run/netns/x' }],
        sysctl: { 'net.ipv4.ip_forward': '1' },
        maskedPaths: ['/proc/kcore'],
        readonlyPaths: ['/proc/sys'],
      },
    };
    edit?.(s);
    return parseSpec(s);
  };

  beforeAll(() => {
    bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-native-plan-'));
    fs.mkdirSync(path.join(bundle, 'rootfs'));
    fs.writeFileSync(path.join(bundle, 'hosts'), '127.0.0.1 localhost\n');
  });
  afterAll(() => fs.rmSync(bundle, { recursive: true, force: true }));

  it('compiles device rules to an eBPF filter for the cgroup2 dir; required unless v1 devices enforces them', () => {
    const rules = (s: Record<string, any>) => (s.linux.resources = { devices: [{ allow: false, access: 'rwm' }] }); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(compileCreate(spec(), ctx()).plan.deviceFilter).toBeUndefined();
    const noV1Devices = compileCreate(spec(rules), ctx()).plan.deviceFilter!;
    expect(noV1Devices.cgroup).toBe('/sys/fs/cgroup/unified/c1');
    expect(noV1Devices.required).toBe(true);
    expect(noV1Devices.program.length % 8).toBe(0);
    const withV1Devices = parseCgroupLayout(
      ['36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices', '41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw'].join('\n'),
    );
    expect(compileCreate(spec(rules), { ...ctx(), cgroupLayout: withV1Devices }).plan.deviceFilter!.required).toBe(false);
  });

  it('compiles a typical config', () => {
    const { plan, warnings } = compileCreate(spec(), ctx());
    expect(plan.rootfs).toBe(path.join(bundle, 'rootfs'));
    expect(plan.cgroupSelf).toEqual(['/sys/fs/cgroup/memory/c1/tasks']);
    expect(plan.cgroupCloneInto).toBe('/sys/fs/cgroup/unified/c1');
    expect(plan.cgroupProcs).toEqual([]);
    expect(plan.rootReadonly).toBe(true);
    expect(plan.hostname).toBe('box');
    expect(plan.namespaces).toEqual([
      { type: CLONE_NEWNS, path: undefined },
      { type: CLONE_NEWPID, path: undefined },
      { type: 0x04000000, path: undefined },
      { type: 0x40000000, path: '/var/run/netns/x' },
    ]);
    expect(plan.rootPropagation).toBe(MS.SLAVE | MS.REC);
    // the bind source is a file, its target normalized
    expect(plan.rootfsOps).toContainEqual({
      op: 'mount',
      source: path.join(bundle, 'hosts'),
      target: '/etc/hosts',
      fstype: '',
      flags: MS.BIND | MS.REC | MS.RDONLY,
      propagation: 0,
      data: '',
      kind: MountKind.BindFile,
    });
    // cgroup v1 in the container: a tmpfs (left writable, as runc 1.1 does), one read-only bind per hierarchy, co-mount symlinks
    const cg = plan.rootfsOps.filter((o) => 'path' in o ? o.path.startsWith('/sys/fs/cgroup') : 'target' in o && o.target.startsWith('/sys/fs/cgroup'));
    expect(cg).toEqual([
      { op: 'mount', source: 'tmpfs', target: '/sys/fs/cgroup', fstype: 'tmpfs', flags: MS.NOSUID, propagation: 0, data: 'mode=755', kind: MountKind.Fs },
      { op: 'mount', source: '/sys/fs/cgroup/cpu,cpuacct/c1', target: '/sys/fs/cgroup/cpu,cpuacct', fstype: '', flags: MS.BIND | MS.REC | MS.NOSUID | MS.RDONLY, propagation: 0, data: '', kind: MountKind.BindDir },
      { op: 'symlink', linkTarget: 'cpu,cpuacct', path: '/sys/fs/cgroup/cpu' },
      { op: 'symlink', linkTarget: 'cpu,cpuacct', path: '/sys/fs/cgroup/cpuacct' },
      { op: 'mount', source: '/sys/fs/cgroup/memory/c1', target: '/sys/fs/cgroup/memory', fstype: '', flags: MS.BIND | MS.REC | MS.NOSUID | MS.RDONLY, propagation: 0, data: '', kind: MountKind.BindDir },
      { op: 'mount', source: '/sys/fs/cgroup/systemd/c1', target: '/sys/fs/cgroup/systemd', fstype: '', flags: MS.BIND | MS.REC | MS.NOSUID | MS.RDONLY, propagation: 0, data: '', kind: MountKind.BindDir },
    ]);
    // default devices and /dev symlinks, because /dev is a tmpfs
    expect(plan.rootfsOps).toContainEqual({ op: 'mknod', path: '/dev/null', mode: 0o020666, major: 1, minor: 3, uid: 0, gid: 0 });
    expect(plan.rootfsOps).toContainEqual({ op: 'symlink', linkTarget: '/proc/self/fd', path: '/dev/fd' });
    expect(plan.rootfsOps).toContainEqual({ op: 'symlink', linkTarget: 'pts/ptmx', path: '/dev/ptmx' });
    expect(plan.finalOps).toEqual([
      { op: 'sysctl', key: 'net/ipv4/ip_forward', value: '1' },
      { op: 'readonly', path: '/proc/sys' },
      { op: 'mask', path: '/proc/kcore' },
    ]);
    expect(plan.process.user).toEqual({ uid: 1000, gid: 1000, umask: 0o022, additionalGids: [5] });
    expect(plan.process.rlimits).toEqual([{ resource: 7, soft: 100n, hard: 200n }]);
    // CAP_SYS_RESOURCE is not held by this host: dropped with a warning
    expect(plan.process.capabilities).toEqual({ bounding: 1n << 5n, effective: 1n << 5n, permitted: 1n << 5n, inheritable: 0n, ambient: 0n });
    expect(warnings).toEqual([{ field: 'process.capabilities.bounding[1]', message: 'CAP_SYS_RESOURCE is not available on this host; not granted' }]);
  });

  it('drops ambient capabilities that are not permitted and inheritable, with a warning', () => {
    const { plan, warnings } = compileCreate(spec((s) => (s.process.capabilities.ambient = ['CAP_KILL'])), ctx());
    expect(plan.process.capabilities!.ambient).toBe(0n);
    expect(warnings).toContainEqual({ field: 'process.capabilities.ambient', message: 'not permitted and inheritable, so not raised: CAP_KILL' });
  });

  it('ignores a capability name it does not know, with a warning, as runc 1.1 does', () => {
    const { plan, warnings } = compileCreate(
      spec((s) => {
        s.process.capabilities.effective = ['CAP_FLY', 'CAP_KILL', 'cap_kill'];
        s.process.capabilities.permitted = ['CAP_KILL', 'KILL'];
      }),
      ctx(),
    );
    expect(plan.process.capabilities).toMatchObject({ effective: 1n << 5n, permitted: 1n << 5n });
    expect(warnings).toEqual(
      expect.arrayContaining([
        { field: 'process.capabilities.effective[0]', message: 'unknown capability "CAP_FLY"; ignored' },
        { field: 'process.capabilities.effective[2]', message: 'unknown capability "cap_kill"; ignored' },
        { field: 'process.capabilities.permitted[1]', message: 'unknown capability "KILL"; ignored' },
      ]),
    );
    // an exec's process too
    const exec = compileExec(parseProcess({ args: ['ls'], capabilities: { bounding: ['CAP_FLY', 'CAP_KILL'] } }), {
      initPid: 4242,
      namespaces: ['mount'],
      userNamespace: false,
      placement: { procs: [], self: [] },
      host: { bounding: (1n << 41n) - 1n },
      apparmorEnabled: false,
      selinuxEnabled: false,
    });
    expect(exec.plan.process.capabilities!.bounding).toBe(1n << 5n);
    expect(exec.warnings).toEqual([{ field: 'process.capabilities.bounding[0]', message: 'unknown capability "CAP_FLY"; ignored' }]);
  });

  it('mounts a relative destination under the container\'s root, with a warning, as runc 1.1 does', () => {
    const { plan, warnings } = compileCreate(
      spec((s) => {
        s.mounts.push({ destination: 'tmp/rel', type: 'tmpfs', source: 'tmpfs' });
        s.mounts.push({ destination: '../../escape', type: 'tmpfs', source: 'tmpfs' });
      }),
      ctx(),
    );
    expect(plan.rootfsOps).toContainEqual({ op: 'mount', source: 'tmpfs', target: '/tmp/rel', fstype: 'tmpfs', flags: 0, propagation: 0, data: '', kind: MountKind.Fs });
    // ".." stops at the container's root, as runc's securejoin does
    expect(plan.rootfsOps).toContainEqual({ op: 'mount', source: 'tmpfs', target: '/escape', fstype: 'tmpfs', flags: 0, propagation: 0, data: '', kind: MountKind.Fs });
    expect(warnings).toEqual(
      expect.arrayContaining([
        { field: 'mounts[5].destination', message: '"tmp/rel" is not absolute; mounted on /tmp/rel, as runc does (runc says it will refuse this in a future release)' },
        { field: 'mounts[6].destination', message: '"../../escape" is not absolute; mounted on /escape, as runc does (runc says it will refuse this in a future release)' },
      ]),
    );
  });

  it('keeps the AppArmor profile where AppArmor is on and ignores it elsewhere, as runc does', () => {
    const withProfile = spec((s) => (s.process.apparmorProfile = 'cri-containerd.apparmor.d'));
    const on = compileCreate(withProfile, { ...ctx(), apparmorEnabled: true }).plan;
    expect(on.process.apparmorProfile).toBe('cri-containerd.apparmor.d');
    const rec = records(encodePlan(on)).find((r) => r.tag === PlanTag.Apparmor);
    expect(rec?.payload.subarray(4).toString()).toBe('cri-containerd.apparmor.d\0');
    const off = compileCreate(withProfile, ctx()).plan;
    expect(off.process.apparmorProfile).toBeUndefined();
    expect(records(encodePlan(off)).some((r) => r.tag === PlanTag.Apparmor)).toBe(false);
  });

  it('carries a terminal\'s consoleSize to the helper (it sizes the pty before the process runs)', () => {
    const withTty = spec((s) => {
      s.process.terminal = true;
      s.process.consoleSize = { height: 30, width: 90 };
    });
    const { plan } = compileCreate(withTty, { ...ctx(), consoleSocket: '/tmp/console.sock' });
    const rec = records(encodePlan(plan)).find((r) => r.tag === PlanTag.ConsoleSize);
    expect(rec && [rec.payload.readUInt32LE(0), rec.payload.readUInt32LE(4)]).toEqual([30, 90]);
    const noTty = spec((s) => (s.process.consoleSize = { height: 30, width: 90 }));
    expect(records(encodePlan(compileCreate(noTty, ctx()).plan)).some((r) => r.tag === PlanTag.ConsoleSize)).toBe(false);
  });

  it('links /dev/ptmx to the container\'s devpts even when the devices list the host\'s (privileged)', () => {
    const { plan } = compileCreate(spec((s) => (s.linux.devices = [{ path: '/dev/ptmx', type: 'c', major: 5, minor: 2 }])), ctx());
    expect(plan.rootfsOps.filter((o) => 'path' in o && o.path === '/dev/ptmx')).toEqual([{ op: 'symlink', linkTarget: 'pts/ptmx', path: '/dev/ptmx' }]);
  });

  it('binds devices instead of mknod in a user namespace', () => {
    const { plan } = compileCreate(
      spec((s) => {
        s.linux.namespaces.push({ type: 'user' });
        s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      }),
      ctx(),
    );
    expect(plan.rootfsOps).toContainEqual({ op: 'bindDevice', hostPath: '/dev/null', path: '/dev/null' });
    expect(plan.rootfsOps.some((o) => o.op === 'mknod')).toBe(false);
    expect(plan.namespaces).toContainEqual({ type: CLONE_NEWUSER, path: undefined });
    expect(plan.uidMappings).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
    // inside a user namespace every capability is the namespace's to give
    expect(plan.process.capabilities!.bounding).toBe((1n << 5n) | (1n << 24n));
  });

  const invalid: Array<[string, (s: Record<string, any>) => void, string]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['hostname without uts', (s) => (s.linux.namespaces = [{ type: 'mount' }]), 'hostname: setting a hostname needs a UTS namespace in linux.namespaces'],
    ['no mount namespace', (s) => (s.linux.namespaces = [{ type: 'uts' }]), 'linux.namespaces: a mount namespace is required'],
    ['mappings without user ns', (s) => (s.linux.uidMappings = [{ containerID: 0, hostID: 1, size: 1 }]), 'linux.uidMappings: mappings are set, but linux.namespaces has no user namespace'],
    ['user ns without mappings', (s) => s.linux.namespaces.push({ type: 'user' }), 'linux.uidMappings: a new user namespace needs uidMappings and gidMappings'],
    ['host sysctl', (s) => (s.linux.sysctl = { 'vm.swappiness': '1' }), 'linux.sysctl.vm.swappiness: not isolated by any namespace; it would change the host'],
    ['ipc sysctl without ipc ns', (s) => (s.linux.sysctl = { 'kernel.shmmax': '1' }), 'linux.sysctl.kernel.shmmax: needs a ipc namespace in linux.namespaces'],
    ['missing rootfs', (s) => (s.root.path = 'nope'), 'root.path: '],
    ['unknown rlimit', (s) => (s.process.rlimits = [{ type: 'RLIMIT_FUN', soft: 1, hard: 1 }]), 'process.rlimits[0].type: unknown rlimit "RLIMIT_FUN"'],
    ['bad propagation', (s) => (s.linux.rootfsPropagation = 'sideways'), 'linux.rootfsPropagation: must be one of'],
    ['device outside /dev', (s) => (s.linux.devices = [{ type: 'c', path: '/etc/null', major: 1, minor: 3 }]), 'linux.devices[0].path: must be under /dev (got /etc/null)'],
    ['mount over root', (s) => s.mounts.push({ destination: '/', type: 'tmpfs' }), "mounts[5].destination: cannot mount over the container's root"],
    ['terminal without console socket', (s) => (s.process.terminal = true), 'process.terminal: a terminal needs a console socket'],
  ];
  it.each(invalid)('rejects %s naming the field', (_n, edit, message) => {
    expect(() => compileCreate(spec(edit), ctx())).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: expect.stringContaining(message) }));
  });
});

describe('compileExec', () => {
  it('joins every namespace of the init by /proc path and keeps the process', () => {
    const { plan } = compileExec(parseProcess({ args: ['ls'], env: ['A=b'], cwd: '/tmp', user: { uid: 5, gid: 6 } }), {
      initPid: 4242,
      namespaces: ['mount', 'pid', 'network'],
      userNamespace: false,
      placement: { procs: [], self: ['/sys/fs/cgroup/pids/c/tasks'] },
      host: { bounding: (1n << 41n) - 1n },
      apparmorEnabled: false,
      selinuxEnabled: false,
    });
    expect(plan.namespaces).toEqual([
      { type: CLONE_NEWNS, path: '/proc/4242/ns/mnt' },
      { type: CLONE_NEWPID, path: '/proc/4242/ns/pid' },
      { type: 0x40000000, path: '/proc/4242/ns/net' },
    ]);
    expect(plan.rootfs).toBeUndefined();
    expect(plan.execFifo).toBeUndefined();
    expect(plan.process).toMatchObject({ args: ['ls'], env: ['A=b'], cwd: '/tmp', user: { uid: 5, gid: 6 } });
  });
});

describe('hook state for hooks inside the container', () => {
  it('has a fixed-width pid field at a byte offset, also after non-ASCII text', async () => {
    const { stateTemplate } = await import('../../src/backends/native/hooks.js');
    const { HOOK_PID_WIDTH } = await import('../../src/backends/native/plan.js');
    const t = stateTemplate({ ociVersion: '1.0.2', id: 'ç1', status: 'creating', bundle: '/b', annotations: { 'a"pid":0': 'ü "pid":0' } });
    const bytes = Buffer.from(t.json);
    expect(bytes.subarray(t.pidOffset, t.pidOffset + HOOK_PID_WIDTH).toString()).toBe('         0');
    // what the container process does: write its pid there; the JSON stays valid
    Buffer.from('     12345').copy(bytes, t.pidOffset);
    expect(JSON.parse(bytes.toString())).toMatchObject({ id: 'ç1', status: 'creating', pid: 12345, annotations: { 'a"pid":0': 'ü "pid":0' } });
  });
});
