/**
 * The requirements `tsshim check` checks (host-check.ts), backend by backend, over the probes
 * of host-check-probes.ts (a fake in unit tests). Each function returns its section's results;
 * what is WARN and what is FAIL follows one rule: FAIL when the backend cannot run a container
 * here as configured, WARN when it can but something users may need does not work (pods, a
 * driver, speed).
 */
import { parseCgroupLayout } from '../sys/cgroups.js';
import type { GvisorPlatform, ShimConfig } from './config.js';
import type { CheckResult, CheckSection, CheckStatus } from './host-check.js';
import type { CommandResult, HostProbes } from './host-check-probes.js';

const VERSION_TIMEOUT_MS = 5_000;

class Section {
  readonly results: CheckResult[] = [];
  constructor(private readonly backend: CheckSection) {}
  add(name: string, status: CheckStatus, detail: string): void {
    this.results.push({ backend: this.backend, name, status, detail });
  }
}

/** the last lines of a command's output, on one line, for a detail */
export function lastLines(text: string, n = 2): string {
  const lines = text.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.slice(-n).join(' / ') || 'no output';
}

/** the line that says what went wrong: the first naming an error, else the last one */
export function errorLine(text: string): string {
  const lines = text.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  // runsc's log prefix (W1207 19:49:27.969926 24103 util.go:64]) says nothing to an operator
  const clean = (l: string) => l.replace(/^[A-Z]\d{4} [\d:.]+\s+\d+ \S+:\d+\]\s*/, '');
  const hit = lines.find((l) => /error|fatal|failed|cannot/i.test(l));
  return clean(hit ?? lines[lines.length - 1] ?? 'no output');
}

/** why a command failed, in a few words */
export function whyFailed(r: CommandResult): string {
  if (r.spawnError) return `cannot run it (${r.spawnError})`;
  if (r.timedOut) return `no answer within the deadline (${r.ms} ms), killed`;
  return `${r.signal ? `killed by ${r.signal}` : r.code !== undefined ? `exit status ${r.code}` : 'failed'}: ${errorLine(r.output)}`;
}

const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

/* ---- common -------------------------------------------------------------------------- */

const CAP_SYS_ADMIN = 21;
const CAP_SYS_RESOURCE = 24;

/** controllers a container's resources need (cgroup v1 names) */
const ESSENTIAL_V1 = ['cpu', 'cpuacct', 'memory', 'pids', 'devices', 'freezer'];
const ESSENTIAL_V2 = ['cpu', 'memory', 'pids'];

export interface HostFacts {
  systemdInit: boolean;
  pid1: string;
  cgroupMode: 'v1' | 'v2' | 'hybrid' | 'none';
  /** controllers enabled on the cgroup2 root (hybrid: what crun objects to) */
  unifiedControllers: string[];
}

/** facts several sections need; cheap file reads */
export function hostFacts(p: HostProbes): HostFacts {
  const pid1 = (p.readText('/proc/1/comm') ?? '').trim() || 'unknown';
  const mountinfo = p.readText('/proc/self/mountinfo') ?? '';
  const layout = parseCgroupLayout(mountinfo);
  const none = layout.v1.length === 0 && !layout.unified;
  const unifiedControllers = layout.unified ? (p.readText(`${layout.unified.mountPoint}/cgroup.controllers`) ?? '').trim().split(/\s+/).filter(Boolean) : [];
  return { systemdInit: pid1 === 'systemd', pid1, cgroupMode: none ? 'none' : layout.mode, unifiedControllers };
}

