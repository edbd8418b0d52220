/**
 * The real shim binary (start → serve → delete) against a fake containerd that records
 * events, once with the default backend (native, no config file) and once with runc.
 * Asserts the binary contract and the event order.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { FakeContainerd, connectShim } from './fake-containerd.js';
import { makeBundle, removeRootfsTemplate } from './oci-bundle.js';
import * as pb from '../../src/proto/gen/containerd/task/v2/shim.js';
import { DeleteResponse } from '../../src/proto/gen/containerd/task/v2/shim.js';
import { TASK_SERVICE_V2, TypeUrl, packJson, packMessage } from '../../src/proto/typeurls.js';
import { Options as RuntimeOptions } from '../../src/proto/gen/runtimeoptions/v1/options.js';
import { Any } from '../../src/proto/gen/google/protobuf/any.js';
import type { TtrpcClient } from '../../src/ttrpc/client.js';

const NS = 'tsshim-component';
let dir: string;
let fake: FakeContainerd;

function mkfifo(p: string): string {
  execFileSync('mkfifo', [p]);
  return p;
}

/** a reader that collects everything written to a FIFO until EOF */
function readFifo(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = fs.createReadStream(p);
    s.on('data', (c) => chunks.push(c as Buffer));
    s.on('end', () => resolve(Buffer.concat(chunks).toString()));
    s.on('error', reject);
  });
}

async function call<Req, Res>(
  client: TtrpcClient,
  method: string,
  req: { encode(m: Req): { finish(): Uint8Array }; fromPartial(p: object): Req },
  value: object,
  res?: { decode(b: Uint8Array): Res },
): Promise<Res | undefined> {
  const out = await client.call(TASK_SERVICE_V2, method, req.encode(req.fromPartial(value)).finish(), { timeoutMs: 30_000 });
  return res ? res.decode(out) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tss-'));
  fake = new FakeContainerd(dir);
  await fake.start();
});

afterAll(async () => {
  await fake?.stop();
  removeRootfsTemplate();
  execFileSync('sh', ['-c', `runc --root /run/containerd/runc/${NS} list -q | xargs -r -n1 runc --root /run/containerd/runc/${NS} delete --force || true`]);
  fs.rmSync(dir, { recursive: true, force: true });
});

const VARIANTS = [
  { label: 'default backend (native)', tag: 'n', config: undefined },
  { label: 'runc backend', tag: 'r', config: 'backend = "runc"\n' },
];

