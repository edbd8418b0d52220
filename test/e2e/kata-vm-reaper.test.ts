/**
 * The kata hypervisor side as the shim runs it: this process is a child subreaper with the
 * shim's Reaper, and QEMU, virtiofsd and vhost-device-vsock are spawned with posix_spawn
 * (reaperLauncher), their exits learnt from the Reaper. One VM: boots to the agent answering,
 * then QEMU is killed: `exited` resolves through the Reaper and the helpers are stopped and
 * reaped. (test/e2e/kata-vm.test.ts covers the rest with the child_process launcher.)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hypervisorByName } from '../../src/backends/kata/hypervisor/hypervisor.js';
import { Reaper } from '../../src/sys/reaper.js';

const repo = resolve(__dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'tsshim-kata-reaper-'));
const image = join(work, 'img');

function children(): number[] {
  const out: number[] = [];
  for (const t of readdirSync(`/proc/${process.pid}/task`)) {
    for (const p of readFileSync(`/proc/${process.pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (p) out.push(Number(p));
  }
  return out;
}

beforeAll(() => {
  execFileSync('bash', [join(repo, 'scripts/build-kata-guest.sh'), '--agent', join(repo, 'test/fixtures/kata/echo-agent.mjs'), '--out', image], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

it('boots with posix_spawn under a Reaper; a killed QEMU is reaped, its helpers stopped and reaped', async () => {
  const reaper = Reaper.install();
  const hv = hypervisorByName('qemu', { reaper });
  const stateDir = join(work, 'vm');
  const sharedDir = join(work, 'shared');
  mkdirSync(sharedDir);
  const vm = await hv.start({
    id: 'reaper', stateDir, sharedDir, kernel: join(image, 'vmlinuz'), initrd: join(image, 'initrd.img'),
    kernelParams: [], memoryMiB: 512, vcpus: 1, extraArgs: [], accel: 'auto', bootTimeoutMs: 120_000,
  });
  try {
    const pids = readdirSync(stateDir).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(join(stateDir, f), 'utf8').split('\n')[0]));
    expect(pids).toHaveLength(3);
    for (const p of pids) expect(children()).toContain(p);
    process.kill(vm.pid, 'SIGKILL');
    expect((await vm.exited).status).toBe(137);
    for (const p of pids) expect(children()).not.toContain(p); // reaped, no zombies
    expect(readdirSync(stateDir).filter((f) => f.endsWith('.pid') || f.endsWith('.sock'))).toEqual([]);
  } finally {
    await vm.stop();
  }
}, 300_000);
