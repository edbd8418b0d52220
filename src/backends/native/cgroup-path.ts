/**
 * Where an OCI `linux.cgroupsPath` puts a container, under each cgroup driver, exactly as
 * runc reads it (observable: `/proc/<pid>/cgroup` of the container, and which directories
 * exist afterwards).
 *
 * cgroupfs driver (runc without `--systemd-cgroup`):
 * - an absolute path is the same path in every hierarchy;
 * - a relative path (no leading `/`) is relative to the runtime's own cgroup, hierarchy by
 *   hierarchy on v1 and hybrid hosts (runc's fs manager; the cgroup2 tree of a hybrid host is
 *   the exception: there runc starts at the root), and to the parent of its own cgroup on a
 *   pure cgroup2 host (runc's fs2 manager: its own cgroup usually has processes, which a
 *   cgroup2 parent of a leaf must not have);
 * - no path at all is the container id, relative as above;
 * - `..` cannot climb above the starting point (runc cleans the path as if it were rooted).
 *   Note that systemd's `slice:prefix:name` form is *not* special here: containerd's CRI
 *   writes it whenever the pod's cgroup parent ends in `.slice`, and runc then makes a
 *   directory literally named `kubepods-pod1.slice:cri-containerd:<id>`, relative as above.
 *
 * systemd driver (runc `--systemd-cgroup`, SystemdCgroup = true): the path must be
 * `slice:prefix:name`; the container gets the transient unit `prefix-name.scope` in `slice`
 * (or the slice `name` itself when it ends in `.slice`), and systemd places slices by their
 * dashes: `a-b.slice` lives in `a.slice/a-b.slice`. Paths are taken from the root of each
 * hierarchy as the runtime sees it (systemd's own root: on a node, or in a container with a
 * cgroup namespace of its own).
 */
import { posix } from 'node:path';
import { invalidArgument } from '../../core/errors.js';
import type { CgroupLayout, ProcessCgroups } from '../../sys/cgroups.js';

/** A container's cgroup in each hierarchy, as /proc/<pid>/cgroup would show it. */
export interface CgroupPaths {
  /** one line to name it by (logs, state, errors): the cgroup2 path, or the first v1 one */
  path: string;
  /** v1 controller (and `name=...` hierarchy) → path */
  v1: Record<string, string>;
  /** the cgroup2 path, on v2 and hybrid hosts */
  unified?: string;
}

/** runc's CleanPath: lexically clean, and a relative path never climbs above its start. */
function cleanPath(p: string): { path: string; absolute: boolean } {
  const absolute = p.startsWith('/');
  const rooted = posix.normalize(posix.join('/', p)).replace(/(.)\/+$/, '$1');
  return { path: absolute ? rooted : rooted.slice(1), absolute };
}

function paths(layout: CgroupLayout, at: (hierarchy: { controllers: string[] } | 'unified') => string): CgroupPaths {
  const v1: Record<string, string> = {};
  for (const m of layout.v1) {
    const p = at(m);
    for (const c of m.controllers) v1[c] = p;
  }
  const unified = layout.unified ? at('unified') : undefined;
  const first = unified ?? Object.values(v1)[0] ?? '/';
  return { path: first, v1, unified };
}

/** the same absolute path in every hierarchy */
export function uniformCgroupPaths(path: string, layout: CgroupLayout): CgroupPaths {
  return paths(layout, () => path);
}

/**
 * cgroupfs: the container's cgroup in each hierarchy. `own` is the runtime's own cgroups
 * (/proc/self/cgroup); it is read only for a relative path.
 */
export function resolveCgroupfsPaths(cgroupsPath: string | undefined, id: string, layout: CgroupLayout, own: () => ProcessCgroups): CgroupPaths {
  const { path, absolute } = cleanPath(cgroupsPath || id);
  if (absolute) {
    if (path === '/') throw invalidArgument('linux.cgroupsPath: must not be the root cgroup');
    return uniformCgroupPaths(path, layout);
  }
  if (path === '') throw invalidArgument(`linux.cgroupsPath ${JSON.stringify(cgroupsPath)}: names no cgroup`);
  const mine = own();
  return paths(layout, (h) => {
    if (h === 'unified') {
      // fs2 (pure v2) starts from the parent of the runtime's cgroup; runc's v1 manager on a
      // hybrid host puts the cgroup2 side at the root (seen with runc 1.1 here: memory under
      // the runtime's cgroup, 0::/<path>)
      return layout.mode === 'v2' ? posix.join(posix.dirname(mine.unified ?? '/'), path) : `/${path}`;
    }
    return posix.join(mine.v1[h.controllers[0]!] ?? '/', path);
  });
}

/** A systemd transient unit for a container. */
export interface SystemdUnitPlace {
  /** e.g. cri-containerd-<id>.scope (or a .slice when the name is one) */
  unit: string;
  /** the slice it is made in, e.g. kubepods-burstable-pod1.slice */
  slice: string;
  /** where systemd puts it in every hierarchy, e.g. /kubepods.slice/.../cri-containerd-<id>.scope */
  path: string;
}

const UNIT_CHARS = /^[A-Za-z0-9:_.\\@-]+$/;

/**
 * `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`, as systemd nests slices; `-.slice` is the
 * root. Names systemd would refuse (empty parts, a leading or doubled dash) are refused.
 */
export function expandSlice(slice: string): string {
  if (!slice.endsWith('.slice')) throw invalidArgument(`systemd slice ${JSON.stringify(slice)}: must end in .slice`);
  const name = slice.slice(0, -'.slice'.length);
  if (name === '-') return '/';
  if (name === '' || name.startsWith('-') || name.endsWith('-') || name.includes('--') || name.includes('/') || !UNIT_CHARS.test(name)) {
    throw invalidArgument(`systemd slice ${JSON.stringify(slice)}: not a valid slice name`);
  }
  let out = '';
  let prefix = '';
  for (const part of name.split('-')) {
    prefix = prefix ? `${prefix}-${part}` : part;
    out += `/${prefix}.slice`;
  }
  return out;
}

/**
 * systemd driver: `slice:prefix:name` → the unit and where systemd will put it. An empty
 * cgroupsPath is runc's default, `system.slice:runc:<id>`; an empty slice is system.slice.
 */
export function resolveSystemdUnit(cgroupsPath: string | undefined, id: string): SystemdUnitPlace {
  const text = cgroupsPath || `system.slice:runc:${id}`;
  const parts = text.split(':');
  if (parts.length !== 3) {
    throw invalidArgument(`linux.cgroupsPath ${JSON.stringify(text)}: the systemd cgroup driver expects "slice:prefix:name"`);
  }
  const [sliceIn, prefix, name] = parts as [string, string, string];
  const slice = sliceIn || 'system.slice';
  if (!name) throw invalidArgument(`linux.cgroupsPath ${JSON.stringify(text)}: no unit name after the second ':'`);
  // runc joins prefix and name with a dash even when the prefix is empty
  const unit = name.endsWith('.slice') ? name : `${prefix}-${name}.scope`;
  if (!UNIT_CHARS.test(unit)) throw invalidArgument(`linux.cgroupsPath ${JSON.stringify(text)}: ${JSON.stringify(unit)} is not a valid unit name`);
  return { unit, slice, path: posix.join(expandSlice(slice), unit) };
}
