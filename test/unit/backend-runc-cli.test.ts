/**
 * RuncCli without a real runtime: the argument builders, and the invocation machinery
 * (deadline, stdio pass-through, stdin input, log.json offsets, spawn errors) against a
 * small fake runtime script.
 */
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_TIMEOUTS,
  RuncCli,
  checkpointArgs,
  createArgs,
  deleteArgs,
  execArgs,
  globalArgs,
  killArgs,
  parsePsOutput,
  restoreArgs,
} from '../../src/backends/runc/cli.js';
import { INIT_PID_FILE, RuncBackend, onPath, readPidFile, runtimeRoot } from '../../src/backends/runc/backend.js';
import { ShimError } from '../../src/core/errors.js';
import type { ExitSource } from '../../src/core/backend.js';

describe('argument building', () => {
  it('puts the global flags first, with the bundle log as JSON', () => {
    expect(globalArgs({ root: '/run/containerd/runc/default' }, '/b')).toEqual([
      '--root', '/run/containerd/runc/default', '--log', '/b/log.json', '--log-format', 'json',
    ]);
    expect(globalArgs({ root: '/r', systemdCgroup: true })).toEqual(['--root', '/r', '--systemd-cgroup']);
  });

  it('builds create like the reference shim', () => {
    expect(createArgs('c1', '/b', { pidFile: '/b/init.pid' })).toEqual(['create', '--bundle', '/b', '--pid-file', '/b/init.pid', 'c1']);
    expect(createArgs('c1', '/b', { pidFile: '/b/init.pid', consoleSocket: '/s.sock', noPivot: true, noNewKeyring: true })).toEqual([
      'create', '--bundle', '/b', '--pid-file', '/b/init.pid', '--console-socket', '/s.sock', '--no-pivot', '--no-new-keyring', 'c1',
    ]);
  });

  it('builds exec, kill and delete', () => {
    expect(execArgs('c1', { processFile: '/b/p.json', pidFile: '/b/e1.pid' })).toEqual([
      'exec', '--process', '/b/p.json', '--detach', '--pid-file', '/b/e1.pid', 'c1',
    ]);
    expect(execArgs('c1', { processFile: '/p', pidFile: '/e', consoleSocket: '/s' })).toContain('--console-socket');
    expect(killArgs('c1', 9, false)).toEqual(['kill', 'c1', '9']);
    expect(killArgs('c1', 15, true)).toEqual(['kill', '--all', 'c1', '15']);
    expect(deleteArgs('c1', false)).toEqual(['delete', 'c1']);
    expect(deleteArgs('c1', true)).toEqual(['delete', '--force', 'c1']);
  });

  it('builds checkpoint with every CheckpointOptions flag', () => {
    expect(checkpointArgs('c1', { imagePath: '/img', workPath: '/w', leaveRunning: true })).toEqual([
      'checkpoint', '--image-path', '/img', '--work-path', '/w', '--leave-running', 'c1',
    ]);
    expect(
      checkpointArgs('c1', {
        imagePath: '/img',
        parentPath: '/parent',
        leaveRunning: false,
        tcpEstablished: true,
        externalUnixSockets: true,
        shellJob: true,
        fileLocks: true,
        cgroupsMode: 'soft',
        emptyNamespaces: ['network', 'ipc'],
      }),
    ).toEqual([
      'checkpoint', '--image-path', '/img', '--parent-path', '/parent', '--tcp-established', '--ext-unix-sk', '--shell-job',
      '--file-locks', '--manage-cgroups-mode', 'soft', '--empty-ns', 'network', '--empty-ns', 'ipc', 'c1',
    ]);
  });

  it('builds restore detached, without a subreaper, bundle last', () => {
    expect(restoreArgs('c1', '/b', { imagePath: '/img', workPath: '/w', pidFile: '/b/init.pid', noPivot: true })).toEqual([
      'restore', '--image-path', '/img', '--work-path', '/w', '--pid-file', '/b/init.pid', '--no-pivot', '--no-subreaper', '--detach',
      '--bundle', '/b', 'c1',
    ]);
  });

  it('parses ps output of runc (compact, null) and crun (pretty)', () => {
    expect(parsePsOutput('[5566]\n')).toEqual([5566]);
    expect(parsePsOutput('[\n  6228,\n  6300\n]\n')).toEqual([6228, 6300]);
    expect(parsePsOutput('null\n')).toEqual([]);
    expect(() => parsePsOutput('{"a":1}')).toThrow(ShimError);
  });

  it('derives the runtime root like the reference shim: <root>/<namespace>', () => {
    expect(runtimeRoot({}, 'k8s.io')).toBe('/run/containerd/runc/k8s.io');
    expect(runtimeRoot({ root: '/run/x' }, 'default')).toBe('/run/x/default');
    expect(runtimeRoot({}, 'default', '/run/containerd/crun/default')).toBe('/run/containerd/crun/default');
    expect(runtimeRoot({ root: '/run/x' }, 'default', '/ignored')).toBe('/run/x/default');
  });

  it('has a deadline for every verb', () => {
    for (const [verb, ms] of Object.entries(DEFAULT_TIMEOUTS)) expect(ms, verb).toBeGreaterThan(0);
  });
});

