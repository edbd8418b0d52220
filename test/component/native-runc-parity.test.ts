/**
 * The native executor against runc itself, case by case: the same config (a busybox bundle,
 * one copy per runtime) run by `runc run`, by the NativeBackend (as the shim drives it) and
 * by `bin/tsrun run`, and what each shows compared: the container's output and exit status,
 * or the error that kept it from running. The cases are places where native used to differ
 * from runc 1.1 on specs a user can write: the loopback interface of a new network
 * namespace, capability names runc does not know, relative mount destinations, an
 * environment without PATH.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NativeBackend } from '../../src/backends/native/backend.js';
import { onPath } from '../../src/backends/runc/backend.js';
import { ShimError } from '../../src/core/errors.js';
import { CapturedOutput, NAMESPACE, type NativeEnv, type Spec, bundle, cgroupDirsUnder, exitOf, isRoot, repoRoot, setupNative, teardownNative } from './native-fixtures.js';
import { LOOPBACK_TCP_PROBE as LOOPBACK_PROBE, LOOPBACK_UP } from '../e2e/harness/loopback-probe.js';

const TSRUN = path.join(repoRoot, 'bin/tsrun');
const RUNTIMES = ['runc', 'native', 'tsrun'] as const;
type Runtime = (typeof RUNTIMES)[number];

/** what a run showed: the container's exit status and output, or why it did not run */
interface Outcome {
  /** null when the runtime refused or failed to start the container */
  status: number | null;
  out: string;
  /** the container's stderr (left out when it did not run: a CLI prints its own error there) */
  err?: string;
  /** the runtime's reason, from "exec: " on when it has that part (the prefixes differ by design) */
  error?: string;
  /** only the native backend's: the error code the shim's Create returns */
  code?: string;
}

interface Run {
  outcome: Outcome;
  warnings: string[];
  /** a CLI's whole stderr */
  stderr?: string;
}


function errorDetail(message: string): string {
  const at = message.indexOf('exec: ');
  return at >= 0 ? message.slice(at) : message;
}

interface LogLine {
  level: string;
  msg: string;
  error?: string;
}

function readLog(file: string): LogLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