export async function commonChecks(_config: ShimConfig, p: HostProbes): Promise<CheckResult[]> {
  const s = new Section('common');
  const uid = p.uid();
  s.add('root', uid === 0 ? 'ok' : 'fail', uid === 0 ? 'running as root' : `running as uid ${uid}: containerd runs the shim as root; run check as root`);

  const status = p.readText('/proc/self/status') ?? '';
  const capEff = /^CapEff:\s*([0-9a-fA-F]+)/m.exec(status)?.[1];
  if (capEff === undefined) {
    s.add('capabilities', 'warn', 'cannot read CapEff from /proc/self/status');
  } else {
    const caps = BigInt(`0x${capEff}`);
    const has = (n: number) => (caps & (1n << BigInt(n))) !== 0n;
    const last = (p.readText('/proc/sys/kernel/cap_last_cap') ?? '').trim();
    if (!has(CAP_SYS_ADMIN)) s.add('capabilities', 'fail', `no CAP_SYS_ADMIN (CapEff ${capEff}): containers cannot be set up`);
    else if (!has(CAP_SYS_RESOURCE))
      s.add('capabilities', 'warn', 'no CAP_SYS_RESOURCE: a negative oom_score_adj cannot be set (CRI gives pod sandboxes -998: set restrict_oom_score_adj = true in containerd\'s CRI config)');
    else s.add('capabilities', 'ok', `CapEff ${capEff}${last ? ` (kernel knows capabilities 0..${last})` : ''}`);
  }

  const release = (p.readText('/proc/sys/kernel/osrelease') ?? '').trim();
  s.add('kernel', release ? 'ok' : 'warn', release ? `Linux ${release}` : 'cannot read /proc/sys/kernel/osrelease');

  const mountinfo = p.readText('/proc/self/mountinfo') ?? '';
  const layout = parseCgroupLayout(mountinfo);
  const facts = hostFacts(p);
  if (facts.cgroupMode === 'none') {
    s.add('cgroups', 'fail', 'no cgroup hierarchy is mounted (/proc/self/mountinfo): container resources cannot be set');
  } else {
    const v1 = layout.v1.flatMap((m) => m.controllers).filter((c) => !c.startsWith('name='));
    const v2 = facts.unifiedControllers;
    let detail: string;
    let missing: string[];
    if (facts.cgroupMode === 'v2') {
      detail = `v2 (unified) at ${layout.unified!.mountPoint}, controllers: ${v2.join(', ') || 'none'}`;
      missing = ESSENTIAL_V2.filter((c) => !v2.includes(c));
    } else {
      detail =
        facts.cgroupMode === 'hybrid'
          ? `hybrid: v1 controllers ${v1.join(', ')}; cgroup2 at ${layout.unified!.mountPoint} with ${v2.length ? `controllers ${v2.join(', ')}` : 'no controllers'}`
          : `v1: controllers ${v1.join(', ')}`;
      missing = ESSENTIAL_V1.filter((c) => !v1.includes(c) && !v2.includes(c));
    }
    if (missing.length > 0) s.add('cgroups', 'warn', `${detail}; missing ${missing.join(', ')}: limits on those resources fail`);
    else s.add('cgroups', 'ok', detail);
  }

  if (facts.systemdInit) {
    const bus = p.stat('/run/dbus/system_bus_socket');
    if (bus) s.add('systemd', 'ok', 'systemd is PID 1 and the system bus socket is there: the systemd cgroup driver (SystemdCgroup = true) is usable');
    else s.add('systemd', 'warn', 'systemd is PID 1 but /run/dbus/system_bus_socket is missing: the systemd cgroup driver cannot reach systemd');
  } else {
    s.add('systemd', 'warn', `PID 1 is ${facts.pid1}, not systemd: only the cgroupfs driver works (SystemdCgroup = true fails with FailedPrecondition, as with runc)`);
  }

  const actions = (p.readText('/proc/sys/kernel/seccomp/actions_avail') ?? '').trim();
  if (/^Seccomp:/m.test(status) && actions) s.add('seccomp', 'ok', `seccomp filters available (actions: ${actions})`);
  else s.add('seccomp', 'fail', 'the kernel has no seccomp filters: containers with a seccomp profile (containerd\'s default) cannot start');

  const maxUserNs = Number((p.readText('/proc/sys/user/max_user_namespaces') ?? '').trim());
  if (p.stat('/proc/self/ns/user') && maxUserNs > 0) s.add('user namespaces', 'ok', `available (user.max_user_namespaces = ${maxUserNs})`);
  else s.add('user namespaces', 'warn', 'not available (no /proc/self/ns/user, or user.max_user_namespaces = 0): containers that ask for a user namespace fail');
  return s.results;
}

/** systemd_cgroup / SystemdCgroup asked for where systemd is not PID 1 */
function cgroupDriverCheck(s: Section, systemd: boolean, facts: HostFacts, key: string): void {
  if (!systemd) s.add('cgroup driver', 'ok', `cgroupfs (${key} = false)`);
  else if (facts.systemdInit) s.add('cgroup driver', 'ok', `systemd (${key} = true), systemd is PID 1`);
  else s.add('cgroup driver', 'fail', `${key} = true, but PID 1 is ${facts.pid1}, not systemd: every create fails`);
}

/* ---- native -------------------------------------------------------------------------- */

