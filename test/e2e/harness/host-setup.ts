/** Runs scripts/setup-host.sh (cgroup fix for crun) once per process before any containerd starts. */
import { execa } from 'execa';
import { join } from 'node:path';
import { scriptsDir } from './repo-paths.js';

let prepared: Promise<void> | undefined;

export function prepareHost(): Promise<void> {
  prepared ??= (async () => {
    const result = await execa(join(scriptsDir, 'setup-host.sh'), [], { timeout: 30_000, reject: false });
    if (result.exitCode !== 0) {
      prepared = undefined;
      throw new Error(`scripts/setup-host.sh failed (exit ${result.exitCode}): ${result.stderr}`);
    }
  })();
  return prepared;
}
