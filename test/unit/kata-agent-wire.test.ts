/**
 * Kata agent protocol, field by field: our generated messages (src/proto/defs/kata) against
 * bytes built by hand from upstream's tag numbers (kata-containers
 * src/libs/protocols/protos/{agent,oci,types,health}.proto), in the layout Kata's Go runtime
 * marshals. Each message is checked both ways: our encoding equals the hand-built bytes,
 * and those bytes (as Kata's runtime or kata-agent would send them) decode to the values.
 */
import { describe, expect, it } from 'vitest';
import {
  AddARPNeighborsRequest,
  AgentServiceDefinition,
  CloseStdinRequest,
  CopyFileRequest,
  CreateContainerRequest,
  CreateSandboxRequest,
  DestroySandboxRequest,
  ExecProcessRequest,
  GetOOMEventRequest,
  GuestDetailsRequest,
  GuestDetailsResponse,
  Interfaces,
  OOMEvent,
  OnlineCPUMemRequest,
  ReadStreamRequest,
  ReadStreamResponse,
  RemoveContainerRequest,
  Routes,
  SetGuestDateTimeRequest,
  SignalProcessRequest,
  StartContainerRequest,
  StatsContainerRequest,
  StatsContainerResponse,
  TtyWinResizeRequest,
  UpdateContainerRequest,
  UpdateInterfaceRequest,
  UpdateRoutesRequest,
  WaitProcessRequest,
  WaitProcessResponse,
  WriteStreamRequest,
  WriteStreamResponse,
  PauseContainerRequest,
  ResumeContainerRequest,
  Metrics,
} from '../../src/proto/gen/kata/agent.js';
import { Spec, LinuxResources, LinuxSyscall, Process } from '../../src/proto/gen/kata/oci.js';
import { ARPNeighbor, IPFamily, Interface, Route } from '../../src/proto/gen/kata/types.js';
import {
  CheckRequest,
  HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthDefinition,
  VersionCheckResponse,
} from '../../src/proto/gen/kata/health.js';
import { cat, hex, ld, msg, packed, strMap, strs, vi } from './kata-wire.js';

interface Codec<T> {
  encode(m: T): { finish(): Uint8Array };
  decode(b: Uint8Array): T;
  fromPartial(o: never): T;
}

/** our encoding == Kata's bytes, and Kata's bytes decode to the same message */
function checkBothWays<T>(type: Codec<T>, partial: unknown, kataBytes: Buffer): T {
  const message = type.fromPartial(partial as never);
  expect(hex(type.encode(message).finish())).toBe(hex(kataBytes));
  const decoded = type.decode(kataBytes);
  expect(decoded).toEqual(message);
  return decoded;
}

// ---- a full oci.Spec, as values and as Kata's bytes ----

const processValues = {
  Terminal: true,
  ConsoleSize: { Height: 24, Width: 80 },
  User: { UID: 1000, GID: 1000, AdditionalGids: [4, 27, 1000], Username: 'app' },
  Args: ['sh', '-c', 'echo hi'],
  Env: ['PATH=/usr/bin:/bin', 'HOME=/root'],
  Cwd: '/work',
  Capabilities: {
    Bounding: ['CAP_CHOWN', 'CAP_KILL'],
    Effective: ['CAP_KILL'],
    Inheritable: ['CAP_NET_RAW'],
    Permitted: ['CAP_CHOWN'],
    Ambient: ['CAP_NET_BIND_SERVICE'],
  },
  Rlimits: [
    { Type: 'RLIMIT_NOFILE', Hard: 1048576n, Soft: 1024n },
    { Type: 'RLIMIT_CORE', Hard: 18446744073709551615n, Soft: 0n },
  ],
  NoNewPrivileges: true,
  ApparmorProfile: 'cri-containerd.apparmor.d',
  OOMScoreAdj: -998n,
  SelinuxLabel: 'system_u:system_r:container_t:s0',
};

