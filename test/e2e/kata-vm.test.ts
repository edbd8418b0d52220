/**
 * The kata backend's hypervisor side with real QEMU (software emulation here), Debian's kernel
 * and our initramfs (scripts/build-kata-guest.sh): boot to the agent answering over hybrid vsock
 * through the guest init's relay, stop leaving nothing, a VM that dies, cleanup after a lost
 * shim, and bad guest assets failing clearly within the deadline. Prints the initrd size and
 * the boot time against the floor (the same QEMU and kernel, an init that powers off at once).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ShimError } from '../../src/core/errors.js';
import { connectPipe, type ByteStream } from '../../src/sys/uv-pipe.js';
import { defaultGuestAssets } from '../../src/backends/kata/guest-assets.js';
import { cleanupVmState, hypervisorByName, type RunningVm, type VmSpec } from '../../src/backends/kata/hypervisor/hypervisor.js';
import type { QemuHypervisor } from '../../src/backends/kata/hypervisor/qemu.js';

const repo = resolve(__dirname, '../..');
const assets = defaultGuestAssets(repo);
const BOOT_TIMEOUT_MS = 120_000;
const work = mkdtempSync(join(tmpdir(), 'tsshim-kata-vm-'));
const images = { echo: join(work, 'img-echo'), noAgent: join(work, 'img-none'), silent: join(work, 'img-silent') };
const hv = hypervisorByName('qemu') as QemuHypervisor;
const started: RunningVm[] = [];
let vmCount = 0;

function buildGuest(...args: string[]): void {
  execFileSync('bash', [join(repo, 'scripts/build-kata-guest.sh'), ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

const step = (m: string) => process.env.TSSHIM_E2E_VERBOSE && process.stderr.write(`kata-vm: ${new Date().toISOString()} ${m}\n`);

function spec(over: Partial<VmSpec> = {}): VmSpec {
  const id = `vm${++vmCount}`;
  const stateDir = join(work, id);
  const sharedDir = join(work, `${id}-shared`);
  execFileSync('mkdir', ['-p', sharedDir]);
  return {
    id,
    stateDir,
    kernel: join(images.echo, 'vmlinuz'),
    initrd: join(images.echo, 'initrd.img'),
    kernelParams: ['agent.port=1024'],
    memoryMiB: 512,
    vcpus: 1,
    sharedDir,
    extraArgs: [],
    accel: 'auto',
    bootTimeoutMs: BOOT_TIMEOUT_MS,
    ...over,
  };
}

/** pids of running (not zombie) processes whose command line mentions `needle` */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (cmd.includes(needle) && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) found.push(Number(e));
    } catch {
      // gone
    }
  }
  return found;
}

function socketsIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.sock'));
  } catch {
    return [];
  }
}

async function expectNothingLeft(s: VmSpec): Promise<void> {
  // the exits have been awaited; the processes are reaped
  expect(processesMentioning(s.stateDir)).toEqual([]);
  expect(socketsIn(s.stateDir)).toEqual([]);
  expect(readdirSync(s.stateDir).filter((f) => f.endsWith('.pid'))).toEqual([]);
}

/** CONNECT <port> on the hybrid vsock socket, then the byte stream */
function hybridConnect(path: string, port: number): Promise<{ stream: ByteStream; rest: Buffer }> {
  return new Promise((resolvePromise, reject) => {
    const stream = connectPipe(path);
    let got = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      const nl = got.indexOf(10);
      if (nl < 0) return;
      stream.off('error', reject);
      stream.on('data', () => {}); // replaced by the caller
      const line = got.subarray(0, nl).toString();
      if (!line.startsWith('OK ')) reject(new Error(`handshake answered ${line}`));
      else resolvePromise({ stream, rest: got.subarray(nl + 1) });
    };
    stream.on('error', reject);
    stream.on('connect', () => stream.write(Buffer.from(`CONNECT ${port}\n`)));
    stream.on('data', onData);
  });
}

