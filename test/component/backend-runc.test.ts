/**
 * RuncBackend against the real runc and crun, without containerd: a busybox bundle in a
 * temp dir, stdio through FIFOs, exits from the shim's Reaper (this test process is made
 * a child subreaper, like the shim daemon).
 *
 * crun 1.8.1 refuses this host's hybrid cgroup layout while hugetlb sits on cgroup2; the
 * suite applies the host fix (a v1 hugetlb hierarchy, as scripts/install-deps.sh does)
 * when it is missing, and skips crun with the reason if that is impossible.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tty from 'node:tty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuncBackend, RuncContainer, onPath } from '../../src/backends/runc/backend.js';
import type { BackendContainer, ExitEvent, ExitSubscription, ProcessStdio } from '../../src/core/backend.js';
import { ShimError } from '../../src/core/errors.js';
import { Reaper } from '../../src/sys/reaper.js';
import { makeBundle, removeRootfsTemplate } from './oci-bundle.js';

const isRoot = process.getuid?.() === 0;
const NAMESPACE = 'tsshim-test';
const CGROUP_PARENT = `/tsshim-backend-runc-${process.pid}`;
const V1_ROOT = '/sys/fs/cgroup';

/** Why crun cannot run here, or undefined when it can (after applying the hugetlb fix). */
function crunProblem(): string | undefined {
  if (!isRoot) return 'needs root';
  if (!onPath('crun')) return 'crun is not installed';
  const unifiedControllers = path.join(V1_ROOT, 'unified/cgroup.controllers');
  const busy = fs.existsSync(unifiedControllers) && fs.readFileSync(unifiedControllers, 'utf8').trim() !== '';
  if (!busy) return undefined;
  // hybrid host with controllers left on cgroup2 (hugetlb): give hugetlb a v1 hierarchy
  try {
    fs.mkdirSync(path.join(V1_ROOT, 'hugetlb'), { recursive: true });
    execFileSync('mount', ['-t', 'cgroup', '-o', 'hugetlb', 'hugetlb', path.join(V1_ROOT, 'hugetlb')], { stdio: 'pipe' });
  } catch (err) {
    return `crun 1.8.1 refuses hybrid cgroups with controllers on cgroup2 and mounting a v1 hugetlb hierarchy failed: ${
      (err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err)
    }`;
  }
  const still = fs.readFileSync(unifiedControllers, 'utf8').trim();
  return still ? `cgroup2 still has controllers (${still}); crun 1.8.1 cannot run on this layout` : undefined;
}

/** Collects the text of a readable stream and lets a test await a piece of it. */
class TextCollector {
  private text = '';
  private waiters: Array<() => void> = [];

  constructor(protected readonly stream: NodeJS.ReadableStream & { destroy(): void }) {
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      this.text += d;
      for (const w of this.waiters.splice(0)) w();
    });
    stream.on('error', () => undefined); // a pty master reads EIO once the slave is gone
  }

  get output(): string {
    return this.text;
  }

  /** resolves once `needle` has been written, fails after timeoutMs */
  async waitFor(needle: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.text.includes(needle)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${JSON.stringify(needle)}; got ${JSON.stringify(this.text)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.stream.destroy();
  }
}

/** A FIFO: the write end goes to the container, the read end collects what it writes. */
class OutputPipe extends TextCollector {
  readonly writeFd: number;

  constructor(dir: string, name: string) {
    const p = path.join(dir, name);
    execFileSync('mkfifo', [p]);
    const readFd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    super(new net.Socket({ fd: readFd, readable: true, writable: false }));
    this.writeFd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  }

  override close(): void {
    try {
      fs.closeSync(this.writeFd);
    } catch {
      /* already closed */
    }
    super.close();
  }
}

