/**
 * Shared pieces of the io-*.test.ts suites: temp dirs with FIFOs, a FIFO client, processes
 * spawned with the stdio a ProcessIo hands out (standing in for the runtime), fd counting.
 */
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { constants, createReadStream, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
export function readFifo(path: string, opts: { slowMs?: number } = {}): FifoClient {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
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
    sock.once('end', () => resolve(Buffer.concat(chunks)));
    sock.once('error', reject);
  });
  return { sock, data, close: () => sock.destroy() };
}

/**
 * A client that opened its reader before the shim existed: a blocking open (in the libuv
 * pool, as containerd's fifo package does in a goroutine) that completes once a writer opens.
 */
export function readFifoBlocking(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    createReadStream(path)
      .on('data', (c) => chunks.push(c as Buffer))
      .once('end', () => resolve(Buffer.concat(chunks)))
      .once('error', reject);
  });
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
