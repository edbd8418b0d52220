/**
 * `tsshim check`: the requirements and the verdicts over fake probes (each test describes a
 * host), the text and JSON output, and check's own command line. The real host is checked by
 * test/e2e/host-check.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { defaultConfig, type ShimConfig } from '../../src/shim/config.js';
import {
  blockers,
  canRun,
  collectReport,
  exitStatusOf,
  formatJson,
  formatText,
  parseCheckArgs,
  type CheckReport,
  type CheckResult,
} from '../../src/shim/host-check.js';
import type { CommandResult, FileInfo, HostProbes } from '../../src/shim/host-check-probes.js';
import { errorLine, parseContainerdVersion, parseRuntimeVersion, specWrittenBy } from '../../src/shim/host-check-rules.js';

const HYBRID_MOUNTINFO = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct',
  '34 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '35 31 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices',
  '36 31 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer',
  '37 31 0:34 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
  '38 31 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '39 31 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const V2_MOUNTINFO = '31 23 0:28 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate';

const ok = (output = '', ms = 10): CommandResult => ({ ok: true, code: 0, output, timedOut: false, ms });
const failed = (output: string, code = 1): CommandResult => ({ ok: false, code, output, timedOut: false, ms: 10 });
const file = (size = 1000, executable = true): FileInfo => ({ kind: 'file', size, executable });
const char: FileInfo = { kind: 'char', size: 0, executable: false };

interface FakeHost {
  uid: number;
  files: Record<string, string>;
  stats: Record<string, FileInfo>;
  programs: Record<string, string>;
  /** by "<program path> <args>" */
  commands: Record<string, CommandResult>;
  runscBoots: Record<string, CommandResult>;
  cachedPlatform?: 'systrap' | 'ptrace';
  kvm: CommandResult;
  tcgMemfd: CommandResult;
  tcgPlain: CommandResult;
  podNetwork: CommandResult;
  nativeExecutor?: string;
  ffiError?: string;
}