/** the exit of pid, from the subscription (already buffered or still to come) */
function exitOf(sub: ExitSubscription, pid: number, timeoutMs = 10_000): Promise<ExitEvent> {
  const seen = sub.take(pid);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no exit for pid ${pid} within ${timeoutMs} ms`)), timeoutMs);
    sub.onExit((e) => {
      if (e.pid === pid) {
        clearTimeout(t);
        resolve(e);
      }
    });
  });
}

function cgroupDir(controller: string, id: string): string {
  return path.join(V1_ROOT, controller, CGROUP_PARENT, id);
}

function removeCgroupParent(): void {
  for (const entry of fs.readdirSync(V1_ROOT)) {
    const dir = path.join(V1_ROOT, entry, CGROUP_PARENT);
    if (!fs.existsSync(dir)) continue;
    for (const child of fs.readdirSync(dir, { withFileTypes: true })) {
      if (child.isDirectory()) fs.rmdirSync(path.join(dir, child.name));
    }
    fs.rmdirSync(dir);
  }
}

const runtimes = [
  { binary: 'runc', problem: !isRoot ? 'needs root' : onPath('runc') ? undefined : 'runc is not installed' },
  { binary: 'crun', problem: undefined as string | undefined, lazyProblem: true },
];

let reaper: Reaper | undefined;
let sub: ExitSubscription | undefined;
let workDir = '';

beforeAll(() => {
  if (!isRoot) return;
  reaper = Reaper.install();
  sub = reaper.subscribe();
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-backend-runc-'));
});

afterAll(() => {
  sub?.close();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  removeRootfsTemplate();
  if (isRoot) removeCgroupParent();
});

describe.each(runtimes)('RuncBackend with $binary', (rt) => {
  const problem = rt.lazyProblem ? crunProblem() : rt.problem;
  if (problem) {
    it.skip(`skipped: ${problem}`, () => undefined);
    return;
  }

  let backend: RuncBackend;
  let stateRoot: string;
  let out: OutputPipe;
  let err: OutputPipe;
  const live: Array<BackendContainer> = [];

  const options = () => ({ root: stateRoot });
  const stdio = (): ProcessStdio => ({ terminal: false, stdin: 'ignore', stdout: out.writeFd, stderr: err.writeFd });
  const bundleFor = (id: string, args: string[]) =>
    makeBundle(path.join(workDir, rt.binary), id, { args, cgroupsPath: `${CGROUP_PARENT}/${id}` });
  const runtimeList = () =>
    execFileSync(rt.binary, ['--root', path.join(stateRoot, NAMESPACE), 'list', '-q'], { encoding: 'utf8' }).trim();

  beforeAll(() => {
    stateRoot = path.join(workDir, rt.binary, 'state');
    fs.mkdirSync(stateRoot, { recursive: true });
    backend = new RuncBackend({ binary: rt.binary, exits: reaper!, criuAvailable: onPath('criu') });
    out = new OutputPipe(path.join(workDir, rt.binary), 'stdout');
    err = new OutputPipe(path.join(workDir, rt.binary), 'stderr');
  });

  afterAll(async () => {
    for (const c of live) await backend.delete(c, { force: true }).catch(() => undefined);
    out?.close();
    err?.close();
  });

  it('runs a container through its whole life', async () => {
    const id = `life-${rt.binary}`;
    const bundle = bundleFor(id, ['sh', '-c', 'echo started; echo on-stderr >&2; exec sleep 1000']);
    const { container, pid, consoleFd } = await backend.create({ id, namespace: NAMESPACE, bundle, stdio: stdio(), options: options() });
    live.push(container);
    expect(consoleFd).toBeUndefined();
    expect(pid).toBeGreaterThan(1);
    expect(container).toBeInstanceOf(RuncContainer);
    expect(container.cgroupPath).toBe(`${CGROUP_PARENT}/${id}`);
    expect(runtimeList()).toBe(id);

    await backend.start(container);
    await out.waitFor('started\n');
    await err.waitFor('on-stderr\n');

    expect(await backend.pids(container)).toContain(pid);

    const stats = await backend.stats(container);
    expect(stats.version).toBe(1); // hybrid host: v1 metrics, like the reference shim
    const data = stats.data as { memory?: { usage?: { usage: bigint } }; pids?: { current: bigint } };
    expect(data.memory?.usage?.usage ?? 0n).toBeGreaterThan(0n);
    expect(data.pids?.current ?? 0n).toBeGreaterThanOrEqual(1n);

    await backend.pause(container);
    expect(fs.readFileSync(path.join(cgroupDir('freezer', id), 'freezer.state'), 'utf8').trim()).toBe('FROZEN');
    await backend.resume(container);
    expect(fs.readFileSync(path.join(cgroupDir('freezer', id), 'freezer.state'), 'utf8').trim()).toBe('THAWED');

    await backend.update(container, { memory: { limit: 50 * 1024 * 1024 } });
    expect(fs.readFileSync(path.join(cgroupDir('memory', id), 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(50 * 1024 * 1024));

    const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')).process as Record<string, unknown>;
    const exec = await backend.exec(container, {
      containerId: id,
      execId: 'exec-echo',
      bundle,
      spec: { ...spec, args: ['echo', 'hi'] },
      stdio: stdio(),
    });
    expect((await exitOf(sub!, exec.pid)).status).toBe(0);
    await out.waitFor('hi\n');
    expect(fs.readdirSync(bundle).filter((f) => f.startsWith('.exec-'))).toEqual([]); // spec and pid files

    // an exec that fails to start: the runtime's own words, no temp file left
    const failed = await backend
      .exec(container, { containerId: id, execId: 'exec-bad', bundle, spec: { ...spec, args: ['no-such-cmd'] }, stdio: stdio() })
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(ShimError);
    expect((failed as ShimError).code).toBe('Unknown');
    expect((failed as ShimError).message).toMatch(/^OCI runtime exec failed: .*no-such-cmd/);
    expect(fs.readdirSync(bundle).filter((f) => f.startsWith('.exec-'))).toEqual([]);

    // a long-running exec, signalled by pid
    const sleeper = await backend.exec(container, {
      containerId: id,
      execId: 'exec-sleep',
      bundle,
      spec: { ...spec, args: ['sleep', '1000'] },
      stdio: stdio(),
    });
    expect(await backend.pids(container)).toEqual(expect.arrayContaining([pid, sleeper.pid]));
    await backend.killProcess(container, sleeper.pid, 9);
    expect((await exitOf(sub!, sleeper.pid)).status).toBe(137);
    await expect(backend.killProcess(container, sleeper.pid, 9)).rejects.toMatchObject({ code: 'NotFound' });

    // wrong-state verbs are FailedPrecondition
    await expect(backend.start(container)).rejects.toMatchObject({ code: 'FailedPrecondition' });
    await expect(backend.delete(container, { force: false })).rejects.toMatchObject({ code: 'FailedPrecondition' });

    await backend.kill(container, 9, false);
    const exit = await exitOf(sub!, pid);
    expect(exit.status).toBe(137);
    await expect(backend.kill(container, 9, false)).rejects.toMatchObject({ code: 'NotFound', message: /process already finished/ });
    expect(await backend.pids(container)).toEqual([]);
    await expect(backend.pause(container)).rejects.toMatchObject({ code: 'FailedPrecondition' });

    await backend.delete(container, { force: false });
    await backend.delete(container, { force: false }); // idempotent
    live.splice(live.indexOf(container), 1);
    expect(runtimeList()).toBe('');
    expect(fs.existsSync(cgroupDir('memory', id))).toBe(false);
    await expect(backend.stats(container)).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('gives init and exec a terminal and returns the pty masters', async () => {
    const id = `tty-${rt.binary}`;
    const bundle = makeBundle(path.join(workDir, rt.binary), id, {
      args: ['sh', '-c', 'echo "init on $(tty)"; exec sleep 1000'],
      terminal: true,
      cgroupsPath: `${CGROUP_PARENT}/${id}`,
    });
    const noStdio: ProcessStdio = { terminal: true, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' };
    const { container, pid, consoleFd } = await backend.create({ id, namespace: NAMESPACE, bundle, stdio: noStdio, options: options() });
    live.push(container);
    expect(consoleFd).toBeGreaterThan(2);
    const initTty = new TextCollector(new tty.ReadStream(consoleFd!));
    try {
      await backend.start(container);
      await initTty.waitFor('init on /dev/pts/');

      const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')).process as Record<string, unknown>;
      const exec = await backend.exec(container, {
        containerId: id,
        execId: 'exec-tty',
        bundle,
        spec: { ...spec, terminal: true, args: ['sh', '-c', 'echo "exec on $(tty)"'] },
        stdio: noStdio,
      });
      expect(exec.consoleFd).toBeGreaterThan(2);
      const execTty = new TextCollector(new tty.ReadStream(exec.consoleFd!));
      try {
        await execTty.waitFor('exec on /dev/pts/');
        expect((await exitOf(sub!, exec.pid)).status).toBe(0);
      } finally {
        execTty.close();
      }
      await backend.kill(container, 9, true);
      expect((await exitOf(sub!, pid)).status).toBe(137);
      await backend.delete(container, { force: false });
      live.splice(live.indexOf(container), 1);
    } finally {
      initTty.close();
    }
  });

  it('fails create for a missing executable with the runtime message and leaves nothing', async () => {
    const id = `missing-${rt.binary}`;
    const bundle = bundleFor(id, ['nonexistent-cmd']);
    const e = await backend
      .create({ id, namespace: NAMESPACE, bundle, stdio: stdio(), options: options() })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ShimError);
    expect((e as ShimError).code).toBe('Unknown');
    expect((e as ShimError).message).toMatch(/^OCI runtime create failed: .*nonexistent-cmd.*not found/);
    expect(runtimeList()).toBe('');
    for (const controller of ['memory', 'pids', 'freezer', 'cpu']) expect(fs.existsSync(cgroupDir(controller, id))).toBe(false);
  });

  it('rejects a second create of the same id as AlreadyExists', async () => {
    const id = `dup-${rt.binary}`;
    const bundle = bundleFor(id, ['sleep', '1000']);
    const first = await backend.create({ id, namespace: NAMESPACE, bundle, stdio: stdio(), options: options() });
    live.push(first.container);
    await expect(backend.create({ id, namespace: NAMESPACE, bundle, stdio: stdio(), options: options() })).rejects.toMatchObject({
      code: 'AlreadyExists',
    });
    // the failed second create must not have removed the first
    expect(runtimeList()).toBe(id);
    await backend.delete(first.container, { force: true });
    live.splice(live.indexOf(first.container), 1);
    expect((await exitOf(sub!, first.pid)).status).toBe(137);
    expect(runtimeList()).toBe('');
  });

  it('cleans up after a crash from the bundle and options alone', async () => {
    const id = `crash-${rt.binary}`;
    const bundle = bundleFor(id, ['sleep', '1000']);
    const { pid } = await backend.create({ id, namespace: NAMESPACE, bundle, stdio: stdio(), options: options() });
    // a fresh backend: no in-memory state, like the `delete` binary action
    const fresh = new RuncBackend({ binary: rt.binary, exits: reaper!, criuAvailable: false });
    await fresh.cleanupAfterCrash({ id, namespace: NAMESPACE, bundle, options: options() });
    expect((await exitOf(sub!, pid)).status).toBe(137);
    expect(runtimeList()).toBe('');
    // again: nothing to do is success
    await fresh.cleanupAfterCrash({ id, namespace: NAMESPACE, bundle, options: options() });
  });

  it('checkpoints with criu or says precisely why not, and the container keeps running', async () => {
    const id = `ckpt-${rt.binary}`;
    const bundle = bundleFor(id, ['sleep', '1000']);
    const { container, pid } = await backend.create({ id, namespace: NAMESPACE, bundle, stdio: stdio(), options: options() });
    live.push(container);
    await backend.start(container);
    const imagePath = path.join(workDir, rt.binary, `${id}-image`);
    const input = {
      path: imagePath,
      exit: false,
      openTcp: false,
      externalUnixSockets: false,
      terminal: false,
      fileLocks: false,
      emptyNamespaces: [],
      cgroupsMode: '',
      workPath: '',
      parentPath: '',
    };
    const outcome = await backend.checkpoint(container, input).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!backend.capabilities.checkpoint) {
      expect(outcome).toMatchObject({ code: 'Unimplemented', message: expect.stringContaining('criu') });
    } else if (rt.binary === 'crun') {
      // Debian's crun 1.8.1 is built without libcriu
      expect(outcome).toMatchObject({ code: 'Unimplemented', message: expect.stringContaining('does not support "checkpoint"') });
    } else if (outcome === undefined) {
      expect(fs.readdirSync(imagePath).length).toBeGreaterThan(0);
    } else {
      // this project's VMs: criu cannot parse the vdso of the running kernel
      expect(outcome).toBeInstanceOf(ShimError);
      expect((outcome as ShimError).code).toBe('Unknown');
      expect((outcome as ShimError).message).toContain('OCI runtime checkpoint failed: criu failed');
      expect((outcome as ShimError).message).toContain(`path= ${path.join(bundle, 'criu-dump.log')}`);
      expect(fs.existsSync(path.join(bundle, 'criu-dump.log'))).toBe(true);
    }
    expect(fs.existsSync(path.join(bundle, 'criu-work'))).toBe(false);
    expect(await backend.pids(container)).toContain(pid);

    await backend.delete(container, { force: true });
    live.splice(live.indexOf(container), 1);
    expect((await exitOf(sub!, pid)).status).toBe(137);

    // restore from an image that is not one: the runtime's reason, nothing left behind
    if (backend.capabilities.checkpoint) {
      const rid = `restore-${rt.binary}`;
      const rbundle = bundleFor(rid, ['sleep', '1000']);
      const emptyImage = fs.mkdtempSync(path.join(workDir, 'empty-image-'));
      const e = await backend
        .create({ id: rid, namespace: NAMESPACE, bundle: rbundle, stdio: stdio(), options: options(), checkpoint: emptyImage })
        .catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ShimError);
      if (rt.binary === 'crun') expect((e as ShimError).code).toBe('Unimplemented');
      else expect((e as ShimError).message).toMatch(/^OCI runtime restore failed: .*descriptors\.json/);
      expect(runtimeList()).toBe('');
    }
  });

  it('reports unsupported verbs and missing binaries clearly', async () => {
    const features = await backend.features();
    if (rt.binary === 'runc') expect(features).toMatchObject({ ociVersionMin: expect.any(String) });
    else expect(features).toBeUndefined(); // crun 1.8.1 has no `features`

    const missing = new RuncBackend({ binary: `${rt.binary}-not-installed`, exits: reaper!, criuAvailable: false });
    const bundle = bundleFor(`nobin-${rt.binary}`, ['true']);
    await expect(
      missing.create({ id: `nobin-${rt.binary}`, namespace: NAMESPACE, bundle, stdio: stdio(), options: options() }),
    ).rejects.toMatchObject({ code: 'FailedPrecondition', message: expect.stringContaining(`"${rt.binary}-not-installed" not found`) });
  });
});
