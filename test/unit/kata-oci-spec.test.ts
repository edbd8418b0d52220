/**
 * OCI config.json <-> Kata's grpc.Spec: round trips through the wire of containerd's default
 * spec (captured from `ctr oci spec`, containerd 2.1) and of a CRI container spec, the
 * zero-is-absent rules of Kata's message, the fields it cannot carry, and bytes as Kata's
 * runtime sends them read back into JSON.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ociProcessFromProto,
  ociProcessToProto,
  ociResourcesFromProto,
  ociResourcesToProto,
  ociSpecFromProto,
  ociSpecToProto,
} from '../../src/backends/kata/oci-spec.js';
import { ShimError } from '../../src/core/errors.js';
import { LinuxResources, Process, Spec } from '../../src/proto/gen/kata/oci.js';
import { cat, ld, msg, packed, strs, vi } from './kata-wire.js';

const defaultSpec = JSON.parse(readFileSync(join(__dirname, 'kata-fixtures', 'containerd-2.1-default-spec.json'), 'utf8')) as Record<string, unknown>;

/** JSON -> proto -> bytes -> proto -> JSON, as the spec travels from the shim to an agent */
function throughTheWire(json: Record<string, unknown>, dropped: string[] = []): Record<string, unknown> {
  const bytes = Spec.encode(ociSpecToProto(json, dropped)).finish();
  return JSON.parse(JSON.stringify(ociSpecFromProto(Spec.decode(bytes)))) as Record<string, unknown>;
}

const CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

/** The shape containerd's CRI plugin writes for an app container of a pod (cgroup v2, systemd driver). */
const criContainerSpec = {
  ociVersion: '1.1.0',
  process: {
    user: { uid: 65534, gid: 65534, additionalGids: [65534] },
    args: ['/server', '--port=8080'],
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=web-0', 'KUBERNETES_SERVICE_HOST=10.96.0.1'],
    cwd: '/app',
    capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
    noNewPrivileges: true,
    apparmorProfile: 'cri-containerd.apparmor.d',
    oomScoreAdj: 1000,
  },
  root: { path: 'rootfs', readonly: true },
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: '/var/lib/kubelet/pods/u1/etc-hosts', options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/dev/termination-log', type: 'bind', source: '/var/lib/kubelet/pods/u1/containers/web/0a1b', options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/etc/hostname', type: 'bind', source: '/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/sb1/hostname', options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: '/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/sb1/resolv.conf', options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/dev/shm', type: 'bind', source: '/run/containerd/io.containerd.grpc.v1.cri/sandboxes/sb1/shm', options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/var/run/secrets/kubernetes.io/serviceaccount', type: 'bind', source: '/var/lib/kubelet/pods/u1/volumes/kubernetes.io~projected/kube-api-access-x', options: ['rbind', 'rprivate', 'ro'] },
  ],
  annotations: {
    'io.kubernetes.cri.container-name': 'web',
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.image-name': 'registry.example/web:1.0',
    'io.kubernetes.cri.sandbox-id': 'sb1',
    'io.kubernetes.cri.sandbox-name': 'web-0',
    'io.kubernetes.cri.sandbox-namespace': 'default',
    'io.kubernetes.cri.sandbox-uid': 'u1',
  },
  linux: {
    resources: {
      devices: [{ allow: false, access: 'rwm' }],
      memory: { limit: 268435456, swap: 268435456 },
      cpu: { shares: 256, quota: 50000, period: 100000 },
      hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
    },
    cgroupsPath: 'kubepods-burstable-podu1.slice:cri-containerd:c1',
    namespaces: [
      { type: 'pid' },
      { type: 'ipc', path: '/proc/4242/ns/ipc' },
      { type: 'uts', path: '/proc/4242/ns/uts' },
      { type: 'mount' },
      { type: 'network', path: '/proc/4242/ns/net' },
      { type: 'cgroup' },
    ],
    seccomp: {
      defaultAction: 'SCMP_ACT_ERRNO',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [
        { names: ['accept', 'accept4', 'access', 'read', 'write'], action: 'SCMP_ACT_ALLOW' },
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 4294967295, op: 'SCMP_CMP_EQ' }] },
        { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, valueTwo: 0x7e020000, op: 'SCMP_CMP_MASKED_EQ' }] },
        { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      ],
    },
    maskedPaths: ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'],
    readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
  },
};

