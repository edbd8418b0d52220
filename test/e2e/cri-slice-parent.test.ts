/**
 * Pods whose cgroup parent is a systemd slice, as kubelet's systemd cgroup driver sends it
 * (`kubepods-burstable-pod<uid>.slice`), on a containerd whose runtimes use the cgroupfs
 * driver (SystemdCgroup = false). containerd's CRI then writes linux.cgroupsPath as
 * `<slice>:cri-containerd:<id>`, and runc takes that as an ordinary relative cgroup path:
 * a directory of that name under its own cgroup, in every hierarchy. The reference handler
 * (containerd's runc shim) and tsshim's default backend (native) run the same checks in the
 * same file.
 *
 * containerd runs in a cgroup of its own under the instance's cgroup root, so the runtimes'
 * own cgroup (the base of a relative path) is the test's and nothing lands elsewhere.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerdLine } from './harness/containerd-versions.js';
import { launchCriContainerd, type CriContainerd } from './harness/cri-containerd.js';
import { containerConfig, containerPid, parentOf, podConfig, sandboxPid, startContainer } from './harness/cri-pods.js';
import { waitUntil } from './harness/wait-until.js';
import { isLive } from './harness/proc-fs.js';
import { cgroupLayout, readProcessCgroups, type ProcessCgroups } from '../../src/sys/cgroups.js';

const layout = cgroupLayout();

const MiB = 1024 * 1024;

function hostDir(controller: string, path: string): string {
  return join('/sys/fs/cgroup', controller, path);
}

function defineSliceParentSuite(line: ContainerdLine, handler: 'runc' | 'tsshim-native'): void {
  describe(`CRI e2e: containerd ${line}, handler ${handler}: pod cgroup parent is a systemd slice, cgroupfs driver`, () => {
    let env: CriContainerd;

    beforeAll(async () => {
      env = await launchCriContainerd({ line, daemonCgroup: true });
    });

    afterAll(async () => {
      if (!env) return;
      expect(await env.cd.destroy()).toEqual([]);
      expect(env.cd.cgroupDirs()).toEqual([]);
    });

    it('runs the pod where runc puts it (a directory named slice:cri-containerd:<id> under the runtime cgroup), with its limits, and leaves nothing', async () => {
      // kubelet names a pod's slice after its QoS class and uid (dashes become underscores)
      const uid = `${Date.now().toString(16)}_${Math.random().toString(16).slice(2, 10)}`;
      const slice = `kubepods-burstable-pod${uid}.slice`;
      const pod = podConfig(env, 'slice');
      pod.linux!.cgroupParent = slice;
      const sandboxId = await env.cri.runPodSandbox(pod, handler);
      const app = await startContainer(env, sandboxId, pod, containerConfig('app', ['sleep', '3600'], { linux: { resources: { memoryLimitInBytes: 48 * MiB } } }));
      const places: Array<{ id: string; cgroups: ProcessCgroups }> = [];
      for (const [id, pid] of [
        [sandboxId, await sandboxPid(env, sandboxId)],
        [app, await containerPid(env, app)],
      ] as const) {
        // the runtime ran as a child of the shim, in the shim's cgroups
        const shim = readProcessCgroups(parentOf(pid));
        const mine = readProcessCgroups(pid);
        const relative = `${slice}:cri-containerd:${id}`;
        expect(Object.keys(mine.v1).length).toBeGreaterThan(0);
        for (const [controller, path] of Object.entries(mine.v1)) {
          expect(path, controller).toBe(posix.join(shim.v1[controller]!, relative));
        }
        // the cgroup2 side: under the parent of the runtime's cgroup on a pure v2 host (runc's
        // fs2), at the root of a hybrid host's cgroup2 tree (runc's v1 manager)
        if (mine.unified !== undefined) expect(mine.unified).toBe(layout.mode === 'v2' ? posix.join(posix.dirname(shim.unified!), relative) : `/${relative}`);
        // under this containerd's own cgroup, so under the instance's cgroup root
        expect(mine.v1.memory!.startsWith(`/${env.cd.cgroupRoot}/containerd/`)).toBe(true);
        places.push({ id, cgroups: mine });
      }
      const appCg = places[1]!.cgroups;
      expect(Number(readFileSync(join(hostDir('memory', appCg.v1.memory!), 'memory.limit_in_bytes'), 'utf8'))).toBe(48 * MiB);
      // kubelet's view: stats come from that cgroup
      const stats = await env.cri.containerStats(app);
      expect(Number(stats.memory?.workingSetBytes?.value ?? 0)).toBeGreaterThan(0);

      const shimPid = parentOf(await sandboxPid(env, sandboxId));
      await env.cri.stopPodSandbox(sandboxId);
      await env.cri.removePodSandbox(sandboxId);
      await waitUntil(() => !isLive(shimPid), { timeoutMs: 15_000, what: 'the pod shim to exit' });
      for (const { id, cgroups } of places) {
        for (const [controller, path] of Object.entries(cgroups.v1)) {
          if (controller.startsWith('name=')) continue;
          expect(existsSync(hostDir(controller, path)), `${id} ${controller}`).toBe(false);
        }
      }
    });
  });
}

for (const line of ['1.6', '2.1'] as const) {
  defineSliceParentSuite(line, 'runc');
  defineSliceParentSuite(line, 'tsshim-native');
}
