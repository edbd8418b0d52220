/**
 * Shared pieces of the io-*.test.ts suites: temp dirs with FIFOs, a FIFO client, processes
 * spawned with the stdio a ProcessIo hands out (standing in for the runtime), fd counting.
 */
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { constants, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcessStdio } from '../../src/core/backend.js';

export function tempDir(prefix = 'tsshim-io-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export function mkfifo(...paths: string[]): void {
  execFileSync('mkfifo', ['-m', '600', ...paths]);
}

/** The fds of this process, sorted (the listing's own dir fd is in both before/after lists). */
export function openFds(): number[] {
  return readdirSync('/proc/self/fd')
    .map(Number)
    .sort((a, b) => a - b);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  child: ChildProcess;
  exit: Promise<Exit>;
}

/** Stands in for the runtime: a process whose fds 0-2 are what ProcessIo.stdio says. */
export function spawnWithStdio(stdio: ProcessStdio, script: string, extra: StdioOptions = []): Spawned {
  const fd = (v: number | 'ignore') => v;
  const child = spawn('sh', ['-c', script], {
    stdio: [fd(stdio.stdin), fd(stdio.stdout), fd(stdio.stderr), ...(extra as never[])],
  });
  const exit = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, exit };
}

export interface FifoClient {
  sock: net.Socket;
  /** every byte until EOF */
  data: Promise<Buffer>;
  close(): void;
}

/**
 * A client reading a FIFO the way containerd does once the shim has it open: O_RDONLY |
 * O_NONBLOCK, driven by libuv. `slow` pauses after every chunk.
 */
export function readFifo(pathOrFd: string | number, opts: { slowMs?: number } = {}): FifoClient {
  const fd = typeof pathOrFd === 'number' ? pathOrFd : openSync(pathOrFd, constants.O_RDONLY | constants.O_NONBLOCK);
  const sock = new net.Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  const data = new Promise<Buffer>((resolve, reject) => {
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      if (opts.slowMs) {
        sock.pause();
        setTimeout(() => sock.resume(), opts.slowMs);
      }
    });
    sock.once('end', () => {
      sock.destroy();
      resolve(Buffer.concat(chunks));
    });
    sock.once('error', reject);
  });
  return { sock, data, close: () => sock.destroy() };
}

/**
 * A client reader opened before the shim (O_RDONLY|O_NONBLOCK succeeds without a writer);
 * wrap it with readFifo(fd) once the shim has opened its side, or it would read EOF at once.
 */
export function openReaderEarly(path: string): number {
  return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
}

/** A client writer; the shim must have opened the FIFO (a reader exists) before this. */
export function writeFifo(path: string): net.Socket {
  const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  return new net.Socket({ fd, readable: false, writable: true });
}

export function endSocket(sock: net.Socket, data?: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    const finish = () => {
      sock.destroy();
      resolve();
    };
    if (data !== undefined) sock.write(data, finish);
    else finish();
  });
}

/** Resolves once `predicate(text so far)` holds for what arrived on the stream. */
export function waitForOutput(sock: net.Socket, predicate: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString();
      if (predicate(text)) {
        sock.off('data', onData);
        resolve(text);
      }
    };
    sock.on('data', onData);
    sock.once('end', () => reject(new Error(`stream ended before the expected output; got ${JSON.stringify(text)}`)));
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once the process is blocked writing to a full pipe (what a reader-less FIFO does). */
export async function blockedOnPipeWrite(pid: number, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (/pipe_write/.test(readFileSync(`/proc/${pid}/wchan`, 'utf8'))) return;
    if (Date.now() > until) throw new Error(`pid ${pid} never blocked on a pipe write`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sets up the slave of the pty master passed as fd 3 (unlock, TIOCGPTN, setsid, controlling tty, echo off), reports on fd 4, execs sh -c argv[1]. */
const PTY_CHILD = `
import fcntl, os, struct, sys, termios
m = 3
fcntl.ioctl(m, 0x40045431, struct.pack('i', 0))  # TIOCSPTLCK: unlock the slave
n = struct.unpack('i', fcntl.ioctl(m, 0x80045430, struct.pack('i', 0)))[0]  # TIOCGPTN
os.setsid()
s = os.open('/dev/pts/%d' % n, os.O_RDWR)
fcntl.ioctl(s, termios.TIOCSCTTY, 0)
a = termios.tcgetattr(s)
a[3] &= ~termios.ECHO
termios.tcsetattr(s, termios.TCSANOW, a)
for fd in (0, 1, 2):
    os.dup2(s, fd)
os.close(s)
os.close(m)
os.write(4, b'R')
os.close(4)
os.execvp('sh', ['sh', '-c', sys.argv[1]])
`;

/**
 * Stands in for runc with a terminal: a fresh pty whose slave runs `sh -c script` (echo
 * off) and whose master fd is returned, as the console socket would hand it over. Resolves
 * once the slave is open (before that, reading the master would fail with EIO at once).
 */
export async function startOnPty(script: string): Promise<{ master: number; proc: Spawned }> {
  const master = openSync('/dev/ptmx', constants.O_RDWR | constants.O_NOCTTY);
  const child = spawn('python3', ['-c', PTY_CHILD, script], { stdio: ['ignore', 'ignore', 'inherit', master, 'pipe'] });
  const exit = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const ready = child.stdio[4] as net.Socket;
  await new Promise<void>((resolve, reject) => {
    ready.once('data', () => resolve());
    ready.once('end', () => reject(new Error('pty child failed before opening the slave')));
  });
  ready.destroy();
  return { master, proc: { child, exit } };
}
