/**
 * App containers' exits in a gVisor pod come from the sandbox's control socket
 * (src/backends/gvisor/sandbox-control.ts), with both runsc builds and so both socket layouts
 * (runsc 2022: abstract `@runsc-sandbox.<id>`; runsc 2024: `<root>/runsc-<id>.sock`): the pod
 * runs no `runsc wait` process, an app container's own exit code and a SIGKILL (137) reach
 * CRI, and a pod killed under its containers still ends them. Only tsshim's handler: the
 * reference cannot stop a gVisor pod (see cri-gvisor.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchCriContainerd, type CriContainerd } from './harness/cri-containerd.js';
import { containerConfig, podConfig, startContainer } from './harness/cri-pods.js';
import { readCmdline } from './harness/proc-fs.js';
import { waitUntil } from './harness/wait-until.js';
import { RUNSC_BACKPORTS, RUNSC_DEBIAN, type RunscBuild } from './gvisor-flags.js';

function defineControlWait(build: RunscBuild): void {
  describe.skipIf(build.missing !== undefined)(`gVisor app container exits from the sandbox's control socket: ${build.label}${build.missing ? ` (skipped: ${build.missing})` : ''}`, () => {
    let env: CriContainerd;
    beforeAll(async () => {
      env = await launchCriContainerd({ line: '1.6', runsc: build });
    });
    afterAll(async () => {
      const problems = await env?.cd.destroy();
      expect(problems ?? []).toEqual([]);
    });

    const runscWaits = () => env.cd.runscProcesses().filter((p) => readCmdline(p.pid).includes('wait'));
    const exitOf = async (id: string) =>
      waitUntil(
        async () => {
          const s = (await env.cri.containerStatus(id)).status;
          return s.state === 'CONTAINER_EXITED' ? s : undefined;
        },
        { timeoutMs: 30_000, what: `container ${id} to exit` },
      );

    it('no runsc wait process; exit code 7 and 137 after StopContainer reach CRI; the pod goes cleanly', async () => {
      const pod = podConfig(env, 'ctlwait');
      const sandboxId = await env.cri.runPodSandbox(pod, 'tsshim-gvisor');
      const exits7 = await startContainer(env, sandboxId, pod, containerConfig('exits7', ['sh', '-c', 'sleep 2; exit 7']));
      const sleeper = await startContainer(env, sandboxId, pod, containerConfig('sleeper', ['sleep', '3600']));
      // one sandbox, one gofer per container, and nothing waiting beside them
      expect(env.cd.runscProcesses().filter((p) => readCmdline(p.pid)[0] === 'runsc-sandbox')).toHaveLength(1);
      expect(runscWaits()).toEqual([]);
      expect((await exitOf(exits7)).exitCode).toBe(7);
      await env.cri.stopContainer(sleeper, 0);
      expect((await exitOf(sleeper)).exitCode).toBe(137);
      await env.cri.stopPodSandbox(sandboxId);
      await env.cri.removePodSandbox(sandboxId);
      await waitUntil(() => env.cd.runscProcesses().length === 0 && env.cd.shimProcesses().length === 0, { timeoutMs: 15_000, what: 'the pod to go' });
    });

    it('a sandbox killed under its app container: the container exits (137), nothing hangs', async () => {
      const pod = podConfig(env, 'ctlkill');
      const sandboxId = await env.cri.runPodSandbox(pod, 'tsshim-gvisor');
      const app = await startContainer(env, sandboxId, pod, containerConfig('app', ['sleep', '3600']));
      const sandboxProcess = env.cd.runscProcesses().find((p) => readCmdline(p.pid)[0] === 'runsc-sandbox');
      expect(sandboxProcess).toBeDefined();
      process.kill(sandboxProcess!.pid, 'SIGKILL');
      expect((await exitOf(app)).exitCode).toBe(137);
      await env.cri.stopPodSandbox(sandboxId);
      await env.cri.removePodSandbox(sandboxId);
      await waitUntil(() => env.cd.runscProcesses().length === 0 && env.cd.shimProcesses().length === 0, { timeoutMs: 15_000, what: 'the pod to go' });
    });
  });
}

defineControlWait(RUNSC_DEBIAN);
defineControlWait(RUNSC_BACKPORTS);