// A fake runtime: records its argv and stdin, answers per verb.
const FAKE = `#!/bin/sh
printf '%s\\n' "$*" >> "$DIR/argv"
log=""
while [ $# -gt 0 ]; do
  case "$1" in
    --log) log="$2"; shift 2;;
    --root|--log-format) shift 2;;
    --systemd-cgroup) shift;;
    *) break;;
  esac
done
verb="$1"; shift
case "$verb" in
  create) echo to-stdout; echo to-stderr >&2; echo 4242 > "$DIR/b/init.pid";;
  ps) echo '[1, 2]';;
  state) echo '{"id":"c1","pid":42,"status":"running","bundle":"/b"}';;
  start) echo '{"level":"error","msg":"cannot start an already running container","time":"t"}' >> "$log"
         echo 'cannot start an already running container' >&2; exit 1;;
  kill) echo '{"level":"error","msg":"container not running","time":"t"}' >> "$log"; exit 1;;
  resume) exit 1;;
  pause) exec sleep 5;;
  update) [ "$1" = --resources ] && cp "$2" "$DIR/resources";;
  delete) echo 'container does not exist' >&2; exit 1;;
  features) echo 'unknown command features' >&2; exit 1;;
  *) exit 0;;
esac
`;

describe('RuncCli invocations (fake runtime)', () => {
  let dir: string;
  let bundle: string;
  let cli: RuncCli;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsshim-runc-cli-'));
    bundle = join(dir, 'b');
    writeFileSync(join(dir, 'runtime'), FAKE);
    chmodSync(join(dir, 'runtime'), 0o755);
    mkdirSync(bundle, { recursive: true });
    process.env.DIR = dir;
    cli = new RuncCli({ binary: join(dir, 'runtime'), root: join(dir, 'root'), timeouts: { pause: 300 } });
  });

  afterAll(() => {
    delete process.env.DIR;
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes the process stdio fds through on create', async () => {
    const out = openSync(join(dir, 'out'), 'w');
    const err = openSync(join(dir, 'err'), 'w');
    try {
      await cli.create('c1', bundle, { pidFile: join(bundle, 'init.pid') }, ['ignore', out, err]);
    } finally {
      closeSync(out);
      closeSync(err);
    }
    expect(readFileSync(join(dir, 'out'), 'utf8')).toBe('to-stdout\n');
    expect(readFileSync(join(dir, 'err'), 'utf8')).toBe('to-stderr\n');
    const argv = readFileSync(join(dir, 'argv'), 'utf8').trim().split('\n').at(-1);
    expect(argv).toBe(
      `--root ${join(dir, 'root')} --log ${bundle}/log.json --log-format json create --bundle ${bundle} --pid-file ${bundle}/init.pid c1`,
    );
    expect(await readPidFile(join(bundle, INIT_PID_FILE))).toBe(4242);
  });

  it('parses ps and state output', async () => {
    expect(await cli.ps('c1', bundle)).toEqual([1, 2]);
    expect(await cli.state('c1', bundle)).toEqual({ id: 'c1', pid: 42, status: 'running', bundle: '/b' });
  });

  it('classifies from the log lines of this call only', async () => {
    await expect(cli.kill('c1', bundle, 9, false)).rejects.toMatchObject({
      code: 'NotFound',
      message: 'process already finished: container not running',
    });
    // resume fails without logging: the kill's line above must not be blamed on it
    await expect(cli.resume('c1', bundle)).rejects.toMatchObject({
      code: 'Unknown',
      message: `OCI runtime resume failed: ${join(dir, 'runtime')} exited with status 1`,
    });
    await expect(cli.start('c1', bundle)).rejects.toMatchObject({ code: 'FailedPrecondition' });
  });

  it('uses stderr when nothing was logged', async () => {
    await expect(cli.delete('c1', undefined, true)).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('kills the runtime at its deadline', async () => {
    const t0 = Date.now();
    const err = await cli.pause('c1', bundle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).code).toBe('DeadlineExceeded');
    expect((err as ShimError).message).toContain('after 300 ms');
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('passes update resources in a file it removes afterwards', async () => {
    await cli.update('c1', bundle, { memory: { limit: 52428800 } });
    expect(JSON.parse(readFileSync(join(dir, 'resources'), 'utf8'))).toEqual({ memory: { limit: 52428800 } });
    const argv = readFileSync(join(dir, 'argv'), 'utf8').trim().split('\n').at(-1)!;
    expect(argv).toMatch(new RegExp(`update --resources ${bundle}/\\.update-[0-9a-f-]+\\.json c1$`));
    expect(readdirSync(bundle).filter((f) => f.startsWith('.update-'))).toEqual([]);
  });

  it('reports features as undefined when the runtime has no such verb', async () => {
    expect(await cli.features()).toBeUndefined();
  });

  it('names a missing binary', async () => {
    const missing = new RuncCli({ binary: join(dir, 'no-such-runtime'), root: dir });
    await expect(missing.start('c1', bundle)).rejects.toMatchObject({ code: 'FailedPrecondition' });
    await expect(missing.start('c1', bundle)).rejects.toThrow(/no-such-runtime" not found/);
  });
});

describe('RuncBackend basics', () => {
  const exits: ExitSource = { subscribe: () => ({ onExit() {}, take: () => undefined, close() {} }) };

  it('declares capabilities and takes BinaryName/Root from runtime options', () => {
    const b = new RuncBackend({ binary: 'crun', exits, criuAvailable: false });
    expect(b.name).toBe('crun');
    expect(b.capabilities).toEqual({ checkpoint: false, pause: true, update: true, terminal: true });
    const cli = b.cliFor({ binaryName: '/usr/bin/runc', root: '/run/r', systemdCgroup: true }, 'ns1');
    expect(cli.binary).toBe('/usr/bin/runc');
    expect(cli.root).toBe('/run/r/ns1');
    expect(cli.systemdCgroup).toBe(true);
    expect(b.cliFor({}, 'ns1').root).toBe('/run/containerd/runc/ns1');
  });

  it('refuses checkpoint without criu as Unimplemented', async () => {
    const b = new RuncBackend({ exits, criuAvailable: false });
    await expect(
      b.create({
        id: 'c1',
        namespace: 'default',
        bundle: '/nonexistent',
        stdio: { terminal: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' },
        options: {},
        checkpoint: '/img',
      }),
    ).rejects.toMatchObject({ code: 'Unimplemented' });
  });

  it('maps ESRCH of killProcess to NotFound "process already finished"', async () => {
    const b = new RuncBackend({ exits, criuAvailable: false });
    // a pid above pid_max cannot exist
    await expect(b.killProcess({ id: 'c1', bundle: '/b' }, 4_194_304 + 1, 0)).rejects.toMatchObject({
      code: 'NotFound',
      message: 'process already finished',
    });
  });

  it('finds executables on PATH', () => {
    expect(onPath('sh')).toBe(true);
    expect(onPath('definitely-not-a-binary-here')).toBe(false);
  });

  it('rejects pid files without a pid', async () => {
    const d = mkdtempSync(join(tmpdir(), 'tsshim-pid-'));
    try {
      writeFileSync(join(d, 'p'), '12x');
      await expect(readPidFile(join(d, 'p'))).rejects.toMatchObject({ code: 'Internal' });
      writeFileSync(join(d, 'p'), '123');
      expect(await readPidFile(join(d, 'p'))).toBe(123);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
