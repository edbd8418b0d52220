/**
 * OCI hooks in the native backend, against the real kernel: every kind runs at its point
 * of the lifecycle, in order, with the state the runtime spec says (status, pid as the
 * hook's namespace sees it), in the namespace it belongs to; a failing or hanging
 * create-time hook fails create and leaves nothing behind; poststart/poststop failures
 * are warnings.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NativeBackend } from '../../src/backends/native/backend.js';
import { CapturedOutput, NAMESPACE, type NativeEnv, type Spec, bundle, cgroupDirsUnder, exitOf, isRoot, setupNative, teardownNative } from './native-fixtures.js';

interface HookRecord {
  ociVersion: string;
  id: string;
  status: string;
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
}

/** a hook that saves its stdin as <dir>/<kind>.json and appends its kind to <dir>/order */
function recorder(shell: string, dir: string, kind: string): Spec {
  return { path: shell, args: ['sh', '-c', `cat > ${dir}/${kind}.json; echo ${kind} >> ${dir}/order`], env: ['PATH=/bin:/usr/bin'] };
}

describe.skipIf(!isRoot)('native backend: OCI hooks', () => {
  let env: NativeEnv;
  const warnings: string[] = [];
  let backend: NativeBackend;
  const outputs: CapturedOutput[] = [];

  beforeAll(async () => {
    env = await setupNative('hooks');
    backend = new NativeBackend({ root: env.stateRoot, exits: env.reaper, helperPath: env.helperPath, onWarning: (w) => warnings.push(w.message) });
  });

  afterAll(() => {
    teardownNative(env, outputs);
  });

  const output = (name: string) => {
    const o = new CapturedOutput(env.workDir, name);
    outputs.push(o);
    return o;
  };

  it('runs all six kinds in order, each with its state, in its own namespace', async () => {
    const id = 'hooks-all';
    const hostDir = path.join(env.workDir, 'hooks-all-out');
    fs.mkdirSync(hostDir);
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => {
      // startContainer runs inside the container: it sees the host dir through this bind
      s.mounts.push({ destination: '/hookdir', type: 'bind', source: hostDir, options: ['rbind', 'rw'] });
      s.annotations = { 'org.example/test': 'hooks' };
      s.hooks = {
        prestart: [recorder('/bin/sh', hostDir, 'prestart')],
        createRuntime: [recorder('/bin/sh', hostDir, 'createRuntime')],
        // before pivot_root: the runtime's /bin/sh and the host's paths
        createContainer: [recorder('/bin/sh', hostDir, 'createContainer')],
        // inside the container: busybox's sh, the bind mount
        startContainer: [recorder('/bin/sh', '/hookdir', 'startContainer')],
        poststart: [recorder('/bin/sh', hostDir, 'poststart')],
        poststop: [recorder('/bin/sh', hostDir, 'poststop')],
      };
    });
    const o = output(id);
    const { container, pid } = await backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    const order = () => fs.readFileSync(path.join(hostDir, 'order'), 'utf8').trim().split('\n');
    expect(order()).toEqual(['prestart', 'createRuntime', 'createContainer']);
    await backend.start(container);
    expect((await exitOf(env.sub, pid)).status).toBe(0);
    await backend.delete(container, { force: false });
    expect(order()).toEqual(['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);

    const state = (kind: string) => JSON.parse(fs.readFileSync(path.join(hostDir, `${kind}.json`), 'utf8')) as HookRecord;
    for (const kind of ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']) {
      const s = state(kind);
      expect(s.id, kind).toBe(id);
      expect(s.bundle, kind).toBe(b);
      expect(s.annotations, kind).toEqual({ 'org.example/test': 'hooks' });
      expect(s.ociVersion, kind).toMatch(/^1\./);
    }
    expect(state('prestart')).toMatchObject({ status: 'creating', pid });
    expect(state('createRuntime')).toMatchObject({ status: 'creating', pid });
    // inside the container's new pid namespace the init is pid 1 (runc does the same)
    expect(state('createContainer')).toMatchObject({ status: 'creating', pid: 1 });
    expect(state('startContainer')).toMatchObject({ status: 'created', pid: 1 });
    expect(state('poststart')).toMatchObject({ status: 'running', pid });
    expect(state('poststop')).toMatchObject({ status: 'stopped', pid });
    expect(fs.existsSync(path.join(env.stateRoot, id))).toBe(false);
  });

  it('a failing createRuntime hook fails create with its output, and leaves nothing', async () => {
    const id = 'hooks-fail';
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => {
      s.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', 'echo nope >&2; exit 3'] }] };
    });
    const o = output(id);
    await expect(backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} })).rejects.toThrow(
      /createRuntime hook \/bin\/sh failed: exit status 3: nope/,
    );
    expect(fs.existsSync(path.join(env.stateRoot, id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent).filter((d) => d.endsWith(id))).toEqual([]);
  });

  it('a createContainer hook past its timeout fails create, and leaves nothing', async () => {
    const id = 'hooks-timeout';
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => {
      s.hooks = { createContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'sleep 30'], timeout: 1 }] };
    });
    const o = output(id);
    const started = Date.now();
    await expect(backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} })).rejects.toThrow(
      /createContainer hook \/bin\/sh: timed out after 1 s/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(fs.existsSync(path.join(env.stateRoot, id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent).filter((d) => d.endsWith(id))).toEqual([]);
  });

  it('a failing poststart hook is a warning: the container runs on', async () => {
    const id = 'hooks-poststart';
    const b = bundle(env.workDir, id, ['sh', '-c', 'echo ran'], env.cgroupParent, (s) => {
      s.hooks = { poststart: [{ path: '/bin/false' }] };
    });
    const o = output(id);
    const { container, pid } = await backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    await backend.start(container);
    expect((await exitOf(env.sub, pid)).status).toBe(0);
    expect(o.out()).toBe('ran\n');
    expect(warnings.some((w) => /poststart hook \/bin\/false failed: exit status 1/.test(w))).toBe(true);
    await backend.delete(container, { force: false });
  });

  it('a hook path must be absolute: the config error names the field', async () => {
    const id = 'hooks-bad';
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => {
      s.hooks = { prestart: [{ path: 'relative/hook' }] };
    });
    const o = output(id);
    await expect(backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} })).rejects.toThrow(/hooks\.prestart\[0\]\.path/);
    expect(fs.existsSync(path.join(env.stateRoot, id))).toBe(false);
  });
});