export async function nativeChecks(config: ShimConfig, p: HostProbes): Promise<CheckResult[]> {
  const s = new Section('native');
  const exe = await p.nativeExecutor();
  const info = exe ? p.stat(exe) : undefined;
  if (!exe || !info) {
    s.add('executor', 'fail', 'dist/native/tsshim-exec is not built (npm run build, or node scripts/build-native.mjs; or set TSSHIM_NATIVE_HELPER)');
  } else if (!info.executable) {
    s.add('executor', 'fail', `${exe} is not an executable file`);
  } else {
    const plain = await p.run(exe, ['self-check'], { timeoutMs: VERSION_TIMEOUT_MS });
    if (plain.ok && /"sealed":false/.test(plain.output)) s.add('executor', 'ok', `${exe} runs here`);
    else s.add('executor', 'fail', `${exe} does not run here: ${whyFailed(plain)}`);
    if (plain.ok) {
      // every exec (and a create without a new pid namespace) re-executes from a sealed memfd copy
      const sealed = await p.run(exe, ['self-check', '--sealed'], { timeoutMs: VERSION_TIMEOUT_MS });
      if (sealed.ok && /"sealed":true/.test(sealed.output)) s.add('sealed copy', 'ok', 'the executor re-executes from a sealed memfd copy (memfd_create and seals work)');
      else s.add('sealed copy', 'fail', `the executor cannot re-execute from a sealed memfd copy: ${whyFailed(sealed)}`);
    }
  }
  const ffiError = await p.ffiError();
  s.add('ffi-rs', ffiError ? 'fail' : 'ok', ffiError ? `the ffi-rs addon does not load or call libc: ${ffiError}` : 'the ffi-rs native addon loads and calls libc');
  cgroupDriverCheck(s, config.native.systemdCgroup, hostFacts(p), '[native] systemd_cgroup');
  return s.results;
}

/* ---- runc, crun ---------------------------------------------------------------------- */

export interface RuntimeVersion {
  version: string;
  spec: string | undefined;
}

/** `runc --version` / `crun --version` / `runsc --version` */
export function parseRuntimeVersion(output: string): RuntimeVersion | undefined {
  const version = /version\s+(\S+)/.exec(output)?.[1];
  if (!version) return undefined;
  return { version, spec: /^spec:\s*(\S+)/m.exec(output)?.[1] };
}

/** `containerd --version`: "containerd github.com/containerd/containerd 1.6.20~ds1 …" or "… /v2 v2.1.9 …" */
export function parseContainerdVersion(output: string): { major: number; minor: number; text: string } | undefined {
  const m = /\sv?(\d+)\.(\d+)\.(\d+)\S*/.exec(output);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), text: m[0].trim() };
}

/** the OCI runtime-spec version (major.minor) a containerd line writes into config.json */
export function specWrittenBy(containerd: { major: number; minor: number }): [number, number] {
  if (containerd.major >= 2) return [1, 2];
  if (containerd.minor >= 7) return [1, 1];
  return [1, 0];
}

