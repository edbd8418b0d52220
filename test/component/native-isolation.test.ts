/**
 * What a native container sees, asserted from inside it: hostname, mounts (read-only
 * root, tmpfs, bind, masked and read-only /proc paths), capabilities, no_new_privs,
 * seccomp, rlimits, ids, a user namespace mapping, no host fds; and from the host:
 * memory and pids limits enforced, cpu settings written, a symlinked mount target kept
 * inside the rootfs, the exec helper out of the container's reach.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendContainer } from '../../src/core/backend.js';
import { readOomKillCount } from '../../src/sys/cgroups.js';
import { CapturedOutput, NAMESPACE, type NativeEnv, type Spec, bundle, cgroupDirsUnder, exitOf, isRoot, setupNative, teardownNative } from './native-fixtures.js';

const V1 = '/sys/fs/cgroup';

/** lines "key: value" printed by a probe script → map */
function parseProbe(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

describe.skipIf(!isRoot)('NativeBackend isolation, seen from inside', () => {
  let env: NativeEnv;
  const live: BackendContainer[] = [];
  const outputs: CapturedOutput[] = [];
  const output = (name: string) => {
    const o = new CapturedOutput(env.workDir, name);
    outputs.push(o);
    return o;
  };

  /** create + start + wait for exit; returns status and output */
  async function run(id: string, script: string, edit?: (s: Spec) => void): Promise<{ status: number; out: string; err: string; container: BackendContainer }> {
    const b = bundle(env.workDir, id, ['sh', '-c', script], env.cgroupParent, edit);
    const o = output(id);
    const { container, pid } = await env.backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    live.push(container);
    await env.backend.start(container);
    const { status } = await exitOf(env.sub, pid);
    return { status, out: o.out(), err: o.err(), container };
  }

  async function remove(c: BackendContainer): Promise<void> {
    await env.backend.delete(c, { force: true });
    live.splice(live.indexOf(c), 1);
  }

  beforeAll(async () => {
    env = await setupNative('iso');
    // a user namespace's root (host uid 100000) must be able to reach the bundles
    fs.chmodSync(env.workDir, 0o711);
  });

  afterAll(async () => {
    for (const c of [...live]) await env.backend.delete(c, { force: true }).catch(() => undefined);
    teardownNative(env, outputs);
  });

  it('applies hostname, mounts, capabilities, no_new_privs, rlimits and ids', async () => {
    const shared = path.join(env.workDir, 'shared');
    fs.mkdirSync(shared);
    fs.writeFileSync(path.join(shared, 'marker'), 'from-host');
    const script = [
      'echo hostname=$(hostname)',
      'grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Uid|Gid|Groups):" /proc/self/status | sed "s/:[[:space:]]*/=/"',
      'echo nofile=$(grep "Max open files" /proc/self/limits | tr -s " " | cut -d" " -f4,5)',
      'touch /rootfile 2>/dev/null && echo root=rw || echo root=ro',
      'touch /tmp/x && echo tmp=rw || echo tmp=ro',
      'echo tmpfs=$(grep " /tmp " /proc/self/mountinfo | cut -d" " -f9)',
      'echo bind=$(cat /data/marker)',
      'touch /data/y 2>/dev/null && echo bindwrite=rw || echo bindwrite=ro',
      'echo keys=$(wc -c < /proc/keys)',
      'echo firmware=$(ls -A /sys/firmware | wc -l)',
      '(echo 1 > /proc/sys/vm/overcommit_memory) 2>/dev/null && echo procsys=rw || echo procsys=ro',
      'echo umask=$(umask)',
      'echo cwd=$(pwd)',
      'echo env=$FOO',
      'echo pid=$$',
    ].join('\n');
    const { status, out, err, container } = await run('probe', script, (s) => {
      s.hostname = 'native-box';
      s.root.readonly = true;
      s.process.cwd = '/tmp';
      s.process.env.push('FOO=bar');
      s.process.user = { uid: 1000, gid: 1000, additionalGids: [10, 20], umask: 0o027 };
      s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 100, hard: 200 }];
      s.process.noNewPrivileges = true;
      const caps = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
      s.process.capabilities = { bounding: caps, effective: caps, permitted: caps, inheritable: caps, ambient: ['CAP_NET_BIND_SERVICE'] };
      s.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
      s.mounts.push({ destination: '/data', type: 'bind', source: shared, options: ['rbind', 'ro'] });
    });
    expect(err).toBe('');
    expect(status).toBe(0);
    const p = parseProbe(out);
    expect(p.get('hostname')).toBe('native-box');
    // CAP_CHOWN (0), CAP_KILL (5), CAP_NET_BIND_SERVICE (10)
    const caps = ((1n << 0n) | (1n << 5n) | (1n << 10n)).toString(16).padStart(16, '0');
    const ambient = (1n << 10n).toString(16).padStart(16, '0');
    expect(p.get('CapBnd')).toBe(caps);
    expect(p.get('CapInh')).toBe(caps);
    // a non-root user keeps across execve only what is ambient (the binary has no file caps)
    expect(p.get('CapAmb')).toBe(ambient);
    expect(p.get('CapPrm')).toBe(ambient);
    expect(p.get('CapEff')).toBe(ambient);
    expect(p.get('NoNewPrivs')).toBe('1');
    expect(p.get('Seccomp')).toBe('0');
    expect(p.get('Uid')).toBe('1000\t1000\t1000\t1000');
    expect(p.get('Gid')).toBe('1000\t1000\t1000\t1000');
    expect(p.get('Groups')?.trim()).toBe('10 20');
    expect(p.get('nofile')).toBe('100 200');
    expect(p.get('root')).toBe('ro');
    expect(p.get('tmp')).toBe('rw');
    expect(p.get('tmpfs')).toBe('tmpfs');
    expect(p.get('bind')).toBe('from-host');
    expect(p.get('bindwrite')).toBe('ro');
    expect(p.get('keys')).toBe('0');
    expect(p.get('firmware')).toBe('0');
    expect(p.get('procsys')).toBe('ro');
    expect(p.get('umask')).toBe('0027');
    expect(p.get('cwd')).toBe('/tmp');
    expect(p.get('env')).toBe('bar');
    expect(p.get('pid')).toBe('1');
    await remove(container);
  });

  it('denies a syscall with EPERM through seccomp', async () => {
    const { status, out, container } = await run('seccomp', 'grep Seccomp: /proc/self/status; mkdir /tmp/d 2>&1; echo mkdir=$?; touch /tmp/f && echo touch=ok', (s) => {
      s.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: [] });
      s.linux.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64'],
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
      };
    });
    expect(status).toBe(0);
    expect(out).toMatch(/^Seccomp:\s+2\n/m);
    expect(out).toContain('Operation not permitted');
    expect(out).toContain('mkdir=1');
    expect(out).toContain('touch=ok');
    await remove(container);
  });

  it('applies an allow-list profile with argument rules', async () => {
    // ERRNO by default; everything busybox sh and echo need is allowed; personality only with arg 0
    const { status, out, container } = await run('seccomp-allow', 'echo hello', (s) => {
      s.linux.seccomp = {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 38,
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [
          {
            names: ['read', 'write', 'close', 'exit', 'exit_group', 'execve', 'brk', 'mmap', 'munmap', 'mprotect', 'arch_prctl', 'prctl', 'set_tid_address', 'set_robust_list', 'rseq', 'prlimit64', 'getrandom', 'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'getpid', 'getppid', 'getuid', 'geteuid', 'getgid', 'getegid', 'uname', 'fcntl', 'ioctl', 'newfstatat', 'fstat', 'stat', 'lstat', 'openat', 'open', 'access', 'readlink', 'getcwd', 'dup2', 'wait4', 'clone', 'fork', 'vfork', 'poll', 'ppoll', 'pselect6', 'select', 'futex', 'sysinfo', 'close_range', 'getdents64', 'lseek', 'statx', 'mremap', 'madvise', 'readlinkat', 'faccessat', 'faccessat2', 'getpgrp', 'setpgid', 'getpgid', 'sigaltstack', 'tgkill', 'kill', 'gettid'],
            action: 'SCMP_ACT_ALLOW',
          },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
        ],
      };
    });
    expect(out).toBe('hello\n');
    expect(status).toBe(0);
    await remove(container);
  });

  it('enforces a memory limit: the OOM killer ends the container (137) and counts it', async () => {
    const mib = 32 * 1024 * 1024;
    const { status, container } = await run('oom', 'a=xxxxxxxxxxxxxxxx; while :; do a=$a$a; done', (s) => {
      s.linux.resources = { ...s.linux.resources, memory: { limit: mib, swap: mib } };
    });
    expect(status).toBe(137);
    const memDir = path.join(V1, 'memory', env.cgroupParent, 'oom');
    expect(fs.readFileSync(path.join(memDir, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(mib));
    expect(readOomKillCount(memDir)).toBeGreaterThanOrEqual(1n);
    await remove(container);
  });

  it('enforces a pids limit', async () => {
    // the shell fails to fork its fifth process and gives up
    const { status, err, container } = await run('pids', 'for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; echo spawned-all', (s) => {
      s.linux.resources = { ...s.linux.resources, pids: { limit: 4 } };
    });
    expect(status).not.toBe(0);
    expect(err).toMatch(/can't fork/i);
    const dir = path.join(V1, 'pids', env.cgroupParent, 'pids');
    expect(fs.readFileSync(path.join(dir, 'pids.max'), 'utf8').trim()).toBe('4');
    expect(Number(/max (\d+)/.exec(fs.readFileSync(path.join(dir, 'pids.events'), 'utf8'))![1])).toBeGreaterThanOrEqual(1);
    await remove(container);
  });

  it('writes cpu settings to the cgroup', async () => {
    const b = bundle(env.workDir, 'cpu', ['true'], env.cgroupParent, (s) => {
      s.linux.resources = { ...s.linux.resources, cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' } };
    });
    const { container } = await env.backend.create({ id: 'cpu', namespace: NAMESPACE, bundle: b, stdio: output('cpu').stdio, options: {} });
    live.push(container);
    const read = (c: string, f: string) => fs.readFileSync(path.join(V1, c, env.cgroupParent, 'cpu', f), 'utf8').trim();
    expect(read('cpu', 'cpu.shares')).toBe('512');
    expect(read('cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(read('cpu', 'cpu.cfs_period_us')).toBe('100000');
    expect(read('cpuset', 'cpuset.cpus')).toBe('0');
    await remove(container);
    expect(cgroupDirsUnder(env.cgroupParent).filter((d) => d.endsWith('/cpu'))).toEqual([]);
  });

  it('maps ids in a user namespace', async () => {
    const { status, out, err, container } = await run('userns', 'echo uidmap=$(cat /proc/self/uid_map | tr -s " "); echo gidmap=$(cat /proc/self/gid_map | tr -s " "); echo id=$(id -u):$(id -g); ls /dev/null && echo devnull=ok', (s) => {
      s.linux.namespaces.push({ type: 'user' });
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    });
    expect(err).toBe('');
    expect(status).toBe(0);
    const p = parseProbe(out);
    expect(p.get('uidmap')).toBe(' 0 100000 65536');
    expect(p.get('gidmap')).toBe(' 0 100000 65536');
    expect(p.get('id')).toBe('0:0');
    expect(p.get('devnull')).toBe('ok');
    await remove(container);
  });

  it('lets no host fd into the container', async () => {
    const extra = fs.openSync(path.join(env.workDir, 'leak-check'), 'w'); // open in the runtime's process: must not leak
    try {
      const b = bundle(env.workDir, 'fds', ['sleep', '1000'], env.cgroupParent);
      const { container, pid } = await env.backend.create({ id: 'fds', namespace: NAMESPACE, bundle: b, stdio: { terminal: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }, options: {} });
      live.push(container);
      // before start: stdio, the exec fifo and the sync socket; nothing of the runtime's
      const leak = fs.readlinkSync(`/proc/self/fd/${extra}`);
      const held = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      expect(held).not.toContain(leak);
      expect(held.length).toBeLessThanOrEqual(5);
      await env.backend.start(container);
      await until(() => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep');
      expect(fs.readdirSync(`/proc/${pid}/fd`).sort()).toEqual(['0', '1', '2']);
      const spec = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).process;
      const eo = output('fds-exec');
      const exec = await env.backend.exec(container, { containerId: 'fds', execId: 'ls', bundle: b, spec: { ...spec, args: ['ls', '/proc/1/fd'] }, stdio: eo.stdio });
      expect((await exitOf(env.sub, exec.pid)).status).toBe(0);
      expect(eo.out().trim().split(/\s+/).sort()).toEqual(['0', '1', '2']);
      await remove(container);
    } finally {
      fs.closeSync(extra);
    }
  });

  it('keeps a mount whose target is a symlink out of the rootfs inside it', async () => {
    const outside = path.join(env.workDir, 'outside');
    fs.mkdirSync(outside);
    const source = path.join(env.workDir, 'escape-source');
    fs.mkdirSync(source);
    fs.writeFileSync(path.join(source, 'marker'), 'bound');
    const { status, out, container } = await run('escape', 'cat /abs/sub/marker; cat /rel/sub2/marker', (s) => {
      const rootfs = path.join(env.workDir, 'escape', 'rootfs');
      fs.symlinkSync(outside, path.join(rootfs, 'abs')); // absolute: the host's path
      fs.symlinkSync(`../../../../../../../..${outside}`, path.join(rootfs, 'rel')); // climbing out
      s.mounts.push({ destination: '/abs/sub', type: 'bind', source, options: ['rbind'] });
      s.mounts.push({ destination: '/rel/sub2', type: 'bind', source, options: ['rbind'] });
    });
    expect(status).toBe(0);
    expect(out).toBe('boundbound');
    // on the host: nothing created or mounted in the directory the links point at
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(outside);
    // the targets were made inside the rootfs instead
    expect(fs.existsSync(path.join(env.workDir, 'escape', 'rootfs', outside, 'sub'))).toBe(true);
    await remove(container);
  });

  it('applies recursive mount attributes ("rro", "rnoexec") to the bind mount and its submounts, as runc does', async () => {
    const source = path.join(env.workDir, 'rro-source');
    fs.mkdirSync(path.join(source, 'sub'), { recursive: true });
    fs.copyFileSync('/bin/true', path.join(source, 'sub', 'true'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'rro-sub', path.join(source, 'sub')]);
    try {
      fs.copyFileSync('/bin/true', path.join(source, 'sub', 'true'));
      fs.chmodSync(path.join(source, 'sub', 'true'), 0o755);
      const probe = (dir: string) => `touch ${dir}/x 2>/dev/null && echo ${dir}=rw || echo ${dir}=ro`;
      const { status, out, container } = await run('rro', [probe('/rro'), probe('/rro/sub'), probe('/ro'), probe('/ro/sub'), '/rro/sub/true 2>/dev/null && echo exec=yes || echo exec=no'].join('; '), (s) => {
        s.mounts.push({ destination: '/rro', type: 'bind', source, options: ['rbind', 'ro', 'rro', 'rnoexec'] });
        s.mounts.push({ destination: '/ro', type: 'bind', source, options: ['rbind', 'ro'] });
      });
      expect(status).toBe(0);
      // the plain read-only bind leaves the submount writable: the probe can tell the two apart
      expect(parseProbe(out)).toEqual(new Map([['/rro', 'ro'], ['/rro/sub', 'ro'], ['/ro', 'ro'], ['/ro/sub', 'rw'], ['exec', 'no']]));
      await remove(container);
      // the host's mounts keep their attributes: only the container's copies changed
      fs.writeFileSync(path.join(source, 'sub', 'host-write'), 'ok');
    } finally {
      execFileSync('umount', ['-l', path.join(source, 'sub')]);
    }
  });

  it('gives the container no way to overwrite the exec helper (CVE-2019-5736)', async () => {
    const helper = env.helperPath;
    const before = sha256(helper);
    const b = bundle(env.workDir, 'cve', ['sleep', '1000'], env.cgroupParent);
    // the attack's vector: an exec target whose interpreter is /proc/self/exe, i.e.
    // whatever binary the exec'ing process runs when it calls execve
    fs.writeFileSync(path.join(b, 'rootfs', 'evil'), '#!/proc/self/exe self-check\n', { mode: 0o755 });
    const { container } = await env.backend.create({ id: 'cve', namespace: NAMESPACE, bundle: b, stdio: output('cve').stdio, options: {} });
    live.push(container);
    await env.backend.start(container);
    const spec = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).process;
    const eo = output('cve-exec');
    const exec = await env.backend.exec(container, { containerId: 'cve', execId: 'evil', bundle: b, spec: { ...spec, args: ['/evil'] }, stdio: eo.stdio });
    expect((await exitOf(env.sub, exec.pid)).status).toBe(0);
    // what ran as /proc/self/exe is the sealed copy; writing it fails, the host file is untouched
    expect(JSON.parse(eo.out())).toEqual({ sealed: true, writeError: expect.any(String) });
    expect(JSON.parse(eo.out()).writeError).not.toBe('');
    expect(sha256(helper)).toBe(before);
    await remove(container);
  });
});

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