const processBytes = cat(
  vi(1, true),
  msg(2, vi(1, 24), vi(2, 80)),
  msg(3, vi(1, 1000), vi(2, 1000), packed(3, [4, 27, 1000]), ld(4, 'app')),
  strs(4, ['sh', '-c', 'echo hi']),
  strs(5, ['PATH=/usr/bin:/bin', 'HOME=/root']),
  ld(6, '/work'),
  msg(7, strs(1, ['CAP_CHOWN', 'CAP_KILL']), ld(2, 'CAP_KILL'), ld(3, 'CAP_NET_RAW'), ld(4, 'CAP_CHOWN'), ld(5, 'CAP_NET_BIND_SERVICE')),
  msg(8, ld(1, 'RLIMIT_NOFILE'), vi(2, 1048576), vi(3, 1024)),
  // Soft 0 is a zero value: not on the wire
  msg(8, ld(1, 'RLIMIT_CORE'), vi(2, 18446744073709551615n)),
  vi(9, true),
  ld(10, 'cri-containerd.apparmor.d'),
  // int64 -998: ten-byte two's complement varint
  vi(11, -998n),
  ld(12, 'system_u:system_r:container_t:s0'),
);

const resourcesValues = {
  Devices: [
    { Allow: false, Type: '', Major: 0n, Minor: 0n, Access: 'rwm' },
    { Allow: true, Type: 'c', Major: 1n, Minor: 3n, Access: 'rwm' },
  ],
  Memory: {
    Limit: 268435456n,
    Reservation: 134217728n,
    Swap: -1n,
    Kernel: 0n,
    KernelTCP: 4096n,
    Swappiness: 60n,
    DisableOOMKiller: true,
  },
  CPU: { Shares: 512n, Quota: 50000n, Period: 100000n, RealtimeRuntime: 950n, RealtimePeriod: 1000n, Cpus: '0-1', Mems: '0' },
  Pids: { Limit: 4096n },
  BlockIO: {
    Weight: 500,
    LeafWeight: 300,
    WeightDevice: [{ Major: 8n, Minor: 0n, Weight: 600, LeafWeight: 0 }],
    ThrottleReadBpsDevice: [{ Major: 8n, Minor: 16n, Rate: 1048576n }],
    ThrottleWriteBpsDevice: [{ Major: 8n, Minor: 16n, Rate: 2097152n }],
    ThrottleReadIOPSDevice: [{ Major: 8n, Minor: 32n, Rate: 100n }],
    ThrottleWriteIOPSDevice: [{ Major: 8n, Minor: 32n, Rate: 200n }],
  },
  HugepageLimits: [{ Pagesize: '2MB', Limit: 2097152n }],
  Network: { ClassID: 0x100001, Priorities: [{ Name: 'eth0', Priority: 5 }] },
};

const resourcesBytes = cat(
  msg(1, ld(5, 'rwm')),
  msg(1, vi(1, true), ld(2, 'c'), vi(3, 1), vi(4, 3), ld(5, 'rwm')),
  msg(2, vi(1, 268435456), vi(2, 134217728), vi(3, -1n), vi(5, 4096), vi(6, 60), vi(7, true)),
  msg(3, vi(1, 512), vi(2, 50000), vi(3, 100000), vi(4, 950), vi(5, 1000), ld(6, '0-1'), ld(7, '0')),
  msg(4, vi(1, 4096)),
  msg(
    5,
    vi(1, 500),
    vi(2, 300),
    msg(3, vi(1, 8), vi(3, 600)),
    msg(4, vi(1, 8), vi(2, 16), vi(3, 1048576)),
    msg(5, vi(1, 8), vi(2, 16), vi(3, 2097152)),
    msg(6, vi(1, 8), vi(2, 32), vi(3, 100)),
    msg(7, vi(1, 8), vi(2, 32), vi(3, 200)),
  ),
  msg(6, ld(1, '2MB'), vi(2, 2097152)),
  msg(7, vi(1, 0x100001), msg(2, ld(1, 'eth0'), vi(2, 5))),
);

