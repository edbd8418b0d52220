import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST_SHARED_DIR, guestSpecOf } from '../../src/backends/kata/guest-spec.js';
import { metricsFromAgentStats } from '../../src/backends/kata/stats.js';
import { aliasFromBinary } from '../../src/shim/backend-registry.js';
import { defaultConfig, parseConfig } from '../../src/shim/config.js';

/** the parts of a CRI app container's spec that involve the host */
function criSpec(): Record<string, unknown> {
  return {
    ociVersion: '1.1.0',
    process: { args: ['sh'], cwd: '/' },
    root: { path: 'rootfs', readonly: false },
    hostname: 'pod',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid'] },
      { destination: '/etc/hosts', type: 'bind', source: '/var/lib/containerd/sandboxes/abc/hosts', options: ['rbind', 'rprivate', 'rw'] },
      { destination: '/data', type: 'bind', source: '/srv/volume', options: ['rbind', 'ro'] },
      { destination: '/dev/shm', type: 'bind', source: '/run/containerd/sandboxes/abc/shm', options: ['rbind', 'rw'] },
      { destination: '/dev/termination-log', source: '/var/lib/kubelet/pods/x/termination', options: ['rbind', 'rw'] },
    ],
    hooks: { prestart: [{ path: '/usr/bin/true' }] },
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc', path: '/proc/42/ns/ipc' }, { type: 'network', path: '/var/run/netns/cni-1' }, { type: 'mount' }],
      cgroupsPath: 'kubepods-besteffort-podx.slice:cri-containerd:c1',
      resources: { devices: [{ allow: false, access: 'rwm' }], memory: { limit: 1048576 } },
      devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229 }],
    },
  };
}

describe('kata guest spec', () => {
  it('names the rootfs and every bind source by its path in the shared directory', () => {
    const { spec, shares } = guestSpecOf(criSpec(), 'c1', '/run/bundle/c1/rootfs');
    expect((spec.root as { path: string }).path).toBe(`${GUEST_SHARED_DIR}/c1/rootfs`);
    expect(shares[0]).toEqual({ hostPath: '/run/bundle/c1/rootfs', name: 'c1/rootfs', readonly: false });
    const mounts = spec.mounts as Array<{ destination: string; source: string; type?: string; options?: string[] }>;
    const byDest = new Map(mounts.map((m) => [m.destination, m]));
    expect(byDest.get('/proc')!.source).toBe('proc');
    const hosts = shares.find((s) => s.hostPath.endsWith('/hosts'))!;
    expect(byDest.get('/etc/hosts')!.source).toBe(`${GUEST_SHARED_DIR}/${hosts.name}`);
    expect(hosts.name).not.toContain('/');
    const vol = shares.find((s) => s.hostPath === '/srv/volume')!;
    expect(vol.readonly).toBe(true);
    // an untyped bind (options only) is shared too
    expect(byDest.get('/dev/termination-log')!.source.startsWith(GUEST_SHARED_DIR)).toBe(true);
    // the pod's shm is the guest's own tmpfs
    expect(byDest.get('/dev/shm')).toMatchObject({ type: 'tmpfs' });
    expect(shares.some((s) => s.hostPath.includes('/shm'))).toBe(false);
  });

  it('drops what only the host can use', () => {
    const host = criSpec();
    const { spec } = guestSpecOf(host, 'c1', '/r');
    expect(spec.hooks).toBeUndefined();
    const linux = spec.linux as Record<string, unknown> & { namespaces: Array<{ type: string; path?: string }>; resources: Record<string, unknown> };
    expect(linux.namespaces).toEqual([{ type: 'ipc' }, { type: 'mount' }]);
    expect(linux.cgroupsPath).toBe('/kubepods-besteffort-podx.slice/cri-containerd-c1');
    expect(linux.resources.devices).toBeUndefined();
    expect(linux.resources.memory).toEqual({ limit: 1048576 });
    expect(linux.devices).toBeUndefined();
    // the host's spec object is left as it was
    expect((host.root as { path: string }).path).toBe('rootfs');
    expect((host.linux as { namespaces: unknown[] }).namespaces).toHaveLength(4);
  });

  it("asks for the pod's PID namespace when the host spec joins one by path", () => {
    expect(guestSpecOf(criSpec(), 'c1', '/r').sandboxPidns).toBe(false);
    const shared = criSpec();
    (shared.linux as { namespaces: Array<{ type: string; path?: string }> }).namespaces[0] = { type: 'pid', path: '/proc/42/ns/pid' };
    const g = guestSpecOf(shared, 'c1', '/r');
    expect(g.sandboxPidns).toBe(true);
    expect((g.spec.linux as { namespaces: Array<{ type: string }> }).namespaces.some((n) => n.type === 'pid')).toBe(false);
  });

  it('gives a container without cgroupsPath one of its own', () => {
    const { spec } = guestSpecOf({ linux: {} }, 'c9', '/r');
    expect((spec.linux as { cgroupsPath: string }).cgroupsPath).toBe('/tsshim-kata/c9');
  });
});

