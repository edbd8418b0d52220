/**
 * CopyFile: the host writes a file into the guest in pieces (Kata's runtime does it for
 * files it cannot share, e.g. when the shared fs is off). As kata-agent: only below
 * /run/kata-containers; parents made with dir_mode and the given owner; a directory or a
 * symlink (data = target) by file_mode's type; a regular file written at offset into
 * "<path>.tmp" and renamed into place once file_size bytes are there.
 */
import { chownSync, closeSync, constants, mkdirSync, openSync, renameSync, rmSync, symlinkSync, writeSync, chmodSync, lchownSync } from 'node:fs';
import { dirname, isAbsolute, normalize, relative } from 'node:path';
import { invalidArgument } from '../../../core/errors.js';
import type { CopyFileRequest } from '../../../proto/gen/kata/agent.js';
import { GUEST_RUN_DIR, type GuestPaths } from './paths.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export function copyFile(r: CopyFileRequest, paths: GuestPaths): void {
  if (!isAbsolute(r.path)) throw invalidArgument(`CopyFile: path ${JSON.stringify(r.path)} is not absolute`);
  const guestPath = normalize(r.path);
  const rel = relative(GUEST_RUN_DIR, guestPath);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw invalidArgument(`CopyFile: ${guestPath} is not below ${GUEST_RUN_DIR}`);
  const target = paths.map(guestPath);
  const made = mkdirSync(dirname(target), { recursive: true, mode: r.dirMode & 0o7777 || 0o750 });
  if (made) chownTree(made, dirname(target), r.uid, r.gid);
  const type = r.fileMode & S_IFMT;
  if (type === S_IFDIR) {
    mkdirSync(target, { recursive: true, mode: r.fileMode & 0o7777 });
    chownSync(target, r.uid, r.gid);
    return;
  }
  if (type === S_IFLNK) {
    rmSync(target, { force: true });
    symlinkSync(Buffer.from(r.data).toString(), target);
    lchownSync(target, r.uid, r.gid);
    return;
  }
  const tmp = `${target}.tmp`;
  const offset = Number(r.offset);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | (offset === 0 ? constants.O_TRUNC : 0), r.fileMode & 0o7777);
  try {
    writeSync(fd, r.data, 0, r.data.length, offset);
  } finally {
    closeSync(fd);
  }
  if (BigInt(offset + r.data.length) >= r.fileSize) {
    chmodSync(tmp, r.fileMode & 0o7777);
    chownSync(tmp, r.uid, r.gid);
    renameSync(tmp, target);
  }
}

/** chown the directories from `top` (the first one made) down to `leaf` */
function chownTree(top: string, leaf: string, uid: number, gid: number): void {
  for (let d = leaf; ; d = dirname(d)) {
    chownSync(d, uid, gid);
    if (d === top || d === dirname(d)) return;
  }
}
