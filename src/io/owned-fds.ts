/**
 * The raw file descriptors one ProcessIo holds. Every fd we open goes in here until it is
 * closed or handed to a stream (which then owns and closes it), so release() can close
 * whatever is left exactly once: closing a number twice could close an fd some other part
 * of the shim has opened since.
 */
import { closeSync } from 'node:fs';

export class OwnedFds {
  private readonly fds = new Set<number>();

  add(fd: number): number {
    this.fds.add(fd);
    return fd;
  }

  has(fd: number): boolean {
    return this.fds.has(fd);
  }

  /** stop tracking fd because a stream now owns it */
  handOver(fd: number): number {
    this.fds.delete(fd);
    return fd;
  }

  close(fd: number | undefined): void {
    if (fd === undefined || !this.fds.delete(fd)) return;
    closeQuietly(fd);
  }

  closeAll(): void {
    for (const fd of [...this.fds]) this.close(fd);
  }

  get size(): number {
    return this.fds.size;
  }
}

/** close(2) whose only failure (EBADF) would mean a bookkeeping bug, not a runtime condition */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // nothing sensible to do: the fd is gone either way
  }
}
