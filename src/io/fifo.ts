/**
 * Opening the client's stdio FIFOs without ever blocking a thread.
 *
 * open(2) on a FIFO blocks until the other side exists, so every open below either uses
 * O_NONBLOCK / O_RDWR (never blocks) or happens right after we opened the other side
 * ourselves (cannot block). That lets us use openSync on the event loop, and hand the
 * container a FIFO end in ordinary blocking mode.
 *
 * Each FIFO also gets a keep-alive handle that we hold and never use for IO:
 * - stdout/stderr: a reader, so a missing or detached client never makes the container's
 *   writes fail with EPIPE/SIGPIPE (they block once the 64 KiB pipe is full instead);
 * - stdin: a writer (O_RDWR), so the container does not see EOF while the client detaches
 *   and re-attaches; CloseIO closes it.
 * O_NONBLOCK is a property of the open file description, so the separately opened
 * keep-alive handles never change the mode of the end the container gets.
 *
 * A path that exists but is not a FIFO is used as a regular file (the Go shim does the same
 * for stdout/stderr).
 */
import { constants, openSync, statSync } from 'node:fs';
import { toShimError } from '../core/errors.js';
import type { OwnedFds } from './owned-fds.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK, O_APPEND } = constants;

/** An fd pair for one stream; keepAlive is absent for regular files. */
export interface StreamEnds {
  keepAlive?: number;
  fd: number;
  fifo: boolean;
}

export function isFifo(path: string): boolean {
  try {
    return statSync(path).isFIFO();
  } catch (err) {
    throw ioError(err, path);
  }
}

/** stdout/stderr end for the container itself: blocking O_WRONLY (or O_APPEND file). */
export function openOutputForProcess(path: string, fds: OwnedFds): StreamEnds {
  return openOutput(path, fds, 0);
}

/** stdout end the shim writes to (terminal mode): non-blocking, to be wrapped in a stream. */
export function openOutputForCopy(path: string, fds: OwnedFds): StreamEnds {
  return openOutput(path, fds, O_NONBLOCK);
}

/** stdin end for the container itself: blocking O_RDONLY. */
export function openInputForProcess(path: string, fds: OwnedFds): StreamEnds {
  return openInput(path, fds, 0);
}

/** stdin end the shim reads from (terminal mode): non-blocking, to be wrapped in a stream. */
export function openInputForCopy(path: string, fds: OwnedFds): StreamEnds {
  return openInput(path, fds, O_NONBLOCK);
}

function openOutput(path: string, fds: OwnedFds, extra: number): StreamEnds {
  if (!isFifo(path)) return { fd: fds.add(openPath(path, O_WRONLY | O_APPEND)), fifo: false };
  // reader first: O_RDONLY|O_NONBLOCK never blocks, and once it exists O_WRONLY cannot block
  const keepAlive = fds.add(openPath(path, O_RDONLY | O_NONBLOCK));
  try {
    return { keepAlive, fd: fds.add(openPath(path, O_WRONLY | extra)), fifo: true };
  } catch (err) {
    fds.close(keepAlive);
    throw err;
  }
}

function openInput(path: string, fds: OwnedFds, extra: number): StreamEnds {
  if (!isFifo(path)) return { fd: fds.add(openPath(path, O_RDONLY)), fifo: false };
  // O_RDWR on a FIFO never blocks (Linux), and as a writer it lets O_RDONLY return at once
  const keepAlive = fds.add(openPath(path, O_RDWR));
  try {
    return { keepAlive, fd: fds.add(openPath(path, O_RDONLY | extra)), fifo: true };
  } catch (err) {
    fds.close(keepAlive);
    throw err;
  }
}

/** openSync (libuv adds O_CLOEXEC: nothing we open leaks into spawned runtimes) */
export function openPath(path: string, flags: number, mode?: number): number {
  try {
    return openSync(path, flags, mode);
  } catch (err) {
    throw ioError(err, path);
  }
}

function ioError(err: unknown, path: string) {
  const e = toShimError(err);
  if (!e.message.includes(path)) e.message = `${path}: ${e.message}`;
  return e;
}
