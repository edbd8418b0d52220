/**
 * NativeBackend through a container's whole life, against the real kernel: busybox
 * bundles, the C executor built from source, exits from the shim's Reaper. Everything
 * the backend made (state, cgroups, processes) is checked gone after delete and after
 * failed creates.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tty from 'node:tty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NativeBackend, NativeContainer } from '../../src/backends/native/backend.js';
import type { BackendContainer } from '../../src/core/backend.js';
import { ShimError } from '../../src/core/errors.js';
import {
  CapturedOutput,
  NAMESPACE,
  type NativeEnv,
  bundle,
  cgroupDirsUnder,
  exitOf,
  isRoot,
  setupNative,
  teardownNative,
} from './native-fixtures.js';

const V1 = '/sys/fs/cgroup';

describe.skipIf(!isRoot)('NativeBackend lifecycle', () => {
  let env: NativeEnv;
  const live: BackendContainer[] = [];
  const outputs: CapturedOutput[] = [];
  const output = (name: string) => {
    const o = new CapturedOutput(env.workDir, name);
    outputs.push(o);
    return o;
  };
  const create = (id: string, b: string, o: CapturedOutput) =>
    env.backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
  const stateDir = (id: string) => path.join(env.stateRoot, id);

  beforeAll(async () => {
    env = await setupNative('life');
  });

  afterAll(async () => {
    for (const c of live) await env.backend.delete(c, { force: true }).catch(() => undefined);
    teardownNative(env, outputs);
  });

  it('creates, starts, execs, pauses, updates, kills and deletes', async () => {
    const id = 'life';
    const b = bundle(env.workDir, id, ['sh', '-c', 'echo started; exec sleep 1000'], env.cgroupParent);
    const o = output(id);
    const { container, pid, consoleFd } = await create(id, b, o);
    live.push(container);
    expect(container).toBeInstanceOf(NativeContainer);
    expect(consoleFd).toBeUndefined();
    expect(pid).toBeGreaterThan(1);
    expect(container.cgroupPath).toBe(`${env.cgroupParent}/${id}`);
    expect(fs.existsSync(path.join(stateDir(id), 'state.json'))).toBe(true);
    expect(fs.existsSync(path.join(stateDir(id), 'exec.fifo'))).toBe(true);
    // created, not started: the init waits, nothing ran
    expect(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(`:memory:${env.cgroupParent}/${id}`);
    expect(o.out()).toBe('');

    await env.backend.start(container);
    expect(fs.existsSync(path.join(stateDir(id), 'exec.fifo'))).toBe(false);
    await expect(env.backend.start(container)).rejects.toMatchObject({ code: 'FailedPrecondition' });

    // the init has exec'd once sleep is its command
    await waitFor(() => readComm(pid) === 'sleep');
    expect(o.out()).toBe('started\n');
    expect(await env.backend.pids(container)).toEqual([pid]);

    const stats = await env.backend.stats(container);
    expect(stats.version).toBe(1);
    const data = stats.data as { memory?: { usage?: { usage: bigint } }; pids?: { current: bigint } };
    expect(data.memory?.usage?.usage ?? 0n).toBeGreaterThan(0n);
    expect(data.pids?.current).toBe(1n);

    await env.backend.pause(container);
    expect(fs.readFileSync(path.join(V1, 'freezer', env.cgroupParent, id, 'freezer.state'), 'utf8').trim()).toBe('FROZEN');
    await env.backend.resume(container);
    expect(fs.readFileSync(path.join(V1, 'freezer', env.cgroupParent, id, 'freezer.state'), 'utf8').trim()).toBe('THAWED');
    await expect(env.backend.resume(container)).rejects.toMatchObject({ code: 'FailedPrecondition' });

    await env.backend.update(container, { memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 50 } });
    expect(fs.readFileSync(path.join(V1, 'memory', env.cgroupParent, id, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(64 * 1024 * 1024));
    expect(fs.readFileSync(path.join(V1, 'pids', env.cgroupParent, id, 'pids.max'), 'utf8').trim()).toBe('50');
    await expect(env.backend.update(container, { memory: { limit: 'lots' } })).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('resources.memory.limit'),
    });

    const spec = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).process;
    const eo = output('life-exec');
    const exec = await env.backend.exec(container, { containerId: id, execId: 'e1', bundle: b, spec: { ...spec, args: ['sh', '-c', 'echo exec-$(hostname); cat /proc/self/cgroup | grep memory'] }, stdio: eo.stdio });
    expect((await exitOf(env.sub, exec.pid)).status).toBe(0);
    expect(eo.out()).toMatch(new RegExp(`^exec-runc\\n\\d+:memory:${env.cgroupParent}/${id}\\n$`));

    // an exec of a missing command fails with the reason and leaves no process
    const missing = await env.backend
      .exec(container, { containerId: id, execId: 'e2', bundle: b, spec: { ...spec, args: ['no-such-cmd'] }, stdio: eo.stdio })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ShimError);
    expect((missing as ShimError).message).toMatch(/^OCI runtime exec failed: exec: "no-such-cmd": executable file not found in \$PATH/);
    expect(await env.backend.pids(container)).toEqual([pid]);

    // a long exec, signalled by pid
    const sleeper = await env.backend.exec(container, { containerId: id, execId: 'e3', bundle: b, spec: { ...spec, args: ['sleep', '1000'] }, stdio: eo.stdio });
    expect((await env.backend.pids(container)).sort()).toEqual([pid, sleeper.pid].sort());
    await env.backend.killProcess(container, sleeper.pid, 9);
    expect((await exitOf(env.sub, sleeper.pid)).status).toBe(137);

    await expect(env.backend.delete(container, { force: false })).rejects.toMatchObject({ code: 'FailedPrecondition' });
    await env.backend.kill(container, 9, false);
    expect((await exitOf(env.sub, pid)).status).toBe(137);
    await expect(env.backend.kill(container, 9, false)).rejects.toMatchObject({ code: 'NotFound', message: /process already finished/ });
    await expect(env.backend.pause(container)).rejects.toMatchObject({ code: 'FailedPrecondition' });

    await env.backend.delete(container, { force: false });
    await env.backend.delete(container, { force: false }); // idempotent
    live.splice(live.indexOf(container), 1);
    expect(fs.existsSync(stateDir(id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
    await expect(env.backend.stats(container)).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('deletes a created container that never started; its init exits quietly', async () => {
    const id = 'never-started';
    const o = output(id);
    const { container, pid } = await create(id, bundle(env.workDir, id, ['sh', '-c', 'echo should-not-run'], env.cgroupParent), o);
    await env.backend.delete(container, { force: false });
    expect((await exitOf(env.sub, pid)).status).toBe(137);
    expect(o.out()).toBe('');
    expect(fs.existsSync(stateDir(id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
  });

  it('kills every process of the container with all=true', async () => {
    const id = 'kill-all';
    const o = output(id);
    const { container, pid } = await create(id, bundle(env.workDir, id, ['sh', '-c', 'sleep 1000 & sleep 1000 & echo ready; wait'], env.cgroupParent), o);
    live.push(container);
    await env.backend.start(container);
    await waitFor(() => o.out() === 'ready\n');
    expect((await env.backend.pids(container)).length).toBe(3);
    await env.backend.kill(container, 9, true);
    expect((await exitOf(env.sub, pid)).status).toBe(137);
    await env.backend.delete(container, { force: false });
    live.splice(live.indexOf(container), 1);
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
  });

  it('fails create of a missing executable with the reason and leaves nothing', async () => {
    const id = 'missing';
    const e = await create(id, bundle(env.workDir, id, ['nonexistent-cmd'], env.cgroupParent), output(id)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ShimError);
    expect((e as ShimError).message).toBe('OCI runtime create failed: exec: "nonexistent-cmd": executable file not found in $PATH');
    expect(fs.existsSync(stateDir(id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
  });

  it('words a missing or unexecutable path as runc does (Docker maps these words to exit codes 127 and 126)', async () => {
    const missing = await create('abs-missing', bundle(env.workDir, 'abs-missing', ['/nonexistent'], env.cgroupParent), output('abs-missing')).catch((x: unknown) => x);
    expect((missing as ShimError).message).toBe('OCI runtime create failed: exec: "/nonexistent": stat /nonexistent: no such file or directory');
    const denied = await create('abs-denied', bundle(env.workDir, 'abs-denied', ['/etc'], env.cgroupParent), output('abs-denied')).catch((x: unknown) => x);
    expect((denied as ShimError).message).toBe('OCI runtime create failed: exec: "/etc": permission denied');
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
  });

  it('rejects a bad spec naming the field, before anything is made', async () => {
    const id = 'bad-spec';
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => {
      s.process.args = [];
    });
    await expect(create(id, b, output(id))).rejects.toMatchObject({ code: 'InvalidArgument', message: 'process.args: must be a non-empty array of strings' });
    const b2 = bundle(env.workDir, `${id}-2`, ['true'], env.cgroupParent, (s) => {
      s.mounts.push({ destination: '/data', type: 'bind', source: '/nonexistent/source', options: ['rbind'] });
    });
    await expect(create(`${id}-2`, b2, output(`${id}-2`))).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringMatching(/^mounts\[\d+\]\.source: \/nonexistent\/source does not exist$/) });
    expect(fs.existsSync(stateDir(id))).toBe(false);
    expect(fs.existsSync(stateDir(`${id}-2`))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
  });

  it('fails a mount error in the helper with the path and errno, and leaves nothing', async () => {
    const id = 'bad-mount';
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => {
      s.mounts.push({ destination: '/x', type: 'nosuchfs', source: 'none', options: [] });
    });
    const e = await create(id, b, output(id)).catch((x: unknown) => x);
    expect((e as ShimError).message).toMatch(/^OCI runtime create failed: mount none \(nosuchfs\) on \/x: no such device$/);
    expect(fs.existsSync(stateDir(id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
  });

  it('rejects a second create of the same id as AlreadyExists and keeps the first', async () => {
    const id = 'dup';
    const b = bundle(env.workDir, id, ['sleep', '1000'], env.cgroupParent);
    const first = await create(id, b, output(id));
    live.push(first.container);
    await expect(create(id, b, output(`${id}-2`))).rejects.toMatchObject({ code: 'AlreadyExists' });
    expect(fs.existsSync(path.join(stateDir(id), 'state.json'))).toBe(true);
    await env.backend.delete(first.container, { force: true });
    live.splice(live.indexOf(first.container), 1);
    expect((await exitOf(env.sub, first.pid)).status).toBe(137);
  });

  it('cleans up after a crash from the state alone', async () => {
    const id = 'crash';
    const { pid } = await create(id, bundle(env.workDir, id, ['sleep', '1000'], env.cgroupParent), output(id));
    const fresh = new NativeBackend({ root: env.stateRoot, exits: env.reaper, helperPath: path.join(path.dirname(env.workDir), 'unused') });
    await fresh.cleanupAfterCrash({ id, namespace: NAMESPACE, bundle: path.join(env.workDir, id), options: {} });
    expect((await exitOf(env.sub, pid)).status).toBe(137);
    expect(fs.existsSync(stateDir(id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
    await fresh.cleanupAfterCrash({ id, namespace: NAMESPACE, bundle: path.join(env.workDir, id), options: {} });
  });

  it('gives init and exec a terminal and returns the pty masters', async () => {
    const id = 'tty';
    const b = bundle(env.workDir, id, ['sh', '-c', 'echo "init on $(tty)"; exec sleep 1000'], env.cgroupParent, (s) => {
      s.process.terminal = true;
    });
    const noStdio = { terminal: true, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' } as const;
    const { container, pid, consoleFd } = await env.backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: noStdio, options: {} });
    live.push(container);
    expect(consoleFd).toBeGreaterThan(2);
    const initTty = collect(new tty.ReadStream(consoleFd!));
    try {
      await env.backend.start(container);
      await waitFor(() => initTty.text().includes('init on /dev/pts/0'));
      const spec = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).process;
      const exec = await env.backend.exec(container, { containerId: id, execId: 'tty-exec', bundle: b, spec: { ...spec, terminal: true, args: ['sh', '-c', 'echo "exec on $(tty)"'] }, stdio: noStdio });
      expect(exec.consoleFd).toBeGreaterThan(2);
      const execTty = collect(new tty.ReadStream(exec.consoleFd!));
      try {
        await waitFor(() => execTty.text().includes('exec on /dev/pts/1'));
        expect((await exitOf(env.sub, exec.pid)).status).toBe(0);
      } finally {
        execTty.close();
      }
      await env.backend.kill(container, 9, true);
      expect((await exitOf(env.sub, pid)).status).toBe(137);
      await env.backend.delete(container, { force: false });
      live.splice(live.indexOf(container), 1);
    } finally {
      initTty.close();
    }
  });
});

function readComm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function collect(stream: tty.ReadStream): { text: () => string; close: () => void } {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => (text += d));
  stream.on('error', () => undefined); // EIO once the slave side is gone
  return { text: () => text, close: () => stream.destroy() };
}
