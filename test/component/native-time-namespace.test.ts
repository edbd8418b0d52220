/**
 * Time namespaces in the native backend: a new one with linux.timeOffsets (the helper
 * unshares it and writes the offsets before the container process exists), seen by the
 * init and by an exec (which joins it), and offsets without a new namespace refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CapturedOutput, NAMESPACE, type NativeEnv, bundle, exitOf, isRoot, forceRemove, setupNative, teardownNative } from './native-fixtures.js';

const hasTimeNs = fs.existsSync('/proc/self/ns/time');
const DAY = 86_400;

describe.skipIf(!isRoot || !hasTimeNs)('native backend: time namespace', () => {
  let env: NativeEnv;
  const outputs: CapturedOutput[] = [];
  const output = (name: string) => {
    const o = new CapturedOutput(env.workDir, name);
    outputs.push(o);
    return o;
  };

  beforeAll(async () => {
    env = await setupNative('timens');
  });

  afterAll(() => teardownNative(env, outputs));

  it('a new time namespace with a boottime offset, for the init and for an exec', async () => {
    const id = 'timens';
    const hostUptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const b = bundle(env.workDir, id, ['sh', '-c', 'cut -d" " -f1 /proc/uptime; readlink /proc/self/ns/time; exec sleep 1000'], env.cgroupParent, (s) => {
      s.linux.namespaces.push({ type: 'time' });
      s.linux.timeOffsets = { boottime: { secs: 1000 * DAY, nanosecs: 0 } };
    });
    const o = output(id);
    const { container, pid } = await env.backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    try {
      await env.backend.start(container);
      for (let i = 0; i < 200 && o.out().split('\n').length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      const [uptime, nsLink] = o.out().trim().split('\n');
      expect(Number(uptime)).toBeGreaterThanOrEqual(1000 * DAY + hostUptime);
      expect(nsLink).toMatch(/^time:\[\d+\]$/);
      expect(nsLink).not.toBe(fs.readlinkSync('/proc/self/ns/time'));

      const spec = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8')).process;
      const eo = output(`${id}-exec`);
      const exec = await env.backend.exec(container, { containerId: id, execId: 'e1', bundle: b, spec: { ...spec, args: ['sh', '-c', 'cut -d" " -f1 /proc/uptime; readlink /proc/self/ns/time'] }, stdio: eo.stdio });
      expect((await exitOf(env.sub, exec.pid)).status).toBe(0);
      const [execUptime, execNs] = eo.out().trim().split('\n');
      expect(Number(execUptime)).toBeGreaterThanOrEqual(1000 * DAY + hostUptime);
      expect(execNs).toBe(nsLink);
    } finally {
      await forceRemove(env, container, pid);
    }
  });

  it('offsets without a new time namespace are refused, naming the field', async () => {
    const id = 'timens-bad';
    const b = bundle(env.workDir, id, ['true'], env.cgroupParent, (s) => {
      s.linux.timeOffsets = { monotonic: { secs: 5 } };
    });
    const o = output(id);
    await expect(env.backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} })).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringContaining('linux.timeOffsets'),
    });
    expect(fs.existsSync(path.join(env.stateRoot, id))).toBe(false);
  });
});
