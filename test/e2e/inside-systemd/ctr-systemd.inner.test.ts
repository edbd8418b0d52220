/**
 * The ctr suite with the systemd cgroup driver, run INSIDE a private systemd (see
 * ../systemd-driver.test.ts, which boots it and runs this file there with
 * TSSHIM_E2E_INSIDE_SYSTEMD=1; elsewhere this file is skipped). The reference is containerd's
 * runc shim with `--runc-systemd-cgroup`; tsshim's native backend gets `systemd_cgroup = true`
 * in its config. ctr needs the cgroup in systemd's `slice:prefix:name` form (`--cgroup`), as
 * with runc; every container becomes the transient unit `ctr-<id>.scope` in SLICE.
 */
import { existsSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineCtrSuite } from '../ctr-suite.js';
import { configCachePath } from '../../../src/shim/config-cache.js';
import type { PrivateContainerd } from '../harness/private-containerd.js';

const inside = process.env.TSSHIM_E2E_INSIDE_SYSTEMD === '1';
const SLICE = 'tsshim.slice';
const skipReason = inside ? undefined : 'runs only inside a private systemd (test/e2e/systemd-driver.test.ts)';
const cgroupFlag = (id: string) => ['--cgroup', `${SLICE}:ctr:${id}`];

function tsshimSystemdFlags(cd: PrivateContainerd, id: string): string[] {
  const file = join(cd.dir, 'tsshim-native-systemd.toml');
  if (!existsSync(file)) {
    writeFileSync(file, `backend = "native"\n[native]\nroot = "${cd.runtimeRoot}"\nsystemd_cgroup = true\n`);
    const past = new Date(Date.now() - 5000);
    utimesSync(file, past, past);
    cd.addCleanup('afterStop', async () => rmSync(configCachePath(file), { force: true }));
  }
  return ['--runtime-config-path', file, ...cgroupFlag(id)];
}

defineCtrSuite('io.containerd.runc.v2', {
  label: 'reference runc shim, systemd cgroup driver',
  runFlags: (cd, id) => ['--runc-root', cd.runtimeRoot, '--runc-systemd-cgroup', ...cgroupFlag(id)],
  containerd: { cgroupRoot: SLICE },
  goRuncShim: true,
  skipReason,
});

defineCtrSuite('io.containerd.tsshim.v2', {
  label: 'tsshim + native backend, systemd cgroup driver',
  runFlags: tsshimSystemdFlags,
  containerd: { cgroupRoot: SLICE },
  skipReason,
});
