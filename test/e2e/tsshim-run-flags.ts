/**
 * `ctr run` flags that hand tsshim its config the way CRI does: runtime options
 * (runtimeoptions.v1.Options.config_path) naming a TOML file that picks the backend and keeps
 * its state under the private containerd's runtime root.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PrivateContainerd } from './harness/private-containerd.js';

export function tsshimRunFlags(backend: 'runc' | 'crun'): (cd: PrivateContainerd) => string[] {
  return (cd) => {
    const file = join(cd.dir, `tsshim-${backend}.toml`);
    writeFileSync(file, `backend = "${backend}"\n[${backend}]\nroot = "${cd.runtimeRoot}"\n`);
    return ['--runtime-config-path', file];
  };
}
