import { describe, expect, it } from 'vitest';
import type { VmSpec } from '../../src/backends/kata/hypervisor/hypervisor.js';
import { agentPortOf, qemuArgs } from '../../src/backends/kata/hypervisor/qemu.js';
import { virtiofsdArgs } from '../../src/backends/kata/hypervisor/virtiofsd.js';
import { vsockDeviceArgs } from '../../src/backends/kata/hypervisor/vsock-device.js';

const spec: VmSpec = {
  id: 'p1', stateDir: '/run/x', kernel: '/k/vmlinuz', initrd: '/k/initrd,v2.img', kernelParams: ['agent.port=2000', 'debug'],
  memoryMiB: 768, vcpus: 2, sharedDir: '/s', extraArgs: ['-S'], accel: 'auto', bootTimeoutMs: 1000,
};
const args = (accel: 'kvm' | 'tcg') => qemuArgs({ spec, accel, consoleLog: '/run/x/console.log', vsockDeviceSocket: '/run/x/v.sock', virtiofsSocket: '/run/x/f.sock' });
const after = (a: string[], flag: string) => a.filter((_, i) => a[i - 1] === flag);

describe('QEMU command line', () => {
  it('shares guest memory (memfd, share=on) sized like -m, for the vhost-user devices', () => {
    const a = args('tcg');
    expect(after(a, '-m')).toEqual(['768M']);
    expect(after(a, '-object')).toEqual(['memory-backend-memfd,id=mem,size=768M,share=on']);
    expect(after(a, '-numa')).toEqual(['node,memdev=mem']);
    expect(after(a, '-smp')).toEqual(['2']);
  });

  it('uses the accelerator asked for, with the host CPU under KVM only', () => {
    expect(after(args('kvm'), '-accel')).toEqual(['kvm']);
    expect(after(args('kvm'), '-cpu')).toEqual(['host']);
    expect(after(args('tcg'), '-accel')).toEqual(['tcg']);
    expect(after(args('tcg'), '-cpu')).toEqual(['max']);
  });

  it('wires virtio-fs (tag kataShared) and vsock through vhost-user sockets, the console to a file', () => {
    const a = args('tcg');
    expect(after(a, '-chardev')).toEqual(['socket,id=vsock,path=/run/x/v.sock', 'socket,id=fs,path=/run/x/f.sock']);
    expect(after(a, '-device')).toEqual(['vhost-user-vsock-pci,chardev=vsock', 'vhost-user-fs-pci,chardev=fs,tag=kataShared']);
    expect(after(a, '-serial')).toEqual(['file:/run/x/console.log']);
    expect(a).toContain('-nodefaults');
    expect(a).toContain('-no-reboot');
  });

  it('escapes commas in paths, puts the spec kernel params after the base ones and extra args last', () => {
    const a = args('tcg');
    expect(after(a, '-initrd')).toEqual(['/k/initrd,,v2.img']);
    const append = after(a, '-append')[0]!.split(' ');
    expect(append[0]).toBe('console=ttyS0');
    expect(append.slice(-2)).toEqual(['agent.port=2000', 'debug']);
    expect(a.at(-1)).toBe('-S');
  });

  it('reads the agent port from the kernel params (last wins, default 1024)', () => {
    expect(agentPortOf(spec.kernelParams)).toBe(2000);
    expect(agentPortOf([])).toBe(1024);
    expect(agentPortOf(['agent.port=1', 'agent.port=7'])).toBe(7);
  });
});

describe('helpers', () => {
  it('virtiofsd exports the shared dir from the host mount namespace (chroot sandbox)', () => {
    const a = virtiofsdArgs('/run/x/f.sock', '/s');
    expect(a[0]).toBe('--socket-path=/run/x/f.sock');
    expect(a).toContain('source=/s');
    expect(a).toContain('sandbox=chroot');
    expect(a.some((x) => /^--rlimit-nofile=\d+$/.test(x))).toBe(true);
  });

  it('vhost-device-vsock serves guest cid 3 with a hybrid-vsock unix socket', () => {
    expect(vsockDeviceArgs('/run/x/v.sock', '/run/x/h.sock')).toEqual(['--vm', 'guest-cid=3,socket=/run/x/v.sock,uds-path=/run/x/h.sock']);
  });
});
