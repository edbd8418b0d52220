import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync, constants as fsc } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ffi from '../../src/sys/ffi.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tsshim-ffi-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('sys/ffi', () => {
  it('loads nothing native at import time, not even through the other sys modules', async () => {
    await import('../../src/sys/reaper.js');
    await import('../../src/sys/cgroups.js');
    await import('../../src/sys/oom.js');
    await import('../../src/sys/console-socket.js');
    expect(ffi.isLoaded()).toBe(false);
    expect(ffi.isCloseOnExec(0) === true || ffi.isCloseOnExec(0) === false).toBe(true);
    expect(ffi.isLoaded()).toBe(true);
  });

  it('sets and reads a terminal size on a pty master', () => {
    const master = openSync('/dev/ptmx', fsc.O_RDWR | fsc.O_NOCTTY);
    try {
      ffi.setWinsize(master, 24, 80);
      expect(ffi.getWinsize(master)).toEqual({ rows: 24, cols: 80 });
      ffi.setWinsize(master, 65535, 1);
      expect(ffi.getWinsize(master)).toEqual({ rows: 65535, cols: 1 });
    } finally {
      closeSync(master);
    }
  });

  it('throws SysError with the errno name and a ShimError code', () => {
    const file = join(tmp, 'plain');
    writeFileSync(file, 'x');
    const fd = openSync(file, 'r');
    try {
      expect(() => ffi.setWinsize(fd, 1, 1)).toThrow(ffi.SysError);
      expect(() => ffi.setWinsize(fd, 1, 1)).toThrow(expect.objectContaining({ errno: 'ENOTTY', code: 'InvalidArgument' }));
      expect(() => ffi.recvFd(fd)).toThrow(expect.objectContaining({ errno: 'ENOTSOCK' }));
    } finally {
      closeSync(fd);
    }
    expect(() => ffi.getWinsize(987_654)).toThrow(expect.objectContaining({ errno: 'EBADF' }));
    expect(() => ffi.waitidReap(999_999_999)).toThrow(expect.objectContaining({ errno: 'ECHILD', code: 'NotFound' }));
  });

  it('changes O_NONBLOCK and FD_CLOEXEC', () => {
    const fd = openSync(join(tmp, 'flags'), 'w');
    try {
      ffi.setNonBlocking(fd, true);
      expect(ffi.isNonBlocking(fd)).toBe(true);
      ffi.setNonBlocking(fd, false);
      expect(ffi.isNonBlocking(fd)).toBe(false);
      ffi.setCloseOnExec(fd, false);
      expect(ffi.isCloseOnExec(fd)).toBe(false);
      ffi.setCloseOnExec(fd, true);
      expect(ffi.isCloseOnExec(fd)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it('creates an eventfd that counts', () => {
    const efd = ffi.eventfd(0, ffi.EFD_CLOEXEC | ffi.EFD_NONBLOCK);
    try {
      expect(ffi.isCloseOnExec(efd)).toBe(true);
      const eight = Buffer.alloc(8);
      expect(() => readSync(efd, eight)).toThrow(/EAGAIN/);
      eight.writeBigUInt64LE(3n);
      writeSync(efd, eight);
      writeSync(efd, eight);
      const out = Buffer.alloc(8);
      expect(readSync(efd, out)).toBe(8);
      expect(out.readBigUInt64LE()).toBe(6n);
    } finally {
      closeSync(efd);
    }
  });

  it('mounts a tmpfs and detaches it', () => {
    const target = mkdtempSync(join(tmp, 'mnt-'));
    const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target);
    ffi.mount('tsshim-test', target, 'tmpfs', ffi.MS_NOSUID | ffi.MS_NODEV, 'size=1m,mode=700');
    try {
      expect(mounted()).toBe(true);
      writeFileSync(join(target, 'f'), 'on tmpfs');
      ffi.mount(undefined, target, undefined, ffi.MS_REMOUNT | ffi.MS_BIND | ffi.MS_RDONLY);
      expect(() => writeFileSync(join(target, 'g'), 'x')).toThrow(/EROFS/);
    } finally {
      ffi.umount2(target, ffi.MNT_DETACH);
    }
    expect(mounted()).toBe(false);
    expect(() => ffi.umount2(target)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(() => ffi.mount('none', join(tmp, 'missing'), 'tmpfs', 0)).toThrow(expect.objectContaining({ errno: 'ENOENT', code: 'NotFound' }));
  });

  it('costs microseconds per call', () => {
    const master = openSync('/dev/ptmx', fsc.O_RDWR | fsc.O_NOCTTY);
    try {
      const n = 2000;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) ffi.getWinsize(master);
      const perCallUs = Number(process.hrtime.bigint() - t0) / n / 1000;
      expect(perCallUs).toBeLessThan(200);
    } finally {
      closeSync(master);
    }
  });
});