function readBytes(stream: ByteStream, first: Buffer, n: number): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    let got = first;
    const check = () => {
      if (got.length >= n) resolvePromise(got);
    };
    stream.on('data', (c) => {
      got = Buffer.concat([got, c]);
      check();
    });
    stream.on('close', () => reject(new Error(`stream closed after ${got.length} of ${n} bytes`)));
    stream.on('error', reject);
    check();
  });
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function readAll(stream: ByteStream, first: Buffer): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const chunks = [first];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => resolvePromise(Buffer.concat(chunks)));
    stream.on('close', () => reject(new Error(`stream closed without an end after ${Buffer.concat(chunks).length} bytes`)));
    stream.on('error', reject);
  });
}

beforeAll(() => {
  for (const f of [assets.vhostDeviceVsock, assets.virtiofsd]) {
    if (!existsSync(f)) throw new Error(`${f} missing: run scripts/install-deps.sh (scripts/fetch-kata.sh)`);
  }
  buildGuest(); // the default image: also builds the cached base the variants share
  buildGuest('--agent', join(repo, 'test/fixtures/kata/echo-agent.mjs'), '--out', images.echo);
  buildGuest('--no-agent', '--out', images.noAgent);
  buildGuest('--agent', join(repo, 'test/fixtures/kata/silent-agent.mjs'), '--out', images.silent);
}, 600_000);

