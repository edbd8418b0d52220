/**
 * OCI config validation of the native backend: errors name the field, unsupported
 * features are Unimplemented (never ignored), good configs come out typed.
 */
import { describe, expect, it } from 'vitest';
import { parseProcess, parseResources, parseSpec, parseSpecText } from '../../src/backends/native/spec.js';

function baseSpec(): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return {
    ociVersion: '1.0.2',
    root: { path: 'rootfs' },
    process: { args: ['sh'], cwd: '/', user: { uid: 0, gid: 0 } },
    linux: { namespaces: [{ type: 'mount' }, { type: 'pid' }] },
  };
}

describe('parseSpec', () => {
  it('reads a minimal config with defaults', () => {
    const s = parseSpec(baseSpec());
    expect(s.root).toEqual({ path: 'rootfs', readonly: false });
    expect(s.process.args).toEqual(['sh']);
    expect(s.process.env).toEqual([]);
    expect(s.process.terminal).toBe(false);
    expect(s.process.noNewPrivileges).toBe(false);
    expect(s.linux.namespaces).toEqual([{ type: 'mount', path: undefined }, { type: 'pid', path: undefined }]);
    expect(s.mounts).toEqual([]);
  });

  const invalid: Array<[string, (s: Record<string, any>) => void, string]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['empty args', (s) => (s.process.args = []), 'process.args: must be a non-empty array of strings'],
    ['missing args', (s) => delete s.process.args, 'process.args: must be a non-empty array of strings'],
    ['non-string arg', (s) => (s.process.args = ['sh', 3]), 'process.args[1]: must be a string'],
    ['NUL in arg', (s) => (s.process.args = ['sh\0x']), 'process.args[0]: must not contain a NUL character'],
    ['env without =', (s) => (s.process.env = ['PATH']), 'process.env[0]: must be KEY=value (got "PATH")'],
    ['relative cwd', (s) => (s.process.cwd = 'tmp'), 'process.cwd: must be an absolute path (got "tmp")'],
    ['negative uid', (s) => (s.process.user.uid = -1), 'process.user.uid: must be an integer from 0 to 4294967295'],
    ['missing root', (s) => delete s.root, 'root: must be an object'],
    ['missing process', (s) => delete s.process, 'process: is required to create a container'],
    ['unknown namespace', (s) => s.linux.namespaces.push({ type: 'bogus' }), 'linux.namespaces[2].type: unknown namespace type "bogus" (one of pid, network, mount, ipc, uts, user, cgroup, time)'],
    ['duplicate namespace', (s) => s.linux.namespaces.push({ type: 'pid' }), 'linux.namespaces[2].type: namespace pid is listed twice'],
    ['relative namespace path', (s) => (s.linux.namespaces[1].path = 'proc/1/ns/pid'), 'linux.namespaces[1].path: must be an absolute path'],
    ['mount without destination', (s) => (s.mounts = [{ type: 'tmpfs' }]), 'mounts[0].destination: must be a string'],
    ['empty mount destination', (s) => (s.mounts = [{ destination: '', type: 'tmpfs' }]), 'mounts[0].destination: must not be empty'],
    ['rlimit soft above hard', (s) => (s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 5 }]), 'process.rlimits[0]: soft limit 10 is above hard limit 5'],
    ['duplicate rlimit', (s) => (s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1, hard: 1 }, { type: 'RLIMIT_NOFILE', soft: 1, hard: 1 }]), 'process.rlimits[1].type: RLIMIT_NOFILE is set twice'],
    ['oomScoreAdj out of range', (s) => (s.process.oomScoreAdj = 2000), 'process.oomScoreAdj: must be an integer from -1000 to 1000'],
    ['zero-size mapping', (s) => (s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 0 }]), 'linux.uidMappings[0].size: must be at least 1'],
    ['bad device type', (s) => (s.linux.devices = [{ type: 'x', path: '/dev/x' }]), 'linux.devices[0].type: must be one of c, b, u, p'],
    ['long hostname', (s) => (s.hostname = 'h'.repeat(65)), 'hostname: must be at most 64 bytes'],
    ['terminal not boolean', (s) => (s.process.terminal = 'yes'), 'process.terminal: must be a boolean'],
  ];
  it.each(invalid)('rejects %s naming the field', (_name, edit, message) => {
    const s = baseSpec();
    edit(s);
    let err: unknown;
    try {
      parseSpec(s);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'InvalidArgument', message });
  });

  const unsupported: Array<[string, (s: Record<string, any>) => void, string]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['intelRdt', (s) => (s.linux.intelRdt = { closID: 'x' }), 'linux.intelRdt'],
    ['seccomp notify', (s) => (s.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/x' }), 'linux.seccomp.listenerPath'],
    ['idmapped mount', (s) => (s.mounts = [{ destination: '/x', type: 'bind', source: '/', uidMappings: [{ containerID: 0, hostID: 1, size: 1 }] }]), 'mounts[0].uidMappings'],
    ['io priority', (s) => (s.process.ioPriority = { class: 'IOPRIO_CLASS_IDLE' }), 'process.ioPriority'],
  ];
  it.each(unsupported)('refuses %s as Unimplemented', (_name, edit, field) => {
    const s = baseSpec();
    edit(s);
    expect(() => parseSpec(s)).toThrow(expect.objectContaining({ code: 'Unimplemented', message: expect.stringContaining(`${field}:`) }));
  });

  it('reads a time namespace and its offsets; refuses bad offsets naming the field', () => {
    const s = baseSpec();
    s.linux.namespaces.push({ type: 'time' });
    s.linux.timeOffsets = { boottime: { secs: 86400, nanosecs: 5 }, monotonic: { secs: -10 } };
    expect(parseSpec(s).linux.timeOffsets).toEqual({ boottime: { secs: 86400, nanosecs: 5 }, monotonic: { secs: -10, nanosecs: 0 } });
    for (const [offsets, field] of [
      [{ realtime: { secs: 1 } }, 'linux.timeOffsets.realtime'],
      [{ boottime: { secs: 1.5 } }, 'linux.timeOffsets.boottime.secs'],
      [{ boottime: { secs: 1, nanosecs: 1e9 } }, 'linux.timeOffsets.boottime.nanosecs'],
    ] as const) {
      s.linux.timeOffsets = offsets;
      expect(() => parseSpec(s), field).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: expect.stringContaining(field) }));
    }
  });

  it('accepts empty hooks lists', () => {
    const s = baseSpec();
    s.hooks = { prestart: [], poststop: [] };
    expect(() => parseSpec(s)).not.toThrow();
  });

  it('reads hooks: path, args, env, timeout', () => {
    const s = baseSpec();
    s.hooks = { createRuntime: [{ path: '/bin/hook', args: ['hook', '-x'], env: ['A=1'], timeout: 5 }], poststop: [{ path: '/bin/true' }] };
    expect(parseSpec(s).hooks).toEqual({
      createRuntime: [{ path: '/bin/hook', args: ['hook', '-x'], env: ['A=1'], timeout: 5 }],
      poststop: [{ path: '/bin/true', args: [], env: [], timeout: undefined }],
    });
  });

  it.each([
    [{ prestart: [{ path: 'rel' }] }, 'hooks.prestart[0].path'],
    [{ poststart: [{ path: '/x', timeout: 0 }] }, 'hooks.poststart[0].timeout'],
    [{ poststart: [{ path: '/x', timeout: 1.5 }] }, 'hooks.poststart[0].timeout'],
    [{ createContainer: { path: '/x' } }, 'hooks.createContainer'],
  ])('refuses bad hooks, naming the field (%j)', (hooks, field) => {
    const s = baseSpec();
    s.hooks = hooks;
    expect(() => parseSpec(s)).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: expect.stringContaining(field) }));
  });

  it('reads RLIM_INFINITY (2^64-1, rounded by JSON.parse) as the maximum', () => {
    const s = parseSpecText(
      '{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["x"],"cwd":"/","rlimits":[{"type":"RLIMIT_CORE","soft":18446744073709551615,"hard":18446744073709551615}]}}',
    );
    expect(s.process.rlimits[0]).toEqual({ type: 'RLIMIT_CORE', soft: (1n << 64n) - 1n, hard: (1n << 64n) - 1n });
  });

  it('names the file for JSON syntax errors', () => {
    expect(() => parseSpecText('{', 'config.json')).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: expect.stringMatching(/^config\.json: not valid JSON/) }));
  });
});