const specValues = {
  Version: '1.1.0',
  Process: processValues,
  Root: { Path: '/run/kata-containers/shared/containers/c1/rootfs', Readonly: true },
  Hostname: 'pod-a',
  Mounts: [
    { destination: '/proc', source: 'proc', type: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/data', source: '/run/kata-containers/shared/containers/c1-data', type: 'bind', options: ['rbind', 'ro'] },
  ],
  Hooks: {
    Prestart: [{ Path: '/bin/pre', Args: ['pre', '1'], Env: ['A=1'], Timeout: 5n }],
    Poststart: [{ Path: '/bin/post', Args: [], Env: [], Timeout: 0n }],
    Poststop: [{ Path: '/bin/stop', Args: [], Env: [], Timeout: 0n }],
    CreateRuntime: [{ Path: '/bin/cr', Args: [], Env: [], Timeout: 0n }],
    CreateContainer: [{ Path: '/bin/cc', Args: [], Env: [], Timeout: 0n }],
    StartContainer: [{ Path: '/bin/sc', Args: [], Env: [], Timeout: 0n }],
  },
  Annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'pod1' },
  Linux: {
    UIDMappings: [{ HostID: 100000, ContainerID: 0, Size: 65536 }],
    GIDMappings: [{ HostID: 100000, ContainerID: 0, Size: 65536 }],
    Sysctl: { 'net.ipv4.ip_forward': '1' },
    Resources: resourcesValues,
    CgroupsPath: '/kubepods/pod1/c1',
    Namespaces: [
      { Type: 'pid', Path: '' },
      { Type: 'network', Path: '/proc/1/ns/net' },
    ],
    Devices: [{ Path: '/dev/fuse', Type: 'c', Major: 10n, Minor: 229n, FileMode: 0o666, UID: 0, GID: 0 }],
    Seccomp: {
      DefaultAction: 'SCMP_ACT_ERRNO',
      Architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
      Flags: ['SECCOMP_FILTER_FLAG_LOG'],
      Syscalls: [
        { Names: ['read', 'write'], Action: 'SCMP_ACT_ALLOW', errnoret: undefined, Args: [] },
        {
          Names: ['personality'],
          Action: 'SCMP_ACT_ALLOW',
          errnoret: undefined,
          Args: [{ Index: 0n, Value: 0xffffffffn, ValueTwo: 0n, Op: 'SCMP_CMP_EQ' }],
        },
        { Names: ['clone3'], Action: 'SCMP_ACT_ERRNO', errnoret: 38, Args: [] },
        // errnoRet present with value 0: the oneof keeps it on the wire
        { Names: ['bpf'], Action: 'SCMP_ACT_ERRNO', errnoret: 0, Args: [] },
      ],
    },
    RootfsPropagation: 'rslave',
    MaskedPaths: ['/proc/kcore', '/proc/keys'],
    ReadonlyPaths: ['/proc/sys'],
    MountLabel: 'system_u:object_r:container_file_t:s0',
    IntelRdt: { L3CacheSchema: 'L3:0=ff' },
  },
};

const hook = (path: string, ...more: Buffer[]) => cat(ld(1, path), ...more);

