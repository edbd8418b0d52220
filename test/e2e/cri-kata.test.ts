/**
 * CRI with the kata backend (handler tsshim-kata, containerd 1.6): a pod with two app
 * containers in ONE VM (one QEMU per pod, one shim), the pod IP answering from the host
 * (httpd in the pod, through the tap + tc mirred pod network), ExecSync, container logs,
 * ContainerStats from the guest, and a stop/remove that leaves no QEMU, virtiofsd, vsock
 * device, mount or tap, with the shim gone.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchCriContainerd, type CriContainerd } from './harness/cri-containerd.js';
import { containerConfig, podConfig, sandboxPid, containerPid, startContainer, parentOf } from './harness/cri-pods.js';
import type { PodSandboxConfig } from './harness/cri-api.js';
import { mountPointsUnder, readCmdline } from './harness/proc-fs.js';
import { waitUntil } from './harness/wait-until.js';
import { kataMissing, vmProcesses } from './kata-assets.js';

const HTTP_PORT = 8080;
const VM_MS = 300_000;


async function fetchText(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

describe.skipIf(kataMissing !== undefined)(`CRI e2e: containerd 1.6, handler tsshim-kata (QEMU)${kataMissing ? ` (skipped: ${kataMissing})` : ''}`, () => {
  let env: CriContainerd;
  let stateRoot: string;
  let pod: PodSandboxConfig;
  let sandboxId: string;
  let web: string;
  let worker: string;

  beforeAll(async () => {
    env = await launchCriContainerd({ line: '1.6' });
    stateRoot = join(env.cd.dir, 'kata');
    pod = podConfig(env, 'vm');
    sandboxId = await env.cri.runPodSandbox(pod, 'tsshim-kata', VM_MS);
    web = await startContainer(
      env,
      sandboxId,
      pod,
      containerConfig('web', ['sh', '-c', `mkdir -p /www && echo hello-from-vm > /www/index.html && echo web-started && exec httpd -f -p ${HTTP_PORT} -h /www`]),
    );
    worker = await startContainer(env, sandboxId, pod, containerConfig('worker', ['sh', '-c', 'echo worker-out; echo worker-err >&2; uname -r; exec sleep 3600']));
  }, VM_MS + 120_000);

  afterAll(async () => {
    if (!env) return;
    expect(await env.cd.destroy()).toEqual([]);
    expect(vmProcesses(stateRoot)).toEqual([]);
    expect(env.cd.shimProcesses()).toEqual([]);
  }, 120_000);

  it('runs the pod and both containers in ONE VM served by one shim', async () => {
    const pids = [await sandboxPid(env, sandboxId), await containerPid(env, web), await containerPid(env, worker)];
    expect(new Set(pids).size).toBe(1);
    expect(readCmdline(pids[0]!)[0]).toMatch(/qemu-system/);
    const qemus = vmProcesses(stateRoot).filter((p) => /qemu-system/.test(p));
    expect(qemus).toHaveLength(1);
    // the shim, and the VM's processes it started (they inherit its environment)
    const vmPids = new Set(vmProcesses(stateRoot).map((p) => Number(p.split(':')[0])));
    expect(env.cd.shimProcesses().map((p) => p.pid).filter((p) => !vmPids.has(p))).toEqual([parentOf(pids[0]!)]);
  });

  it('the pod IP answers from the host (httpd in the VM)', async () => {
    const ip = (await env.cri.podSandboxStatus(sandboxId)).status.network?.ip ?? '';
    expect(ip).not.toBe('');
    const res = await waitUntil(() => fetchText(`http://${ip}:${HTTP_PORT}/index.html`).catch(() => undefined), {
      what: 'httpd in the VM to answer',
      timeoutMs: 60_000,
    });
    expect(res).toEqual({ status: 200, body: 'hello-from-vm\n' });
  }, 90_000);

  it('ExecSync returns stdout, stderr and the exit code', async () => {
    const r = await env.cri.execSync(web, ['sh', '-c', 'echo exec-out; echo exec-err >&2; exit 3']);
    expect(r.stdout.toString()).toBe('exec-out\n');
    expect(r.stderr.toString()).toBe('exec-err\n');
    expect(r.exitCode).toBe(3);
  }, 90_000);

  it('container logs reach the CRI log path, both streams; the kernel is the guest\'s', async () => {
    const logPath = join(env.logDirectory('vm'), 'worker', '0.log');
    const text = await waitUntil(
      () => {
        const content = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
        return /stderr F worker-err/.test(content) && /stdout F worker-out/.test(content) ? content : undefined;
      },
      { what: `both lines in ${logPath}`, timeoutMs: 60_000 },
    );
    const kernel = /stdout F (\S+)$/m.exec(text.split('\n').filter((l) => l.includes('stdout F') && !l.includes('worker-out'))[0] ?? '')?.[1];
    expect(kernel).toBeDefined();
    expect(kernel).not.toBe(release());
  }, 90_000);

  it('ContainerStats has memory and CPU from the guest', async () => {
    const stats = await env.cri.containerStats(worker);
    expect(stats.memory?.workingSetBytes?.value ?? 0).toBeGreaterThan(0);
    expect(stats.cpu?.usageCoreNanoSeconds?.value ?? 0).toBeGreaterThan(0);
  }, 90_000);

  it('UpdateContainerResources changes the memory limit of the container\'s cgroup in the guest', async () => {
    const limit = 96 * 1024 * 1024;
    await env.cri.updateContainerResources(worker, { memoryLimitInBytes: limit });
    // the container's own cgroup at /sys/fs/cgroup (as runc mounts it without a cgroup namespace), else under its path
    const script = 'f=/sys/fs/cgroup/memory.max; [ -f $f ] || f=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max; cat $f';
    const r = await env.cri.execSync(worker, ['sh', '-c', script]);
    expect(r.stdout.toString().trim(), r.stderr.toString()).toBe(String(limit));
  }, 90_000);

  it('a container over its memory limit in the VM ends with reason OOMKilled, 137', async () => {
    const hog = await startContainer(
      env,
      sandboxId,
      pod,
      containerConfig('hog', ['sh', '-c', 'echo hog-started; exec tail /dev/zero'], { linux: { resources: { memoryLimitInBytes: 32 * 1024 * 1024 } } }),
    );
    const status = await waitUntil(
      async () => {
        const st = await env.cri.containerStatus(hog);
        return st.status.state === 'CONTAINER_EXITED' ? st : undefined;
      },
      { what: 'the hog to be OOM-killed', timeoutMs: 120_000 },
    );
    expect(status.status.reason).toBe('OOMKilled');
    expect(status.status.exitCode).toBe(137);
    await env.cri.removeContainer(hog);
  }, 180_000);

  it('stop and remove leave no VM, mount or tap, and the shim exits', async () => {
    await env.cri.stopPodSandbox(sandboxId, 120_000);
    await env.cri.removePodSandbox(sandboxId, 120_000);
    await waitUntil(() => vmProcesses(stateRoot).length === 0 && env.cd.shimProcesses().length === 0, {
      what: 'VM and shim to exit',
      timeoutMs: 60_000,
    });
    expect(mountPointsUnder(stateRoot)).toEqual([]);
    expect(existsSync(join(stateRoot, 'k8s.io')) ? readdirSync(join(stateRoot, 'k8s.io')) : []).toEqual([]);
  }, 200_000);
});
