/**
 * `containerd-shim-tsshim-v2 check` on this host, through the real launcher binary (which hands
 * `check` to Node like every action it does not answer itself): what it reports must be what
 * this host has (runc/crun/runsc/QEMU versions, the cgroup layout, gVisor's platforms, KVM or
 * software emulation, the kata guest built or not), the exit status must follow the default
 * backend, and nothing may be left behind (scratch dirs, processes, network devices, the gVisor
 * platform cache).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bestPlatform, FACTS_FILE } from '../../src/backends/gvisor/runsc-facts.js';
import { execaCommand } from '../../src/backends/runc/cli.js';
import { cgroupMode } from '../../src/sys/cgroups.js';
import type { CheckResult } from '../../src/shim/host-check.js';
import { repoBinDir } from './harness/repo-paths.js';
import { RUNSC_BACKPORTS } from './gvisor-flags.js';
import { KATA_GUEST_DIR, kataMissing } from './kata-assets.js';

const SHIM = join(repoBinDir, 'containerd-shim-tsshim-v2');

interface JsonReport {
  config: string;
  defaultBackend: string;
  exitStatus: number;
  backends: Record<string, { canRun: boolean; blockers: string[] }>;
  results: CheckResult[];
}

function runCheck(args: string[], binary = SHIM): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(binary, ['check', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function result(report: JsonReport, backend: string, name: string): CheckResult {
  const r = report.results.find((x) => x.backend === backend && x.name === name);
  if (!r) throw new Error(`no ${backend}/${name} in ${report.results.map((x) => `${x.backend}/${x.name}`).join(', ')}`);
  return r;
}

function versionLine(cmd: string): string {
  return execFileSync(cmd, ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
}

/** what a check could leave behind: scratch dirs, probe processes, network devices */
function traces(): { scratch: string[]; processes: string[]; links: string } {
  const scratch = readdirSync(tmpdir()).filter((f) => f.startsWith('tsshim-check-'));
  const processes: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (/tsshim-check-|tsck0/.test(cmd)) processes.push(`${pid}: ${cmd}`);
    } catch {
      // gone
    }
  }
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /tsck/.test(l))
    .join('\n');
  return { scratch, processes, links };
}

