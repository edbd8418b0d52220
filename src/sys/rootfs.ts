/**
 * Mounts CreateTaskRequest.rootfs (what the snapshotter prepared: overlay, bind, …) on
 * <bundle>/rootfs, and takes them all down again. Mount options are containerd's
 * strings: flag words become MS_* flags, the rest is filesystem data.
 */
import type { Mount } from '../core/backend.js';
import { invalidArgument } from '../core/errors.js';
import * as ffi from './ffi.js';
import { mountsUnder } from './mountinfo.js';

const FLAGS: Record<string, { set?: number; clear?: number }> = {
  ro: { set: ffi.MS_RDONLY },
  rw: { clear: ffi.MS_RDONLY },
  nosuid: { set: ffi.MS_NOSUID },
  suid: { clear: ffi.MS_NOSUID },
  nodev: { set: ffi.MS_NODEV },
  dev: { clear: ffi.MS_NODEV },
  noexec: { set: ffi.MS_NOEXEC },
  exec: { clear: ffi.MS_NOEXEC },
  sync: { set: 16 },
  async: { clear: 16 },
  remount: { set: ffi.MS_REMOUNT },
  mand: { set: 64 },
  nomand: { clear: 64 },
  dirsync: { set: 128 },
  noatime: { set: 1024 },
  atime: { clear: 1024 },
  nodiratime: { set: 2048 },
  diratime: { clear: 2048 },
  bind: { set: ffi.MS_BIND },
  rbind: { set: ffi.MS_BIND | ffi.MS_REC },
  relatime: { set: 1 << 21 },
  norelatime: { clear: 1 << 21 },
  strictatime: { set: 1 << 24 },
  defaults: {},
};

const PROPAGATION: Record<string, number> = {
  private: ffi.MS_PRIVATE,
  rprivate: ffi.MS_PRIVATE | ffi.MS_REC,
  slave: ffi.MS_SLAVE,
  rslave: ffi.MS_SLAVE | ffi.MS_REC,
  shared: ffi.MS_SHARED,
  rshared: ffi.MS_SHARED | ffi.MS_REC,
};

/** the kernel takes at most one page of mount data */
const MAX_DATA = 4095;

export function parseMountOptions(options: string[]): { flags: number; propagation: number; data: string } {
  let flags = 0;
  let propagation = 0;
  const data: string[] = [];
  for (const o of options) {
    const f = FLAGS[o];
    if (f) {
      if (f.set) flags |= f.set;
      if (f.clear) flags &= ~f.clear;
    } else if (PROPAGATION[o] !== undefined) {
      propagation |= PROPAGATION[o]!;
    } else {
      data.push(o);
    }
  }
  return { flags, propagation, data: data.join(',') };
}

export class RootfsMounts {
  async mount(mounts: Mount[], target: string): Promise<void> {
    const done: string[] = [];
    try {
      for (const m of mounts) {
        const { flags, propagation, data } = parseMountOptions(m.options);
        if (data.length > MAX_DATA) {
          throw invalidArgument(`rootfs mount ${m.type}: options are ${data.length} bytes, more than the kernel's ${MAX_DATA}`);
        }
        const type = m.type === 'bind' ? '' : m.type;
        // a read-only bind needs a second, remount pass: MS_RDONLY is ignored on the first
        const bindRo = (flags & ffi.MS_BIND) !== 0 && (flags & ffi.MS_RDONLY) !== 0;
        ffi.mount(m.source, target, type, flags & ~(bindRo ? ffi.MS_RDONLY : 0), data);
        done.push(target);
        if (bindRo) ffi.mount('', target, '', flags | ffi.MS_REMOUNT, '');
        if (propagation) ffi.mount('', target, '', propagation, '');
      }
    } catch (err) {
      for (const t of done.reverse()) {
        try {
          ffi.umount2(t, ffi.MNT_DETACH);
        } catch {
          /* best effort while failing */
        }
      }
      throw err;
    }
  }

  /** unmount everything at or below target, deepest first; lazily if busy */
  async unmount(target: string): Promise<void> {
    for (let round = 0; round < 16; round++) {
      const points = mountsUnder(target);
      if (points.length === 0) return;
      for (const p of points) {
        try {
          ffi.umount2(p, 0);
        } catch (err) {
          const code = (err as { errno?: string }).errno;
          if (code === 'EBUSY') ffi.umount2(p, ffi.MNT_DETACH);
          else if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
        }
      }
    }
  }
}
