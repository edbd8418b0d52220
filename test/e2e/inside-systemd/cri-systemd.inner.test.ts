/**
 * Pods as kubelet's systemd cgroup driver makes them (cgroup parent
 * `kubepods-burstable-pod<uid>.slice`) on a containerd whose handlers use the systemd cgroup
 * driver (runc: SystemdCgroup = true; tsshim: systemd_cgroup = true), run INSIDE a private
 * systemd (../systemd-driver.test.ts starts it and runs this file there). Every container must
 * be the transient unit `cri-containerd-<id>.scope` in the pod's slice, with its limits as
 * unit properties and in the cgroup files, and the units must be gone after removal. The
 * reference handler (containerd's runc shim + runc) and tsshim's default backend (native) run
 * the same checks.
 */
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchCriContainerd, type CriContainerd } from '../harness/cri-containerd.js';
import { containerConfig, containerPid, parentOf, podConfig, sandboxPid, startContainer } from '../harness/cri-pods.js';
import { isLive } from '../harness/proc-fs.js';
import { waitUntil } from '../harness/wait-until.js';
import { cgroupLayout, readProcessCgroups } from '../../../src/sys/cgroups.js';
import type { ContainerdLine } from '../harness/containerd-versions.js';

const inside = process.env.TSSHIM_E2E_INSIDE_SYSTEMD === '1';
const MiB = 1024 * 1024;
const layout = cgroupLayout();

async function unitProperties(unit: string, props: string[]): Promise<Record<string, string>> {
  const r = await execa('systemctl', ['show', unit, ...props.map((p) => `-p${p}`)], { reject: false, timeout: 10_000 });
  return Object.fromEntries(
    r.stdout
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** the memory limit file of a cgroup path, v1 or v2 */
function memoryLimit(path: string): number {
  const file = layout.mode === 'v2' ? join('/sys/fs/cgroup', path, 'memory.max') : join('/sys/fs/cgroup/memory', path, 'memory.limit_in_bytes');
  return Number(readFileSync(file, 'utf8').trim());
}

function defineSystemdPodSuite(line: ContainerdLine, handler: 'runc' | 'tsshim-native'): void {
  describe.skipIf(!inside)(`CRI e2e inside systemd: containerd ${line}, handler ${handler}, systemd cgroup driver`, () => {
    let env: CriContainerd;

    beforeAll(async () => {
      env = await launchCriContainerd({ line, systemdCgroup: true, cgroupRoot: 'kubepods.slice' });
    });

    afterAll(async () => {
      if (!env) return;
      expect(await env.cd.destroy()).toEqual([]);
    });

    it('each container is a scope unit in the pod slice, limits applied by systemd and in the files; units gone after removal', async () => {
      const uid = `${Date.now().toString(16)}_${Math.random().toString(16).slice(2, 10)}`;
      const slice = `kubepods-burstable-pod${uid}.slice`;
      const sliceDir = `/kubepods.slice/kubepods-burstable.slice/${slice}`;
      const pod = podConfig(env, 'sd');
      pod.linux!.cgroupParent = slice;
      const sandboxId = await env.cri.runPodSandbox(pod, handler);
      const app = await startContainer(
        env,
        sandboxId,
        pod,
        containerConfig('app', ['sh', '-c', 'echo app-up; sleep 3600'], { linux: { resources: { memoryLimitInBytes: 48 * MiB, cpuShares: 512 } } }),
      ).catch(async (err: Error) => {
        // systemd's side of a failed start, for diagnosis
        const journal = await execa('journalctl', ['--no-pager', '-q', '-n', '40'], { reject: false, timeout: 10_000 });
        throw new Error(`${err.message}\n--- journal ---\n${journal.stdout}`);
      });
      const units: string[] = [];
      for (const [id, pid] of [
        [sandboxId, await sandboxPid(env, sandboxId)],
        [app, await containerPid(env, app)],
      ] as const) {
        const unit = `cri-containerd-${id}.scope`;
        units.push(unit);
        const props = await unitProperties(unit, ['ActiveState', 'ControlGroup', 'Slice', 'Delegate']);
        expect(props, unit).toMatchObject({ ActiveState: 'active', ControlGroup: `${sliceDir}/${unit}`, Slice: slice, Delegate: 'yes' });
        const cg = readProcessCgroups(pid);
        const path = layout.mode === 'v2' ? cg.unified : cg.v1.memory;
        expect(path).toBe(`${sliceDir}/${unit}`);
      }
      const appUnit = units[1]!;
      const appPath = `${sliceDir}/${appUnit}`;
      expect(memoryLimit(appPath)).toBe(48 * MiB);
      const [memoryProp, cpuProp] = layout.mode === 'v2' ? ['MemoryMax', 'CPUWeight'] : ['MemoryLimit', 'CPUShares'];
      const limits = await unitProperties(appUnit, [memoryProp, cpuProp]);
      expect(limits).toEqual({ [memoryProp]: String(48 * MiB), [cpuProp]: layout.mode === 'v2' ? '20' : '512' });
      // an update goes to systemd too (CRI UpdateContainerResources)
      await env.cri.updateContainerResources(app, { memoryLimitInBytes: 64 * MiB, cpuShares: 512 });
      expect(memoryLimit(appPath)).toBe(64 * MiB);
      expect(await unitProperties(appUnit, [memoryProp])).toEqual({ [memoryProp]: String(64 * MiB) });
      // stats come from the scope's cgroup
      const stats = await env.cri.containerStats(app);
      expect(Number(stats.memory?.workingSetBytes?.value ?? 0)).toBeGreaterThan(0);
      // exec works in the scope
      const exec = await env.cri.execSync(app, ['sh', '-c', 'cat /proc/self/cgroup']);
      expect(exec.exitCode).toBe(0);

      const shimPid = parentOf(await sandboxPid(env, sandboxId));
      await env.cri.stopPodSandbox(sandboxId);
      await env.cri.removePodSandbox(sandboxId);
      await waitUntil(() => !isLive(shimPid), { timeoutMs: 15_000, what: 'the pod shim to exit' });
      for (const unit of units) {
        await waitUntil(async () => (await unitProperties(unit, ['LoadState'])).LoadState === 'not-found', { timeoutMs: 10_000, what: `${unit} to be gone` });
      }
      const hierarchies = layout.mode === 'v2' ? ['/sys/fs/cgroup'] : layout.v1.map((m) => m.mountPoint);
      for (const h of hierarchies) for (const unit of units) expect(existsSync(join(h, sliceDir, unit)), `${h} ${unit}`).toBe(false);
    });
  });
}

const lines = (process.env.TSSHIM_E2E_LINES?.split(',') ?? ['1.6', '2.1']) as ContainerdLine[];
for (const line of lines) {
  defineSystemdPodSuite(line, 'runc');
  defineSystemdPodSuite(line, 'tsshim-native');
}
