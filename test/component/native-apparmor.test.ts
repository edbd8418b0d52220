/**
 * AppArmor in the native backend. On hosts where AppArmor is on, containerd names a profile
 * for every CRI container (cri-containerd.apparmor.d); the helper changes to it at execve by
 * writing `exec <profile>` to the container process's attr file under /proc, as runc does.
 * Where AppArmor is off, the field is ignored, as runc does.
 *
 * This machine's kernel has no AppArmor. Here the tests check that a profile is ignored and,
 * with the backend told that AppArmor is on, that the helper's attempt to apply it fails the
 * create with a clear error and leaves nothing behind. The profile taking effect is tested
 * where AppArmor is on (skipped here).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NativeBackend } from '../../src/backends/native/backend.js';
import { apparmorEnabled } from '../../src/backends/native/compile.js';
import { CapturedOutput, NAMESPACE, type NativeEnv, bundle, cgroupDirsUnder, exitOf, forceRemove, isRoot, setupNative, teardownNative } from './native-fixtures.js';

const hostHasAppArmor = apparmorEnabled();

describe.skipIf(!isRoot)('native backend: AppArmor', () => {
  let env: NativeEnv;
  const outputs: CapturedOutput[] = [];
  const output = (name: string) => {
    const o = new CapturedOutput(env.workDir, name);
    outputs.push(o);
    return o;
  };

  beforeAll(async () => {
    env = await setupNative('apparmor');
  });

  afterAll(() => teardownNative(env, outputs));

  async function run(backend: NativeBackend, id: string, profile: string, args: string[]): Promise<{ status: number; out: string }> {
    const b = bundle(env.workDir, id, args, env.cgroupParent, (s) => (s.process.apparmorProfile = profile));
    const o = output(id);
    const { container, pid } = await backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    try {
      await backend.start(container);
      const { status } = await exitOf(env.sub, pid);
      return { status, out: o.out() };
    } finally {
      await forceRemove({ ...env, backend }, container, pid);
    }
  }

  it.skipIf(hostHasAppArmor)('a profile on a host without AppArmor is ignored, as runc does', async () => {
    expect(await run(env.backend, 'aa-ignored', 'tsshim-test-profile', ['sh', '-c', 'echo ran'])).toEqual({ status: 0, out: 'ran\n' });
  });

  it.skipIf(!hostHasAppArmor)('where AppArmor is on, the process runs under the profile', async () => {
    const { status, out } = await run(env.backend, 'aa-unconfined', 'unconfined', ['cat', '/proc/self/attr/current']);
    expect(status).toBe(0);
    expect(out.trim()).toBe('unconfined');
  });

  it('a profile the kernel cannot apply fails the create, naming it, and leaves nothing behind', async () => {
    // here the kernel has no AppArmor at all; where it has, the profile does not exist
    const told = new NativeBackend({ root: env.stateRoot, exits: env.reaper, helperPath: env.helperPath, lsm: { apparmor: true, selinux: false } });
    const id = 'aa-refused';
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => (s.process.apparmorProfile = 'tsshim-no-such-profile'));
    await expect(told.create({ id, namespace: NAMESPACE, bundle: b, stdio: output(id).stdio, options: {} })).rejects.toThrow(
      /AppArmor profile "tsshim-no-such-profile"/,
    );
    expect(fs.existsSync(path.join(env.stateRoot, id))).toBe(false);
    expect(cgroupDirsUnder(env.cgroupParent).filter((d) => d.endsWith(`/${id}`))).toEqual([]);
  });
});