function majorMinor(spec: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(spec);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

export async function runcLikeChecks(name: 'runc' | 'crun', config: ShimConfig, p: HostProbes): Promise<CheckResult[]> {
  const s = new Section(name);
  const table = config[name];
  const path = p.which(table.binary);
  let version: RuntimeVersion | undefined;
  if (!path) {
    s.add('binary', 'fail', `${table.binary} not found${table.binary.includes('/') ? '' : ' on PATH'} (install ${name}, or set [${name}] binary)`);
  } else {
    const r = await p.run(path, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS });
    version = r.ok ? parseRuntimeVersion(r.output) : undefined;
    if (!version) s.add('binary', 'fail', `${path} --version: ${r.ok ? `unexpected output: ${lastLines(r.output, 1)}` : whyFailed(r)}`);
    else s.add('binary', 'ok', `${name} ${version.version}${version.spec ? ` (OCI spec ${version.spec})` : ''} at ${path}`);
  }
  const facts = hostFacts(p);
  cgroupDriverCheck(s, table.systemdCgroup, facts, `[${name}] systemd_cgroup`);
  if (name !== 'crun') return s.results;

  // crun 1.8.1 (Debian 12) implements runtime-spec 1.0 and refuses the 1.1/1.2 specs containerd 1.7/2.x write
  const crunSpec = version?.spec ? majorMinor(version.spec) : undefined;
  if (version && crunSpec) {
    const ctrdPath = p.which('containerd');
    const ctrdRun = ctrdPath ? await p.run(ctrdPath, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS }) : undefined;
    const ctrd = ctrdRun?.ok ? parseContainerdVersion(ctrdRun.output) : undefined;
    if (!ctrd) {
      s.add('OCI spec', 'warn', `crun ${version.version} implements OCI spec ${version.spec}; no containerd found on PATH to compare: containerd 1.7 writes spec 1.1, 2.x spec 1.2`);
    } else {
      const written = specWrittenBy(ctrd);
      const tooOld = crunSpec[0] < written[0] || (crunSpec[0] === written[0] && crunSpec[1] < written[1]);
      if (tooOld)
        s.add('OCI spec', 'fail', `containerd ${ctrd.text} writes OCI spec ${written.join('.')} configs, which crun ${version.version} (spec ${version.spec}) refuses: use containerd 1.6 or a newer crun`);
      else s.add('OCI spec', 'ok', `containerd ${ctrd.text} writes OCI spec ${written.join('.')}, crun ${version.version} implements ${version.spec}`);
    }
  }
  if (facts.cgroupMode === 'hybrid') {
    if (facts.unifiedControllers.length > 0)
      s.add('hybrid cgroups', 'fail', `cgroup2 holds controllers (${facts.unifiedControllers.join(', ')}) on this hybrid host: crun refuses that layout ("drop all controllers from cgroupv2"); mount a v1 hierarchy for them`);
    else s.add('hybrid cgroups', 'ok', 'hybrid host with no controller on cgroup2: crun accepts it');
  }
  return s.results;
}

/* ---- gvisor -------------------------------------------------------------------------- */

/** platforms the backend probes, best first (src/backends/gvisor/runsc-facts.ts) */
const GVISOR_PROBED: readonly GvisorPlatform[] = ['systrap', 'ptrace'];

export async function gvisorChecks(config: ShimConfig, p: HostProbes): Promise<CheckResult[]> {
  const s = new Section('gvisor');
  const g = config.gvisor;
  const path = p.which(g.binary);
  if (!path) {
    s.add('binary', 'fail', `${g.binary} not found${g.binary.includes('/') ? '' : ' on PATH'} (install runsc, or set [gvisor] binary)`);
    return s.results;
  }
  const v = await p.run(path, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS });
  const version = v.ok ? parseRuntimeVersion(v.output) : undefined;
  if (!version) {
    s.add('binary', 'fail', `${path} --version: ${v.ok ? `unexpected output: ${lastLines(v.output, 1)}` : whyFailed(v)}`);
    return s.results;
  }
  s.add('binary', 'ok', `runsc ${version.version} at ${path}`);

  // [runsc_config] wins over [gvisor], as in the backend
  const configured = (g.runscConfig.platform ?? g.platform) as GvisorPlatform | undefined;
  const network = (g.runscConfig.network ?? g.network) as 'none' | 'host' | 'sandbox' | undefined;
  const toProbe = configured && configured !== 'kvm' && !GVISOR_PROBED.includes(configured) ? [...GVISOR_PROBED, configured] : GVISOR_PROBED;
  const boots = await Promise.all(toProbe.map((pl) => p.runscBoots(path, pl, { network: 'none', ownNetns: false })));
  const booted = new Map(toProbe.map((pl, i) => [pl, boots[i]!]));
  for (const [pl, r] of booted) {
    if (r.ok) s.add(`platform ${pl}`, 'ok', `boots a sandbox (${r.ms} ms)`);
    else s.add(`platform ${pl}`, 'warn', `does not boot: ${whyFailed(r)}`);
  }
  const cache = await p.runscCachedPlatform(path, g.root);
  const best = toProbe.find((pl) => GVISOR_PROBED.includes(pl) && booted.get(pl)?.ok);
  let used: GvisorPlatform | undefined;
  if (configured === 'kvm') {
    used = 'kvm';
    s.add('platform', 'warn', 'kvm (configured): not probed, since runsc hangs rather than fails on a /dev/kvm that cannot run it; used as configured');
  } else if (configured) {
    used = booted.get(configured)?.ok ? configured : undefined;
    s.add('platform', used ? 'ok' : 'fail', used ? `${configured} (configured) boots here` : `${configured} (configured) does not boot here`);
  } else if (best) {
    used = best;
    const cached = cache.platform ? `cached as ${cache.platform} in ${cache.file}` : `not cached yet (${cache.file})`;
    s.add('platform', 'ok', `the backend picks ${best}, the best that boots (${cached})`);
  } else {
    s.add('platform', 'fail', `no platform boots here (${toProbe.join(', ')}): set [gvisor] platform to one that does`);
  }

  if (used && used !== 'kvm') {
    const [host, sandboxOwn, sandboxRoot] = await Promise.all([
      p.runscBoots(path, used, { network: 'host', ownNetns: false }),
      p.runscBoots(path, used, { network: 'sandbox', ownNetns: true }),
      p.runscBoots(path, used, { network: 'sandbox', ownNetns: false }),
    ]);
    s.add('network none', 'ok', 'boots (the default without a network namespace: ctr)');
    if (host.ok) s.add('network host', 'ok', 'boots (the default in a pod\'s network namespace)');
    else s.add('network host', network === 'host' ? 'fail' : 'warn', `does not boot: ${whyFailed(host)}${network === 'host' ? '' : ': pods fail'}`);
    if (sandboxOwn.ok && sandboxRoot.ok) s.add('network sandbox', 'ok', 'boots, in a network namespace of its own and in the host\'s');
    else if (sandboxOwn.ok)
      s.add(
        'network sandbox',
        network === 'sandbox' ? 'warn' : 'ok',
        `boots in a network namespace of its own (a pod's); refused in the host's (runsc: ${errorLine(sandboxRoot.output).split(': ').pop()})${network === 'sandbox' ? ': containers without a network namespace (ctr) fail' : ''}`,
      );
    else s.add('network sandbox', network === 'sandbox' ? 'fail' : 'warn', `does not boot: ${whyFailed(sandboxOwn)}`);
  }
  return s.results;
}