/** this project's kind of machine: hybrid cgroups, no systemd, a KVM that boots nothing */
function goodHost(): FakeHost {
  return {
    uid: 0,
    files: {
      '/proc/1/comm': 'process_api\n',
      '/proc/self/mountinfo': HYBRID_MOUNTINFO,
      '/sys/fs/cgroup/unified/cgroup.controllers': '\n',
      '/proc/self/status': 'Name:\tnode\nCapEff:\t000001ffffffffff\nSeccomp:\t0\n',
      '/proc/sys/kernel/cap_last_cap': '40\n',
      '/proc/sys/kernel/osrelease': '6.1.0-test\n',
      '/proc/sys/kernel/seccomp/actions_avail': 'kill_process kill_thread trap errno user_notif trace log allow\n',
      '/proc/sys/user/max_user_namespaces': '1000\n',
    },
    stats: {
      '/proc/self/ns/user': { kind: 'other', size: 0, executable: false },
      '/repo/dist/native/tsshim-exec': file(),
      '/dev/kvm': char,
      '/dev/net/tun': char,
      '/repo/.cache/kata/guest/vmlinuz': file(8 << 20, false),
      '/repo/.cache/kata/guest/initrd.img': file(100 << 20, false),
      '/repo/.cache/kata/vhost-device-vsock/bin/vhost-device-vsock': file(),
      '/usr/lib/qemu/virtiofsd': file(),
    },
    programs: {
      runc: '/usr/sbin/runc',
      crun: '/usr/bin/crun',
      runsc: '/usr/bin/runsc',
      containerd: '/usr/bin/containerd',
      'qemu-system-x86_64': '/usr/bin/qemu-system-x86_64',
      ip: '/usr/sbin/ip',
      tc: '/usr/sbin/tc',
      nsenter: '/usr/bin/nsenter',
      unshare: '/usr/bin/unshare',
    },
    commands: {
      '/repo/dist/native/tsshim-exec self-check': ok('{"sealed":false,"writeError":""}\n'),
      '/repo/dist/native/tsshim-exec self-check --sealed': ok('{"sealed":true,"writeError":"Operation not permitted"}\n'),
      '/usr/sbin/runc --version': ok('runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev\ngo: go1.19.8\n'),
      '/usr/bin/crun --version': ok('crun version 1.8.1\ncommit: f8a0\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD\n'),
      '/usr/bin/containerd --version': ok('containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n'),
      '/usr/bin/runsc --version': ok('runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n'),
      '/usr/bin/qemu-system-x86_64 --version': ok('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\n'),
      '/repo/.cache/kata/vhost-device-vsock/bin/vhost-device-vsock --version': ok('vhost-device-vsock 0.3.0\n'),
      '/usr/lib/qemu/virtiofsd --version': ok('virtiofsd version 7.2.22\n'),
    },
    runscBoots: {
      'systrap none host': failed('W1207 19:49:27.969926   24103 util.go:64] FATAL ERROR: unknown platform: systrap\nunknown platform: systrap', 128),
      'ptrace none host': ok('', 250),
      'ptrace host host': ok(),
      'ptrace sandbox own': ok(),
      'ptrace sandbox host': failed('starting container: setting up network: cannot run with network enabled in root network namespace', 128),
    },
    kvm: { ok: false, code: undefined, signal: 'SIGABRT', output: 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nAssertion failed.\n', timedOut: false, ms: 50 },
    tcgMemfd: ok('', 180),
    tcgPlain: ok('', 170),
    podNetwork: ok(),
    nativeExecutor: '/repo/dist/native/tsshim-exec',
  };
}

function probesOf(h: FakeHost): HostProbes {
  return {
    uid: () => h.uid,
    readText: (p) => h.files[p],
    stat: (p) => h.stats[p],
    which: (p) => (p.includes('/') ? (h.stats[p]?.executable ? p : undefined) : h.programs[p]),
    run: async (f, args) => h.commands[[f, ...args].join(' ')] ?? { ok: false, code: undefined, output: '', timedOut: false, spawnError: 'ENOENT', ms: 0 },
    nativeExecutor: async () => h.nativeExecutor,
    ffiError: async () => h.ffiError,
    runscBoots: async (_r, platform, o) => h.runscBoots[`${platform} ${o.network} ${o.ownNetns ? 'own' : 'host'}`] ?? failed(`no such probe ${platform}`),
    runscCachedPlatform: async (_r, dir) => ({ platform: h.cachedPlatform, file: `${dir}/platform-probe.json` }),
    qemuBoots: async (_q, accel, o) => (accel === 'kvm' ? h.kvm : o.memfd ? h.tcgMemfd : h.tcgPlain),
    podNetworkProbe: async () => h.podNetwork,
    kataAssetDefaults: () => ({
      kernel: '/repo/.cache/kata/guest/vmlinuz',
      initrd: '/repo/.cache/kata/guest/initrd.img',
      vhostDeviceVsock: '/repo/.cache/kata/vhost-device-vsock/bin/vhost-device-vsock',
      virtiofsd: '/usr/lib/qemu/virtiofsd',
    }),
  };
}

async function check(h: FakeHost, edit: (c: ShimConfig) => void = () => undefined): Promise<CheckReport> {
  const config = defaultConfig();
  edit(config);
  return collectReport(config, config.backend, probesOf(h));
}

function find(report: CheckReport, backend: string, name: string): CheckResult {
  const r = report.results.find((x) => x.backend === backend && x.name === name);
  if (!r) throw new Error(`no result ${backend}/${name} in ${JSON.stringify(report.results.map((x) => `${x.backend}/${x.name}`))}`);
  return r;
}

describe('tsshim check over a fake host', () => {
  it('this kind of host: every backend can run; KVM that boots nothing is a WARN (software emulation), systrap a WARN, ptrace picked', async () => {
    const r = await check(goodHost());
    for (const b of ['native', 'runc', 'crun', 'gvisor', 'kata'] as const) expect(canRun(r.results, b), `${b}: ${JSON.stringify(blockers(r.results, b))}`).toBe(true);
    expect(exitStatusOf(r)).toBe(0);
    expect(find(r, 'kata', 'kvm')).toMatchObject({ status: 'warn' });
    expect(find(r, 'kata', 'kvm').detail).toMatch(/failed to set MSR.*software emulation only/);
    expect(find(r, 'kata', 'software emulation').status).toBe('ok');
    expect(find(r, 'gvisor', 'platform systrap')).toMatchObject({ status: 'warn', detail: 'does not boot: exit status 128: FATAL ERROR: unknown platform: systrap' });
    expect(find(r, 'gvisor', 'platform').detail).toMatch(/picks ptrace.*not cached yet/);
    expect(find(r, 'gvisor', 'network sandbox')).toMatchObject({ status: 'ok' });
    expect(find(r, 'gvisor', 'network sandbox').detail).toMatch(/refused in the host's \(runsc: cannot run with network enabled in root network namespace\)/);
    expect(find(r, 'common', 'cgroups').detail).toMatch(/^hybrid: v1 controllers cpu, cpuacct, memory, devices, freezer, pids; cgroup2 at \/sys\/fs\/cgroup\/unified with no controllers$/);
    expect(find(r, 'common', 'systemd')).toMatchObject({ status: 'warn' });
    expect(find(r, 'crun', 'hybrid cgroups').status).toBe('ok');
  });

  it('not root: a common FAIL, so no backend can run and the exit status is 1', async () => {
    const h = goodHost();
    h.uid = 1000;
    const r = await check(h);
    expect(find(r, 'common', 'root')).toMatchObject({ status: 'fail' });
    expect(canRun(r.results, 'runc')).toBe(false);
    expect(exitStatusOf(r)).toBe(1);
  });

  it('the exit status follows the default backend only', async () => {
    const h = goodHost();
    delete h.stats['/repo/.cache/kata/guest/vmlinuz'];
    const native = await check(h);
    expect(canRun(native.results, 'kata')).toBe(false);
    expect(exitStatusOf(native)).toBe(0);
    const kata = await check(h, (c) => (c.backend = 'kata'));
    expect(exitStatusOf(kata)).toBe(1);
    expect(find(kata, 'kata', 'guest kernel')).toMatchObject({ status: 'fail' });
    expect(find(kata, 'kata', 'guest kernel').detail).toMatch(/does not exist: build the guest with scripts\/build-kata-guest.sh, or set kata.kernel/);
  });

  it('kata: kata.accel = "kvm" where KVM boots nothing is a FAIL; a working KVM is OK', async () => {
    const h = goodHost();
    const forced = await check(h, (c) => (c.kata.accel = 'kvm'));
    expect(find(forced, 'kata', 'kvm').status).toBe('fail');
    h.kvm = ok('', 30);
    const good = await check(h, (c) => (c.kata.accel = 'kvm'));
    expect(find(good, 'kata', 'kvm')).toMatchObject({ status: 'ok' });
    expect(find(good, 'kata', 'kvm').detail).toMatch(/boots a guest with KVM/);
  });

  it('kata: no /dev/kvm and no working TCG: FAIL; a memfd problem is told apart', async () => {
    const h = goodHost();
    delete h.stats['/dev/kvm'];
    h.tcgMemfd = failed('qemu-system-x86_64: cannot create memfd: Function not implemented');
    const memfd = await check(h);
    expect(find(memfd, 'kata', 'kvm').detail).toMatch(/^no \/dev\/kvm: software emulation only/);
    expect(find(memfd, 'kata', 'software emulation').status).toBe('ok');
    expect(find(memfd, 'kata', 'memfd memory')).toMatchObject({ status: 'fail' });
    expect(find(memfd, 'kata', 'memfd memory').detail).toMatch(/cannot create memfd/);
    h.tcgPlain = failed('qemu-system-x86_64: something else');
    const none = await check(h);
    expect(find(none, 'kata', 'software emulation').status).toBe('fail');
    expect(find(none, 'kata', 'memfd memory').detail).toBe('not tried: QEMU boots no guest here');
  });

  it('kata: a hypervisor tsshim does not implement, a missing QEMU, a guest image: FAIL', async () => {
    const ch = await check(goodHost(), (c) => (c.kata.hypervisor = 'cloud-hypervisor'));
    expect(find(ch, 'kata', 'hypervisor')).toMatchObject({ status: 'fail', detail: 'cloud-hypervisor is not implemented by tsshim (kata.hypervisor = "qemu" is)' });
    const h = goodHost();
    delete h.programs['qemu-system-x86_64'];
    expect(find(await check(h), 'kata', 'hypervisor').detail).toMatch(/qemu-system-x86_64 not found/);
    const img = await check(goodHost(), (c) => (c.kata.image = '/img/kata.img'));
    expect(find(img, 'kata', 'guest image').status).toBe('fail');
  });

  it('kata: pod networking problems are WARNs (containers without a netns still run)', async () => {
    const h = goodHost();
    delete h.stats['/dev/net/tun'];
    h.podNetwork = failed('Error: Specified qdisc kind is unknown.', 2);
    const r = await check(h, (c) => (c.backend = 'kata'));
    expect(find(r, 'kata', '/dev/net/tun').status).toBe('warn');
    expect(find(r, 'kata', 'pod networking')).toMatchObject({ status: 'warn' });
    expect(find(r, 'kata', 'pod networking').detail).toMatch(/qdisc kind is unknown/);
    expect(exitStatusOf(r)).toBe(0);
    delete h.programs.tc;
    expect(find(await check(h), 'kata', 'pod networking').detail).toMatch(/^tc not found on PATH/);
  });

  it('crun: containerd 1.7/2.x write a spec crun 1.8.1 refuses; 1.6 is fine', async () => {
    const h = goodHost();
    h.commands['/usr/bin/containerd --version'] = ok('containerd github.com/containerd/containerd/v2 v2.1.9 1.fake\n');
    const r = await check(h);
    expect(find(r, 'crun', 'OCI spec')).toMatchObject({ status: 'fail' });
    expect(find(r, 'crun', 'OCI spec').detail).toMatch(/containerd v2\.1\.9 writes OCI spec 1\.2 configs, which crun 1\.8\.1 \(spec 1\.0\.0\) refuses/);
    expect(canRun(r.results, 'crun')).toBe(false);
    expect(canRun(r.results, 'runc')).toBe(true);
    delete h.programs.containerd;
    expect(find(await check(h), 'crun', 'OCI spec').status).toBe('warn');
  });

  it('crun: controllers on the hybrid host\'s cgroup2 are a FAIL', async () => {
    const h = goodHost();
    h.files['/sys/fs/cgroup/unified/cgroup.controllers'] = 'hugetlb\n';
    const r = await check(h);
    expect(find(r, 'crun', 'hybrid cgroups').status).toBe('fail');
    expect(find(r, 'crun', 'hybrid cgroups').detail).toMatch(/cgroup2 holds controllers \(hugetlb\).*drop all controllers from cgroupv2/);
    expect(canRun(r.results, 'runc')).toBe(true);
  });

  it('cgroup v2 host: controllers listed, missing essentials WARN; no cgroups at all FAIL', async () => {
    const h = goodHost();
    h.files['/proc/self/mountinfo'] = V2_MOUNTINFO;
    h.files['/sys/fs/cgroup/cgroup.controllers'] = 'cpuset cpu io memory\n';
    const r = await check(h);
    expect(find(r, 'common', 'cgroups')).toMatchObject({ status: 'warn' });
    expect(find(r, 'common', 'cgroups').detail).toMatch(/^v2 \(unified\) at \/sys\/fs\/cgroup, controllers: cpuset, cpu, io, memory; missing pids/);
    expect(r.results.some((x) => x.name === 'hybrid cgroups')).toBe(false);
    h.files['/proc/self/mountinfo'] = '';
    expect(find(await check(h), 'common', 'cgroups').status).toBe('fail');
  });

  it('the systemd cgroup driver asked for without systemd as PID 1 FAILs that backend only', async () => {
    const r = await check(goodHost(), (c) => (c.native.systemdCgroup = true));
    expect(find(r, 'native', 'cgroup driver')).toMatchObject({ status: 'fail' });
    expect(canRun(r.results, 'native')).toBe(false);
    expect(canRun(r.results, 'runc')).toBe(true);
    const h = goodHost();
    h.files['/proc/1/comm'] = 'systemd\n';
    h.stats['/run/dbus/system_bus_socket'] = { kind: 'other', size: 0, executable: false };
    const sd = await check(h, (c) => (c.native.systemdCgroup = true));
    expect(find(sd, 'native', 'cgroup driver').status).toBe('ok');
    expect(find(sd, 'common', 'systemd').status).toBe('ok');
  });

  it('native: executor not built, not running, no sealed copy, no ffi-rs', async () => {
    const h = goodHost();
    h.nativeExecutor = undefined;
    expect(find(await check(h), 'native', 'executor').detail).toMatch(/is not built/);
    const h2 = goodHost();
    h2.commands['/repo/dist/native/tsshim-exec self-check'] = failed('cannot execute binary file: Exec format error', 126);
    const r2 = await check(h2);
    expect(find(r2, 'native', 'executor')).toMatchObject({ status: 'fail' });
    expect(r2.results.some((x) => x.name === 'sealed copy')).toBe(false);
    const h3 = goodHost();
    h3.commands['/repo/dist/native/tsshim-exec self-check --sealed'] = ok('{"sealed":false,"writeError":""}\n');
    h3.ffiError = 'Cannot find module ffi-rs';
    const r3 = await check(h3);
    expect(find(r3, 'native', 'sealed copy').status).toBe('fail');
    expect(find(r3, 'native', 'ffi-rs')).toMatchObject({ status: 'fail' });
    expect(exitStatusOf(r3)).toBe(1);
  });

  it('gvisor: no platform boots, a configured platform, kvm not probed, the cache named, runsc missing', async () => {
    const h = goodHost();
    h.runscBoots['ptrace none host'] = failed('FATAL ERROR: ptrace: operation not permitted');
    const none = await check(h);
    expect(find(none, 'gvisor', 'platform')).toMatchObject({ status: 'fail' });
    expect(none.results.some((x) => x.name.startsWith('network'))).toBe(false);

    const h2 = goodHost();
    h2.cachedPlatform = 'ptrace';
    expect(find(await check(h2), 'gvisor', 'platform').detail).toMatch(/cached as ptrace in \/run\/containerd\/runsc\/platform-probe.json/);
    const systrap = await check(h2, (c) => (c.gvisor.platform = 'systrap'));
    expect(find(systrap, 'gvisor', 'platform')).toMatchObject({ status: 'fail', detail: 'systrap (configured) does not boot here' });
    const viaRunscConfig = await check(h2, (c) => (c.gvisor.runscConfig = { platform: 'ptrace' }));
    expect(find(viaRunscConfig, 'gvisor', 'platform')).toMatchObject({ status: 'ok', detail: 'ptrace (configured) boots here' });
    const kvm = await check(h2, (c) => (c.gvisor.platform = 'kvm'));
    expect(find(kvm, 'gvisor', 'platform')).toMatchObject({ status: 'warn' });

    const sandbox = await check(h2, (c) => (c.gvisor.network = 'sandbox'));
    expect(find(sandbox, 'gvisor', 'network sandbox')).toMatchObject({ status: 'warn' });
    expect(find(sandbox, 'gvisor', 'network sandbox').detail).toMatch(/containers without a network namespace \(ctr\) fail/);

    delete h2.programs.runsc;
    const missing = await check(h2);
    expect(find(missing, 'gvisor', 'binary')).toMatchObject({ status: 'fail', detail: 'runsc not found on PATH (install runsc, or set [gvisor] binary)' });
  });

  it('runc: missing binary, or one that does not answer --version', async () => {
    const h = goodHost();
    delete h.programs.runc;
    expect(find(await check(h), 'runc', 'binary').status).toBe('fail');
    const h2 = goodHost();
    h2.commands['/usr/sbin/runc --version'] = { ok: false, code: undefined, output: '', timedOut: true, ms: 5000 };
    expect(find(await check(h2), 'runc', 'binary').detail).toMatch(/no answer within the deadline/);
  });
});

describe('tsshim check output', () => {
  const report: CheckReport = {
    config: '/etc/tsshim/config.toml',
    defaultBackend: 'kata',
    results: [
      { backend: 'common', name: 'root', status: 'ok', detail: 'running as root' },
      { backend: 'native', name: 'executor', status: 'ok', detail: 'runs here' },
      { backend: 'runc', name: 'binary', status: 'fail', detail: 'runc not found on PATH' },
      { backend: 'gvisor', name: 'platform systrap', status: 'warn', detail: 'does not boot' },
      { backend: 'kata', name: 'kvm', status: 'warn', detail: 'software emulation only' },
      { backend: 'kata', name: 'guest kernel', status: 'fail', detail: '/x does not exist' },
    ],
  };

  it('text: one section per backend with its verdict, aligned OK/WARN/FAIL rows, the default backend last', () => {
    const text = formatText(report);
    expect(text).toBe(
      [
        'tsshim check (config: /etc/tsshim/config.toml; default backend: kata)',
        '',
        'common (every backend)',
        '  OK    root              running as root',
        '',
        'native: can run here',
        '  OK    executor          runs here',
        '',
        'runc: cannot run here (binary)',
        '  FAIL  binary            runc not found on PATH',
        '',
        'crun: can run here',
        '',
        'gvisor: can run here, with a warning',
        '  WARN  platform systrap  does not boot',
        '',
        'kata: cannot run here (guest kernel)',
        '  WARN  kvm               software emulation only',
        '  FAIL  guest kernel      /x does not exist',
        '',
        'default backend kata: cannot run here',
        '',
      ].join('\n'),
    );
    expect(exitStatusOf(report)).toBe(1);
    expect(exitStatusOf({ ...report, defaultBackend: 'native' })).toBe(0);
  });

  it('a common FAIL is named in every backend\'s verdict', () => {
    const text = formatText({ ...report, results: [{ backend: 'common', name: 'seccomp', status: 'fail', detail: 'none' }] });
    expect(text).toMatch(/^native: cannot run here \(common: seccomp\)$/m);
  });

  it('JSON: every result and a verdict per backend', () => {
    const j = JSON.parse(formatJson(report));
    expect(j).toMatchObject({ config: '/etc/tsshim/config.toml', defaultBackend: 'kata', exitStatus: 1 });
    expect(j.backends.kata).toEqual({ canRun: false, blockers: ['guest kernel'] });
    expect(j.backends.native).toEqual({ canRun: true, blockers: [] });
    expect(j.results).toEqual(report.results);
  });

  it('check\'s arguments', () => {
    expect(parseCheckArgs([])).toEqual({ json: false });
    expect(parseCheckArgs(['--config', '/a.toml', '--json'])).toEqual({ json: true, configPath: '/a.toml' });
    expect(parseCheckArgs(['-config=/b.toml'])).toEqual({ json: false, configPath: '/b.toml' });
    expect(parseCheckArgs(['--config'])).toEqual({ error: '--config needs a file' });
    expect(parseCheckArgs(['--bogus'])).toEqual({ error: 'unknown argument "--bogus"' });
    expect(parseCheckArgs(['--help'])).toEqual({ help: true });
  });

  it('version parsing', () => {
    expect(parseRuntimeVersion('crun version 1.8.1\ncommit: x\nspec: 1.0.0\n')).toEqual({ version: '1.8.1', spec: '1.0.0' });
    expect(parseContainerdVersion('containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-1')).toMatchObject({ major: 1, minor: 7 });
    expect(parseContainerdVersion('containerd github.com/containerd/containerd/v2 v2.1.9 abc')).toMatchObject({ major: 2, minor: 1, text: 'v2.1.9' });
    expect(specWrittenBy({ major: 1, minor: 6 })).toEqual([1, 0]);
    expect(specWrittenBy({ major: 2, minor: 1 })).toEqual([1, 2]);
    expect(errorLine('W1207 19:49:27.969926   24103 util.go:64] FATAL ERROR: bad\nbad')).toBe('FATAL ERROR: bad');
  });
});
