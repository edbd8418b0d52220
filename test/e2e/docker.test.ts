/**
 * Docker as an entry point: a private dockerd (Debian trixie's docker.io 26, unpacked, never
 * installed) on a private containerd 1.7, with three runtimes in one daemon:
 *
 *   runc    Docker's default, containerd's runc shim + runc: the reference
 *   tsshim  "runtimeType": "io.containerd.tsshim.v2" (native backend, the README's snippet)
 *   tsrun   "path": bin/tsrun: containerd's runc shim driving our runc-compatible CLI
 *
 * Each runtime goes through the same user-visible steps and must behave as runc does: run
 * (output, exit code), exec, logs, stop, rm, a memory limit in the cgroup, an OOM kill (137,
 * State.OOMKilled), live restore across a dockerd restart. Then nothing may be left (processes,
 * mounts, cgroups, dirs; dockerd runs with --iptables=false, so no firewall rule either).
 * Last, `docker run --rm busybox true` latency, tsshim against runc in the same daemon.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { configCachePath } from '../../src/shim/config-cache.js';
import { DOCKER_PLUGIN_DIRS, PrivateDockerd } from './harness/private-dockerd.js';
import { isLive, mountPointsUnder } from './harness/proc-fs.js';
import { BUSYBOX_IMAGE } from './harness/test-images.js';
import { waitUntil } from './harness/wait-until.js';

const RUNTIMES = ['runc', 'tsshim', 'tsrun'] as const;
type Runtime = (typeof RUNTIMES)[number];
const MiB = 1024 * 1024;

interface ContainerState {
  Status: string;
  Running: boolean;
  Pid: number;
  ExitCode: number;
  OOMKilled: boolean;
}

/** The memory limit file of a container's cgroup (cgroupfs driver: <parent>/<id>). */
function memoryLimitOf(cgroupParent: string, id: string): string {
  const unified = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const file = unified ? join('/sys/fs/cgroup', cgroupParent, id, 'memory.max') : join('/sys/fs/cgroup/memory', cgroupParent, id, 'memory.limit_in_bytes');
  return readFileSync(file, 'utf8').trim();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** iptables rules and chains that name Docker (none expected: --iptables=false) */
async function dockerFirewallRules(): Promise<string[]> {
  const save = await execa('iptables-save', [], { reject: false, timeout: 10_000 });
  return save.exitCode === 0 ? save.stdout.split('\n').filter((l) => /docker/i.test(l)) : [];
}

describe('Docker 26 (trixie) with runc, tsshim and tsrun in one daemon', () => {
  let engine: PrivateDockerd;
  let fixedDirsBefore: boolean[];
  let firewallBefore: string[];
  const docker = (args: string[], timeoutMs?: number) => engine.docker(args, { timeoutMs });
  const state = async (id: string) => (await engine.inspect<{ State: ContainerState }>(id)).State;
  /**
   * A container's state file, read as the runtime that wrote it: tsshim's native backend under
   * the root of the ConfigPath Docker passed; runc and tsrun (both run by the runc shim, which
   * Docker roots in <exec root>/runtime-runc) write state.json in their own formats.
   */
  const stateOf = (runtime: Runtime, id: string): Record<string, unknown> => {
    const dir = runtime === 'tsshim' ? join(engine.dir, 'native', 'moby', id) : join(engine.execRoot, 'runtime-runc', 'moby', id);
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as Record<string, unknown>;
  };
  /** a field only that runtime's state.json has: runc's, or our native executor's */
  const STATE_MARKER: Record<Runtime, string> = { runc: 'init_process_start', tsshim: 'initStartTime', tsrun: 'initStartTime' };

  beforeAll(async () => {
    fixedDirsBefore = DOCKER_PLUGIN_DIRS.map((d) => existsSync(d));
    firewallBefore = await dockerFirewallRules();
    engine = await PrivateDockerd.launch({ liveRestore: true });
  });

  afterAll(async () => {
    if (!engine) return;
    const dockerdPid = engine.pid;
    const problems = await engine.destroy();
    expect(problems).toEqual([]);
    // nothing left: processes, mounts, cgroups, dirs
    expect(dockerdPid !== undefined && isLive(dockerdPid)).toBe(false);
    expect(engine.containerd.shimProcesses()).toEqual([]);
    expect(mountPointsUnder(engine.containerd.dir)).toEqual([]);
    expect(engine.containerd.cgroupDirs()).toEqual([]);
    expect(existsSync(engine.containerd.dir)).toBe(false);
    expect(existsSync(configCachePath(engine.tsshimConfig))).toBe(false);
    expect(DOCKER_PLUGIN_DIRS.map((d) => existsSync(d))).toEqual(fixedDirsBefore);
    expect(await dockerFirewallRules()).toEqual(firewallBefore);
  });

  it('lists the three runtimes, runc the default', async () => {
    const info = JSON.parse(await engine.dockerOk(['info', '--format', '{{json .}}'])) as { DefaultRuntime: string; Runtimes: Record<string, unknown> };
    expect(info.DefaultRuntime).toBe('runc');
    expect(Object.keys(info.Runtimes)).toEqual(expect.arrayContaining([...RUNTIMES]));
  });

  for (const runtime of RUNTIMES) {
    describe(`--runtime ${runtime}`, () => {
      it('run: stdout, stderr and the exit code come back', async () => {
        const r = await docker(['run', '--rm', '--runtime', runtime, BUSYBOX_IMAGE, 'sh', '-c', 'echo to-stdout; echo to-stderr >&2; exit 7']);
        expect(r.exitCode).toBe(7);
        expect(r.stdout).toBe('to-stdout\n');
        expect(r.stderr).toBe('to-stderr\n');
      });

      it('run -d, exec, logs, stop, rm', async () => {
        const name = `life-${runtime}`;
        const script = 'echo started; trap "echo stopping; exit 0" TERM; while :; do sleep 0.1; done';
        const id = await engine.dockerOk(['run', '-d', '--name', name, '--runtime', runtime, BUSYBOX_IMAGE, 'sh', '-c', script]);
        expect((await state(id)).Running).toBe(true);
        // the container really runs under this runtime: its HostConfig says so, and its state
        // was written by that runtime
        expect((await engine.inspect<{ HostConfig: { Runtime: string } }>(id)).HostConfig.Runtime).toBe(runtime);
        expect(stateOf(runtime, id)).toHaveProperty(STATE_MARKER[runtime]);

        const exec = await docker(['exec', name, 'sh', '-c', 'echo from-exec; echo exec-err >&2; exit 5']);
        expect(exec.exitCode).toBe(5);
        expect(exec.stdout).toBe('from-exec\n');
        expect(exec.stderr).toBe('exec-err\n');
        const stdin = await engine.docker(['exec', '-i', name, 'cat'], { input: 'through-stdin' });
        expect(stdin.stdout).toBe('through-stdin');

        await waitUntil(async () => (await docker(['logs', name])).stdout.includes('started'), { timeoutMs: 10_000, what: 'the log line' });
        await engine.dockerOk(['stop', '-t', '10', name]);
        const stopped = await state(id);
        expect(stopped).toEqual(expect.objectContaining({ Running: false, Status: 'exited', ExitCode: 0, OOMKilled: false }));
        expect((await docker(['logs', name])).stdout).toBe('started\nstopping\n');

        await engine.dockerOk(['rm', name]);
        expect((await docker(['inspect', name])).exitCode).not.toBe(0);
      });

      it('run -m 32m: the limit is in the container\'s memory cgroup', async () => {
        const id = await engine.dockerOk(['run', '-d', '-m', '32m', '--runtime', runtime, BUSYBOX_IMAGE, 'sleep', '300']);
        try {
          expect((await engine.inspect<{ HostConfig: { Memory: number } }>(id)).HostConfig.Memory).toBe(32 * MiB);
          expect(memoryLimitOf(engine.cgroupParent, id)).toBe(String(32 * MiB));
        } finally {
          await engine.dockerOk(['rm', '-f', id]);
        }
      });

      it('over its memory limit: killed, exit 137, State.OOMKilled', async () => {
        // 16 MiB limit (no swap on the host); dd's 64 MiB block buffer cannot fit
        const r = await docker(['run', '--name', `oom-${runtime}`, '-m', '16m', '--runtime', runtime, BUSYBOX_IMAGE, 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1']);
        expect(r.exitCode).toBe(137);
        const s = await state(`oom-${runtime}`);
        expect(s.ExitCode).toBe(137);
        expect(s.OOMKilled).toBe(true);
        await engine.dockerOk(['rm', `oom-${runtime}`]);
      });
    });
  }

  it('live restore: dockerd restarts, every container keeps running, exec and stop still work', async () => {
    const ids = new Map<Runtime, string>();
    for (const runtime of RUNTIMES) {
      ids.set(runtime, await engine.dockerOk(['run', '-d', '--name', `live-${runtime}`, '--runtime', runtime, BUSYBOX_IMAGE, 'sleep', '300']));
    }
    const pidsBefore = new Map<Runtime, number>();
    for (const [runtime, id] of ids) pidsBefore.set(runtime, (await state(id)).Pid);

    await engine.stop();
    for (const pid of pidsBefore.values()) expect(isLive(pid)).toBe(true);
    await engine.start();

    for (const [runtime, id] of ids) {
      const s = await state(id);
      expect({ runtime, running: s.Running, pid: s.Pid }).toEqual({ runtime, running: true, pid: pidsBefore.get(runtime) });
      expect((await docker(['exec', id, 'echo', 'after-restart'])).stdout).toBe('after-restart\n');
      await engine.dockerOk(['stop', '-t', '1', id]);
      // sleep ignores SIGTERM as pid 1: the stop ends in SIGKILL after the timeout
      expect(await state(id)).toEqual(expect.objectContaining({ Running: false, ExitCode: 137 }));
      expect(isLive(pidsBefore.get(runtime)!)).toBe(false);
      await engine.dockerOk(['rm', id]);
    }
  });

  it('docker run --rm busybox true: tsshim latency against runc (median of 7, same daemon)', async () => {
    const times: Record<'runc' | 'tsshim', number[]> = { runc: [], tsshim: [] };
    await docker(['run', '--rm', '--runtime', 'tsshim', BUSYBOX_IMAGE, 'true']); // warm the page cache
    await docker(['run', '--rm', BUSYBOX_IMAGE, 'true']);
    for (let i = 0; i < 7; i++) {
      for (const runtime of ['runc', 'tsshim'] as const) {
        const t0 = process.hrtime.bigint();
        const r = await docker(['run', '--rm', '--runtime', runtime, BUSYBOX_IMAGE, 'true']);
        times[runtime].push(Number(process.hrtime.bigint() - t0) / 1e6);
        expect(r.exitCode).toBe(0);
      }
    }
    const runc = median(times.runc);
    const tsshim = median(times.tsshim);
    console.log(`docker run --rm busybox true: runc ${runc.toFixed(0)} ms, tsshim ${tsshim.toFixed(0)} ms, ratio ${(tsshim / runc).toFixed(2)}`);
    expect(tsshim).toBeGreaterThan(0);
  });
});