describe('kata stats', () => {
  it('maps the agent cgroup stats to v1 metrics', () => {
    const m = metricsFromAgentStats(
      {
        cpuStats: { cpuUsage: { totalUsage: 5n, percpuUsage: [5n], usageInKernelmode: 2n, usageInUsermode: 3n }, throttlingData: undefined },
        memoryStats: { cache: 7n, usage: { usage: 100n, maxUsage: 150n, failcnt: 0n, limit: 1000n }, swapUsage: undefined, kernelUsage: undefined, useHierarchy: true, stats: { rss: 90n, inactive_file: 4n } },
        pidsStats: { current: 2n, limit: 10n },
        blkioStats: undefined,
        hugetlbStats: {},
      },
      [],
    );
    expect(m.cpu?.usage).toEqual({ total: 5n, kernel: 2n, user: 3n, perCpu: [5n] });
    expect(m.memory?.usage).toEqual({ usage: 100n, max: 150n, failcnt: 0n, limit: 1000n });
    expect(m.memory?.rss).toBe(90n);
    expect(m.memory?.totalInactiveFile).toBe(4n);
    expect(m.pids).toEqual({ current: 2n, limit: 10n });
  });
});

describe('kata config', () => {
  it('has defaults that boot the guest tsshim builds', () => {
    const k = defaultConfig().kata;
    expect(k).toMatchObject({ hypervisor: 'qemu', accel: 'auto', agentPort: 1024, vcpus: 1 });
    expect(k.kernel).toBeUndefined();
  });

  it('reads [kata] and refuses bad values with the key named', () => {
    const cfg = parseConfig('[kata]\nmemory = 512\nvcpus = 2\naccel = "tcg"\nkernel = "/k"\nextra_args = ["-d", "x"]\n', 't.toml');
    expect(cfg.kata).toMatchObject({ memoryMiB: 512, vcpus: 2, accel: 'tcg', kernel: '/k', extraArgs: ['-d', 'x'] });
    expect(() => parseConfig('[kata]\nhypervisor = "xen"\n', 't.toml')).toThrow(/line 2: kata.hypervisor must be one of/);
    expect(() => parseConfig('[kata]\nmemory = 12\n', 't.toml')).toThrow(/kata.memory must be a whole number/);
    expect(() => parseConfig('[kata]\nkernel = "rel/k"\n', 't.toml')).toThrow(/kata.kernel must be an absolute path/);
  });

  it("takes what [kata] leaves unset from Kata's configuration.toml", () => {
    const dir = mkdtempSync(join(tmpdir(), 'kata-cfg-'));
    try {
      const file = join(dir, 'configuration.toml');
      writeFileSync(
        file,
        '[hypervisor.qemu]\npath = "/opt/kata/bin/qemu"\nkernel = "/opt/kata/vmlinux"\ninitrd = "/opt/kata/initrd"\n' +
          'kernel_params = "quiet  debug"\ndefault_vcpus = 2\ndefault_memory = 2048\nvirtio_fs_daemon = "/opt/kata/libexec/virtiofsd"\n[runtime]\nenable_debug = true\n',
      );
      const cfg = parseConfig(`[kata]\nconfiguration = "${file}"\nmemory = 768\n`, 't.toml');
      expect(cfg.kata).toMatchObject({
        hypervisor: 'qemu',
        hypervisorPath: '/opt/kata/bin/qemu',
        kernel: '/opt/kata/vmlinux',
        initrd: '/opt/kata/initrd',
        kernelParams: ['quiet', 'debug'],
        vcpus: 2,
        memoryMiB: 768,
        virtiofsd: '/opt/kata/libexec/virtiofsd',
      });
      writeFileSync(file, '[hypervisor.qemu\n');
      expect(() => parseConfig(`[kata]\nconfiguration = "${file}"\n`, 't.toml')).toThrow(/kata configuration .*configuration.toml/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('selects kata by its alias binary', () => {
    expect(aliasFromBinary('/x/containerd-shim-tsshim-kata-v2')).toBe('kata');
  });
});

describe('kata pod network', () => {
  it("describes the pod's veth for the agent: MAC, addresses, subnet route before the gateway route", async () => {
    const { describePodInterface } = await import('../../src/backends/kata/pod-network.js');
    const pod = describePodInterface(
      [
        { ifname: 'lo', address: '00:00:00:00:00:00', mtu: 65536, link_type: 'loopback', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
        {
          ifname: 'eth0',
          address: '3a:1c:00:aa:bb:cc',
          mtu: 1450,
          link_type: 'ether',
          addr_info: [
            { family: 'inet', local: '10.88.0.5', prefixlen: 16 },
            { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
          ],
        },
      ],
      [
        { dst: 'default', gateway: '10.88.0.1', dev: 'eth0' },
        { dst: '10.88.0.0/16', dev: 'eth0', prefsrc: '10.88.0.5', scope: 'link' },
      ],
    )!;
    expect(pod.device).toBe('eth0');
    expect(pod.mac).toBe('3a:1c:00:aa:bb:cc');
    expect(pod.guestInterface).toMatchObject({ name: 'eth0', hwAddr: '3a:1c:00:aa:bb:cc', mtu: 1450n, IPAddresses: [{ family: 0, address: '10.88.0.5', mask: '16' }] });
    expect(pod.guestRoutes.map((r) => [r.dest, r.gateway, r.scope])).toEqual([
      ['10.88.0.0/16', '', 253],
      ['', '10.88.0.1', 0],
    ]);
  });

  it('finds nothing to bridge in a namespace with only lo', async () => {
    const { describePodInterface } = await import('../../src/backends/kata/pod-network.js');
    expect(describePodInterface([{ ifname: 'lo', link_type: 'loopback', address: '00:00:00:00:00:00' }], [])).toBeUndefined();
  });
});