describe('ociSpecToProto / ociSpecFromProto', () => {
  it('containerd\'s default spec survives the trip to the agent unchanged, nothing dropped', () => {
    expect(defaultSpec.ociVersion).toBeTruthy();
    const dropped: string[] = [];
    expect(throughTheWire(defaultSpec, dropped)).toEqual(defaultSpec);
    expect(dropped).toEqual([]);
  });

  it('a CRI container spec survives unchanged, nothing dropped', () => {
    const dropped: string[] = [];
    expect(throughTheWire(criContainerSpec, dropped)).toEqual(criContainerSpec);
    expect(dropped).toEqual([]);
  });

  it('every field oci.proto has comes back (hooks, id mappings, devices, blockIO, network, rdt, console size, ...)', () => {
    const full = {
      ociVersion: '1.2.0',
      process: {
        terminal: true,
        consoleSize: { height: 0, width: 132 },
        user: { uid: 0, gid: 0, additionalGids: [1, 2], username: 'root' },
        args: ['sh'],
        env: ['A=1'],
        cwd: '/',
        capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], inheritable: ['CAP_KILL'], permitted: ['CAP_KILL'], ambient: ['CAP_KILL'] },
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 0, soft: 0 }],
        noNewPrivileges: true,
        apparmorProfile: 'p',
        oomScoreAdj: -999,
        selinuxLabel: 'l',
      },
      root: { path: '/rootfs' },
      hostname: 'h',
      mounts: [{ destination: '/tmp' }],
      hooks: {
        prestart: [{ path: '/a', args: ['a'], env: ['E=1'], timeout: 3 }],
        createRuntime: [{ path: '/b' }],
        createContainer: [{ path: '/c' }],
        startContainer: [{ path: '/d' }],
        poststart: [{ path: '/e' }],
        poststop: [{ path: '/f' }],
      },
      annotations: { a: 'b' },
      linux: {
        uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
        sysctl: { 'net.core.somaxconn': '1024' },
        resources: {
          devices: [{ allow: true, type: 'b', major: 8, minor: 0, access: 'r' }],
          memory: { limit: 1, reservation: 2, swap: -1, kernel: 4, kernelTCP: 5, swappiness: 6, disableOOMKiller: true },
          cpu: { shares: 1, quota: -1, period: 3, realtimeRuntime: 4, realtimePeriod: 5, cpus: '0', mems: '0' },
          pids: { limit: -1 },
          blockIO: {
            weight: 10,
            leafWeight: 20,
            weightDevice: [{ major: 8, minor: 0, weight: 100 }, { major: 8, minor: 16, leafWeight: 50 }],
            throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1 }],
            throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 2 }],
            throttleReadIOPSDevice: [{ major: 8, minor: 0, rate: 3 }],
            throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 0 }],
          },
          hugepageLimits: [{ pageSize: '1GB', limit: 1073741824 }],
          network: { classID: 7, priorities: [{ name: 'eth0', priority: 0 }] },
        },
        cgroupsPath: '/x',
        namespaces: [{ type: 'user' }],
        devices: [{ path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 438, uid: 1, gid: 2 }, { path: '/dev/zero', type: 'c', major: 1, minor: 5 }],
        seccomp: { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_SPEC_ALLOW'], syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 0 }] },
        rootfsPropagation: 'rprivate',
        maskedPaths: ['/m'],
        readonlyPaths: ['/r'],
        mountLabel: 'ml',
        intelRdt: { l3CacheSchema: 'L3:0=f' },
      },
    };
    const dropped: string[] = [];
    expect(throughTheWire(full, dropped)).toEqual(full);
    expect(dropped).toEqual([]);
  });

  it('zero is absent on Kata\'s wire: optional zero numbers and empty lists come back absent, required ones stay, errnoRet 0 stays', () => {
    const spec = {
      ociVersion: '1.1.0',
      process: { user: { uid: 0, gid: 0 }, cwd: '/', args: [], oomScoreAdj: 0, terminal: false },
      linux: {
        resources: { memory: { limit: 0, swap: -1 }, devices: [{ allow: false, major: 0, access: 'rwm' }] },
        devices: [{ path: '/dev/x', type: 'c', major: 0, minor: 0, uid: 0 }],
        seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['a'], action: 'SCMP_ACT_ERRNO', errnoRet: 0 }] },
      },
    };
    expect(throughTheWire(spec)).toEqual({
      ociVersion: '1.1.0',
      process: { user: { uid: 0, gid: 0 }, cwd: '/' },
      linux: {
        resources: { memory: { swap: -1 }, devices: [{ allow: false, access: 'rwm' }] },
        devices: [{ path: '/dev/x', type: 'c', major: 0, minor: 0 }],
        seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['a'], action: 'SCMP_ACT_ERRNO', errnoRet: 0 }] },
      },
    });
  });

  it('lists the JSON fields oci.proto cannot carry', () => {
    const dropped: string[] = [];
    ociSpecToProto(
      {
        ociVersion: '1.2.0',
        domainname: 'example.org',
        process: { user: { uid: 0, gid: 0, umask: 18 }, cwd: '/', scheduler: { policy: 'SCHED_OTHER' }, ioPriority: { class: 'IOPRIO_CLASS_IDLE' } },
        mounts: [{ destination: '/x', source: '/y', uidMappings: [{ containerID: 0, hostID: 1, size: 1 }] }],
        linux: {
          resources: { unified: { 'memory.high': '1G' }, memory: { limit: 5, checkBeforeUpdate: true }, cpu: { burst: 10 }, rdma: {} },
          seccomp: { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1, listenerPath: '/l' },
          personality: { domain: 'LINUX32' },
          intelRdt: { closID: 'c' },
        },
        vm: null,
      },
      dropped,
    );
    expect(dropped.sort()).toEqual(
      [
        'domainname',
        'process.user.umask',
        'process.scheduler',
        'process.ioPriority',
        'mounts[0].uidMappings',
        'linux.resources.unified',
        'linux.resources.memory.checkBeforeUpdate',
        'linux.resources.cpu.burst',
        'linux.resources.rdma',
        'linux.seccomp.defaultErrnoRet',
        'linux.seccomp.listenerPath',
        'linux.personality',
        'linux.intelRdt.closID',
      ].sort(),
    );
  });

  it('64-bit values: RLIM_INFINITY and the largest memory limit clamp into their fields as Kata sends them', () => {
    const json = JSON.parse(
      '{"ociVersion":"1","process":{"cwd":"/","rlimits":[{"type":"RLIMIT_CORE","hard":18446744073709551615,"soft":18446744073709551615}]},' +
        '"linux":{"resources":{"memory":{"limit":9223372036854775807}}}}',
    ) as Record<string, unknown>;
    const spec = ociSpecToProto(json);
    expect(spec.Process!.Rlimits[0]!.Hard).toBe(18446744073709551615n);
    expect(spec.Linux!.Resources!.Memory!.Limit).toBe(9223372036854775807n);
    expect(Buffer.from(Spec.encode(spec).finish()).includes(Buffer.from('ffffffffffffffffff01', 'hex'))).toBe(true);
    // back: the same JSON numbers JSON.parse made of the originals
    expect(ociSpecFromProto(spec)).toEqual(json);
    // exact values given as bigint or decimal strings are taken as they are
    expect(ociResourcesToProto({ memory: { limit: 123456789012345678n, swap: '-1' } }).Memory).toMatchObject({ Limit: 123456789012345678n, Swap: -1n });
  });

  it('a value of the wrong type is InvalidArgument naming its JSON path', () => {
    const bad = (json: unknown, text: RegExp) => {
      let err: unknown;
      try {
        ociSpecToProto(json as Record<string, unknown>);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ShimError);
      expect((err as ShimError).code).toBe('InvalidArgument');
      expect((err as ShimError).message).toMatch(text);
    };
    bad({ process: { args: 'ls' } }, /process\.args must be an array/);
    bad({ process: { user: { uid: -1 } } }, /process\.user\.uid must be a 32-bit unsigned integer/);
    bad({ linux: { resources: { memory: { limit: 1.5 } } } }, /linux\.resources\.memory\.limit must be an integer/);
    bad({ mounts: [{ destination: 5 }] }, /mounts\[0\]\.destination must be a string/);
    bad({ linux: { seccomp: { syscalls: [{ names: ['x'], errnoRet: -1 }] } } }, /errnoRet must be a 32-bit unsigned integer/);
    bad([], /not an object/);
  });
});

