/**
 * Non-terminal stdio: the client's FIFOs / files are handed straight to the process. A plain
 * child process stands in for the runtime (it receives ProcessIo.stdio as fds 0-2).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ShimError } from '../../src/core/errors.js';
import { openProcessIo, type ProcessIo } from '../../src/io/process-io.js';
import {
  blockedOnPipeWrite,
  endSocket,
  isAlive,
  mkfifo,
  openFds,
  readFifo,
  openReaderEarly,
  spawnWithStdio,
  tempDir,
  waitForOutput,
  writeFifo,
} from './io-fixtures.js';

const ctx = { id: 'c1', namespace: 'test' };

describe('FIFO passthrough', () => {
  let dir: ReturnType<typeof tempDir>;
  let fdsBefore: number[];
  let paths: { stdin: string; stdout: string; stderr: string };
  const ios: ProcessIo[] = [];

  beforeEach(() => {
    dir = tempDir();
    paths = {
      stdin: join(dir.path, 'c1-stdin'),
      stdout: join(dir.path, 'c1-stdout'),
      stderr: join(dir.path, 'c1-stderr'),
    };
    mkfifo(paths.stdin, paths.stdout, paths.stderr);
    fdsBefore = openFds();
  });

  afterEach(async () => {
    await Promise.all(ios.splice(0).map((io) => io.release()));
    dir.cleanup();
  });

  async function open(uris: Partial<typeof paths>): Promise<ProcessIo> {
    const io = await openProcessIo({ stdin: '', stdout: '', stderr: '', terminal: false, ...uris }, ctx);
    ios.push(io);
    return io;
  }

  it('delivers exactly the bytes to a client that opened its readers first', async () => {
    // the client's readers exist before the shim opens anything (what containerd does)
    const outFd = openReaderEarly(paths.stdout);
    const errFd = openReaderEarly(paths.stderr);
    const io = await open({ stdout: paths.stdout, stderr: paths.stderr });
    const out = readFifo(outFd).data;
    const err = readFifo(errFd).data;
    expect(io.stdio).toMatchObject({ terminal: false, stdin: 'ignore' });
    const p = spawnWithStdio(io.stdio, 'echo out; echo err >&2');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    // the process was the last writer: the client sees EOF without the shim releasing
    expect((await out).toString()).toBe('out\n');
    expect((await err).toString()).toBe('err\n');
    await io.release();
    expect(openFds()).toEqual(fdsBefore);
  });

  it('keeps output for a client that attaches after the process exited', async () => {
    const io = await open({ stdout: paths.stdout, stderr: paths.stderr });
    const p = spawnWithStdio(io.stdio, 'echo out; echo err >&2');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    // the data waits in the pipe because the shim's keep-alive reader holds it open. (A
    // reader that opens after the last writer left gets no EOF: Linux reports POLLHUP only
    // for writers that came and went while it was open; so wait for the bytes, not for EOF.)
    const out = readFifo(paths.stdout);
    const err = readFifo(paths.stderr);
    expect(await waitForOutput(out.sock, (t) => t.length >= 4)).toBe('out\n');
    expect(await waitForOutput(err.sock, (t) => t.length >= 4)).toBe('err\n');
    out.close();
    err.close();
    await io.release();
    expect(openFds()).toEqual(fdsBefore);
  });

  it('passes 20 MB to a slow reader without losing a byte', async () => {
    const file = join(dir.path, 'blob');
    const blob = randomBytes(20 << 20);
    writeFileSync(file, blob);
    const io = await open({ stdout: paths.stdout });
    const client = readFifo(paths.stdout, { slowMs: 1 });
    const p = spawnWithStdio(io.stdio, `cat '${file}'`);
    io.afterSpawn();
    const got = await client.data;
    expect(await p.exit).toEqual({ code: 0, signal: null });
    expect(got.length).toBe(blob.length);
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(blob).digest('hex'));
    await io.release();
    expect(openFds()).toEqual(fdsBefore);
  });

  it('stdin: the process sees EOF only after the client closed AND CloseIO', async () => {
    const io = await open({ stdin: paths.stdin, stdout: paths.stdout });
    const out = readFifo(paths.stdout);
    const p = spawnWithStdio(io.stdio, 'cat; echo cat-saw-eof');
    io.afterSpawn();
    const seen = waitForOutput(out.sock, (t) => t === 'hello\n');
    await endSocket(writeFifo(paths.stdin), 'hello\n');
    await seen;
    // every client writer is closed, yet the shim's stdin writer keeps cat waiting; a client
    // may re-attach and write more
    const more = waitForOutput(out.sock, (t) => t === 'again\n');
    await endSocket(writeFifo(paths.stdin), 'again\n');
    await more;
    expect(p.child.exitCode).toBeNull();
    io.closeStdin();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    expect((await out.data).toString()).toBe('hello\nagain\ncat-saw-eof\n');
    await io.release();
    expect(openFds()).toEqual(fdsBefore);
  });

  it('a client that detaches mid-stream does not kill the process; a new reader gets later output', async () => {
    const io = await open({ stdout: paths.stdout });
    const first = readFifo(paths.stdout);
    const p = spawnWithStdio(io.stdio, 'i=0; while :; do echo "line $i"; i=$((i+1)); done');
    io.afterSpawn();
    const firstText = await waitForOutput(first.sock, (t) => /line 1000\n/.test(t));
    first.close();
    void first.data.catch(() => undefined);
    // nobody reads now: the writer fills the FIFO and blocks (without the shim's keep-alive
    // reader its next write would have raised SIGPIPE)
    await blockedOnPipeWrite(p.child.pid!);
    expect(isAlive(p.child.pid!)).toBe(true);
    const lastSeen = Math.max(...[...firstText.matchAll(/line (\d+)/g)].map((m) => Number(m[1])));
    const second = readFifo(paths.stdout);
    void second.data.catch(() => undefined);
    // far beyond what the 64 KiB pipe could hold when the first client left
    const target = lastSeen + 20_000;
    await waitForOutput(second.sock, (t) => t.includes(`line ${target}\n`));
    second.close();
    p.child.kill('SIGTERM');
    expect(await p.exit).toEqual({ code: null, signal: 'SIGTERM' });
    await io.release();
    expect(openFds()).toEqual(fdsBefore);
  });

  it('shares one fd when stdout and stderr are the same FIFO', async () => {
    const io = await open({ stdout: paths.stdout, stderr: paths.stdout });
    expect(io.stdio.stdout).toBe(io.stdio.stderr);
    const out = readFifo(paths.stdout);
    const p = spawnWithStdio(io.stdio, 'echo one; echo two >&2; echo three');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    expect((await out.data).toString()).toBe('one\ntwo\nthree\n');
    await io.release();
    expect(openFds()).toEqual(fdsBefore);
  });

  it('appends to an existing regular file instead of a FIFO', async () => {
    const log = join(dir.path, 'plain.log');
    writeFileSync(log, 'before\n');
    const io = await open({ stdout: log, stderr: log });
    const p = spawnWithStdio(io.stdio, 'echo out; echo err >&2');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    await io.release();
    expect(readFileSync(log, 'utf8')).toBe('before\nout\nerr\n');
    expect(openFds()).toEqual(fdsBefore);
  });

  it('gives null IO when all three are empty', async () => {
    const io = await open({});
    expect(io.stdio).toEqual({ terminal: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
    expect(openFds()).toEqual(fdsBefore);
  });

  it('hands the process only fds 0-2 (nothing else leaks into the runtime child)', async () => {
    const list = 'exec ls /proc/self/fd'; // ls's own directory handle shows up as well
    const ignored = { terminal: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' } as const;
    // what any child of this test process inherits anyway (the test runner's own fds)
    const baselineOut = join(dir.path, 'baseline');
    const base = spawnWithStdio(ignored, `${list} > '${baselineOut}'`);
    expect(await base.exit).toEqual({ code: 0, signal: null });
    const baseline = readFileSync(baselineOut, 'utf8').split('\n').filter(Boolean);

    const io = await open({ stdin: paths.stdin, stdout: paths.stdout, stderr: paths.stderr });
    const out = readFifo(paths.stdout);
    const p = spawnWithStdio(io.stdio, list);
    io.afterSpawn();
    io.closeStdin();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    expect((await out.data).toString().split('\n').filter(Boolean)).toEqual(baseline);
  });

  it('fails with NotFound for a missing FIFO and leaves nothing open', async () => {
    const err = await openProcessIo(
      { stdin: paths.stdin, stdout: paths.stdout, stderr: join(dir.path, 'missing'), terminal: false },
      ctx,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).code).toBe('NotFound');
    expect((err as ShimError).message).toContain('missing');
    expect(openFds()).toEqual(fdsBefore);
  });

  it('file:// creates the directories and the file, and appends stdout and stderr', async () => {
    const log = join(dir.path, 'a', 'b', 'ctr.log');
    const io = await open({ stdout: `file://${log}`, stdin: paths.stdin });
    expect(io.stdio.stdin).toBe('ignore');
    expect(io.stdio.stdout).toBe(io.stdio.stderr);
    const p = spawnWithStdio(io.stdio, 'echo out; echo err >&2');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    await io.release();
    expect(readFileSync(log, 'utf8')).toBe('out\nerr\n');
    expect(statSync(log).mode & 0o777).toBe(0o644 & ~process.umask());
    expect(statSync(join(dir.path, 'a')).mode & 0o777).toBe(0o755 & ~process.umask());
    expect(openFds()).toEqual(fdsBefore);
  });

  it('release is idempotent', async () => {
    const io = await open({ stdin: paths.stdin, stdout: paths.stdout });
    const p = spawnWithStdio(io.stdio, 'true');
    io.afterSpawn();
    await p.exit;
    await Promise.all([io.release(), io.release()]);
    await io.release();
    io.closeStdin();
    io.resize(80, 24);
    expect(openFds()).toEqual(fdsBefore);
  });

});
