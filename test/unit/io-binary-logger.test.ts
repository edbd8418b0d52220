/**
 * binary:// and binary-v2:// stdio with a real logger script. The logger records what it was
 * given (argv, environment, fds) and copies fd 3 / fd 4 into files.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ShimError } from '../../src/core/errors.js';
import { openProcessIo, type ProcessIo, type ProcessIoContext } from '../../src/io/process-io.js';
import { isAlive, openFds, spawnWithStdio, tempDir } from './io-fixtures.js';

/** fds above 2 that any child of this process inherits (the test runner may leak some) */
function inheritedFds(): Set<number> {
  const out = spawnSync('sh', ['-c', 'cd /proc/self/fd && echo *'], { encoding: 'utf8' }).stdout;
  return new Set(out.trim().split(/\s+/).map(Number).filter((n) => n > 2));
}

type Mode = 'ready' | 'eof' | 'nobyte' | 'hang' | 'stubborn';

/**
 * argv: out <file> err <file> info <file> mode <Mode>. Ignoring SIGTERM (trap '') lets the
 * copies run to EOF, so the files are complete when the shim's stop returns.
 */
const LOGGER = `#!/bin/sh
out=$2 err=$4 info=$6 mode=$8 argv="$*"
set -- /proc/$$/fd/*  # before any redirection or subshell adds fds of its own
fds=
for f in "$@"; do [ -e "$f" ] && fds="$fds $f"; done  # drops the glob's own directory handle
{
  echo "argv:$argv"
  echo "env:$(env | grep -v '^PWD=' | sort | tr '\\n' ' ')"
  echo "pid:$$"
  for f in $fds; do echo "fd:\${f##*/}:$(stat -L -c %F "$f"):$(readlink "$f")"; done
} > "$info.tmp"
mv "$info.tmp" "$info"
case $mode in
  ready|eof)
    trap '' TERM
    cat <&3 > "$out" 4<&- 5>&- &
    cat <&4 > "$err" 3<&- 5>&- &
    exec 3<&- 4<&-
    [ "$mode" = ready ] && printf R >&5
    exec 5>&-
    wait ;;
  nobyte) exec 5>&-; exec sleep 30 ;;
  hang) exec sleep 30 ;;
  stubborn) trap '' TERM; printf R >&5; exec 5>&-; exec sleep 30 ;;
esac
`;