describe.skipIf(!isRoot || !onPath('runc'))('native executor and tsrun against runc, on the same config', () => {
  let env: NativeEnv;
  let backend: NativeBackend;
  const outputs: CapturedOutput[] = [];
  const nativeWarnings = new Map<string, string[]>();
  const netnsNames: string[] = [];

  /** `runc run` / `tsrun run` in the foreground: exit code and output; errors and warnings from --log */
  function runCli(binary: string, id: string, b: string): Promise<Run> {
    const root = path.join(env.workDir, `${path.basename(binary)}-root`);
    const log = path.join(env.workDir, `${id}.log.json`);
    return new Promise((resolve, reject) => {
      const child = spawn(binary, ['--root', root, '--log', log, '--log-format', 'json', 'run', '--bundle', b, id], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        const lines = readLog(log);
        const failure = lines.find((l) => l.level === 'error');
        const warnings = lines.filter((l) => l.level === 'warning').map((l) => (l.error ? `${l.msg}: ${l.error}` : l.msg));
        resolve({
          outcome: failure ? { status: null, out, error: errorDetail(failure.msg) } : { status: code ?? -1, out, err },
          warnings,
          stderr: err,
        });
      });
    });
  }

  /** the NativeBackend as the shim drives it: create, start, wait, delete */
  async function runNative(id: string, b: string): Promise<Run> {
    const o = new CapturedOutput(env.workDir, id);
    outputs.push(o);
    let created;
    try {
      created = await backend.create({ id, namespace: NAMESPACE, bundle: b, stdio: o.stdio, options: {} });
    } catch (e) {
      if (!(e instanceof ShimError)) throw e;
      return { outcome: { status: null, out: o.out(), error: errorDetail(e.message), code: e.code }, warnings: nativeWarnings.get(id) ?? [] };
    }
    await backend.start(created.container);
    const { status } = await exitOf(env.sub, created.pid);
    await backend.delete(created.container, { force: false });
    return { outcome: { status, out: o.out(), err: o.err() }, warnings: nativeWarnings.get(id) ?? [] };
  }

  /** the same config, one bundle per runtime; every runtime's run */
  async function runEverywhere(name: string, args: string[], edit?: (s: Spec) => void): Promise<Record<Runtime, Run>> {
    const runs = {} as Record<Runtime, Run>;
    for (const rt of RUNTIMES) {
      const id = `${name}-${rt}`;
      const b = bundle(env.workDir, id, args, env.cgroupParent, edit);
      if (rt === 'runc') runs[rt] = await runCli('runc', id, b);
      else if (rt === 'tsrun') runs[rt] = await runCli(TSRUN, id, b);
      else runs[rt] = await runNative(id, b);
    }
    expect(cgroupDirsUnder(env.cgroupParent)).toEqual([]);
    return runs;
  }

  /** native and tsrun show what runc shows */
  function expectSameAsRunc(runs: Record<Runtime, Run>): void {
    const { code: _code, ...native } = runs.native.outcome;
    expect({ native, tsrun: runs.tsrun.outcome }).toEqual({ native: runs.runc.outcome, tsrun: runs.runc.outcome });
  }

  beforeAll(async () => {
    env = await setupNative('parity');
    const build = (await import(path.join(repoRoot, 'scripts/build-native.mjs'))) as { buildTsrun: (r: string) => Promise<string> };
    await build.buildTsrun(repoRoot);
    backend = new NativeBackend({
      root: env.stateRoot,
      exits: env.reaper,
      helperPath: env.helperPath,
      onWarning: (w) => nativeWarnings.set(w.id, [...(nativeWarnings.get(w.id) ?? []), `${w.field}: ${w.message}`]),
    });
    // a user namespace's root (host uid 100000) must be able to reach the bundles
    fs.chmodSync(env.workDir, 0o711);
  });

  afterAll(() => {
    for (const n of netnsNames) execFileSync('ip', ['netns', 'delete', n]);
    teardownNative(env, outputs);
  });

  it('brings lo up in a new network namespace', async () => {
    const runs = await runEverywhere('lo-new', ['sh', '-c', LOOPBACK_PROBE]);
    expect(runs.runc.outcome).toEqual({ status: 0, out: LOOPBACK_UP, err: '' });
    expectSameAsRunc(runs);
  });

  it('brings lo up in a new network namespace owned by a new user namespace', async () => {
    const runs = await runEverywhere('lo-userns', ['sh', '-c', LOOPBACK_PROBE], (s) => {
      s.linux.namespaces.push({ type: 'user' });
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      // the mapped root cannot make /sys/fs in the host-owned rootfs
      s.mounts = s.mounts.filter((m: { type: string }) => m.type !== 'cgroup');
    });
    expect(runs.runc.outcome).toEqual({ status: 0, out: LOOPBACK_UP, err: '' });
    expectSameAsRunc(runs);
  });

  it('leaves lo of a joined network namespace as it is', async () => {
    const name = `tsshim-parity-${process.pid}`;
    execFileSync('ip', ['netns', 'add', name]);
    netnsNames.push(name);
    const netns = `/run/netns/${name}`;
    const runs = await runEverywhere('lo-joined', ['sh', '-c', LOOPBACK_PROBE], (s) => {
      s.linux.namespaces = s.linux.namespaces.map((n: { type: string }) => (n.type === 'network' ? { type: 'network', path: netns } : n));
    });
    expect(runs.runc.outcome).toEqual({
      status: 0,
      out: "flags=0x8\nlink=DOWN\nconnect=nc: can't connect to remote host (127.0.0.1): Network is unreachable\n",
      err: '',
    });
    expectSameAsRunc(runs);
    expect(execFileSync('ip', ['netns', 'exec', name, 'cat', '/sys/class/net/lo/flags'], { encoding: 'utf8' })).toBe('0x8\n');
  });

  it('ignores capability names it does not know, with a warning', async () => {
    const runs = await runEverywhere('caps', ['sh', '-c', 'grep ^Cap /proc/self/status'], (s) => {
      for (const set of Object.keys(s.process.capabilities)) s.process.capabilities[set] = ['CAP_BOGUS', 'cap_kill', 'CAP_KILL', 'CAP_CHOWN', 'CHOWN'];
    });
    expect(runs.runc.outcome).toMatchObject({ status: 0, err: '' });
    expect(runs.runc.outcome.out).toContain('CapEff:\t0000000000000021\n');
    expectSameAsRunc(runs);
    expect(runs.runc.warnings).toEqual([expect.stringMatching(/^ignoring unknown or unavailable capabilities: \[.*CAP_BOGUS.*\]$/)]);
    for (const rt of ['native', 'tsrun'] as const) {
      expect(runs[rt].warnings).toContain('process.capabilities.bounding[0]: unknown capability "CAP_BOGUS"; ignored');
      expect(runs[rt].warnings).toContain('process.capabilities.effective[1]: unknown capability "cap_kill"; ignored');
      expect(runs[rt].warnings).toContain('process.capabilities.permitted[4]: unknown capability "CHOWN"; ignored');
    }
  });

  it('mounts a relative destination under the container\'s root, with a warning', async () => {
    const script = 'grep -E " /(tmp/reldir|reltop|tmp/dotdot) " /proc/self/mountinfo | cut -d" " -f5,9';
    const runs = await runEverywhere('relmount', ['sh', '-c', script], (s) => {
      s.mounts.push({ destination: 'tmp/reldir', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] });
      s.mounts.push({ destination: 'reltop', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] });
      s.mounts.push({ destination: '../../tmp/dotdot', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] });
    });
    expect(runs.runc.outcome).toEqual({ status: 0, out: '/tmp/reldir tmpfs\n/reltop tmpfs\n/tmp/dotdot tmpfs\n', err: '' });
    expectSameAsRunc(runs);
    expect(runs.runc.warnings).toContain('mount destination tmp/reldir is not absolute. Support for non-absolute mount destinations will be removed in a future release.');
    for (const rt of ['native', 'tsrun'] as const) {
      expect(runs[rt].warnings).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^mounts\[\d+\]\.destination: "tmp\/reldir" is not absolute; mounted on \/tmp\/reldir/),
          expect.stringMatching(/^mounts\[\d+\]\.destination: "reltop" is not absolute; mounted on \/reltop/),
          expect.stringMatching(/^mounts\[\d+\]\.destination: "\.\.\/\.\.\/tmp\/dotdot" is not absolute; mounted on \/tmp\/dotdot/),
        ]),
      );
    }
  });

  it('finds no bare command without PATH in the environment, as runc (Create fails Unknown)', async () => {
    const runs = await runEverywhere('nopath', ['sleep', '0'], (s) => {
      s.process.env = ['TERM=xterm'];
    });
    expect(runs.runc.outcome).toEqual({ status: null, out: '', error: 'exec: "sleep": executable file not found in $PATH' });
    expectSameAsRunc(runs);
    // each CLI says why on its stderr too
    for (const rt of ['runc', 'tsrun'] as const) expect(runs[rt].stderr).toContain('exec: "sleep": executable file not found in $PATH\n');
    // containerd's runc shim returns a runc create failure as Unknown (errdefs.ToGRPC of a plain error)
    expect(runs.native.outcome.code).toBe('Unknown');
  });

  it('runs a path with a slash without PATH, adding no PATH to the environment', async () => {
    // env itself, not a shell: a shell would add variables of its own
    const runs = await runEverywhere('nopath-abs', ['/bin/env'], (s) => {
      s.process.env = ['TERM=xterm'];
    });
    expect(runs.runc.outcome).toEqual({ status: 0, out: 'TERM=xterm\nHOME=/root\n', err: '' });
    expectSameAsRunc(runs);
  });

  it('refuses a command found through an empty PATH entry (the working directory), as runc', async () => {
    const runs = await runEverywhere('dotpath', ['sleep', '0'], (s) => {
      s.process.env = ['PATH=:/nonexistent'];
      s.process.cwd = '/bin';
    });
    expect(runs.runc.outcome).toEqual({ status: null, out: '', error: 'exec: "sleep": cannot run executable found relative to current directory' });
    expectSameAsRunc(runs);
  });
});
