/**
 * Anonymous-pipe equivalents without pipe(2), which Node does not expose: a FIFO made in a
 * private temp dir, both ends opened, then unlinked. What the processes get is a real pipe
 * (S_ISFIFO, reopenable through /proc/self/fd like os.Pipe()), unlike child_process
 * 'pipe' stdio, which is a socketpair (open("/dev/stdout") fails with ENXIO on a socket).
 *
 * Opening order, so that no open blocks and both ends stay in blocking mode:
 * a temporary O_RDWR handle (never blocks) makes the later O_RDONLY and O_WRONLY opens
 * return at once; then it is closed. O_NONBLOCK can be asked for per end: each end is its
 * own open file description.
 */
import { constants, fchownSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { toShimError } from '../core/errors.js';
import { openPath } from './fifo.js';
import { closeQuietly, type OwnedFds } from './owned-fds.js';
import { childProcess } from '../sys/lazy-builtins.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK } = constants;

/** Creates FIFOs (mode applies before umask). The sys layer may provide an FFI mkfifo. */
export type MakeFifos = (paths: string[], mode: number) => Promise<void>;

const MKFIFO_TIMEOUT_MS = 5000;

/** Default MakeFifos: coreutils mkfifo, one process for all paths. */
export const mkfifoCommand: MakeFifos = async (paths, mode) => {
  try {
    await promisify(childProcess().execFile)('mkfifo', ['-m', mode.toString(8), '--', ...paths], {
      timeout: MKFIFO_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
  } catch (err) {
    throw toShimError(err);
  }
};

export interface PipeSpec {
  /** open the read end with O_NONBLOCK (the shim reads it through a stream) */
  readNonBlocking?: boolean;
  /** open the write end with O_NONBLOCK (the shim writes it through a stream) */
  writeNonBlocking?: boolean;
  /** chown the pipe (io_uid/io_gid), so a user-namespaced process may reopen it */
  owner?: { uid: number; gid: number };
}

export interface PipeEnds {
  read: number;
  write: number;
}

/** Makes one pipe per spec; every fd is registered in fds. */
export async function createPipes(specs: PipeSpec[], fds: OwnedFds, mkfifo: MakeFifos): Promise<PipeEnds[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tsshim-pipe-'));
  const opened: number[] = [];
  try {
    const paths = specs.map((_, i) => join(dir, `p${i}`));
    await mkfifo(paths, 0o600);
    const ends: PipeEnds[] = [];
    for (const [i, spec] of specs.entries()) {
      const path = paths[i]!;
      const hold = openPath(path, O_RDWR);
      try {
        const read = openPath(path, O_RDONLY | (spec.readNonBlocking ? O_NONBLOCK : 0));
        opened.push(read);
        const write = openPath(path, O_WRONLY | (spec.writeNonBlocking ? O_NONBLOCK : 0));
        opened.push(write);
        if (spec.owner) fchownSync(write, spec.owner.uid, spec.owner.gid);
        ends.push({ read: fds.add(read), write: fds.add(write) });
      } finally {
        closeQuietly(hold);
      }
      unlinkSync(path);
    }
    return ends;
  } catch (err) {
    for (const fd of opened) {
      if (fds.has(fd)) fds.close(fd);
      else closeQuietly(fd);
    }
    throw toShimError(err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