describe('binary logger stdio', () => {
  let dir: ReturnType<typeof tempDir>;
  let logger: string;
  let fdsBefore: number[];
  let pipeDirsBefore: string[];
  const ios: ProcessIo[] = [];
  const pipeDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith('tsshim-pipe-'));

  beforeEach(() => {
    dir = tempDir();
    logger = join(dir.path, 'my logger');
    writeFileSync(logger, LOGGER);
    chmodSync(logger, 0o755);
    fdsBefore = openFds();
    pipeDirsBefore = pipeDirs();
  });

  afterEach(async () => {
    await Promise.all(ios.splice(0).map((io) => io.release()));
    dir.cleanup();
  });

  const file = (name: string) => join(dir.path, name);
  const uri = (scheme: 'binary' | 'binary-v2', mode: Mode) =>
    `${scheme}://${encodeURI(logger)}?out=${file('out')}&err=${file('err')}&info=${file('info')}&mode=${mode}`;
  const info = () => readFileSync(file('info'), 'utf8');
  const loggerPid = () => Number(/^pid:(\d+)$/m.exec(info())![1]);

  async function open(stdout: string, extra: Partial<ProcessIoContext> = {}): Promise<ProcessIo> {
    const io = await openProcessIo(
      { stdin: '/nonexistent-stdin-is-ignored', stdout, stderr: '', terminal: false },
      { id: 'ctr-1', namespace: 'k8s.io', ...extra },
    );
    ios.push(io);
    return io;
  }

  it('starts the logger per contract and hands the process the pipe write ends', async () => {
    const io = await open(uri('binary', 'ready'));
    expect(io.stdio.stdin).toBe('ignore');
    // what the process sees: real pipes (reopenable through /dev/stdout, unlike sockets)
    const p = spawnWithStdio(
      io.stdio,
      'echo "out $(stat -L -c %F /proc/self/fd/1)"; echo "err $(stat -L -c %F /proc/self/fd/2)" >&2; echo reopened > /dev/stdout',
    );
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    await io.release();

    expect(readFileSync(file('out'), 'utf8')).toBe('out fifo\nreopened\n');
    expect(readFileSync(file('err'), 'utf8')).toBe('err fifo\n');
    const text = info();
    expect(text).toContain(`argv:out ${file('out')} err ${file('err')} info ${file('info')} mode ready\n`);
    // environment: exactly the two variables (sh adds PWD itself, filtered above)
    expect(text).toContain('env:CONTAINER_ID=ctr-1 CONTAINER_NAMESPACE=k8s.io \n');
    const fds = [...text.matchAll(/^fd:(\d+):([^:]*):(.*)$/gm)].map((m) => ({ n: Number(m[1]), type: m[2], target: m[3] }));
    expect(fds.filter((f) => f.n >= 3 && f.n <= 5).map((f) => f.type)).toEqual(['fifo', 'fifo', 'fifo']);
    // nothing else but the shell's handle on its own script, and what every child of this
    // test process inherits from the test runner anyway
    const inherited = inheritedFds();
    expect(fds.filter((f) => f.n > 5 && f.target !== logger && !inherited.has(f.n))).toEqual([]);
    expect(isAlive(loggerPid())).toBe(false);
    expect(openFds()).toEqual(fdsBefore);
    expect(pipeDirs()).toEqual(pipeDirsBefore);
  });

  it('binary-v2: a readiness byte makes it ready', async () => {
    const io = await open(uri('binary-v2', 'ready'));
    const p = spawnWithStdio(io.stdio, 'echo v2');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    await io.release();
    expect(readFileSync(file('out'), 'utf8')).toBe('v2\n');
    expect(openFds()).toEqual(fdsBefore);
  });

  it('legacy binary: closing fd 5 without a byte is ready too', async () => {
    const io = await open(uri('binary', 'eof'));
    const p = spawnWithStdio(io.stdio, 'echo legacy; echo e >&2');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    await io.release();
    expect(readFileSync(file('out'), 'utf8')).toBe('legacy\n');
    expect(readFileSync(file('err'), 'utf8')).toBe('e\n');
    expect(openFds()).toEqual(fdsBefore);
  });

  it('binary-v2: EOF without the byte is an error, and nothing is left behind', async () => {
    const err = await open(uri('binary-v2', 'nobyte')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).message).toMatch(/my logger.*without writing the readiness byte/);
    expect(isAlive(loggerPid())).toBe(false);
    expect(openFds()).toEqual(fdsBefore);
    expect(pipeDirs()).toEqual(pipeDirsBefore);
  });

  it('a logger that never signals fails with DeadlineExceeded and is stopped', async () => {
    const err = await open(uri('binary-v2', 'hang'), { deadlineMs: 300 }).catch((e: unknown) => e);
    expect((err as ShimError).code).toBe('DeadlineExceeded');
    expect(isAlive(loggerPid())).toBe(false);
    expect(openFds()).toEqual(fdsBefore);
  });

  it('a logger that ignores SIGTERM is killed after the stop timeout', async () => {
    const io = await open(uri('binary', 'stubborn'), { loggerStopTimeoutMs: 200 });
    const pid = loggerPid();
    const p = spawnWithStdio(io.stdio, 'true');
    io.afterSpawn();
    await p.exit;
    const t0 = Date.now();
    await io.release();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(isAlive(pid)).toBe(false);
    expect(openFds()).toEqual(fdsBefore);
  });

  it('a missing logger binary fails cleanly', async () => {
    const err = await open(`binary://${file('nope')}?a=b`).catch((e: unknown) => e);
    expect((err as ShimError).code).toBe('NotFound');
    expect((err as ShimError).message).toContain('nope');
    expect(openFds()).toEqual(fdsBefore);
    expect(pipeDirs()).toEqual(pipeDirsBefore);
  });

  it('chowns the pipes to io_uid/io_gid', async () => {
    const io = await open(uri('binary', 'ready'), { ioUid: 4242, ioGid: 4343 });
    const p = spawnWithStdio(io.stdio, 'stat -L -c %u:%g /proc/self/fd/1; stat -L -c %u:%g /proc/self/fd/2');
    io.afterSpawn();
    expect(await p.exit).toEqual({ code: 0, signal: null });
    await io.release();
    expect(readFileSync(file('out'), 'utf8')).toBe('4242:4343\n4242:4343\n');
    expect(existsSync(file('info'))).toBe(true);
  });
});