/* ---- kata ---------------------------------------------------------------------------- */

export async function kataChecks(config: ShimConfig, p: HostProbes): Promise<CheckResult[]> {
  const s = new Section('kata');
  const k = config.kata;
  const defaults = p.kataAssetDefaults();

  // the checks that need no QEMU run while QEMU is probed
  const helpers = Promise.all([
    toolVersion(p, 'vhost-device-vsock', p.stat(defaults.vhostDeviceVsock) ? defaults.vhostDeviceVsock : p.which('vhost-device-vsock'), `${defaults.vhostDeviceVsock} (scripts/fetch-kata.sh) or on PATH`),
    toolVersion(p, 'virtiofsd', p.stat(defaults.virtiofsd) ? defaults.virtiofsd : p.which('virtiofsd'), `${defaults.virtiofsd} (Debian's qemu-system-x86)`),
  ]);
  const network = podNetworkCheck(p);

  if (k.hypervisor !== 'qemu') {
    s.add('hypervisor', 'fail', `${k.hypervisor} is not implemented by tsshim (kata.hypervisor = "qemu" is)`);
  } else {
    const qemu = k.hypervisorPath ? (p.stat(k.hypervisorPath)?.executable ? k.hypervisorPath : undefined) : p.which('qemu-system-x86_64');
    if (!qemu) {
      s.add('hypervisor', 'fail', `${k.hypervisorPath ?? 'qemu-system-x86_64'} not found (install qemu-system-x86, or set kata.hypervisor_path)`);
    } else {
      const v = await p.run(qemu, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS });
      const version = /version\s+(\S+)/.exec(v.output)?.[1];
      s.add('hypervisor', v.ok && version ? 'ok' : 'fail', v.ok && version ? `QEMU ${version} at ${qemu}` : `${qemu} --version: ${whyFailed(v)}`);
      if (v.ok) await accelChecks(s, p, qemu, k.accel);
    }
  }

  for (const r of await helpers) s.add(r.name, r.status, r.detail);

  if (k.image) s.add('guest image', 'fail', `kata.image = ${k.image}: guest disk images are not supported by this backend; give an initrd`);
  for (const [what, key, file] of [
    ['guest kernel', 'kernel', k.kernel ?? defaults.kernel],
    ['guest initrd', 'initrd', k.initrd ?? defaults.initrd],
  ] as const) {
    const st = p.stat(file);
    const origin = k[key] ? `kata.${key}` : 'the default';
    if (st?.kind === 'file' && st.size > 0) s.add(what, 'ok', `${file} (${mib(st.size)}, ${origin})`);
    else s.add(what, 'fail', `${file} (${origin}) ${st ? 'is empty or not a file' : 'does not exist'}: build the guest with scripts/build-kata-guest.sh, or set kata.${key}`);
  }
  for (const r of await network) s.add(r.name, r.status, r.detail);
  return s.results;
}

