/**
 * The runc options' ShimCgroup: containerd's runc shim moves the shim process it starts
 * into that cgroup (in its `start`, for the new shim only: a group's later containers
 * reuse the running shim, so the first container's option wins), so that node operators
 * can account for and limit shims. We do the same, for the daemon `start` spawns.
 *
 * Like the runc shim's cgroup loaders, a hierarchy in which the cgroup does not exist is
 * skipped, and it is an error only if no hierarchy has it. Every hierarchy counts: the
 * v1 controllers, and cgroup2 (on a pure v2 host, and the unified mount of a hybrid one).
 * The C launcher's fast `start` does the same (join_shim_cgroup in src/launcher).
 */
import { statSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { invalidArgument, ShimError } from '../core/errors.js';
import { cgroupLayout, type CgroupLayout, type CgroupMount } from '../sys/cgroups.js';

/** The cgroup path as given, checked: it names a cgroup below each hierarchy's root. */
export function checkShimCgroup(cgroup: string): string {
  if (cgroup.includes('\0') || cgroup.split('/').includes('..')) {
    throw invalidArgument(`shim cgroup ${JSON.stringify(cgroup)}: must be a cgroup path without ".." or NUL`);
  }
  return cgroup;
}

/** where `cgroup` is in this hierarchy (a hierarchy mounted from a subtree sees paths below it) */
function dirIn(m: CgroupMount, cgroup: string): string | undefined {
  const abs = posix.join('/', cgroup);
  if (m.root === '/') return join(m.mountPoint, abs);
  if (abs === m.root || abs.startsWith(`${m.root}/`)) return join(m.mountPoint, abs.slice(m.root.length) || '/');
  return undefined;
}

/** The cgroup directories `pid` is moved into: one per hierarchy that has the cgroup. */
export function joinShimCgroup(pid: number, cgroup: string, layout: CgroupLayout = cgroupLayout()): string[] {
  checkShimCgroup(cgroup);
  const hierarchies = [...layout.v1, ...(layout.unified ? [layout.unified] : [])];
  const joined: string[] = [];
  for (const m of hierarchies) {
    const dir = dirIn(m, cgroup);
    if (!dir) continue;
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    } catch (err) {
      throw new ShimError('Internal', `cannot move the shim into its cgroup ${cgroup} (${dir}): ${(err as Error).message}`, { cause: err });
    }
    joined.push(dir);
  }
  if (joined.length === 0) throw new ShimError('NotFound', `cannot move the shim into its cgroup ${cgroup}: no cgroup hierarchy has it`);
  return joined;
}
