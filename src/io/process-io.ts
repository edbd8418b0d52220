/**
 * The stdio of one init or exec process.
 *
 * Non-terminal processes get their stdio handed straight to the runtime: the client's FIFO
 * ends, the log file, or the logger's pipe ends become the process's fds 0-2. Nothing is
 * copied through the shim, so nothing can be lost or needs draining; the shim only holds
 * keep-alive handles that give the FIFO semantics clients expect (see fifo.ts).
 *
 * Terminal processes are the exception: the runtime gives us a pty master and a
 * ConsoleCopier moves bytes between it and the client.
 *
 * Lifecycle, as the task core drives it:
 *   openProcessIo()  before create/exec: opens everything, starts a logger; fails early
 *   afterSpawn()     the runtime child holds the process ends now: close our copies
 *   attachConsole()  terminal only: the master fd the runtime handed back
 *   closeStdin()     CloseIO
 *   release()        process exited: bounded wait for terminal output, then free all
 */
import { constants, createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { ProcessStdio } from '../core/backend.js';
import { failedPrecondition, toShimError } from '../core/errors.js';
import { BinaryLogger, LOGGER_STOP_TIMEOUT_MS } from './binary-logger.js';
import { ConsoleCopier, type SetWinsize } from './console-copier.js';
import {
  openInputForCopy,
  openInputForProcess,
  openOutputForCopy,
  openOutputForProcess,
  openPath,
  type StreamEnds,
} from './fifo.js';
import { closeQuietly, OwnedFds } from './owned-fds.js';
import { mkfifoCommand, type MakeFifos } from './pipe.js';
import { planStdio, type StdioPlan, type StdioUris } from './stdio-uri.js';
import { builtin } from '../sys/lazy-builtins.js';

export type { StdioUris } from './stdio-uri.js';
export type { SetWinsize } from './console-copier.js';
export type { MakeFifos } from './pipe.js';

export const DEFAULT_LOGGER_READY_TIMEOUT_MS = 10_000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 2_000;

export interface ProcessIoContext {
  /** container id (init) or `<container>-<exec>` : CONTAINER_ID for a logger */
  id: string;
  namespace: string;
  /** runc io_uid/io_gid: owner of the pipes we create (logger pipes) */
  ioUid?: number;
  ioGid?: number;
  /** deadline for a logger's readiness signal; default 10 s */
  deadlineMs?: number;
  /** how long release() waits for terminal output to be delivered; default 2 s */
  drainTimeoutMs?: number;
  /** TIOCSWINSZ for resize(); required for terminal processes that get resized */
  setWinsize?: SetWinsize;
  /** FIFO maker for logger pipes; default: coreutils mkfifo */
  mkfifo?: MakeFifos;
  /** SIGTERM → SIGKILL grace for a logger; default 12 s */
  loggerStopTimeoutMs?: number;
}

export interface ProcessIo {
  /** what to hand to the runtime; fd numbers are valid until afterSpawn()/release() */
  readonly stdio: ProcessStdio;
  /** the runtime child was spawned with stdio (it holds dups now): close the shim's copies */
  afterSpawn(): void;
  /** CloseIO{stdin}: drop the shim's stdin writer; the process sees EOF once the client closes too */
  closeStdin(): void;
  /** terminal mode: start copying through the pty master; takes ownership of masterFd */
  attachConsole(masterFd: number, setWinsize?: SetWinsize): void;
  /** ResizePty; a no-op without a terminal */
  resize(width: number, height: number): void;
  /** the process exited: bounded wait until terminal output is delivered, then close every fd and stop the logger. Idempotent. */
  release(): Promise<void>;
}

/** Opens the stdio for one process (see the module comment). Nothing is left open on failure. */
export async function openProcessIo(uris: StdioUris, ctx: ProcessIoContext): Promise<ProcessIo> {
  const plan = planStdio(uris);
  const io = new OpenedProcessIo(uris.terminal, ctx);
  try {
    if (uris.terminal) await io.prepareTerminal(plan);
    else await io.preparePassthrough(plan);
  } catch (err) {
    await io.release().catch(() => undefined);
    throw toShimError(err);
  }
  return io;
}

/** openProcessIo with fixed defaults (setWinsize, mkfifo...), in the shape the task core takes. */
export class StdioOpener {
  constructor(private readonly defaults: Omit<ProcessIoContext, 'id' | 'namespace'> = {}) {}

  open(uris: StdioUris, ctx: ProcessIoContext): Promise<ProcessIo> {
    const merged: ProcessIoContext = { ...this.defaults, id: ctx.id, namespace: ctx.namespace };
    for (const [k, v] of Object.entries(ctx)) {
      if (v !== undefined) (merged as unknown as Record<string, unknown>)[k] = v;
    }
    return openProcessIo(uris, merged);
  }
}

const IGNORE_ALL = { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' } as const;

/** Terminal output target, opened before the runtime runs so errors surface at Create. */
type OutputTarget = { fd: number; kind: 'stream' | 'file' };

class OpenedProcessIo implements ProcessIo {
  stdio: ProcessStdio;
  private readonly fds = new OwnedFds();
  /** ends the process gets; closed by afterSpawn() */
  private readonly processEnds = new Set<number>();
  private stdinKeepAlive: number | undefined;
  private logger: BinaryLogger | undefined;
  /** terminal mode, until attachConsole() */
  private consoleInput: StreamEnds | undefined;
  private consoleOutput: OutputTarget | undefined;
  private console: ConsoleCopier | undefined;
  private releasing: Promise<void> | undefined;

  constructor(
    private readonly terminal: boolean,
    private readonly ctx: ProcessIoContext,
  ) {
    this.stdio = { terminal, ...IGNORE_ALL };
  }

  async preparePassthrough(plan: StdioPlan): Promise<void> {
    switch (plan.kind) {
      case 'null':
        return;
      case 'fifo': {
        const stdio: ProcessStdio = { terminal: false, ...IGNORE_ALL };
        if (plan.stdin) {
          const ends = openInputForProcess(plan.stdin, this.fds);
          this.stdinKeepAlive = ends.keepAlive;
          stdio.stdin = this.processEnd(ends.fd);
        }
        if (plan.stdout) stdio.stdout = this.processEnd(openOutputForProcess(plan.stdout, this.fds).fd);
        if (plan.stderr) {
          stdio.stderr =
            plan.stderr === plan.stdout
              ? stdio.stdout
              : this.processEnd(openOutputForProcess(plan.stderr, this.fds).fd);
        }
        this.stdio = stdio;
        return;
      }
      case 'file': {
        const fd = this.processEnd(openLogFile(plan.path, this.fds));
        this.stdio = { terminal: false, stdin: 'ignore', stdout: fd, stderr: fd };
        return;
      }
      case 'binary': {
        const logger = await this.startLogger(plan, false);
        this.stdio = {
          terminal: false,
          stdin: 'ignore',
          stdout: this.processEnd(logger.stdoutFd),
          stderr: this.processEnd(logger.stderrFd),
        };
        return;
      }
    }
  }

  async prepareTerminal(plan: StdioPlan): Promise<void> {
    switch (plan.kind) {
      case 'null':
        return;
      case 'fifo': {
        if (plan.stdin) {
          this.consoleInput = openInputForCopy(plan.stdin, this.fds);
          this.stdinKeepAlive = this.consoleInput.keepAlive;
        }
        if (plan.stdout) {
          const ends = openOutputForCopy(plan.stdout, this.fds);
          this.consoleOutput = { fd: ends.fd, kind: ends.fifo ? 'stream' : 'file' };
        }
        return;
      }
      case 'file':
        this.consoleOutput = { fd: openLogFile(plan.path, this.fds), kind: 'file' };
        return;
      case 'binary': {
        // the logger's stderr pipe stays unused (and open until release, as in the Go shim)
        const logger = await this.startLogger(plan, true);
        this.consoleOutput = { fd: logger.stdoutFd, kind: 'stream' };
        return;
      }
    }
  }

  afterSpawn(): void {
    for (const fd of this.processEnds) this.fds.close(fd);
    this.processEnds.clear();
  }

  closeStdin(): void {
    this.fds.close(this.stdinKeepAlive);
    this.stdinKeepAlive = undefined;
  }

  attachConsole(masterFd: number, setWinsize?: SetWinsize): void {
    if (this.releasing || !this.terminal || this.console) {
      closeQuietly(masterFd);
      if (this.releasing) return;
      throw failedPrecondition(
        this.console ? 'a console is already attached' : 'attachConsole on a process without terminal',
      );
    }
    const winsize =
      setWinsize ??
      this.ctx.setWinsize ??
      (() => {
        throw failedPrecondition('terminal resize is not available (no setWinsize given)');
      });
    let stdin: Readable | undefined;
    let output: Writable | undefined;
    try {
      if (this.consoleInput) stdin = this.inputStream(this.consoleInput);
      if (this.consoleOutput) output = this.outputStream(this.consoleOutput);
      this.console = new ConsoleCopier(masterFd, { stdin, output }, winsize);
    } catch (err) {
      stdin?.destroy();
      output?.destroy();
      if (!this.console) closeQuietly(masterFd);
      throw toShimError(err);
    }
  }

  resize(width: number, height: number): void {
    this.console?.resize(width, height);
  }

  release(): Promise<void> {
    this.releasing ??= this.releaseOnce();
    return this.releasing;
  }

  private async releaseOnce(): Promise<void> {
    if (this.console) {
      await boundedWait(this.console.drained(), this.ctx.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
      await this.console.close();
    }
    // keep-alive handles, ends never handed to a runtime, unattached terminal ends, and the
    // logger's write ends (the logger sees EOF before it is asked to stop)
    this.processEnds.clear();
    this.fds.closeAll();
    await this.logger?.stop();
  }

  private processEnd(fd: number): number {
    this.processEnds.add(fd);
    return fd;
  }

  private async startLogger(plan: Extract<StdioPlan, { kind: 'binary' }>, stdoutForCopy: boolean): Promise<BinaryLogger> {
    const { ioUid, ioGid } = this.ctx;
    const chown = (ioUid !== undefined && ioUid !== 0) || (ioGid !== undefined && ioGid !== 0);
    this.logger = await BinaryLogger.start(
      {
        protocol: plan.protocol,
        path: plan.path,
        args: plan.args,
        id: this.ctx.id,
        namespace: this.ctx.namespace,
        readyTimeoutMs: this.ctx.deadlineMs ?? DEFAULT_LOGGER_READY_TIMEOUT_MS,
        stopTimeoutMs: this.ctx.loggerStopTimeoutMs ?? LOGGER_STOP_TIMEOUT_MS,
        stdoutForCopy,
        owner: chown ? { uid: ioUid ?? -1, gid: ioGid ?? -1 } : undefined,
        mkfifo: this.ctx.mkfifo ?? mkfifoCommand,
      },
      this.fds,
    );
    return this.logger;
  }

  private inputStream(ends: StreamEnds): Readable {
    // a FIFO is pollable: libuv reads it without a thread; a regular file is read by the pool
    return wrapFd(this.fds.handOver(ends.fd), (fd) =>
      ends.fifo
        ? new (builtin('node:net').Socket)({ fd, readable: true, writable: false })
        : createReadStream('', { fd, autoClose: true }),
    );
  }

  private outputStream(target: OutputTarget): Writable {
    return wrapFd(this.fds.handOver(target.fd), (fd) =>
      target.kind === 'stream'
        ? new (builtin('node:net').Socket)({ fd, readable: false, writable: true })
        : createWriteStream('', { fd, autoClose: true }),
    );
  }
}

/** The stream owns fd once constructed; if construction fails, the fd is closed here. */
function wrapFd<T>(fd: number, make: (fd: number) => T): T {
  try {
    return make(fd);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

/** file:// target: parent dirs 0755, file 0644, appended to */
function openLogFile(path: string, fds: OwnedFds): number {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  } catch (err) {
    throw toShimError(err);
  }
  return fds.add(openPath(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644));
}

async function boundedWait(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