afterEach(async () => {
  await Promise.all(started.splice(0).map((vm) => vm.stop()));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('kata VM on QEMU', () => {
  let answerMs = 0;

  it('boots to the agent answering over hybrid vsock, relays bytes both ways (a half-close by the agent too), and stop() leaves nothing', async () => {
    const s = spec();
    const t0 = Date.now();
    step('starting');
    const vm = await hv.start(s);
    step('started');
    answerMs = Date.now() - t0;
    started.push(vm);
    expect(vm.agentSocket.startsWith(s.stateDir)).toBe(true);
    expect(processesMentioning(s.stateDir).length).toBe(3);

    const console = readFileSync(vm.consoleLog, 'utf8');
    const hostRelease = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    expect(console).toMatch(/tsshim-init: Linux (\S+-amd64) .*Debian/);
    expect(console).not.toContain(`Linux ${hostRelease} `);

    // two connections at once, each its own relay; 300 KB through one of them (several
    // buffers' worth in the guest's relay), the echo read back in full
    const a = await hybridConnect(vm.agentSocket, 1024);
    step('a connected');
    const b = await hybridConnect(vm.agentSocket, 1024);
    const payload = Buffer.alloc(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const echoedA = readBytes(a.stream, a.rest, payload.length);
    const echoedB = readBytes(b.stream, b.rest, 12);
    a.stream.write(payload);
    b.stream.write(Buffer.from('hello from b'));
    expect((await echoedA).equals(payload)).toBe(true);
    step('a echoed');
    expect((await echoedB).toString()).toBe('hello from b');
    a.stream.destroy();
    b.stream.destroy();

    // the agent half-closes: the relay passes its last bytes on and keeps the other direction
    // open (what the host writes afterwards still reaches the agent). vhost-device-vsock 0.3
    // forwards no half-close to the host's unix socket (no end seen there) and ends the whole
    // connection when the host half-closes, so those two cannot be shown through it.
    const h = await hybridConnect(vm.agentSocket, 1024);
    step('h connected');
    const last = readBytes(h.stream, h.rest, 'closing my side\n'.length);
    h.stream.write(Buffer.from('HALF-CLOSE\n'));
    expect((await last).toString()).toBe('closing my side\n');
    step('h got the last bytes');
    h.stream.write(Buffer.from('still open'));
    await waitFor(() => readFileSync(vm.consoleLog, 'utf8').includes('read after half-close: still open'), 30_000);
    h.stream.destroy();

    await vm.stop();
    await vm.stop(); // idempotent
    await vm.exited;
    await expectNothingLeft(s);
  }, 300_000);

  it('measures the floor: the same QEMU and kernel booting floor.img to power-off', async () => {
    const s = spec({ initrd: join(images.echo, 'floor.img') });
    const floor = await hv.runUntilExit(s);
    expect(floor.status).toBe(0);
    await expectNothingLeft(s);
    const initrdMiB = statSync(join(images.echo, 'initrd.img')).size / 2 ** 20;
    const floorKiB = statSync(join(images.echo, 'floor.img')).size / 1024;
    process.stdout.write(
      `kata-vm: initrd ${initrdMiB.toFixed(1)} MiB, floor.img ${floorKiB.toFixed(0)} KiB; ` +
        `agent answering ${answerMs} ms vs floor boot-to-power-off ${floor.ms} ms (${(answerMs / floor.ms).toFixed(2)}x)\n`,
    );
  }, 300_000);

  it('a VM whose QEMU dies: exited resolves and the helpers are stopped', async () => {
    const s = spec();
    const vm = await hv.start(s);
    started.push(vm);
    process.kill(vm.pid, 'SIGKILL');
    const { status } = await vm.exited;
    expect(status).toBe(128 + 9);
    await expectNothingLeft(s);
  }, 300_000);

  it('cleanupVmState kills what the pid files name and removes the sockets (after a lost shim)', async () => {
    const s = spec();
    const vm = await hv.start(s);
    started.push(vm);
    expect(readdirSync(s.stateDir).filter((f) => f.endsWith('.pid')).sort()).toEqual(['qemu.pid', 'vhost-device-vsock.pid', 'virtiofsd.pid']);
    await cleanupVmState(s.stateDir);
    await vm.exited;
    await expectNothingLeft(s);
    await cleanupVmState(s.stateDir); // nothing to do: fine
  }, 300_000);

  it('a missing kernel fails at once with NotFound, starting nothing', async () => {
    const s = spec({ kernel: join(work, 'no-such-vmlinuz') });
    const err = await hv.start(s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).code).toBe('NotFound');
    expect((err as ShimError).message).toContain('no-such-vmlinuz');
    expect(processesMentioning(s.stateDir)).toEqual([]);
  });

  it('an initrd without an agent: a clear error quoting the guest console, nothing left running', async () => {
    const s = spec({ initrd: join(images.noAgent, 'initrd.img') });
    const t0 = Date.now();
    const err = await hv.start(s).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(BOOT_TIMEOUT_MS);
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).code).toBe('FailedPrecondition');
    expect((err as ShimError).message).toMatch(/exited .* before its agent answered/);
    expect((err as ShimError).message).toContain('no agent at /agent/guest-agent.mjs');
    await expectNothingLeft(s);
  }, 300_000);

  it('an agent that never answers: DeadlineExceeded at the boot deadline, nothing left running', async () => {
    const s = spec({ initrd: join(images.silent, 'initrd.img'), bootTimeoutMs: Math.max(20_000, answerMs + 5_000) });
    const t0 = Date.now();
    const err = await hv.start(s).catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).code).toBe('DeadlineExceeded');
    expect((err as ShimError).message).toContain('did not answer on vsock port 1024');
    expect(took).toBeGreaterThanOrEqual(s.bootTimeoutMs - 50);
    expect(took).toBeLessThan(s.bootTimeoutMs + 10_000);
    await expectNothingLeft(s);
  }, 300_000);

  it('Cloud Hypervisor and Firecracker are named but unimplemented', async () => {
    for (const name of ['cloud-hypervisor', 'firecracker'] as const) {
      const err = await hypervisorByName(name).start(spec()).catch((e: unknown) => e);
      expect((err as ShimError).code).toBe('Unimplemented');
      expect((err as ShimError).message).toContain(name);
    }
  });
});