async function toolVersion(p: HostProbes, name: string, path: string | undefined, where: string): Promise<{ name: string; status: CheckStatus; detail: string }> {
  if (!path) return { name, status: 'fail', detail: `not found: ${where}` };
  const r = await p.run(path, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS });
  if (!r.ok) return { name, status: 'fail', detail: `${path} --version: ${whyFailed(r)}` };
  return { name, status: 'ok', detail: `${r.output.trim().split('\n')[0]} at ${path}` };
}

/** KVM (really booting a guest), software emulation, and the memfd RAM vhost-user needs */
async function accelChecks(s: Section, p: HostProbes, qemu: string, accel: 'auto' | 'kvm' | 'tcg'): Promise<void> {
  const kvmDev = p.stat('/dev/kvm');
  const [kvm, tcgMemfd] = await Promise.all([
    kvmDev?.kind === 'char' ? p.qemuBoots(qemu, 'kvm', { memfd: false }) : Promise.resolve(undefined),
    p.qemuBoots(qemu, 'tcg', { memfd: true }),
  ]);
  // without the memfd, to tell a memfd problem from a QEMU that boots nothing
  const tcgPlain = tcgMemfd.ok ? tcgMemfd : await p.qemuBoots(qemu, 'tcg', { memfd: false });
  const kvmOk = kvm?.ok === true;
  const tcgOk = tcgPlain.ok;

  const why = !kvmDev ? 'no /dev/kvm' : kvmDev.kind !== 'char' ? '/dev/kvm is not a device' : `/dev/kvm is there but QEMU cannot run a guest with it (${whyFailed(kvm!)})`;
  if (accel === 'tcg') s.add('kvm', 'ok', `not used: kata.accel = "tcg" (${kvmOk ? 'KVM boots a guest here' : why})`);
  else if (kvmOk) s.add('kvm', 'ok', `QEMU boots a guest with KVM (${kvm!.ms} ms): VMs run with KVM`);
  else if (accel === 'kvm') s.add('kvm', 'fail', `${why}; kata.accel = "kvm" allows nothing else`);
  else s.add('kvm', 'warn', `${why}: software emulation only, slow (seconds per VM boot)`);

  if (tcgOk) s.add('software emulation', 'ok', `QEMU boots a guest with TCG (${tcgPlain.ms} ms)`);
  else s.add('software emulation', accel === 'tcg' || !kvmOk ? 'fail' : 'warn', `QEMU boots no guest with TCG: ${whyFailed(tcgPlain)}`);

  if (tcgMemfd.ok) s.add('memfd memory', 'ok', 'guest RAM as a shared memfd works (what virtiofsd and vhost-device-vsock map)');
  else if (tcgOk) s.add('memfd memory', 'fail', `QEMU boots, but not with its RAM in a shared memfd, which vhost-user devices need: ${whyFailed(tcgMemfd)}`);
  else s.add('memfd memory', 'fail', 'not tried: QEMU boots no guest here');
}

async function podNetworkCheck(p: HostProbes): Promise<Array<{ name: string; status: CheckStatus; detail: string }>> {
  const out: Array<{ name: string; status: CheckStatus; detail: string }> = [];
  const tun = p.stat('/dev/net/tun');
  out.push(
    tun?.kind === 'char'
      ? { name: '/dev/net/tun', status: 'ok', detail: 'present (the VM\'s tap device in a pod\'s network namespace)' }
      : { name: '/dev/net/tun', status: 'warn', detail: 'missing: pods with a network namespace fail (no tap device for the VM); containers without one (ctr) work' },
  );
  const missing = ['ip', 'tc', 'nsenter', 'unshare'].filter((t) => !p.which(t));
  if (missing.length > 0) {
    out.push({ name: 'pod networking', status: 'warn', detail: `${missing.join(', ')} not found on PATH (iproute2, util-linux): pods with a network namespace fail` });
    return out;
  }
  const r = await p.podNetworkProbe();
  out.push(
    r.ok
      ? { name: 'pod networking', status: 'ok', detail: 'a tap joined to a veth with tc mirred both ways works (tried in a throwaway network namespace)' }
      : { name: 'pod networking', status: 'warn', detail: `a tap joined to a veth with tc mirred fails (${whyFailed(r)}): pods with a network namespace fail` },
  );
  return out;
}
