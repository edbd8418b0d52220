/**
 * runc options' ShimCgroup under real containerd 1.6, through containerd's Tasks API (ctr
 * has no flag for it): the reference runc shim and tsshim each move the shim process they
 * start into that cgroup. containerd passes task options to the shim's `start` on stdin.
 * The Go client's WithShimCgroup sends containerd.runc.v1.Options to io.containerd.runc.*
 * runtimes and the legacy containerd.linux.runc.CreateOptions to any other: tsshim takes
 * both.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateContainerd } from './harness/private-containerd.js';
import { BUSYBOX_IMAGE } from './harness/test-images.js';
import { waitUntil } from './harness/wait-until.js';
import { Options as RuncOptions } from '../../src/proto/gen/containerd/runc/v1/options.js';
import { CreateOptions as LinuxRuncCreateOptions } from '../../src/proto/gen/containerd/linux/runc/runc.js';
import { TypeUrl } from '../../src/proto/typeurls.js';
import { cgroupLayout, readProcessCgroups } from '../../src/sys/cgroups.js';

const layout = cgroupLayout();
const hierarchies = [...layout.v1.map((m) => m.mountPoint), ...(layout.unified ? [layout.unified.mountPoint] : [])];
let cd: PrivateContainerd;
const parent = `/tsshim-e2e-shimcg-${process.pid}`;
const made: string[] = [];

function makeCgroup(name: string): string {
  const cgroup = `${parent}/${name}`;
  for (const h of hierarchies) {
    for (const d of [join(h, parent), join(h, cgroup)]) {
      if (!existsSync(d)) {
        mkdirSync(d);
        made.unshift(d);
      }
      // a v1 cpuset cgroup takes no process before it has cpus and mems
      for (const f of ['cpuset.cpus', 'cpuset.mems']) if (existsSync(join(d, f))) writeFileSync(join(d, f), readFileSync(join(h, f)));
    }
  }
  return cgroup;
}

beforeAll(async () => {
  cd = await PrivateContainerd.launch();
});

afterAll(async () => {
  const problems = cd ? await cd.destroy() : [];
  for (const d of made) {
    await waitUntil(
      () => {
        try {
          rmdirSync(d);
          return true;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code === 'ENOENT';
        }
      },
      { timeoutMs: 10_000, what: `rmdir ${d}` },
    ).catch(() => problems.push(`cgroup ${d} left`));
  }
  expect(problems).toEqual([]);
});

const RUNTIMES = [
  {
    label: 'reference runc shim, runc Options',
    runtime: 'io.containerd.runc.v2',
    options: (cgroup: string) => ({ typeUrl: TypeUrl.RuncOptions, value: RuncOptions.encode(RuncOptions.fromPartial({ shimCgroup: cgroup, root: cd.runtimeRoot })).finish() }),
  },
  {
    label: 'tsshim, runc Options',
    runtime: 'io.containerd.tsshim.v2',
    options: (cgroup: string) => ({ typeUrl: TypeUrl.RuncOptions, value: RuncOptions.encode(RuncOptions.fromPartial({ shimCgroup: cgroup })).finish() }),
  },
  {
    label: "tsshim, legacy CreateOptions (the Go client's WithShimCgroup for a non-runc runtime)",
    runtime: 'io.containerd.tsshim.v2',
    options: (cgroup: string) => ({
      typeUrl: TypeUrl.LinuxRuncCreateOptions,
      value: LinuxRuncCreateOptions.encode(LinuxRuncCreateOptions.fromPartial({ shimCgroup: cgroup })).finish(),
    }),
  },
];

describe('ShimCgroup: the shim process is moved into it', () => {
  it.each(RUNTIMES.map((r, i) => ({ ...r, i })))('$label', async ({ runtime, options, i }) => {
    const cgroup = makeCgroup(`c${i}`);
    const id = `shimcg-${i}`;
    const created = await cd.ctr(['container', 'create', '--runtime', runtime, BUSYBOX_IMAGE, id, '/bin/sleep', '600']);
    expect(created.exitCode, created.stderr).toBe(0);
    try {
      // the container snapshot's mounts, which a containerd client passes to Create
      const mounts = await cd.ctr(['snapshots', 'mounts', '/rootfs', id]);
      const m = /^mount -t (\S+) (\S+) \/rootfs -o (\S+)$/.exec(mounts.stdout.trim());
      expect(m, mounts.stdout).not.toBeNull();
      const rootfs = [{ type: m![1]!, source: m![2]!, options: m![3]!.split(',') }];
      const task = await cd.api().createTask(id, rootfs, options(cgroup));
      await cd.api().startTask(id);
      const shims = cd.shimProcessesFor(id, task.pid);
      expect(shims.length).toBe(1);
      const cg = readProcessCgroups(shims[0]!.pid);
      // every v1 hierarchy (what the runc shim joins on a v1 or hybrid host) …
      for (const m of layout.v1) for (const c of m.controllers) expect(cg.v1[c], c).toBe(cgroup);
      // … and cgroup2: on a v2 host the only one; on a hybrid host the runc shim leaves the
      // unified hierarchy alone, tsshim joins it too (the cgroup exists there)
      if (layout.unified && (layout.mode === 'v2' || runtime !== 'io.containerd.runc.v2')) expect(cg.unified, 'cgroup2').toBe(cgroup);
      if (layout.mode === 'hybrid' && runtime === 'io.containerd.runc.v2') console.log(`reference runc shim, unified hierarchy: ${cg.unified}`);
    } finally {
      await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await cd.api().wait(id).catch(() => undefined);
      await cd.ctr(['task', 'delete', id]);
      await cd.ctr(['container', 'rm', id]);
    }
  });
});
