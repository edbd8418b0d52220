/**
 * Device rules on cgroup2: the native backend attaches an eBPF device program (compiled
 * by device-filter.ts, loaded by the helper) to the container's cgroup2 directory. This
 * host is hybrid, where the v1 devices controller enforces the same rules too; so the
 * test opens the v1 controller wide after create and checks that the eBPF program alone
 * still keeps a device out that no rule allows, and lets the allowed ones in.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupLayout } from '../../src/sys/cgroups.js';
import { CapturedOutput, NAMESPACE, type NativeEnv, bundle, exitOf, isRoot, forceRemove, setupNative, teardownNative } from './native-fixtures.js';

const layout = isRoot ? cgroupLayout() : undefined;
const hasUnified = !!layout?.unified;

describe.skipIf(!isRoot || !hasUnified)('native backend: cgroup2 device filter (eBPF)', () => {
  let env: NativeEnv;
  const outputs: CapturedOutput[] = [];

  beforeAll(async () => {
    env = await setupNative('devices');
  });

  afterAll(() => {
    teardownNative(env, outputs);
  });

  it('denies a device no rule allows and allows the default ones, with the v1 controller open', async () => {
    const id = 'devfilter';
    const b = bundle(env.workDir, id, ['sleep', '1000'], env.cgroupParent, (s) => {
      // made in /dev by mknod (allowed: "c *:* m"), but no rule lets it be opened
      s.linux.devices = [{ path: '/dev/loop-control', type: 'c', major: 10, minor: 237, fileMode: 0o666 }];
      s.linux.resources = { devices: [{ allow: false, access: 'rwm' }] };
    });
    const o = new CapturedOutput(env.workDir, id);
    outputs.push(o);
    const { container, pid } = await env.backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    try {
      await env.backend.start(container);
      // where the v1 devices controller is mounted, allow everything there: what is
      // denied from now on, the eBPF program denied
      if (layout!.mode !== 'v2') {
        const v1 = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => /:devices:/.test(l))?.split(':')[2];
        if (v1) fs.writeFileSync(path.join('/sys/fs/cgroup/devices', v1, 'devices.allow'), 'a');
      }
      const spec = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).process;
      const eo = new CapturedOutput(env.workDir, `${id}-exec`);
      outputs.push(eo);
      const script = 'head -c 4 /dev/zero | wc -c; (: > /dev/loop-control) 2>&1 || echo denied; ls -l /dev/loop-control | cut -c1';
      const exec = await env.backend.exec(container, { containerId: id, execId: 'e1', bundle: b, spec: { ...spec, args: ['sh', '-c', script] }, stdio: eo.stdio });
      expect((await exitOf(env.sub, exec.pid)).status).toBe(0);
      const lines = eo.out().trim().split('\n');
      expect(lines[0]!.trim()).toBe('4');
      expect(lines.join('\n')).toMatch(/Operation not permitted/);
      expect(lines).toContain('denied');
      expect(lines.at(-1)).toBe('c');
    } finally {
      await forceRemove(env, container, pid);
    }
  });

  it('an update with the same device rules goes through; other rules are refused, not half applied', async () => {
    const id = 'devupdate';
    const rules = [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }];
    const b = bundle(env.workDir, id, ['sleep', '1000'], env.cgroupParent, (s) => {
      s.linux.resources = { devices: rules };
    });
    const o = new CapturedOutput(env.workDir, id);
    outputs.push(o);
    const { container, pid } = await env.backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    try {
      await env.backend.start(container);
      // what containerd's CRI does: the whole resources again, with a new memory limit
      await env.backend.update(container, { devices: rules, memory: { limit: 64 * 1024 * 1024 } });
      await expect(env.backend.update(container, { devices: [{ allow: true, access: 'rwm' }] })).rejects.toMatchObject({
        code: 'Unimplemented',
        message: expect.stringMatching(/resources\.devices: changing the device rules/),
      });
    } finally {
      await forceRemove(env, container, pid);
    }
  });
});
