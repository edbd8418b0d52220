import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TaskCore, ZERO_TIME, type ProcessIo, type CreateTaskInput } from '../../src/core/task-core.js';
import type { TaskEvent } from '../../src/core/events.js';
import { ShimError } from '../../src/core/errors.js';
import { StubBackend } from './stub-backend.js';

class NullIo implements ProcessIo {
  readonly stdio = { terminal: false, stdin: 'ignore' as const, stdout: 'ignore' as const, stderr: 'ignore' as const };
  released = 0;
  stdinClosed = false;
  afterSpawn(): void {}
  closeStdin(): void {
    this.stdinClosed = true;
  }
  attachConsole(): void {}
  resize(): void {}
  async release(): Promise<void> {
    this.released++;
  }
}

let dir: string;
let backend: StubBackend;
let events: TaskEvent[];
let ios: NullIo[];
let oomChecks: string[];
let core: TaskCore;

function bundle(spec: object = { linux: { namespaces: [{ type: 'pid' }] } }): string {
  const b = fs.mkdtempSync(path.join(dir, 'b-'));
  fs.writeFileSync(path.join(b, 'config.json'), JSON.stringify(spec));
  return b;
}

function input(id: string, b = bundle()): CreateTaskInput {
  return { id, bundle: b, rootfs: [], terminal: false, stdin: '', stdout: '', stderr: '', checkpoint: '', options: {} };
}

const topics = () => events.map((e) => `${e.topic}${'id' in e && e.topic === '/tasks/exit' ? ':' + e.id : ''}`);
const tick = () => new Promise((r) => setImmediate(r));

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-core-'));
  backend = new StubBackend();
  events = [];
  ios = [];
  oomChecks = [];
  core = new TaskCore({
    namespace: 'default',
    events: { publish: (e) => events.push(e) },
    selectBackend: () => backend,
    io: {
      open: async () => {
        const io = new NullIo();
        ios.push(io);
        return io;
      },
    },
    rootfs: { mount: async () => {}, unmount: async () => {} },
    oom: { watch: () => {}, check: (id) => void oomChecks.push(id), unwatch: () => {} },
    log: { debug() {}, info() {}, warn() {}, error() {} },
  });
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TaskCore: the request decides the terminal', () => {
  it("an exec's process spec reaches the backend with the request's terminal, whatever it said", async () => {
    const { pid } = await core.create(input('t1'));
    await core.start('t1', '');
    const cases = [
      { execId: 'spec-false-request-true', spec: { args: ['sh'], terminal: false }, request: true },
      { execId: 'spec-true-request-false', spec: { args: ['sh'], terminal: true }, request: false },
      { execId: 'spec-silent-request-true', spec: { args: ['sh'] }, request: true },
      { execId: 'agreeing', spec: { args: ['sh'], terminal: true }, request: true },
    ];
    for (const c of cases) {
      await core.exec('t1', c.execId, { stdin: '', stdout: '', stderr: 'e', terminal: c.request }, c.spec);
      await core.start('t1', c.execId);
    }
    expect(backend.execSpecs.map((s) => s.terminal)).toEqual(cases.map((c) => c.request));
    expect(backend.execSpecs.map((s) => s.args)).toEqual(cases.map(() => ['sh']));
    // the caller's spec object is not edited
    expect(cases[0]!.spec.terminal).toBe(false);
    // and State reports the request's terminal (with no stderr for a terminal)
    expect(core.state('t1', 'spec-false-request-true')).toMatchObject({ terminal: true, stderr: '' });
    expect(core.state('t1', 'spec-true-request-false')).toMatchObject({ terminal: false, stderr: 'e' });
    backend.exits.emit(pid, 0);
  });

  it('a Create whose request and config.json disagree on the terminal is refused before the backend runs', async () => {
    const withTerminal = (terminal: boolean | undefined) => bundle({ process: terminal === undefined ? { args: ['sh'] } : { args: ['sh'], terminal }, linux: { namespaces: [{ type: 'pid' }] } });
    await expect(core.create({ ...input('t2', withTerminal(false)), terminal: true })).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^terminal: the Create request asks for a terminal but process\.terminal is false in \/.*\/config\.json; they must agree$/),
    });
    await expect(core.create({ ...input('t3', withTerminal(undefined)), terminal: true })).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(core.create({ ...input('t4', withTerminal(true)), terminal: false })).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/^terminal: process\.terminal is true in \/.*\/config\.json but the Create request asks for no terminal; they must agree$/),
    });
    expect(backend.calls).toEqual([]);
    expect(ios).toEqual([]);
    expect(core.size).toBe(0);
    // agreeing either way is fine
    await core.create({ ...input('t5', withTerminal(true)), terminal: true });
    await core.create({ ...input('t6', withTerminal(false)), terminal: false });
    expect(backend.calls).toEqual(['create t5', 'create t6']);
  });
});