describe('what an agent gets: bytes as Kata\'s runtime sends them, read back as OCI JSON', () => {
  it('a spec from Kata\'s runtime (zeros omitted; 0 major/minor in a rule for all types is its wildcard)', () => {
    const bytes = cat(
      ld(1, '1.0.2-dev'),
      msg(
        2,
        msg(3, vi(1, 1000), vi(2, 1000), packed(3, [1000, 10])),
        strs(4, ['sh', '-c', 'sleep 1']),
        ld(6, '/'),
        msg(8, ld(1, 'RLIMIT_NOFILE'), vi(2, 1024), vi(3, 1024)),
        vi(9, true),
      ),
      msg(3, ld(1, '/run/kata-containers/shared/containers/c1/rootfs')),
      msg(5, ld(1, '/dev/shm'), ld(2, 'shm'), ld(3, 'bind'), strs(4, ['rbind'])),
      msg(
        8,
        msg(
          4,
          msg(1, ld(5, 'rwm')),
          msg(1, vi(1, true), ld(2, 'c'), vi(3, 1), vi(4, 3), ld(5, 'rwm')),
          msg(1, vi(1, true), ld(2, 'c'), vi(3, 5), ld(5, 'rwm')), // c 5:0 (/dev/tty)
          msg(1, vi(1, true), ld(2, 'c'), vi(3, 136), vi(4, -1n), ld(5, 'rwm')), // c 136:* as tsshim sends it
          msg(2, vi(1, 1 << 28)),
        ),
        ld(5, '/kubepods/c1'),
        msg(6, ld(1, 'mount')),
        msg(6, ld(1, 'network'), ld(2, '/var/run/netns/cni-1')),
      ),
    );
    expect(ociSpecFromProto(Spec.decode(bytes))).toEqual({
      ociVersion: '1.0.2-dev',
      process: {
        user: { uid: 1000, gid: 1000, additionalGids: [1000, 10] },
        args: ['sh', '-c', 'sleep 1'],
        cwd: '/',
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
        noNewPrivileges: true,
      },
      root: { path: '/run/kata-containers/shared/containers/c1/rootfs' },
      mounts: [{ destination: '/dev/shm', source: 'shm', type: 'bind', options: ['rbind'] }],
      linux: {
        resources: {
          devices: [
            { allow: false, access: 'rwm' },
            { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
            { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
            { allow: true, type: 'c', major: 136, access: 'rwm' },
          ],
          memory: { limit: 1 << 28 },
        },
        cgroupsPath: '/kubepods/c1',
        namespaces: [{ type: 'mount' }, { type: 'network', path: '/var/run/netns/cni-1' }],
      },
    });
  });

  it('device cgroup numbers: "*" goes as -1 (kata-agent reads <= 0 as absent), a real 0 as 0', () => {
    const res = ociResourcesToProto({ devices: [{ allow: true, type: 'c', major: 136, access: 'rwm' }, { allow: true, type: 'b', major: 8, minor: 0, access: 'r' }, { allow: false, access: 'rwm' }] });
    expect(Buffer.from(LinuxResources.encode(res).finish()).toString('hex')).toBe(
      cat(
        msg(1, vi(1, true), ld(2, 'c'), vi(3, 136), vi(4, -1n), ld(5, 'rwm')),
        msg(1, vi(1, true), ld(2, 'b'), vi(3, 8), ld(5, 'r')),
        msg(1, vi(3, -1n), vi(4, -1n), ld(5, 'rwm')),
      ).toString('hex'),
    );
  });

  it('process (ExecProcess) and resources (UpdateContainer) alone', () => {
    const proc = { terminal: true, consoleSize: { height: 24, width: 80 }, user: { uid: 0, gid: 0 }, args: ['top'], env: ['TERM=xterm'], cwd: '/' };
    expect(ociProcessFromProto(Process.decode(Process.encode(ociProcessToProto(proc)).finish()))).toEqual(proc);
    const res = { memory: { limit: 536870912, swap: 536870912 }, cpu: { quota: 20000, period: 100000, cpus: '0' }, pids: { limit: 100 } };
    expect(ociResourcesFromProto(LinuxResources.decode(LinuxResources.encode(ociResourcesToProto(res)).finish()))).toEqual(res);
  });
});