const specBytes = cat(
  ld(1, '1.1.0'),
  ld(2, processBytes),
  msg(3, ld(1, '/run/kata-containers/shared/containers/c1/rootfs'), vi(2, true)),
  ld(4, 'pod-a'),
  msg(5, ld(1, '/proc'), ld(2, 'proc'), ld(3, 'proc'), strs(4, ['nosuid', 'noexec', 'nodev'])),
  msg(5, ld(1, '/data'), ld(2, '/run/kata-containers/shared/containers/c1-data'), ld(3, 'bind'), strs(4, ['rbind', 'ro'])),
  msg(
    6,
    ld(1, hook('/bin/pre', strs(2, ['pre', '1']), ld(3, 'A=1'), vi(4, 5))),
    ld(2, hook('/bin/post')),
    ld(3, hook('/bin/stop')),
    ld(4, hook('/bin/cr')),
    ld(5, hook('/bin/cc')),
    ld(6, hook('/bin/sc')),
  ),
  strMap(7, { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'pod1' }),
  msg(
    8,
    msg(1, vi(1, 100000), vi(3, 65536)),
    msg(2, vi(1, 100000), vi(3, 65536)),
    strMap(3, { 'net.ipv4.ip_forward': '1' }),
    ld(4, resourcesBytes),
    ld(5, '/kubepods/pod1/c1'),
    msg(6, ld(1, 'pid')),
    msg(6, ld(1, 'network'), ld(2, '/proc/1/ns/net')),
    msg(7, ld(1, '/dev/fuse'), ld(2, 'c'), vi(3, 10), vi(4, 229), vi(5, 0o666)),
    msg(
      8,
      ld(1, 'SCMP_ACT_ERRNO'),
      strs(2, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']),
      ld(3, 'SECCOMP_FILTER_FLAG_LOG'),
      msg(4, strs(1, ['read', 'write']), ld(2, 'SCMP_ACT_ALLOW')),
      msg(4, ld(1, 'personality'), ld(2, 'SCMP_ACT_ALLOW'), msg(4, vi(2, 0xffffffff), ld(4, 'SCMP_CMP_EQ'))),
      msg(4, ld(1, 'clone3'), ld(2, 'SCMP_ACT_ERRNO'), vi(3, 38)),
      msg(4, ld(1, 'bpf'), ld(2, 'SCMP_ACT_ERRNO'), vi(3, 0)),
    ),
    ld(9, 'rslave'),
    strs(10, ['/proc/kcore', '/proc/keys']),
    ld(11, '/proc/sys'),
    ld(12, 'system_u:object_r:container_file_t:s0'),
    msg(13, ld(1, 'L3:0=ff')),
  ),
);

describe('oci.proto (Kata): Spec field by field', () => {
  it('Process: fields 1..12 (Box console size, packed gids, negative int64 oom score)', () => {
    checkBothWays(Process, processValues, processBytes);
  });

  it('LinuxResources: fields 1..7 with every sub-message', () => {
    checkBothWays(LinuxResources, resourcesValues, resourcesBytes);
  });

  it('a full Spec: fields 1..8, hooks 1..6, Linux 1..13, seccomp errnoRet oneof', () => {
    const decoded = checkBothWays(Spec, specValues, specBytes);
    // presence of errnoRet survives: absent stays absent, 0 stays 0
    expect(decoded.Linux!.Seccomp!.Syscalls.map((s) => s.errnoret)).toEqual([undefined, undefined, 38, 0]);
  });

  it('decodes what a Go peer may send differently: unpacked repeated scalars, map entries with an empty value', () => {
    const user = cat(vi(1, 5), vi(3, 7), vi(3, 8)); // AdditionalGids unpacked
    expect(Process.decode(msg(3, user)).User).toEqual({ UID: 5, GID: 0, AdditionalGids: [7, 8], Username: '' });
    // Go writes a map entry's zero value too: {1: "k", 2: ""}
    const spec = Spec.decode(msg(7, ld(1, 'k'), ld(2, '')));
    expect(spec.Annotations).toEqual({ k: '' });
    // Windows/Solaris placeholders (9, 10) are accepted
    expect(Spec.decode(cat(msg(9, ld(1, 'x')), msg(10, ld(1, 'y')))).Windows).toEqual({ dummy: 'y' });
  });

  it('LinuxSyscall: an absent errnoRet is not on the wire', () => {
    const bytes = LinuxSyscall.encode(LinuxSyscall.fromPartial({ Names: ['x'], Action: 'SCMP_ACT_KILL' })).finish();
    expect(hex(bytes)).toBe(hex(cat(ld(1, 'x'), ld(2, 'SCMP_ACT_KILL'))));
  });
});

const storageValues = {
  driver: 'virtio-fs',
  driverOptions: ['a=b'],
  source: 'kataShared',
  fstype: 'virtiofs',
  options: ['nodev'],
  mountPoint: '/run/kata-containers/shared/containers/',
  fsGroup: { groupId: 2000, groupChangePolicy: 1 },
  shared: true,
};
const storageBytes = cat(
  ld(1, 'virtio-fs'),
  ld(2, 'a=b'),
  ld(3, 'kataShared'),
  ld(4, 'virtiofs'),
  ld(5, 'nodev'),
  ld(6, '/run/kata-containers/shared/containers/'),
  // FSGroup: group_id is field 2, policy field 3 (field 1 unused upstream)
  msg(7, vi(2, 2000), vi(3, 1)),
  vi(8, true),
);

describe('agent.proto (Kata): requests the runtime sends', () => {
  it('CreateContainerRequest: container_id=1 exec_id=2 string_user=3 devices=4 storages=5 OCI=6 sandbox_pidns=7 shared_mounts=8 ports=9..11', () => {
    checkBothWays(
      CreateContainerRequest,
      {
        containerId: 'c1',
        execId: 'c1',
        stringUser: { uid: '1000', gid: '1000', additionalGids: ['4', '27'] },
        devices: [{ id: '0000:00:05.0', type: 'blk', vmPath: '/dev/vda', containerPath: '/dev/xvda', options: ['ro'] }],
        storages: [storageValues],
        OCI: specValues,
        sandboxPidns: true,
        sharedMounts: [{ name: 'm', srcCtr: 'a', srcPath: '/x', dstCtr: 'b', dstPath: '/y' }],
        stdinPort: 1025,
        stdoutPort: 1026,
        stderrPort: 1027,
      },
      cat(
        ld(1, 'c1'),
        ld(2, 'c1'),
        msg(3, ld(1, '1000'), ld(2, '1000'), strs(3, ['4', '27'])),
        msg(4, ld(1, '0000:00:05.0'), ld(2, 'blk'), ld(3, '/dev/vda'), ld(4, '/dev/xvda'), ld(5, 'ro')),
        ld(5, storageBytes),
        ld(6, specBytes),
        vi(7, true),
        msg(8, ld(1, 'm'), ld(2, 'a'), ld(3, '/x'), ld(4, 'b'), ld(5, '/y')),
        vi(9, 1025),
        vi(10, 1026),
        vi(11, 1027),
      ),
    );
  });

  it('CreateContainerRequest as Kata\'s runtime sends it for a shared-fs rootfs (no devices, no passfd ports)', () => {
    const decoded = CreateContainerRequest.decode(
      cat(ld(1, 'abc'), ld(2, 'abc'), ld(6, cat(ld(1, '1.1.0'), msg(3, ld(1, '/run/kata-containers/shared/containers/abc/rootfs'))))),
    );
    expect(decoded.containerId).toBe('abc');
    expect(decoded.execId).toBe('abc');
    expect(decoded.stringUser).toBeUndefined();
    expect(decoded.devices).toEqual([]);
    expect(decoded.storages).toEqual([]);
    expect(decoded.OCI!.Root).toEqual({ Path: '/run/kata-containers/shared/containers/abc/rootfs', Readonly: false });
    expect(decoded.stdinPort).toBe(0);
  });

  it('CreateSandboxRequest: hostname=1 dns=2 storages=3 sandbox_pidns=4 sandbox_id=5 guest_hook_path=6 kernel_modules=7', () => {
    checkBothWays(
      CreateSandboxRequest,
      {
        hostname: 'pod-a',
        dns: ['nameserver 10.0.0.10', 'search default.svc'],
        storages: [storageValues],
        sandboxPidns: true,
        sandboxId: 'sb1',
        guestHookPath: '/usr/share/oci/hooks',
        kernelModules: [{ name: 'virtio_net', parameters: ['napi_tx=1'] }],
      },
      cat(
        ld(1, 'pod-a'),
        strs(2, ['nameserver 10.0.0.10', 'search default.svc']),
        ld(3, storageBytes),
        vi(4, true),
        ld(5, 'sb1'),
        ld(6, '/usr/share/oci/hooks'),
        msg(7, ld(1, 'virtio_net'), ld(2, 'napi_tx=1')),
      ),
    );
  });

  it('ExecProcessRequest: container_id=1 exec_id=2 string_user=3 process=4 ports=5..7', () => {
    checkBothWays(
      ExecProcessRequest,
      {
        containerId: 'c1',
        execId: 'e1',
        stringUser: { uid: '0', gid: '0', additionalGids: [] },
        process: processValues,
        stdinPort: 1,
        stdoutPort: 2,
        stderrPort: 3,
      },
      cat(ld(1, 'c1'), ld(2, 'e1'), msg(3, ld(1, '0'), ld(2, '0')), ld(4, processBytes), vi(5, 1), vi(6, 2), vi(7, 3)),
    );
  });

  it('small container/process requests', () => {
    checkBothWays(StartContainerRequest, { containerId: 'c1' }, ld(1, 'c1'));
    checkBothWays(RemoveContainerRequest, { containerId: 'c1', timeout: 10 }, cat(ld(1, 'c1'), vi(2, 10)));
    checkBothWays(SignalProcessRequest, { containerId: 'c1', execId: '', signal: 9 }, cat(ld(1, 'c1'), vi(3, 9)));
    checkBothWays(WaitProcessRequest, { containerId: 'c1', execId: 'e1' }, cat(ld(1, 'c1'), ld(2, 'e1')));
    checkBothWays(UpdateContainerRequest, { containerId: 'c1', resources: resourcesValues }, cat(ld(1, 'c1'), ld(2, resourcesBytes)));
    checkBothWays(StatsContainerRequest, { containerId: 'c1' }, ld(1, 'c1'));
    checkBothWays(PauseContainerRequest, { containerId: 'c1' }, ld(1, 'c1'));
    checkBothWays(ResumeContainerRequest, { containerId: 'c1' }, ld(1, 'c1'));
    checkBothWays(DestroySandboxRequest, {}, Buffer.alloc(0));
    checkBothWays(GetOOMEventRequest, {}, Buffer.alloc(0));
    checkBothWays(OnlineCPUMemRequest, { wait: true, nbCpus: 2, cpuOnly: true }, cat(vi(1, true), vi(2, 2), vi(3, true)));
    checkBothWays(GuestDetailsRequest, { memBlockSize: true, memHotplugProbe: true }, cat(vi(1, true), vi(2, true)));
    checkBothWays(SetGuestDateTimeRequest, { Sec: 1700000000n, Usec: 123456n }, cat(vi(1, 1700000000), vi(2, 123456)));
    checkBothWays(
      CopyFileRequest,
      { path: '/run/x', fileSize: 3n, fileMode: 0o644, dirMode: 0o755, uid: -1, gid: 5, offset: 0n, data: Buffer.from('abc') },
      // int32 -1 is a ten-byte varint (sign-extended), as Go writes it
      cat(ld(1, '/run/x'), vi(2, 3), vi(3, 0o644), vi(4, 0o755), vi(5, -1n), vi(6, 5), ld(8, 'abc')),
    );
  });

  it('stdio: WriteStream 1..3 / len=1, ReadStream len=3 / data=1, CloseStdin, TtyWinResize row=3 column=4', () => {
    checkBothWays(
      WriteStreamRequest,
      { containerId: 'c1', execId: 'e1', data: Buffer.from('in\n') },
      cat(ld(1, 'c1'), ld(2, 'e1'), ld(3, 'in\n')),
    );
    checkBothWays(WriteStreamResponse, { len: 3 }, vi(1, 3));
    checkBothWays(ReadStreamRequest, { containerId: 'c1', execId: 'e1', len: 32768 }, cat(ld(1, 'c1'), ld(2, 'e1'), vi(3, 32768)));
    checkBothWays(ReadStreamResponse, { data: Buffer.from([0, 1, 255]) }, ld(1, Buffer.from([0, 1, 255])));
    checkBothWays(CloseStdinRequest, { containerId: 'c1', execId: 'e1' }, cat(ld(1, 'c1'), ld(2, 'e1')));
    checkBothWays(TtyWinResizeRequest, { containerId: 'c1', execId: 'e1', row: 40, column: 120 }, cat(ld(1, 'c1'), ld(2, 'e1'), vi(3, 40), vi(4, 120)));
  });
});

describe('agent.proto (Kata): responses the agent sends', () => {
  it('WaitProcessResponse status=1 (int32)', () => {
    checkBothWays(WaitProcessResponse, { status: 137 }, vi(1, 137));
  });

  it('StatsContainerResponse: CgroupStats 1..5 (maps included) and NetworkStats 1..9', () => {
    const bytes = cat(
      msg(
        1,
        msg(1, msg(1, vi(1, 5000000), packed(2, [3000000, 2000000]), vi(3, 1000), vi(4, 4000)), msg(2, vi(1, 10), vi(2, 2), vi(3, 777))),
        msg(
          2,
          vi(1, 4096),
          msg(2, vi(1, 1 << 20), vi(2, 2 << 20), vi(3, 1), vi(4, 256 << 20)),
          msg(3, vi(1, 0), vi(4, 512 << 20)),
          msg(4, vi(1, 64)),
          vi(5, true),
          msg(6, ld(1, 'rss'), vi(2, 8192)),
          msg(6, ld(1, 'inactive_file'), vi(2, 0)), // Go writes the zero value of a map entry
        ),
        msg(3, vi(1, 3), vi(2, 4096)),
        msg(4, msg(1, vi(1, 8), vi(2, 0), ld(3, 'Read'), vi(4, 4096)), msg(8, vi(1, 8), ld(3, 'Total'), vi(4, 1))),
        msg(5, ld(1, '2MB'), msg(2, vi(1, 2097152), vi(2, 4194304), vi(3, 1))),
      ),
      msg(2, ld(1, 'eth0'), vi(2, 100), vi(3, 2), vi(4, 3), vi(5, 4), vi(6, 200), vi(7, 5), vi(8, 6), vi(9, 7)),
    );
    const stats = StatsContainerResponse.decode(bytes);
    const cg = stats.cgroupStats!;
    expect(cg.cpuStats!.cpuUsage).toEqual({ totalUsage: 5000000n, percpuUsage: [3000000n, 2000000n], usageInKernelmode: 1000n, usageInUsermode: 4000n });
    expect(cg.cpuStats!.throttlingData).toEqual({ periods: 10n, throttledPeriods: 2n, throttledTime: 777n });
    expect(cg.memoryStats!.cache).toBe(4096n);
    expect(cg.memoryStats!.usage).toEqual({ usage: 1n << 20n, maxUsage: 2n << 20n, failcnt: 1n, limit: 256n << 20n });
    expect(cg.memoryStats!.swapUsage!.limit).toBe(512n << 20n);
    expect(cg.memoryStats!.kernelUsage!.usage).toBe(64n);
    expect(cg.memoryStats!.useHierarchy).toBe(true);
    expect(cg.memoryStats!.stats).toEqual({ rss: 8192n, inactive_file: 0n });
    expect(cg.pidsStats).toEqual({ current: 3n, limit: 4096n });
    expect(cg.blkioStats!.ioServiceBytesRecursive).toEqual([{ major: 8n, minor: 0n, op: 'Read', value: 4096n }]);
    expect(cg.blkioStats!.sectorsRecursive).toEqual([{ major: 8n, minor: 0n, op: 'Total', value: 1n }]);
    expect(cg.hugetlbStats).toEqual({ '2MB': { usage: 2097152n, maxUsage: 4194304n, failcnt: 1n } });
    expect(stats.networkStats).toEqual([
      { name: 'eth0', rxBytes: 100n, rxPackets: 2n, rxErrors: 3n, rxDropped: 4n, txBytes: 200n, txPackets: 5n, txErrors: 6n, txDropped: 7n },
    ]);
  });

  it('GuestDetailsResponse: mem_block_size_bytes=1 agent_details=2 (1..6) support_mem_hotplug_probe=3', () => {
    checkBothWays(
      GuestDetailsResponse,
      {
        memBlockSizeBytes: 134217728n,
        agentDetails: {
          version: '3.2.0',
          initDaemon: true,
          deviceHandlers: ['blk'],
          storageHandlers: ['virtio-fs', 'local'],
          supportsSeccomp: true,
          extraFeatures: ['seccomp'],
        },
        supportMemHotplugProbe: true,
      },
      cat(
        vi(1, 134217728),
        msg(2, ld(1, '3.2.0'), vi(2, true), ld(3, 'blk'), strs(4, ['virtio-fs', 'local']), vi(5, true), ld(6, 'seccomp')),
        vi(3, true),
      ),
    );
  });

  it('OOMEvent container_id=1, Metrics metrics=1', () => {
    checkBothWays(OOMEvent, { containerId: 'c1' }, ld(1, 'c1'));
    checkBothWays(Metrics, { metrics: '# HELP x\n' }, ld(1, '# HELP x\n'));
  });
});

describe('types.proto (Kata): network', () => {
  const ifaceValues = {
    device: 'eth0',
    name: 'eth0',
    IPAddresses: [
      { family: IPFamily.v4, address: '10.88.0.5', mask: '16' },
      { family: IPFamily.v6, address: 'fd00::5', mask: '64' },
    ],
    mtu: 1500n,
    hwAddr: '02:42:0a:58:00:05',
    devicePath: '',
    type: 'veth',
    rawFlags: 4099,
  };
  const ifaceBytes = cat(
    ld(1, 'eth0'),
    ld(2, 'eth0'),
    // family v4 = 0: not on the wire
    msg(3, ld(2, '10.88.0.5'), ld(3, '16')),
    msg(3, vi(1, 1), ld(2, 'fd00::5'), ld(3, '64')),
    vi(4, 1500),
    ld(5, '02:42:0a:58:00:05'),
    ld(7, 'veth'),
    vi(8, 4099),
  );
  const routeValues = { dest: '0.0.0.0/0', gateway: '10.88.0.1', device: 'eth0', source: '10.88.0.5', scope: 0, family: IPFamily.v4, flags: 0, mtu: 0 };
  const routeBytes = cat(ld(1, '0.0.0.0/0'), ld(2, '10.88.0.1'), ld(3, 'eth0'), ld(4, '10.88.0.5'));
  const linkRoute = { dest: 'fd00::/64', gateway: '', device: 'eth0', source: '', scope: 253, family: IPFamily.v6, flags: 1, mtu: 1400 };
  const linkRouteBytes = cat(ld(1, 'fd00::/64'), ld(3, 'eth0'), vi(5, 253), vi(6, 1), vi(7, 1), vi(8, 1400));
  const neighValues = { toIPAddress: { family: IPFamily.v4, address: '10.88.0.1', mask: '' }, device: 'eth0', lladdr: 'aa:bb:cc:dd:ee:ff', state: 128, flags: -1 };
  const neighBytes = cat(msg(1, ld(2, '10.88.0.1')), ld(2, 'eth0'), ld(3, 'aa:bb:cc:dd:ee:ff'), vi(4, 128), vi(5, -1n));

  it('Interface 1..8 with IPAddress family/address/mask', () => {
    checkBothWays(Interface, ifaceValues, ifaceBytes);
  });

  it('Route 1..8, ARPNeighbor 1..5 (int32 flags)', () => {
    checkBothWays(Route, routeValues, routeBytes);
    checkBothWays(Route, linkRoute, linkRouteBytes);
    checkBothWays(ARPNeighbor, neighValues, neighBytes);
  });

  it('UpdateInterfaceRequest interface=1, UpdateRoutesRequest routes=1{Routes=1}, Interfaces=1, AddARPNeighborsRequest neighbors=1{ARPNeighbors=1}', () => {
    checkBothWays(UpdateInterfaceRequest, { interface: ifaceValues }, ld(1, ifaceBytes));
    checkBothWays(UpdateRoutesRequest, { routes: { Routes: [routeValues, linkRoute] } }, msg(1, ld(1, routeBytes), ld(1, linkRouteBytes)));
    checkBothWays(Routes, { Routes: [routeValues] }, ld(1, routeBytes));
    checkBothWays(Interfaces, { Interfaces: [ifaceValues] }, ld(1, ifaceBytes));
    checkBothWays(AddARPNeighborsRequest, { neighbors: { ARPNeighbors: [neighValues] } }, msg(1, ld(1, neighBytes)));
  });
});

describe('health.proto (Kata)', () => {
  it('CheckRequest service=1, HealthCheckResponse status=1, VersionCheckResponse 1..2', () => {
    checkBothWays(CheckRequest, { service: '' }, Buffer.alloc(0));
    checkBothWays(HealthCheckResponse, { status: HealthCheckResponse_ServingStatus.SERVING }, vi(1, 1));
    checkBothWays(VersionCheckResponse, { grpcVersion: '1.0', agentVersion: '3.2.0' }, cat(ld(1, '1.0'), ld(2, '3.2.0')));
  });
});

describe('service definitions: the ttrpc method paths Kata uses', () => {
  it('grpc.AgentService with Kata\'s method names and message types', () => {
    expect(AgentServiceDefinition.fullName).toBe('grpc.AgentService');
    const m = AgentServiceDefinition.methods;
    const names = Object.values(m).map((x) => x.name);
    for (const name of [
      'CreateContainer', 'StartContainer', 'RemoveContainer', 'ExecProcess', 'SignalProcess', 'WaitProcess',
      'UpdateContainer', 'StatsContainer', 'PauseContainer', 'ResumeContainer', 'WriteStdin', 'ReadStdout',
      'ReadStderr', 'CloseStdin', 'TtyWinResize', 'UpdateInterface', 'UpdateRoutes', 'ListInterfaces',
      'ListRoutes', 'AddARPNeighbors', 'GetMetrics', 'CreateSandbox', 'DestroySandbox', 'OnlineCPUMem',
      'GetGuestDetails', 'SetGuestDateTime', 'CopyFile', 'GetOOMEvent',
    ]) {
      expect(names).toContain(name);
    }
    expect(m.readStdout.requestType).toBe(ReadStreamRequest);
    expect(m.readStderr.responseType).toBe(ReadStreamResponse);
    expect(m.writeStdin.requestType).toBe(WriteStreamRequest);
    expect(m.updateInterface.responseType).toBe(Interface);
    expect(m.updateRoutes.responseType).toBe(Routes);
    expect(m.getOOMEvent.responseType).toBe(OOMEvent);
    expect(HealthDefinition.fullName).toBe('grpc.Health');
    expect(HealthDefinition.methods.check.name).toBe('Check');
  });
});
