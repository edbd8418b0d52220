/**
 * `ctr run` flags that hand tsshim its config the way CRI does: runtime options
 * (runtimeoptions.v1.Options.config_path) naming a TOML file that picks the backend and keeps
 * its state under the private containerd's runtime root.
 *
 * The file is written once per containerd and dated a few seconds back, like a config file
 * on a node: the first `start` reads it through Node and leaves a fingerprint, and every
 * later `start` takes the C launcher's fast path — so the suites exercise both.
 */
import { existsSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PrivateContainerd } from './harness/private-containerd.js';
import { configCachePath } from '../../src/shim/config-cache.js';

export function tsshimRunFlags(backend: 'runc' | 'crun' | 'native'): (cd: PrivateContainerd) => string[] {
  return (cd) => {
    const file = join(cd.dir, `tsshim-${backend}.toml`);
    if (!existsSync(file)) {
      writeFileSync(file, `backend = "${backend}"\n[${backend}]\nroot = "${cd.runtimeRoot}"\n`);
      const past = new Date(Date.now() - 5000);
      utimesSync(file, past, past);
      // the fingerprint the shim leaves in the socket dir goes with the test's config file
      cd.addCleanup('afterStop', async () => rmSync(configCachePath(file), { force: true }));
    }
    return ['--runtime-config-path', file];
  };
}