describe('tsshim check on this host', () => {
  let dir: string;
  let report: JsonReport;
  let code: number | null;
  let before: ReturnType<typeof traces>;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kcheck-e2e-'));
    // runsc's root in a dir of its own: the check must not write the platform cache there
    writeFileSync(join(dir, 'native.toml'), `backend = "native"\n[gvisor]\nroot = "${join(dir, 'runsc')}"\n`);
    before = traces();
    const r = runCheck(['--config', join(dir, 'native.toml'), '--json']);
    code = r.code;
    report = JSON.parse(r.stdout) as JsonReport;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('native is the default and can run: exit status 0, executor, sealed copy and ffi-rs OK', () => {
    expect(report.config).toBe(join(dir, 'native.toml'));
    expect(report.defaultBackend).toBe('native');
    expect(code).toBe(0);
    expect(report.exitStatus).toBe(0);
    expect(report.backends.native).toEqual({ canRun: true, blockers: [] });
    for (const name of ['executor', 'sealed copy', 'ffi-rs']) expect(result(report, 'native', name).status, name).toBe('ok');
    expect(result(report, 'native', 'executor').detail).toMatch(/dist\/native\/tsshim-exec runs here$/);
  });

  it('common: root, the cgroup layout this host has, systemd as PID 1 or not', () => {
    expect(result(report, 'common', 'root').status).toBe('ok');
    expect(result(report, 'common', 'cgroups').detail.startsWith(cgroupMode() === 'v2' ? 'v2' : cgroupMode())).toBe(true);
    const systemd = readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd';
    expect(result(report, 'common', 'systemd').detail).toMatch(systemd ? /systemd is PID 1/ : /not systemd: only the cgroupfs driver works/);
    expect(result(report, 'common', 'seccomp').status).toBe('ok');
  });

  it('runc and crun: the versions the binaries print; crun under this host\'s containerd', () => {
    expect(result(report, 'runc', 'binary')).toMatchObject({ status: 'ok' });
    expect(result(report, 'runc', 'binary').detail).toContain(versionLine('runc').replace('runc version ', 'runc '));
    expect(result(report, 'crun', 'binary').detail).toContain(versionLine('crun').replace('crun version ', 'crun '));
    // the system's containerd is 1.6 here: its spec is one crun 1.8.1 takes
    expect(result(report, 'crun', 'OCI spec').detail).toMatch(/^containerd 1\.6\.\S+ writes OCI spec 1\.0/);
    if (cgroupMode() === 'hybrid') {
      const onV2 = readFileSync('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').trim();
      expect(result(report, 'crun', 'hybrid cgroups').status).toBe(onV2 ? 'fail' : 'ok');
    }
  });

  it('gvisor: runsc 2022 boots ptrace, not systrap; networks none/host, sandbox only in a netns of its own', () => {
    expect(result(report, 'gvisor', 'binary').detail).toMatch(/^runsc 0\.0~20221219/);
    expect(result(report, 'gvisor', 'platform ptrace').status).toBe('ok');
    expect(result(report, 'gvisor', 'platform systrap')).toMatchObject({ status: 'warn' });
    expect(result(report, 'gvisor', 'platform systrap').detail).toMatch(/unknown platform: systrap/);
    expect(result(report, 'gvisor', 'platform').detail).toMatch(/^the backend picks ptrace, the best that boots \(not cached yet/);
    expect(result(report, 'gvisor', 'network host').status).toBe('ok');
    expect(result(report, 'gvisor', 'network sandbox').detail).toMatch(/refused in the host's \(runsc: cannot run with network enabled in root network namespace\)/);
    expect(report.backends.gvisor!.canRun).toBe(true);
  });

  it('kata: QEMU\'s version; KVM really tried (software emulation WARN where it boots nothing); helpers; the guest as built', () => {
    expect(result(report, 'kata', 'hypervisor').detail).toBe(`QEMU ${/version (\S+)/.exec(versionLine('qemu-system-x86_64'))![1]} at /usr/bin/qemu-system-x86_64`);
    const kvm = result(report, 'kata', 'kvm');
    if (!existsSync('/dev/kvm')) expect(kvm.detail).toMatch(/^no \/dev\/kvm: software emulation only/);
    else if (kvm.status === 'warn') expect(kvm.detail).toMatch(/^\/dev\/kvm is there but QEMU cannot run a guest with it \(.+\): software emulation only, slow/);
    else expect(kvm.detail).toMatch(/boots a guest with KVM/);
    expect(result(report, 'kata', 'software emulation').status).toBe('ok');
    expect(result(report, 'kata', 'memfd memory').status).toBe('ok');
    expect(result(report, 'kata', 'virtiofsd').detail).toMatch(/^virtiofsd version .* at \/usr\/lib\/qemu\/virtiofsd$/);
    expect(result(report, 'kata', '/dev/net/tun').status).toBe('ok');
    expect(result(report, 'kata', 'pod networking').status).toBe('ok');
    const kernel = result(report, 'kata', 'guest kernel');
    if (kataMissing) {
      expect(kernel.status === 'fail' || result(report, 'kata', 'guest initrd').status === 'fail').toBe(true);
      expect(report.backends.kata!.canRun).toBe(false);
    } else {
      expect(kernel).toMatchObject({ status: 'ok' });
      expect(kernel.detail.startsWith(join(KATA_GUEST_DIR, 'vmlinuz'))).toBe(true);
      expect(report.backends.kata!.canRun).toBe(result(report, 'kata', 'vhost-device-vsock').status === 'ok');
    }
  });

  it('leaves nothing behind: no scratch dir, probe process, network device or gVisor platform cache', () => {
    expect(traces()).toEqual(before);
    expect(existsSync(join(dir, 'runsc'))).toBe(false);
  });

  it('the gvisor backend\'s own probe picks the platform check named, and check then reports its cache', async () => {
    const picked = /picks (\w+)/.exec(result(report, 'gvisor', 'platform').detail)![1];
    const cacheDir = join(dir, 'runsc-probed');
    expect(await bestPlatform('runsc', cacheDir, execaCommand)).toBe(picked);
    writeFileSync(join(dir, 'cached.toml'), `[gvisor]\nroot = "${cacheDir}"\n`);
    const again = JSON.parse(runCheck(['--config', join(dir, 'cached.toml'), '--json']).stdout) as JsonReport;
    expect(result(again, 'gvisor', 'platform').detail).toContain(`cached as ${picked} in ${join(cacheDir, FACTS_FILE)}`);
  });

  it.skipIf(!!RUNSC_BACKPORTS.missing)(`gvisor with runsc 2024: systrap boots ${RUNSC_BACKPORTS.missing ?? ''}`, () => {
    writeFileSync(join(dir, 'gvisor.toml'), `backend = "gvisor"\n[gvisor]\nbinary = "${RUNSC_BACKPORTS.binary}"\nroot = "${join(dir, 'runsc')}"\n`);
    const r = runCheck(['--config', join(dir, 'gvisor.toml'), '--json']);
    const j = JSON.parse(r.stdout) as JsonReport;
    expect(r.code).toBe(0);
    expect(j.defaultBackend).toBe('gvisor');
    expect(result(j, 'gvisor', 'platform systrap').status).toBe('ok');
    expect(result(j, 'gvisor', 'platform').detail).toMatch(/picks systrap/);
  });

  it('kata as the default with its kernel missing: exit status 1, FAIL with the reason in the text', () => {
    writeFileSync(join(dir, 'kata.toml'), `backend = "kata"\n[kata]\nkernel = "${join(dir, 'no-vmlinuz')}"\n`);
    const r = runCheck(['--config', join(dir, 'kata.toml')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^  FAIL  guest kernel +${join(dir, 'no-vmlinuz')} \\(kata\\.kernel\\) does not exist: build the guest with scripts/build-kata-guest\\.sh, or set kata\\.kernel$`, 'm'));
    expect(r.stdout).toMatch(/^kata: cannot run here \(guest kernel.*\)$/m);
    expect(r.stdout).toMatch(/default backend kata: cannot run here\n$/);
  });

  it('the kata alias makes kata the default backend', () => {
    const alias = join(repoBinDir, 'containerd-shim-tsshim-kata-v2');
    if (!existsSync(alias)) return;
    const r = runCheck(['--config', join(dir, 'kata.toml'), '--json'], alias);
    expect((JSON.parse(r.stdout) as JsonReport).defaultBackend).toBe('kata');
  });

  it('a bad argument or config: exit status 2 and why', () => {
    const bad = runCheck(['--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toMatch(/^tsshim check: unknown argument "--bogus"\nusage: containerd-shim-tsshim-v2 check/);
    writeFileSync(join(dir, 'bad.toml'), 'backend = "nope"\n');
    const cfg = runCheck(['--config', join(dir, 'bad.toml')]);
    expect(cfg.code).toBe(2);
    expect(cfg.stdout).toMatch(/tsshim check: tsshim config .*bad\.toml: line 1: backend must be one of/);
  });
});