describe.each(VARIANTS)('shim binary against a fake containerd: $label', ({ tag, config }) => {
  beforeAll(() => {
    fake.events.length = 0;
    if (config === undefined) {
      // the daemon reports the built-ins it loaded when it exits (see the first test)
      const preload = path.join(dir, 'report-builtins.cjs');
      fs.writeFileSync(
        preload,
        `if (process.argv.includes('serve')) process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(dir)} + '/builtins-' + process.pid + '.json', JSON.stringify(process.moduleLoadList)));\n`,
      );
      fake.env = { NODE_OPTIONS: `--require ${preload}` };
      return;
    }
    const file = path.join(dir, `backend-${process.pid}.toml`);
    fs.writeFileSync(file, config);
    fake.env = { TSSHIM_CONFIG: file };
  });

  it('start prints only an address, serves the Task API, publishes events in order, exits on Shutdown', async () => {
    const id = `c${process.pid}${tag}a`;
    const bundle = makeBundle(dir, id, { args: ['sh', '-c', 'echo out; echo err >&2; sleep 30'] });
    mkfifo(path.join(bundle, 'log'));
    const logFd = fs.openSync(path.join(bundle, 'log'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);

    const start = await fake.runShim('start', { namespace: NS, id, bundle });
    expect(start.exitCode).toBe(0);
    expect(start.stderr).toBe('');
    const address = String(start.stdout).trim();
    expect(address).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(fs.readFileSync(path.join(bundle, 'address'), 'utf8')).toBe(address);
    const sock = address.slice('unix://'.length);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);

    // a second start of the same group reuses the running daemon
    const again = await fake.runShim('start', { namespace: NS, id, bundle });
    expect(String(again.stdout).trim()).toBe(address);

    const client = await connectShim(address);
    const stdout = mkfifo(path.join(dir, `${id}-stdout`));
    const stderr = mkfifo(path.join(dir, `${id}-stderr`));
    const outP = readFifo(stdout);
    const errP = readFifo(stderr);
    const created = await call(client, 'Create', pb.CreateTaskRequest, { id, bundle, stdout, stderr }, pb.CreateTaskResponse);
    expect(created!.pid).toBeGreaterThan(0);
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    expect(conn!.taskPid).toBe(created!.pid);
    const shimPid = conn!.shimPid;
    expect(alive(shimPid)).toBe(true);

    await call(client, 'Start', pb.StartRequest, { id });
    const st = await call(client, 'State', pb.StateRequest, { id }, pb.StateResponse);
    expect(st!.status).toBe(2);
    expect(st!.exitedAt!.seconds).toBe(-62135596800n);

    // exec: output and exit code
    const execOut = mkfifo(path.join(dir, `${id}-e1-stdout`));
    const execOutP = readFifo(execOut);
    const spec = packJson(TypeUrl.OciProcess, { args: ['sh', '-c', 'echo from-exec; exit 3'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } });
    await call(client, 'Exec', pb.ExecProcessRequest, { id, execId: 'e1', stdout: execOut, spec });
    const execWait = call(client, 'Wait', pb.WaitRequest, { id, execId: 'e1' }, pb.WaitResponse);
    await call(client, 'Start', pb.StartRequest, { id, execId: 'e1' });
    expect((await execWait)!.exitStatus).toBe(3);
    expect(await execOutP).toBe('from-exec\n');
    await call(client, 'Delete', pb.DeleteRequest, { id, execId: 'e1' });

    // unknown exec and unknown container are NotFound
    await expect(call(client, 'Kill', pb.KillRequest, { id, execId: 'nope', signal: 9 })).rejects.toMatchObject({ code: 5 });
    await expect(call(client, 'State', pb.StateRequest, { id: 'nosuch' })).rejects.toMatchObject({ code: 5 });

    const wait = call(client, 'Wait', pb.WaitRequest, { id }, pb.WaitResponse);
    await call(client, 'Kill', pb.KillRequest, { id, signal: 9 });
    expect((await wait)!.exitStatus).toBe(137);
    await expect(call(client, 'Kill', pb.KillRequest, { id, signal: 9 })).rejects.toMatchObject({ code: 5 });
    expect(await outP).toBe('out\n');
    expect(await errP).toBe('err\n');

    const del = await call(client, 'Delete', pb.DeleteRequest, { id }, pb.DeleteResponse);
    expect(del!.exitStatus).toBe(137);
    await fake.waitFor((e) => e.topic === '/tasks/delete');
    expect(fake.topics()).toEqual([
      '/tasks/create',
      '/tasks/start',
      '/tasks/exec-added',
      '/tasks/exec-started',
      `/tasks/exit:e1`,
      `/tasks/exit:${id}`,
      '/tasks/delete',
    ]);
    expect(fake.events.every((e) => e.namespace === NS)).toBe(true);

    await call(client, 'Shutdown', pb.ShutdownRequest, { id });
    client.close();
    for (let i = 0; i < 100 && alive(shimPid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(shimPid)).toBe(false);
    expect(fs.existsSync(sock)).toBe(false);
    if (config === undefined) {
      // a native container's whole life, exec included, never needed net, streams or
      // child_process (each costs milliseconds of a new shim's boot; src/sys/lazy-builtins.ts)
      const builtins = JSON.parse(fs.readFileSync(path.join(dir, `builtins-${shimPid}.json`), 'utf8')) as string[];
      expect(builtins).toContain('NativeModule vm');
      for (const m of ['net', 'stream', 'child_process', 'cluster']) expect(builtins).not.toContain(`NativeModule ${m}`);
    }

    // containerd runs `delete` after every task deletion: idempotent, DeleteResponse on stdout
    const d = await fake.runShim('delete', { namespace: NS, id, bundle });
    expect(d.exitCode).toBe(0);
    const resp = DeleteResponse.decode(d.stdout as unknown as Uint8Array);
    expect(resp.exitStatus).toBe(137);
    fs.closeSync(logFd);
  });

  it("an exec's terminal is the request's, whatever its process spec says: the output arrives", async () => {
    const id = `c${process.pid}${tag}t`;
    const bundle = makeBundle(dir, id, { args: ['sleep', '300'] });
    const start = await fake.runShim('start', { namespace: NS, id, bundle });
    const client = await connectShim(String(start.stdout).trim());
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    await call(client, 'Create', pb.CreateTaskRequest, { id, bundle }, pb.CreateTaskResponse);
    await call(client, 'Start', pb.StartRequest, { id });
    const probe = 'if [ -t 0 ] && [ -t 1 ]; then echo "tty $(tty)"; else echo no-tty; fi';
    const runExec = async (execId: string, specTerminal: boolean, requestTerminal: boolean) => {
      const out = mkfifo(path.join(dir, `${id}-${execId}-stdout`));
      const err = mkfifo(path.join(dir, `${id}-${execId}-stderr`));
      const outP = readFifo(out);
      // a terminal has no stderr of its own: nobody writes it, so its reader is ended by hand
      const errP = requestTerminal ? Promise.resolve('') : readFifo(err);
      const spec = packJson(TypeUrl.OciProcess, { terminal: specTerminal, args: ['sh', '-c', probe], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } });
      await call(client, 'Exec', pb.ExecProcessRequest, { id, execId, terminal: requestTerminal, stdout: out, stderr: requestTerminal ? '' : err, spec });
      const wait = call(client, 'Wait', pb.WaitRequest, { id, execId }, pb.WaitResponse);
      await call(client, 'Start', pb.StartRequest, { id, execId });
      expect((await wait)!.exitStatus).toBe(0);
      const st = await call(client, 'State', pb.StateRequest, { id, execId }, pb.StateResponse);
      expect(st!.terminal).toBe(requestTerminal);
      await call(client, 'Delete', pb.DeleteRequest, { id, execId });
      return { out: await outP, err: await errP };
    };
    // request true, spec false: a pty (runc refused the console socket; native dropped the output)
    expect((await runExec('req-tty', false, true)).out).toMatch(/^tty \/dev\/pts\/\d+\r\n$/);
    // request false, spec true: plain FIFOs
    expect(await runExec('req-plain', true, false)).toEqual({ out: 'no-tty\n', err: '' });
    const wait = call(client, 'Wait', pb.WaitRequest, { id }, pb.WaitResponse);
    await call(client, 'Kill', pb.KillRequest, { id, signal: 9 });
    await wait;
    await call(client, 'Delete', pb.DeleteRequest, { id }, pb.DeleteResponse);
    await call(client, 'Shutdown', pb.ShutdownRequest, { id });
    client.close();
    for (let i = 0; i < 100 && alive(conn!.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(conn!.shimPid)).toBe(false);
  });

  it("a Create whose terminal disagrees with config.json's is refused, both ways, leaving nothing behind", async () => {
    const id = `c${process.pid}${tag}u`;
    const plain = makeBundle(dir, id, { args: ['sh', '-c', 'echo hi'] });
    const tty = makeBundle(dir, `${id}-tty`, { args: ['sh', '-c', 'echo hi'], terminal: true });
    const start = await fake.runShim('start', { namespace: NS, id, bundle: plain });
    const client = await connectShim(String(start.stdout).trim());
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    const out = mkfifo(path.join(dir, `${id}-stdout`));
    const hold = fs.openSync(out, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    await expect(call(client, 'Create', pb.CreateTaskRequest, { id, bundle: plain, terminal: true, stdout: out })).rejects.toMatchObject({
      code: 3,
      message: `terminal: the Create request asks for a terminal but process.terminal is false in ${plain}/config.json; they must agree: invalid argument`,
    });
    await expect(call(client, 'Create', pb.CreateTaskRequest, { id: `${id}-tty`, bundle: tty, terminal: false, stdout: out })).rejects.toMatchObject({
      code: 3,
      message: `terminal: process.terminal is true in ${tty}/config.json but the Create request asks for no terminal; they must agree: invalid argument`,
    });
    fs.closeSync(hold);
    const list = execFileSync('runc', ['--root', `/run/containerd/runc/${NS}`, 'list', '-q'], { encoding: 'utf8' });
    expect(list.split('\n')).not.toContain(id);
    expect(list.split('\n')).not.toContain(`${id}-tty`);
    await expect(call(client, 'State', pb.StateRequest, { id })).rejects.toMatchObject({ code: 5 });
    // the shim is empty again: Shutdown ends it
    await call(client, 'Shutdown', pb.ShutdownRequest, { id });
    client.close();
    for (let i = 0; i < 100 && alive(conn!.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(conn!.shimPid)).toBe(false);
  });

  it('SIGKILLed shim: delete kills the container and reports 137', async () => {
    const id = `c${process.pid}${tag}b`;
    const bundle = makeBundle(dir, id, { args: ['sleep', '300'] });
    const start = await fake.runShim('start', { namespace: NS, id, bundle });
    const address = String(start.stdout).trim();
    const client = await connectShim(address);
    const created = await call(client, 'Create', pb.CreateTaskRequest, { id, bundle }, pb.CreateTaskResponse);
    await call(client, 'Start', pb.StartRequest, { id });
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    client.close();
    process.kill(conn!.shimPid, 'SIGKILL');
    for (let i = 0; i < 100 && alive(conn!.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(created!.pid)).toBe(true);
    const socket = address.replace(/^unix:\/\//, '');
    expect(fs.existsSync(socket)).toBe(true); // the killed daemon could not remove it
    const d = await fake.runShim('delete', { namespace: NS, id, bundle });
    expect(d.exitCode).toBe(0);
    const resp = DeleteResponse.decode(d.stdout as unknown as Uint8Array);
    expect(resp).toMatchObject({ pid: created!.pid, exitStatus: 137 });
    expect(fs.existsSync(socket)).toBe(false); // nobody listened on it: delete removed it
    for (let i = 0; i < 100 && alive(created!.pid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(created!.pid)).toBe(false);
    // a second delete is a no-op
    expect((await fake.runShim('delete', { namespace: NS, id, bundle })).exitCode).toBe(0);
  });

  it('delete keeps the group socket while a daemon still serves it', async () => {
    const id = `c${process.pid}${tag}k`;
    const bundle = makeBundle(dir, id, { args: ['sleep', '300'] });
    const start = await fake.runShim('start', { namespace: NS, id, bundle });
    const address = String(start.stdout).trim();
    const socket = address.replace(/^unix:\/\//, '');
    // containerd 2.x runs delete after a task's deletion while the group's daemon lives on
    expect((await fake.runShim('delete', { namespace: NS, id, bundle })).exitCode).toBe(0);
    expect(fs.existsSync(socket)).toBe(true);
    const client = await connectShim(address);
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    await call(client, 'Shutdown', pb.ShutdownRequest, { id });
    client.close();
    for (let i = 0; i < 100 && alive(conn!.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(fs.existsSync(socket)).toBe(false);
  });

  it('a missing executable fails Create with a clear error and leaves nothing behind', async () => {
    const id = `c${process.pid}${tag}c`;
    const bundle = makeBundle(dir, id, { args: ['/nonexistent'] });
    const start = await fake.runShim('start', { namespace: NS, id, bundle });
    const client = await connectShim(String(start.stdout).trim());
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    await expect(call(client, 'Create', pb.CreateTaskRequest, { id, bundle })).rejects.toThrow(/nonexistent/);
    const list = execFileSync('runc', ['--root', `/run/containerd/runc/${NS}`, 'list', '-q'], { encoding: 'utf8' });
    expect(list.split('\n')).not.toContain(id);
    await call(client, 'Shutdown', pb.ShutdownRequest, { id });
    client.close();
    for (let i = 0; i < 100 && alive(conn!.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(conn!.shimPid)).toBe(false);
  });

  it('a bad config file is a clear start error', async () => {
    const id = `c${process.pid}${tag}d`;
    const bundle = makeBundle(dir, id, { args: ['true'] });
    const cfg = path.join(dir, 'bad.toml');
    fs.writeFileSync(cfg, 'backend = "nonsense"\n');
    const start = await fake.runShim('start', { namespace: NS, id, bundle, env: { TSSHIM_CONFIG: cfg } });
    expect(start.exitCode).not.toBe(0);
    expect(String(start.stdout)).toMatch(/backend must be one of/);
  });

  it('a TOML syntax error names its line and column, at start and at Create', async () => {
    const id = `c${process.pid}${tag}s`;
    const bundle = makeBundle(dir, id, { args: ['true'] });
    const cfg = path.join(dir, `unterminated-${tag}.toml`);
    fs.writeFileSync(cfg, '[shim]\ngroup = "container\nlog_level = "info"\n');
    const want = `tsshim config ${cfg}: line 2, column 9: unterminated string: "container must end with " on the same line`;
    // start: through TSSHIM_CONFIG, and through the runtime options' ConfigPath (what CRI sends)
    const byEnv = await fake.runShim('start', { namespace: NS, id, bundle, env: { TSSHIM_CONFIG: cfg } });
    expect(byEnv.exitCode).not.toBe(0);
    expect(String(byEnv.stdout).trim()).toBe(`tsshim start: ${want}`);
    const options = packMessage(TypeUrl.RuntimeOptions, RuntimeOptions, RuntimeOptions.fromPartial({ configPath: cfg }));
    const byOptions = await fake.runShim('start', { namespace: NS, id, bundle, input: Any.encode(options).finish() });
    expect(byOptions.exitCode).not.toBe(0);
    expect(String(byOptions.stdout).trim()).toBe(`tsshim start: ${want}`);
    // Create: a shim already serving (started under this variant's config) gets a Create whose
    // runtime options name the broken file
    const start = await fake.runShim('start', { namespace: NS, id, bundle });
    expect(start.exitCode).toBe(0);
    const client = await connectShim(String(start.stdout).trim());
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    await expect(call(client, 'Create', pb.CreateTaskRequest, { id, bundle, options })).rejects.toMatchObject({
      code: 3,
      message: `${want}: invalid argument`,
    });
    await call(client, 'Shutdown', pb.ShutdownRequest, { id });
    client.close();
    for (let i = 0; i < 100 && alive(conn!.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(conn!.shimPid)).toBe(false);
  });
});

describe('shim binary: the environment of what the daemon runs', () => {
  it("runtimes get containerd's GLIBC_TUNABLES, not the daemon's malloc tunables", async () => {
    const id = `c${process.pid}env`;
    const bundle = makeBundle(dir, id, { args: ['true'] });
    // a runtime that records the GLIBC_TUNABLES it got, then is runc
    const record = path.join(dir, 'runtime-tunables');
    const wrapper = path.join(dir, 'recording-runc');
    fs.writeFileSync(wrapper, `#!/bin/sh\necho "\${GLIBC_TUNABLES-unset}" >> ${record}\nexec runc "$@"\n`, { mode: 0o755 });
    const cfg = path.join(dir, 'recording.toml');
    fs.writeFileSync(cfg, `backend = "runc"\n[runc]\nbinary = "${wrapper}"\n`);
    const start = await fake.runShim('start', { namespace: NS, id, bundle, env: { TSSHIM_CONFIG: cfg, GLIBC_TUNABLES: 'glibc.malloc.tcache_count=7' } });
    expect(start.exitCode).toBe(0);
    const client = await connectShim(String(start.stdout).trim());
    const conn = await call(client, 'Connect', pb.ConnectRequest, { id }, pb.ConnectResponse);
    await call(client, 'Create', pb.CreateTaskRequest, { id, bundle }, pb.CreateTaskResponse);
    await call(client, 'Delete', pb.DeleteRequest, { id }, pb.DeleteResponse);
    await call(client, 'Shutdown', pb.ShutdownRequest, { id });
    client.close();
    for (let i = 0; i < 100 && alive(conn!.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
    const lines = fs.readFileSync(record, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2); // create, delete
    expect(new Set(lines)).toEqual(new Set(['glibc.malloc.tcache_count=7']));
  });
});
