/**
 * bin/tsrun's C front end: `start` done without Node, and spares (src/launcher/tsrun-front.c,
 * src/backends/native/tsrun/front-end.ts):
 * a command line goes to a tsrun booted ahead of time, and what the caller can see stays
 * as with a tsrun that boots for it: output, exit codes, the container as the caller's
 * descendant, signals forwarded, a relative cgroupsPath under the caller's cgroup. A dead
 * spare costs a cold start, never a failure; none outlives its state root.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reaper } from '../../src/sys/reaper.js';
import type { ExitSubscription } from '../../src/core/backend.js';
import { removeRootfsTemplate } from './oci-bundle.js';
import { bundle, exitOf, isRoot, removeCgroupParent, repoRoot } from './native-fixtures.js';

const TSRUN = path.join(repoRoot, 'bin/tsrun');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** pids of the tsrun spares waiting for commands on `root` */
function sparesOf(root: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const argv = cmdline(pid);
      return argv[0] === 'tsrun-spare' && argv[2]?.startsWith(`${root}/spare-`) === true;
    });
}

async function until<T>(what: string, get: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * a spare of root, once one is up (it listens before Node has booted: wait for its name).
 * Callers with another environment (the `sh` of the cgroup test) have spares of their own.
 */
const spareOf = (root: string) => until(`a spare on ${root}`, () => sparesOf(root)[0]);

function ppidOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe.skipIf(!isRoot)('tsrun spares', () => {
  let work: string;
  let root: string;
  let sub: ExitSubscription;
  const cgroupParent = `/tsshim-tsrun-spare-${process.pid}`;
  const callerCgroup = `tsshim-tsrun-caller-${process.pid}`;

  /** spares are opt-in (TSRUN_SPARE_IDLE), for now: this suite asks for them */
  const withSpares = { ...process.env, TSRUN_SPARE_IDLE: '60' };
  const tsrun = (args: string[], env: NodeJS.ProcessEnv = withSpares): Promise<Run> =>
    new Promise((resolve) => {
      execFile(TSRUN, ['--root', root, ...args], { timeout: 20_000, encoding: 'utf8', env }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  /** `create` hands its stdio to the container, which keeps pipes open: no pipes for it */
  const tsrunDetached = (args: string[], env: NodeJS.ProcessEnv = withSpares): Promise<number> =>
    new Promise((resolve, reject) => {
      const child = spawn(TSRUN, ['--root', root, ...args], { stdio: 'ignore', timeout: 20_000, env });
      child.on('error', reject);
      child.on('exit', (code) => resolve(code ?? 1));
    });

  beforeAll(() => {
    // the container processes of detached creates are reparented to us, as to podman's conmon
    sub = Reaper.install().subscribe();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-tsrun-spare-'));
    root = path.join(work, 'state');
    fs.mkdirSync(root);
  });

  afterAll(() => {
    sub?.close();
    removeCgroupParent(cgroupParent);
    for (const h of fs.readdirSync('/sys/fs/cgroup')) {
      const dir = path.join('/sys/fs/cgroup', h, callerCgroup);
      for (const d of [path.join(dir, 'rel', 'c'), path.join(dir, 'rel'), dir]) {
        try {
          fs.rmdirSync(d);
        } catch {
          // absent
        }
      }
    }
    fs.rmSync(work, { recursive: true, force: true });
    removeRootfsTemplate();
  });

  it('hands a command to the waiting spare: output and exit code pass through, and the next spare is booted', async () => {
    expect((await tsrun(['list', '-q'])).code).toBe(0);
    const first = await spareOf(root);
    const b = bundle(work, 'fg', ['sh', '-c', 'echo hello from the spare; exit 3'], cgroupParent);
    const run = await tsrun(['run', '--bundle', b, 'fg']);
    expect(run).toEqual({ code: 3, stdout: 'hello from the spare\n', stderr: '' });
    // the spare served it and ended with it; another waits for the next command
    await until('the adopted spare to end', () => (fs.existsSync(`/proc/${first}`) ? undefined : true));
    const next = await spareOf(root);
    expect(next).not.toBe(first);
    expect((await tsrun(['list', '-q'])).stdout).toBe('');
  });

  it("leaves the caller's stdio as it got it: a blocking pipe stays blocking for the container", async () => {
    await spareOf(root);
    // the container's stdout is the caller's pipe, as containerd's runc shim passes it; the
    // spare holds the same open file description, and must not make it non-blocking
    const b = bundle(work, 'flags', ['sh', '-c', 'grep flags /proc/self/fdinfo/1'], cgroupParent);
    const run = await tsrun(['run', '--bundle', b, 'flags']);
    expect(run.code).toBe(0);
    const flags = parseInt(/flags:\s+([0-7]+)/.exec(run.stdout)?.[1] ?? 'x', 8);
    expect(flags & 0o4000).toBe(0);
  });

  it("starts the container as the caller's descendant, not the spare's", async () => {
    await spareOf(root);
    const b = bundle(work, 'tree', ['sleep', '1000'], cgroupParent);
    const pidFile = path.join(work, 'tree.pid');
    expect(await tsrunDetached(['create', '--bundle', b, '--pid-file', pidFile, 'tree'])).toBe(0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    // reparented from the helper to the nearest subreaper above the front end: us
    expect(ppidOf(pid)).toBe(process.pid);
    expect((await tsrun(['start', 'tree'])).code).toBe(0);
    expect((await tsrun(['kill', 'tree', 'KILL'])).code).toBe(0);
    expect((await exitOf(sub, pid)).status).toBe(137);
    expect((await tsrun(['delete', 'tree'])).code).toBe(0);
  });

  it('forwards signals to the process of a foreground run', async () => {
    await spareOf(root);
    const b = bundle(work, 'sig', ['sh', '-c', 'trap "exit 9" TERM; echo ready; while :; do sleep 0.1; done'], cgroupParent);
    const child = spawn(TSRUN, ['--root', root, 'run', '--bundle', b, 'sig'], { stdio: ['ignore', 'pipe', 'pipe'], env: withSpares });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until('the container to be ready', () => (out.includes('ready') ? true : undefined));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(9);
    expect((await tsrun(['list', '-q'])).stdout).toBe('');
  });

  it("puts a relative cgroupsPath under the caller's cgroup, as runc and a cold tsrun do", async () => {
    // the caller runs in a cgroup of its own in every hierarchy
    const hierarchies = fs.readdirSync('/sys/fs/cgroup').filter((h) => fs.existsSync(path.join('/sys/fs/cgroup', h, 'cgroup.procs')));
    for (const h of hierarchies) fs.mkdirSync(path.join('/sys/fs/cgroup', h, callerCgroup), { recursive: true });
    const join = hierarchies.map((h) => `echo $$ > /sys/fs/cgroup/${h}/${callerCgroup}/cgroup.procs`).join('; ');
    const cgroupsOf = async (env: NodeJS.ProcessEnv, name: string) => {
      const b = bundle(work, name, ['sleep', '1000'], cgroupParent, (s) => {
        s.linux.cgroupsPath = 'rel/c';
      });
      const pidFile = path.join(work, 'rel.pid');
      fs.rmSync(pidFile, { force: true });
      const code = await new Promise<number | null>((resolve) => {
        const c = spawn('sh', ['-c', `${join}; exec "$@"`, 'sh', TSRUN, '--root', root, 'create', '--bundle', b, '--pid-file', pidFile, 'rel'], { stdio: 'ignore', env });
        c.on('exit', resolve);
      });
      expect(code).toBe(0);
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      const cgroups = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      expect((await tsrun(['delete', '--force', 'rel'])).code).toBe(0);
      await exitOf(sub, pid);
      return cgroups;
    };
    await spareOf(root);
    // the first command through `sh` boots the spare of its environment, the second uses it
    await cgroupsOf(withSpares, 'rel1');
    const viaSpare = await cgroupsOf(withSpares, 'rel2');
    const cold = await cgroupsOf({ ...process.env, TSRUN_SPARE_IDLE: '0' }, 'rel3');
    expect(viaSpare).toBe(cold);
    expect(viaSpare).toContain(`/${callerCgroup}/rel/c\n`);
  });

  it('a killed spare costs a cold start, not a failure; without TSRUN_SPARE_IDLE (or 0) none is booted', async () => {
    const spare = await spareOf(root);
    // (one the last command booted may still be coming up: kill until none is left)
    await until('the killed spares to be gone', () => {
      const left = sparesOf(root);
      for (const pid of left) process.kill(pid, 'SIGKILL');
      return left.length > 0 ? undefined : true;
    });
    const b = bundle(work, 'after', ['sh', '-c', 'echo still works'], cgroupParent);
    expect(await tsrun(['run', '--bundle', b, 'after'])).toEqual({ code: 0, stdout: 'still works\n', stderr: '' });
    const next = await spareOf(root);
    expect(next).not.toBe(spare);

    const other = path.join(work, 'no-spares');
    fs.mkdirSync(other);
    const noIdle = { ...process.env };
    delete noIdle.TSRUN_SPARE_IDLE;
    for (const env of [noIdle, { ...process.env, TSRUN_SPARE_IDLE: '0' }]) {
      const r = await new Promise<number | null>((resolve) => execFile(TSRUN, ['--root', other, 'list'], { env }, (err) => resolve(err ? 1 : 0)));
      expect(r).toBe(0);
    }
    await new Promise((res) => setTimeout(res, 500));
    expect(sparesOf(other)).toEqual([]);
    expect(fs.readdirSync(other)).toEqual([]);
  });

  it('starts a created container without Node, writing the state as Node writes it', async () => {
    const b = bundle(work, 'alone', ['sleep', '1000'], cgroupParent);
    const pidFile = path.join(work, 'alone.pid');
    expect(await tsrunDetached(['create', '--bundle', b, '--pid-file', pidFile, 'alone'])).toBe(0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    const stateFile = path.join(root, 'alone', 'state.json');
    const before = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
    // a Node that cannot even boot: only the front end can have done it
    const noNode = { ...process.env, NODE_OPTIONS: '--no-such-node-flag' };
    expect(await tsrun(['start', 'alone'], noNode)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(fs.readFileSync(stateFile, 'utf8')).toBe(JSON.stringify({ ...before, started: true }));
    expect(fs.existsSync(path.join(root, 'alone', 'exec.fifo'))).toBe(false);
    expect(JSON.parse((await tsrun(['state', 'alone'])).stdout).status).toBe('running');
    // a second start is Node's to refuse, with its words
    const again = await tsrun(['start', 'alone']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('not in the created state');
    expect((await tsrun(['start', 'alone'], noNode)).code).not.toBe(0);
    expect((await tsrun(['kill', 'alone', 'KILL'])).code).toBe(0);
    await exitOf(sub, pid);
    expect((await tsrun(['delete', 'alone'])).code).toBe(0);
  });

  it('deletes a stopped container without Node: its cgroup in every hierarchy and its state go', async () => {
    const noNode = { ...process.env, NODE_OPTIONS: '--no-such-node-flag' };
    const b = bundle(work, 'gone', ['sleep', '1000'], cgroupParent);
    const pidFile = path.join(work, 'gone.pid');
    expect(await tsrunDetached(['create', '--bundle', b, '--pid-file', pidFile, 'gone'])).toBe(0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    const cgroupDirs = fs
      .readdirSync('/sys/fs/cgroup')
      .map((h) => path.join('/sys/fs/cgroup', h, cgroupParent, 'gone'))
      .filter((d) => fs.existsSync(d));
    expect(cgroupDirs.length).toBeGreaterThan(0);
    expect((await tsrun(['start', 'gone'], noNode)).code).toBe(0);
    // running: Node's to kill (--force) or refuse; the front end leaves it alone
    expect((await tsrun(['delete', 'gone'], noNode)).code).not.toBe(0);
    expect(fs.existsSync(path.join(root, 'gone', 'state.json'))).toBe(true);
    expect((await tsrun(['kill', 'gone', 'KILL'])).code).toBe(0);
    await exitOf(sub, pid);
    expect(await tsrun(['delete', '--force', 'gone'], noNode)).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(fs.existsSync(path.join(root, 'gone'))).toBe(false);
    expect(cgroupDirs.filter((d) => fs.existsSync(d))).toEqual([]);
    // not there any more: Node's answer (runc's: fine with --force, an error without)
    expect((await tsrun(['delete', '--force', 'gone'])).code).toBe(0);
    expect((await tsrun(['delete', 'gone'])).code).toBe(1);
  });

  it('leaves the delete of a container with a relative cgroupsPath to Node', async () => {
    const noNode = { ...process.env, NODE_OPTIONS: '--no-such-node-flag' };
    const b = bundle(work, 'relgone', ['true'], cgroupParent, (s) => {
      s.linux.cgroupsPath = `tsshim-tsrun-rel-${process.pid}`;
    });
    expect(await tsrun(['run', '--keep', '--bundle', b, 'relgone'], { ...process.env })).toMatchObject({ code: 0 });
    expect((await tsrun(['delete', 'relgone'], noNode)).code).not.toBe(0);
    expect((await tsrun(['delete', 'relgone'], { ...process.env })).code).toBe(0);
    expect(fs.existsSync(path.join(root, 'relgone'))).toBe(false);
  });

  it('leaves a start with poststart hooks to Node, which runs them', async () => {
    const marker = path.join(work, 'poststart-ran');
    const b = bundle(work, 'hooked', ['sleep', '1000'], cgroupParent, (s) => {
      (s as unknown as { hooks: Record<string, unknown[]> }).hooks = { poststart: [{ path: '/bin/sh', args: ['sh', '-c', `touch ${marker}`] }] };
    });
    const pidFile = path.join(work, 'hooked.pid');
    expect(await tsrunDetached(['create', '--bundle', b, '--pid-file', pidFile, 'hooked'])).toBe(0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect((await tsrun(['start', 'hooked'])).code).toBe(0);
    expect(fs.existsSync(marker)).toBe(true);
    expect((await tsrun(['kill', 'hooked', 'KILL'])).code).toBe(0);
    await exitOf(sub, pid);
    expect((await tsrun(['delete', 'hooked'])).code).toBe(0);
  });

  it('a spare leaves within seconds once its state root is removed', async () => {
    await spareOf(root);
    fs.rmSync(root, { recursive: true, force: true });
    await until('the spares to leave', () => (sparesOf(root).length > 0 ? undefined : true), 5000);
  });
});
