/**
 * Kata's Storage messages: filesystems the agent mounts in the guest before containers use
 * them. Drivers handled: "virtio-fs" (the host's shared dir, tag kataShared), "local"
 * (a directory the agent creates), "ephemeral" (a tmpfs). Others are refused by name.
 * In host-test mode nothing is mounted: the shared dir is a host dir already.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { invalidArgument, unimplemented } from '../../../core/errors.js';
import type { GuestPaths } from './paths.js';

export interface StorageRequest {
  driver: string;
  source: string;
  fstype: string;
  options: string[];
  mountPoint: string;
}

export interface MountedStorage {
  mountPoint: string;
  /** unmount at removal (false: nothing was mounted, e.g. host-test mode) */
  mounted: boolean;
  /** a directory to remove at removal (what the agent created for local storage) */
  removeDir?: string;
}

const FLAG_OPTIONS: Record<string, number> = {
  ro: 1, // MS_RDONLY
  nosuid: 2,
  nodev: 4,
  noexec: 8,
  rw: 0,
  suid: 0,
  dev: 0,
  exec: 0,
};

export async function mountStorage(s: StorageRequest, paths: GuestPaths, ownsTheMachine: boolean): Promise<MountedStorage> {
  if (!s.mountPoint?.startsWith('/')) throw invalidArgument(`storage ${s.driver} ${s.source}: mount_point ${JSON.stringify(s.mountPoint)} is not absolute`);
  const target = paths.map(s.mountPoint);
  switch (s.driver) {
    case 'virtio-fs':
    case 'virtiofs': {
      if (!ownsTheMachine) return { mountPoint: target, mounted: false };
      mkdirSync(target, { recursive: true });
      if (await isMountPoint(target)) return { mountPoint: target, mounted: false };
      await mount(s.source || 'kataShared', target, s.fstype || 'virtiofs', s.options);
      return { mountPoint: target, mounted: true };
    }
    case 'local': {
      // the first directory made (parents included) goes at removal
      const made = mkdirSync(target, { recursive: true, mode: 0o777 });
      return { mountPoint: target, mounted: false, removeDir: made };
    }
    case 'ephemeral': {
      mkdirSync(target, { recursive: true });
      if (!ownsTheMachine) return { mountPoint: target, mounted: false };
      await mount(s.source || 'tmpfs', target, s.fstype || 'tmpfs', s.options);
      return { mountPoint: target, mounted: true };
    }
    default:
      throw unimplemented(`storage driver ${JSON.stringify(s.driver)} is not supported by this agent (virtio-fs, local, ephemeral are)`);
  }
}

export async function unmountAll(list: MountedStorage[]): Promise<void> {
  const { umount2, MNT_DETACH } = await import('../../../sys/ffi.js');
  const failed: string[] = [];
  for (const m of [...list].reverse()) {
    if (m.mounted) {
      try {
        umount2(m.mountPoint, MNT_DETACH);
      } catch (err) {
        failed.push(`${m.mountPoint}: ${(err as Error).message}`);
      }
    }
    if (m.removeDir) rmSync(m.removeDir, { recursive: true, force: true });
  }
  if (failed.length > 0) throw new Error(`unmount ${failed.join('; ')}`);
}

async function mount(source: string, target: string, fstype: string, options: string[]): Promise<void> {
  const { mount: sysMount } = await import('../../../sys/ffi.js');
  let flags = 0;
  const data: string[] = [];
  for (const o of options ?? []) {
    if (o in FLAG_OPTIONS) flags |= FLAG_OPTIONS[o]!;
    else data.push(o);
  }
  sysMount(source, target, fstype, flags, data.length > 0 ? data.join(',') : undefined);
}

async function isMountPoint(dir: string): Promise<boolean> {
  const { isMountPoint: check } = await import('../../../sys/mountinfo.js');
  return check(dir);
}