describe('parseProcess (exec)', () => {
  it('uses the given field prefix', () => {
    expect(() => parseProcess({ args: [] }, 'process')).toThrow('process.args: must be a non-empty array of strings');
  });
  it('defaults user and cwd', () => {
    const p = parseProcess({ args: ['true'] });
    expect(p.user).toEqual({ uid: 0, gid: 0, umask: undefined, additionalGids: [] });
    expect(p.cwd).toBe('/');
  });
});

describe('parseResources', () => {
  it('reads the usual resources', () => {
    const r = parseResources({
      memory: { limit: 1048576, swap: -1 },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0' },
      pids: { limit: 10 },
      devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }],
    });
    expect(r.memory).toMatchObject({ limit: 1048576n, swap: -1n });
    expect(r.cpu).toMatchObject({ shares: 512n, quota: 50000n, period: 100000n, cpus: '0' });
    expect(r.pids).toEqual({ limit: 10n });
    expect(r.devices).toEqual([
      { allow: false, type: 'a', major: -1, minor: -1, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
    ]);
  });
  it('names a wrong field', () => {
    expect(() => parseResources({ pids: { limit: 'x' } }, 'resources')).toThrow('resources.pids.limit: must be an integer');
    expect(() => parseResources({ devices: [{ allow: true, access: 'rwx' }] })).toThrow('linux.resources.devices[0].access: must be a combination of r, w, m');
    expect(() => parseResources({ unified: { '../x': '1' } })).toThrow('linux.resources.unified.../x: must name a file of the cgroup itself');
  });
});
