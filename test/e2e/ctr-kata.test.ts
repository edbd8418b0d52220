/**
 * tsshim's kata backend under real containerd (1.6 and 2.1) with `ctr`: every container in
 * its own QEMU VM (software emulation on this host), booted from the guest the project builds
 * (Debian's kernel + our initramfs and agent). What a ctr user sees: output with stderr apart,
 * exit codes, stdin, terminals, exec, kill (137), delete — and proof that it ran in a VM.
 * Nothing may be left: no QEMU, virtiofsd or vsock device, no mount, no socket.
 *
 * No reference runs beside it: Kata's own shim is not installable here (nothing of Kata is in
 * Debian or npm), so the expectations are those the runc shim's suite sets for ctr users.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateContainerd } from './harness/private-containerd.js';
import type { TaskExitPayload } from './harness/containerd-api.js';
import { BUSYBOX_IMAGE } from './harness/test-images.js';
import { waitUntil } from './harness/wait-until.js';
import { mountPointsUnder, readCmdline } from './harness/proc-fs.js';
import { kataMissing, vmProcesses } from './kata-assets.js';


/** ctr's output through a pty: no CRs */
function ttyText(s: string): string {
  return s.replace(/[\r\0]/g, '');
}

function defineKataCtr(version: '1.6' | '2.1', full: boolean): void {
  const title = `ctr: containerd ${version}, tsshim + kata backend (QEMU)${kataMissing ? ` (skipped: ${kataMissing})` : ''}`;
  describe.skipIf(kataMissing !== undefined)(title, () => {
    let cd: PrivateContainerd;
    let config: string;
    let stateRoot: string;
    let n = 0;
    const newId = (tag: string) => `kata-${tag}-${++n}`;
    const run = (extra: string[], id: string, command: string[], cfg = config) => [
      'run',
      '--runtime',
      'io.containerd.tsshim.v2',
      '--runtime-config-path',
      cfg,
      ...extra,
      BUSYBOX_IMAGE,
      id,
      ...command,
    ];

    beforeAll(async () => {
      cd = await PrivateContainerd.launch({ version });
      stateRoot = join(cd.dir, 'kata');
      config = join(cd.dir, 'tsshim-kata.toml');
      writeFileSync(config, `backend = "kata"\n[kata]\nstate_root = "${stateRoot}"\nboot_timeout = 180\n`);
    }, 120_000);

    afterAll(async () => {
      if (!cd) return;
      expect(await cd.destroy()).toEqual([]);
      expect(vmProcesses(stateRoot)).toEqual([]);
      expect(mountPointsUnder(stateRoot)).toEqual([]);
    }, 120_000);

    const nothingLeft = async (what: string) => {
      await waitUntil(() => cd.shimProcesses().length === 0 && vmProcesses(stateRoot).length === 0, {
        what: `shim and VM to exit (${what})`,
        timeoutMs: 30_000,
      });
      expect(mountPointsUnder(stateRoot)).toEqual([]);
      const ns = existsSync(join(stateRoot, cd.namespace)) ? readdirSync(join(stateRoot, cd.namespace)) : [];
      expect(ns).toEqual([]);
    };

    it('runs in a VM: output, stderr apart, exit code; uname -r, /proc/cmdline, DMI and /proc/cpuinfo are the guest\'s', async () => {
      const script = 'echo out; echo err >&2; uname -r; cat /proc/cmdline; cat /sys/class/dmi/id/sys_vendor; grep -c "^flags.* hypervisor" /proc/cpuinfo; exit 7';
      const r = await cd.ctr(run(['--rm'], newId('run'), ['sh', '-c', script]), { timeoutMs: 240_000 });
      expect(r.exitCode, r.stderr).toBe(7);
      const [first, kernel, cmdline, vendor, hypervisorCpus] = r.stdout.split('\n');
      expect(first).toBe('out');
      expect(r.stderr).toContain('err\n');
      expect(r.stdout).not.toContain('err');
      expect(kernel).not.toBe(release());
      expect(cmdline).toContain('agent.port=');
      // the guest's own firmware and CPUs: a QEMU machine, CPUs flagged as running under a hypervisor
      expect(vendor).toBe('QEMU');
      expect(Number(hypervisorCpus)).toBeGreaterThan(0);
      await nothingLeft('run --rm');
    }, 300_000);

    if (!full) {
      it('smoke: exec output and exit code, SIGKILL is 137, delete leaves nothing', async () => {
        const id = newId('smoke');
        expect((await cd.ctr(run(['-d'], id, ['sleep', '600']), { timeoutMs: 240_000 })).exitCode).toBe(0);
        const exec = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo in-vm; exit 3'], { timeoutMs: 60_000 });
        expect([exec.exitCode, exec.stdout]).toEqual([3, 'in-vm\n']);
        expect((await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id])).exitCode).toBe(0);
        expect((await cd.api().wait(id)).exitStatus).toBe(137);
        expect((await cd.ctr(['task', 'delete', id])).exitCode).toBe(0);
        expect((await cd.ctr(['container', 'rm', id])).exitCode).toBe(0);
        await nothingLeft('smoke');
      }, 300_000);
      return;
    }

    it('forwards stdin, including its end', async () => {
      const id = newId('stdin');
      // typed once the task runs, as a user would (see CtrOptions.inputAfter about ctr's race)
      const r = await cd.ctr(run(['--rm'], id, ['sh', '-c', 'cat; echo done']), {
        input: 'line one\nline two\n',
        inputAfter: () =>
          waitUntil(async () => (await cd.listTasks()).some((t) => t.id === id && t.status === 'RUNNING'), { what: `${id} to run`, timeoutMs: 240_000 }),
        timeoutMs: 240_000,
      });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('line one\nline two\ndone\n');
    }, 300_000);

    it('runs with a terminal (-t): output, input, exit code', async () => {
      const r = await cd.ctr(run(['--rm', '-t'], newId('tty'), ['sh', '-c', '[ -t 0 ] && [ -t 1 ] && echo "stdio is a tty"; read x; echo "got $x"; exit 3']), {
        tty: true,
        input: 'typed\n',
        timeoutMs: 240_000,
      });
      expect(r.exitCode, r.stderr).toBe(3);
      expect(ttyText(r.stdout)).toContain('stdio is a tty\n');
      expect(ttyText(r.stdout)).toContain('got typed\n');
    }, 300_000);

    describe('a detached container', () => {
      let id: string;
      beforeAll(async () => {
        id = newId('det');
        const r = await cd.ctr(run(['-d'], id, ['sleep', '600']), { timeoutMs: 240_000 });
        expect(r.exitCode, r.stderr).toBe(0);
      }, 300_000);

      it('reports the VM as its pid, RUNNING', async () => {
        const task = await cd.api().getTask(id);
        expect(task.status).toBe('RUNNING');
        expect(readCmdline(task.pid)[0]).toMatch(/qemu/);
      });

      it('exec: stdout, stderr apart, exit code', async () => {
        const r = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo exec-out; echo exec-err >&2; exit 5'], { timeoutMs: 60_000 });
        expect(r.exitCode).toBe(5);
        expect(r.stdout).toBe('exec-out\n');
        expect(r.stderr).toContain('exec-err\n');
      }, 90_000);

      it('exec: terminal (-t) with its size', async () => {
        const r = await cd.ctr(['task', 'exec', '-t', '--exec-id', 'e2', id, 'sh', '-c', '[ -t 1 ] && echo tty-yes; exit 4'], { tty: true, timeoutMs: 60_000 });
        expect(r.exitCode).toBe(4);
        expect(ttyText(r.stdout)).toContain('tty-yes\n');
      }, 90_000);

      it('metrics come from the guest', async () => {
        const r = await cd.ctr(['task', 'metrics', id], { timeoutMs: 60_000 });
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/memory_usage_in_bytes|memory/i);
      }, 90_000);

      it('pause and resume', async () => {
        expect((await cd.ctr(['task', 'pause', id])).exitCode).toBe(0);
        expect((await cd.api().getTask(id)).status).toBe('PAUSED');
        expect((await cd.ctr(['task', 'resume', id])).exitCode).toBe(0);
        expect((await cd.api().getTask(id)).status).toBe('RUNNING');
      }, 90_000);

      it('SIGKILL is 137; delete leaves no VM, mount or socket', async () => {
        expect((await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id])).exitCode).toBe(0);
        expect((await cd.api().wait(id)).exitStatus).toBe(137);
        expect((await cd.ctr(['task', 'delete', id])).exitCode).toBe(0);
        expect((await cd.ctr(['container', 'rm', id])).exitCode).toBe(0);
        await nothingLeft('kill + delete');
      }, 90_000);
    });

    it('a shim killed with SIGKILL: containerd reports 137 and the delete action stops the VM, leaving nothing', async () => {
      const id = newId('shimkill');
      expect((await cd.ctr(run(['-d'], id, ['sleep', '600']), { timeoutMs: 240_000 })).exitCode).toBe(0);
      const qemu = (await cd.api().getTask(id)).pid;
      const shims = cd.shimProcessesFor(id).filter((p) => p.pid !== qemu && !vmProcesses(stateRoot).some((v) => v.startsWith(`${p.pid}:`)));
      expect(shims.length).toBeGreaterThan(0);
      const events = await cd.api().subscribe([`topic=="/tasks/exit"`]);
      try {
        for (const shim of shims) process.kill(shim.pid, 'SIGKILL');
        const exit = await events.next((e) => e.topic === '/tasks/exit' && e.payload.containerId === id);
        expect((exit.payload as unknown as TaskExitPayload).exitStatus).toBe(137);
      } finally {
        events.close();
      }
      await waitUntil(() => !existsSync(cd.bundleDir(id)), { what: 'bundle to be removed', timeoutMs: 60_000 });
      await cd.ctr(['container', 'rm', id]);
      await nothingLeft('shim SIGKILL');
    }, 300_000);

    it('a VM that dies under its containers: they exit with 255, nothing hangs, delete leaves nothing', async () => {
      const id = newId('vmdies');
      expect((await cd.ctr(run(['-d'], id, ['sleep', '600']), { timeoutMs: 240_000 })).exitCode).toBe(0);
      const started = await cd.api().subscribe([`topic=="/tasks/exec-started"`]);
      const exec = cd.ctr(['task', 'exec', '--exec-id', 'hang', id, 'sleep', '600'], { timeoutMs: 60_000 });
      try {
        await started.next((e) => e.topic === '/tasks/exec-started' && e.payload.containerId === id);
      } finally {
        started.close();
      }
      process.kill((await cd.api().getTask(id)).pid, 'SIGKILL');
      expect((await cd.api().wait(id)).exitStatus).toBe(255);
      const execResult = await exec;
      expect(execResult.exitCode, execResult.stderr).toBe(255);
      const del = await cd.ctr(['task', 'delete', id]);
      expect(del.exitCode, del.stderr).toBe(0);
      expect((await cd.ctr(['container', 'rm', id])).exitCode).toBe(0);
      await nothingLeft('VM killed');
    }, 300_000);

    const badAssets: Array<[string, string, RegExp]> = [
      ['a missing kernel', 'kernel = "/nonexistent/vmlinuz"', /guest kernel \/nonexistent\/vmlinuz does not exist/],
      ['an initrd without an agent', 'initrd = "@EMPTY@"\nboot_timeout = 40', /did not come up/],
    ];
    for (const [what, table, message] of badAssets) {
      it(`${what}: a clear error at Create within the deadline, nothing left running`, async () => {
        const id = newId('bad');
        const file = join(cd.dir, `${id}.toml`);
        const empty = join(cd.dir, 'empty-initrd.img');
        writeFileSync(empty, Buffer.alloc(512));
        writeFileSync(file, `backend = "kata"\n[kata]\nstate_root = "${stateRoot}"\n${table.replace('@EMPTY@', empty)}\n`);
        const r = await cd.ctr(run(['--rm'], id, ['true'], file), { timeoutMs: 120_000 });
        expect(r.exitCode).not.toBe(0);
        expect(r.stderr).toMatch(message);
        await cd.ctr(['container', 'rm', id]);
        await nothingLeft(what);
      }, 150_000);
    }
  });
}

defineKataCtr('1.6', true);
defineKataCtr('2.1', false);
