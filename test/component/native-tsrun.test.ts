/**
 * bin/tsrun, runc's command line over the native executor, driven as podman or
 * containerd's runc shim drive runc: separate invocations sharing a --root, pid files,
 * `state` JSON, exit codes, and errors as JSON lines in --log.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeRootfsTemplate } from './oci-bundle.js';
import { bundle, cgroupDirsUnder, isRoot, removeCgroupParent, repoRoot } from './native-fixtures.js';
import * as os from 'node:os';

const TSRUN = path.join(repoRoot, 'bin/tsrun');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe.skipIf(!isRoot)('tsrun (runc CLI over the native executor)', () => {
  let work: string;
  let root: string;
  let logFile: string;
  const cgroupParent = `/tsshim-tsrun-${process.pid}`;

  const tsrun = (args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> =>
    new Promise((resolve) => {
      execFile(
        TSRUN,
        ['--root', root, '--log', logFile, '--log-format', 'json', ...args],
        { cwd: opts.cwd, timeout: opts.timeoutMs ?? 20_000, encoding: 'utf8' },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  /** `create` hands its stdio to the container, which keeps pipes open: no pipes for it */
  const tsrunDetached = (args: string[]): Promise<number> =>
    new Promise((resolve, reject) => {
      const child = spawn(TSRUN, ['--root', root, '--log', logFile, '--log-format', 'json', ...args], { stdio: 'ignore', timeout: 20_000 });
      child.on('error', reject);
      child.on('exit', (code) => resolve(code ?? 1));
    });
  const state = async (id: string) => JSON.parse((await tsrun(['state', id])).stdout) as { status: string; pid: number; bundle: string };
  const lastLogLine = () => JSON.parse(fs.readFileSync(logFile, 'utf8').trim().split('\n').pop()!) as { level: string; msg: string };

  beforeAll(async () => {
    const build = (await import(path.join(repoRoot, 'scripts/build-native.mjs'))) as { buildNative: (r: string) => string; buildTsrun: (r: string) => Promise<string> };
    build.buildNative(repoRoot);
    await build.buildTsrun(repoRoot);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-tsrun-'));
    root = path.join(work, 'state');
    logFile = path.join(work, 'log.json');
  });

  afterAll(() => {
    removeCgroupParent(cgroupParent);
    fs.rmSync(work, { recursive: true, force: true });
    removeRootfsTemplate();
  });

  it('writes a default spec, and refuses to overwrite it', async () => {
    const dir = path.join(work, 'spec');
    fs.mkdirSync(dir);
    expect((await tsrun(['spec'], { cwd: dir })).code).toBe(0);
    const spec = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(spec.process.args).toEqual(['sh']);
    expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
    const again = await tsrun(['spec', '--bundle', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('exists');
  });

  it('creates, starts, execs, kills and deletes across invocations', async () => {
    const b = bundle(work, 'c1', ['sh', '-c', 'echo started > /tmp/started; exec sleep 1000'], cgroupParent, (s) => {
      s.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: [] });
    });
    const pidFile = path.join(work, 'c1.pid');
    expect(await tsrunDetached(['create', '--bundle', b, '--pid-file', pidFile, 'c1'])).toBe(0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(pid).toBeGreaterThan(1);
    expect(await state('c1')).toMatchObject({ status: 'created', pid, bundle: b });
    expect((await tsrun(['list', '-q'])).stdout).toBe('c1\n');

    expect((await tsrun(['start', 'c1'])).code).toBe(0);
    const second = await tsrun(['start', 'c1']);
    expect(second.code).toBe(1);
    expect(lastLogLine()).toMatchObject({ level: 'error', msg: expect.stringContaining('not in the created state') });

    const exec = await tsrun(['exec', 'c1', 'sh', '-c', 'cat /tmp/started; exit 7']);
    expect(exec).toMatchObject({ code: 7, stdout: 'started\n' });
    expect(JSON.parse((await tsrun(['ps', '--format', 'json', 'c1'])).stdout)).toEqual([pid]);
    expect((await state('c1')).status).toBe('running');
    // runc's `events --stats` shape (libcontainer's types.Stats), numbers as numbers
    const stats = JSON.parse((await tsrun(['events', '--stats', 'c1'])).stdout) as { type: string; id: string; data: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(stats).toMatchObject({ type: 'stats', id: 'c1' });
    expect(Object.keys(stats.data)).toEqual(['cpu', 'cpuset', 'memory', 'pids', 'blkio', 'hugetlb', 'intel_rdt', 'network_interfaces']);
    expect(stats.data.pids.current).toBe(1);
    expect(stats.data.cpu.usage.total).toBeGreaterThan(0);
    expect(Object.keys(stats.data.memory.usage)).toEqual(expect.arrayContaining(['limit', 'usage', 'failcnt']));
    expect(typeof stats.data.memory.usage.limit).toBe('number');
    expect(Object.keys(stats.data.memory.raw).length).toBeGreaterThan(5);

    const refused = await tsrun(['delete', 'c1']);
    expect(refused.code).toBe(1);
    expect(lastLogLine().msg).toBe('cannot delete container c1 that is not stopped: running');

    expect((await tsrun(['kill', 'c1', 'KILL'])).code).toBe(0);
    for (let i = 0; (await state('c1')).status !== 'stopped'; i++) {
      if (i > 200) throw new Error('container did not stop');
      await new Promise((r) => setTimeout(r, 10));
    }
    expect((await state('c1')).pid).toBe(0);
    // runc's code for an exec that cannot run its process
    const lateExec = await tsrun(['exec', 'c1', 'true']);
    expect(lateExec.code).toBe(255);
    expect(lastLogLine().msg).toMatch(/not running/);
    expect((await tsrun(['delete', 'c1'])).code).toBe(0);
    expect((await tsrun(['list', '-q'])).stdout).toBe('');
    expect(cgroupDirsUnder(cgroupParent)).toEqual([]);
    const missing = await tsrun(['state', 'c1']);
    expect(missing.code).toBe(1);
    expect(lastLogLine().msg).toBe('container c1 does not exist');
    expect((await tsrun(['delete', '--force', 'c1'])).code).toBe(0);
  });

  it('runs in the foreground: output passes through, the exit code is the container\'s, nothing stays', async () => {
    const b = bundle(work, 'r1', ['sh', '-c', 'echo out; echo err >&2; exit 3'], cgroupParent);
    const r = await tsrun(['run', '--bundle', b, 'r1']);
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    expect((await tsrun(['list', '-q'])).stdout).toBe('');
    expect(cgroupDirsUnder(cgroupParent)).toEqual([]);
  });

  it('reports a bad config naming the field, in the JSON log, and leaves nothing', async () => {
    const b = bundle(work, 'bad', ['true'], cgroupParent, (s) => {
      s.process.args = [];
    });
    expect(await tsrunDetached(['create', '--bundle', b, 'bad'])).toBe(1);
    expect(lastLogLine()).toMatchObject({ level: 'error', msg: 'process.args: must be a non-empty array of strings' });
    expect((await tsrun(['list', '-q'])).stdout).toBe('');
    expect(cgroupDirsUnder(cgroupParent)).toEqual([]);
  });

  it('answers features and unknown flags like runc', async () => {
    const f = JSON.parse((await tsrun(['features'])).stdout);
    expect(f.linux.namespaces).toContain('pid');
    expect(f.linux.seccomp.enabled).toBe(true);
    const bad = await tsrun(['kill', '--bogus', 'x']);
    expect(bad.code).toBe(1);
    expect(lastLogLine().msg).toBe('tsrun kill: flag provided but not defined: -bogus');
  });

  it('ends quietly when its reader goes away (`tsrun features | head -1`), as runc does', async () => {
    const child = spawn(TSRUN, ['features'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // the reader closes before the output is written
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
