/**
 * Terminal mode against a real pty: the master fd goes to ProcessIo.attachConsole, the
 * process runs on the slave.
 */
import { chmodSync, closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ShimError } from '../../src/core/errors.js';
import { openProcessIo, type ProcessIo, type ProcessIoContext } from '../../src/io/process-io.js';
import { mkfifo, openFds, readFifo, startOnPty, tempDir, waitForOutput, writeFifo } from './io-fixtures.js';

describe('terminal console', () => {
  let dir: ReturnType<typeof tempDir>;
  let fdsBefore: number[];
  let paths: { stdin: string; stdout: string; gate: string };
  const ios: ProcessIo[] = [];
  const setWinsize = vi.fn<(fd: number, rows: number, cols: number) => void>();

  beforeEach(() => {
    dir = tempDir();
    paths = { stdin: join(dir.path, 't-stdin'), stdout: join(dir.path, 't-stdout'), gate: join(dir.path, 'gate') };
    mkfifo(paths.stdin, paths.stdout, paths.gate);
    setWinsize.mockReset();
    fdsBefore = openFds();
  });

  afterEach(async () => {
    await Promise.all(ios.splice(0).map((io) => io.release()));
    dir.cleanup();
  });

  async function open(uris: { stdin?: string; stdout?: string }, extra: Partial<ProcessIoContext> = {}): Promise<ProcessIo> {
    const io = await openProcessIo(
      { stdin: '', stdout: '', stderr: '', terminal: true, ...uris },
      { id: 't1', namespace: 'test', setWinsize, ...extra },
    );
    ios.push(io);
    return io;
  }

  /** lets the process continue past `read x < GATE` (a pool thread waits for the reader) */
  function openGate(): Promise<void> {
    return writeFile(paths.gate, 'go\n');
  }
  const gated = (script: string) => script.replaceAll('GATE', `'${paths.gate}'`);

  it('delivers everything written right before exit: copies until EIO, then releases', async () => {
    // the loss this guards against depended on timing: a few rounds make it show reliably
    for (let round = 0; round < 5; round++) {
      const io = await open({ stdout: paths.stdout }, { drainTimeoutMs: 20_000 });
      expect(io.stdio).toEqual({ terminal: true, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
      // a slow client: the pty and the FIFO are still full of output when the process exits
      const client = readFifo(paths.stdout, { slowMs: 20 });
      const { master, proc } = await startOnPty("head -c 300000 /dev/zero | tr '\\0' x; printf END");
      io.attachConsole(master);
      expect(await proc.exit).toEqual({ code: 0, signal: null });
      const t0 = Date.now();
      await io.release();
      expect(Date.now() - t0).toBeLessThan(20_000);
      const got = (await client.data).toString();
      expect(got.length).toBe(300_003);
      expect(got.endsWith('xxxEND')).toBe(true);
      expect(openFds()).toEqual(fdsBefore);
    }
  });

  it('copies stdin to the terminal', async () => {
    const io = await open({ stdin: paths.stdin, stdout: paths.stdout });
    const client = readFifo(paths.stdout);
    const { master, proc } = await startOnPty('read line; echo "got:$line"');
    io.attachConsole(master);
    const input = writeFifo(paths.stdin);
    input.write('hello\n');
    // ONLCR: the terminal turns \n into \r\n
    expect(await waitForOutput(client.sock, (t) => t.includes('\n'))).toBe('got:hello\r\n');
    expect(await proc.exit).toEqual({ code: 0, signal: null });
    input.destroy();
    await io.release();
    expect((await client.data).toString()).toBe('got:hello\r\n');
    expect(openFds()).toEqual(fdsBefore);
  });

  it('stops only the stdin copy after CloseIO and client close; output keeps flowing', async () => {
    const io = await open({ stdin: paths.stdin, stdout: paths.stdout });
    const client = readFifo(paths.stdout);
    const { master, proc } = await startOnPty(gated('read line; echo "got:$line"; read x < GATE; echo later'));
    io.attachConsole(master);
    const input = writeFifo(paths.stdin);
    await new Promise<void>((resolve) => input.write('one\n', () => resolve()));
    await waitForOutput(client.sock, (t) => t.includes('got:one\r\n'));
    input.destroy();
    io.closeStdin();
    // the shim's stdin reader saw EOF and let go of the FIFO: no reader is left
    await untilNoReader(paths.stdin);
    const later = waitForOutput(client.sock, (t) => t.includes('later\r\n'));
    await openGate();
    await later;
    expect(await proc.exit).toEqual({ code: 0, signal: null });
    await io.release();
    await client.data;
    expect(openFds()).toEqual(fdsBefore);
  }, 20_000);

  it('does not block the shim when the process does not read its terminal', async () => {
    const io = await open({ stdin: paths.stdin, stdout: paths.stdout });
    const client = readFifo(paths.stdout);
    // non-canonical: input is queued, not discarded at the 4 KiB line limit, until the
    // terminal buffers are full and the master refuses more
    const { master, proc } = await startOnPty(gated('stty -icanon; echo ready; read x < GATE; echo done'));
    io.attachConsole(master);
    await waitForOutput(client.sock, (t) => t.includes('ready'));
    const input = writeFifo(paths.stdin);
    input.on('error', () => undefined); // EPIPE once the shim lets go at release
    for (let i = 0; i < 256; i++) input.write(Buffer.alloc(4096, 0x61));
    // everything between the client and the pty fills up...
    await until(() => input.writableLength > 0 && input.writableLength < 1 << 20 && stalled(input));
    // ...while timers keep firing on time
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 50));
    expect(Date.now() - t0).toBeLessThan(1000);
    await openGate();
    expect(await proc.exit).toEqual({ code: 0, signal: null });
    input.destroy();
    await io.release();
    await client.data;
    expect(openFds()).toEqual(fdsBefore);
  }, 20_000);

  it('resizes through the injected setWinsize (rows = height, cols = width), not after release', async () => {
    const io = await open({ stdout: paths.stdout });
    const client = readFifo(paths.stdout);
    const { master, proc } = await startOnPty(gated('read x < GATE'));
    io.attachConsole(master);
    io.resize(132, 43);
    expect(setWinsize).toHaveBeenCalledWith(master, 43, 132);
    await openGate();
    await proc.exit;
    await io.release();
    io.resize(80, 24);
    expect(setWinsize).toHaveBeenCalledTimes(1);
    await client.data;
    expect(openFds()).toEqual(fdsBefore);
  });

  it('writes terminal output to a file:// target', async () => {
    const log = join(dir.path, 'logs', 'tty.log');
    const io = await open({ stdout: `file://${log}` });
    const { master, proc } = await startOnPty('echo to-file');
    io.attachConsole(master);
    await proc.exit;
    await io.release();
    expect(readFileSync(log, 'utf8')).toBe('to-file\r\n');
    expect(openFds()).toEqual(fdsBefore);
  });

  it('writes terminal output to a binary logger stdout pipe', async () => {
    const logger = join(dir.path, 'logger');
    writeFileSync(logger, `#!/bin/sh\ntrap '' TERM\ncat <&3 > "$2" 5>&- &\nexec 3<&- 4<&- 5>&-\nwait\n`);
    chmodSync(logger, 0o755);
    const out = join(dir.path, 'logged');
    const io = await open({ stdout: `binary://${logger}?out=${out}` });
    const { master, proc } = await startOnPty('echo to-logger');
    io.attachConsole(master);
    await proc.exit;
    await io.release();
    expect(readFileSync(out, 'utf8')).toBe('to-logger\r\n');
    expect(openFds()).toEqual(fdsBefore);
  });

  it('refuses a console for a process without terminal and closes the fd', async () => {
    const io = await openProcessIo({ stdin: '', stdout: '', stderr: '', terminal: false }, { id: 'x', namespace: 'n' });
    ios.push(io);
    const fd = openSync('/dev/null', constants.O_RDONLY);
    let err: unknown;
    try {
      io.attachConsole(fd);
    } catch (e) {
      err = e;
    }
    expect((err as ShimError).code).toBe('FailedPrecondition');
    expect(openFds()).toEqual(fdsBefore);
  });
});

/** the Writable side made no progress since the last check */
const lastLength = new WeakMap<net.Socket, number>();
function stalled(s: net.Socket): boolean {
  const before = lastLength.get(s);
  lastLength.set(s, s.writableLength);
  return before === s.writableLength;
}

async function until(cond: () => boolean, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** a FIFO without readers refuses a non-blocking writer with ENXIO */
async function untilNoReader(path: string): Promise<void> {
  await until(() => {
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      closeSync(fd); // still a reader: retry
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENXIO';
    }
  });
}