describe('TaskCore lifecycle', () => {
  it('create → start → exit → delete publishes events in order with exit status', async () => {
    const { pid } = await core.create(input('c1'));
    expect(core.state('c1', '').status).toBe(1);
    await core.start('c1', '');
    expect(core.state('c1', '').status).toBe(2);
    const waited = core.wait('c1', '');
    backend.exits.emit(pid, 137);
    const w = await waited;
    expect(w.exitStatus).toBe(137);
    expect(core.state('c1', '').status).toBe(3);
    const d = await core.delete('c1', '');
    expect(d).toMatchObject({ pid, exitStatus: 137 });
    expect(topics()).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit:c1', '/tasks/delete']);
    expect(oomChecks).toEqual(['c1']);
    expect(ios[0]!.released).toBeGreaterThan(0);
    expect(() => core.state('c1', '')).toThrow(/not created/);
  });

  it('an exit reaped before create returns its pid is not lost', async () => {
    backend.onCreate = (pid) => backend.exits.emit(pid, 3);
    await core.create(input('c2'));
    // the init died before Start: its exit is reported, and Start is refused
    const w = await core.wait('c2', '');
    expect(w.exitStatus).toBe(3);
    await expect(core.start('c2', '')).rejects.toMatchObject({ code: 'FailedPrecondition' });
    expect(topics()).toEqual(['/tasks/create', '/tasks/exit:c2']);
  });

  it('an exit during Start is published after the start event', async () => {
    const { pid } = await core.create(input('c3'));
    backend.onStart = () => backend.exits.emit(pid, 0);
    await core.start('c3', '');
    await tick();
    expect(topics()).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit:c3']);
  });

  it("holds the init's exit until its execs have exited", async () => {
    const { pid } = await core.create(input('c4'));
    await core.start('c4', '');
    await core.exec('c4', 'e1', { stdin: '', stdout: '', stderr: '', terminal: false }, { args: ['sh'] });
    const { pid: epid } = await core.start('c4', 'e1');
    backend.exits.emit(pid, 137);
    await tick();
    expect(topics()).not.toContain('/tasks/exit:c4');
    backend.exits.emit(epid, 137);
    await tick();
    await tick();
    expect(topics()).toEqual([
      '/tasks/create',
      '/tasks/start',
      '/tasks/exec-added',
      '/tasks/exec-started',
      '/tasks/exit:e1',
      '/tasks/exit:c4',
    ]);
    // no runtime kill-all: the kernel empties a private PID namespace when init dies
    expect(backend.calls.filter((c) => c.includes(' all'))).toEqual([]);
  });

  it('rejects wrong-state verbs with FailedPrecondition and finished kills with NotFound', async () => {
    const { pid } = await core.create(input('c5'));
    await expect(core.pause('c5')).rejects.toMatchObject({ code: 'FailedPrecondition' });
    await core.start('c5', '');
    await expect(core.start('c5', '')).rejects.toMatchObject({ code: 'FailedPrecondition' });
    await expect(core.delete('c5', '')).rejects.toMatchObject({ code: 'FailedPrecondition' });
    await core.pause('c5');
    expect(core.state('c5', '').status).toBe(4);
    await expect(core.exec('c5', 'x', { stdin: '', stdout: '', stderr: '', terminal: false }, {})).rejects.toMatchObject({
      code: 'FailedPrecondition',
    });
    await core.resume('c5');
    backend.exits.emit(pid, 1);
    await core.wait('c5', '');
    await expect(core.kill('c5', '', 15, false)).rejects.toMatchObject({ code: 'NotFound', message: 'process already finished' });
    await expect(core.kill('c5', 'nope', 15, false)).rejects.toMatchObject({ code: 'NotFound' });
    expect(topics()).toContain('/tasks/paused');
    expect(topics()).toContain('/tasks/resumed');
  });

  it('duplicate exec id → AlreadyExists; unknown container → NotFound', async () => {
    await core.create(input('c6'));
    await core.start('c6', '');
    const io = { stdin: '', stdout: '', stderr: '', terminal: false };
    await core.exec('c6', 'e', io, {});
    await expect(core.exec('c6', 'e', io, {})).rejects.toMatchObject({ code: 'AlreadyExists' });
    expect(() => core.state('nosuch', '')).toThrow(ShimError);
    await expect(core.kill('nosuch', '', 9, false)).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('a failed exec start releases Wait with 0 and the zero time, and publishes no exit', async () => {
    await core.create(input('c7'));
    await core.start('c7', '');
    await core.exec('c7', 'bad', { stdin: '', stdout: '', stderr: '', terminal: false }, {});
    const w = core.wait('c7', 'bad');
    backend.failExec = new ShimError('Unknown', 'OCI runtime exec failed: no such file');
    await expect(core.start('c7', 'bad')).rejects.toThrow(/exec failed/);
    expect(await w).toEqual({ pid: 0, exitStatus: 0, exitedAt: ZERO_TIME });
    expect(topics().filter((t) => t.startsWith('/tasks/exit'))).toEqual([]);
    await core.delete('c7', 'bad');
  });

  it('a failed create leaves nothing and the id can be reused', async () => {
    backend.failCreate = new ShimError('Unknown', 'OCI runtime create failed: exec: "/nope": not found');
    let emptied = 0;
    core.onEmpty(() => emptied++);
    await expect(core.create(input('c8'))).rejects.toThrow(/create failed/);
    expect(core.size).toBe(0);
    expect(emptied).toBe(1);
    expect(ios.every((io) => io.released > 0)).toBe(true);
    backend.failCreate = undefined;
    await core.create(input('c8'));
    expect(core.size).toBe(1);
  });

  it('a broken config.json is InvalidArgument naming the bundle', async () => {
    const b = fs.mkdtempSync(path.join(dir, 'bad-'));
    fs.writeFileSync(path.join(b, 'config.json'), '{ not json');
    await expect(core.create(input('c9', b))).rejects.toMatchObject({ code: 'InvalidArgument' });
    expect(core.size).toBe(0);
  });

  it('invalid ids are refused before touching anything', async () => {
    await expect(core.create(input('../etc'))).rejects.toMatchObject({ code: 'InvalidArgument' });
    expect(backend.calls).toEqual([]);
  });

  it('deleting a never-started container publishes no exit after the delete', async () => {
    const { pid } = await core.create(input('c10'));
    const d = await core.delete('c10', '');
    backend.exits.emit(pid, 137);
    await tick();
    expect(d.exitStatus).toBe(0);
    expect(topics()).toEqual(['/tasks/create', '/tasks/delete']);
  });

  it('kills what is left of a container without its own PID namespace before its exit event', async () => {
    const b = bundle({ linux: { namespaces: [{ type: 'pid', path: '/proc/1/ns/pid' }] } });
    const { pid } = await core.create(input('c11', b));
    await core.start('c11', '');
    backend.exits.emit(pid, 0);
    await core.wait('c11', '');
    expect(backend.calls).toContain('kill c11 9 all');
    // a later Kill(all) on the stopped init still reaches leftovers, and is not an error
    backend.calls.length = 0;
    await core.kill('c11', '', 9, true);
    expect(backend.calls).toEqual(['kill c11 9 all']);
    await expect(core.kill('c11', '', 9, false)).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('Connect reports 0 for an unknown id', () => {
    expect(core.taskPid('nobody')).toBe(0);
  });
});
