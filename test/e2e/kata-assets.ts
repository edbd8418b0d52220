/**
 * Whether the kata e2e tests can run here: QEMU installed and the guest built
 * (scripts/install-deps.sh does both). A reason when not, shown in the skipped tests' titles.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './harness/repo-paths.js';

export const KATA_GUEST_DIR = join(repoRoot, '.cache', 'kata', 'guest');

function missing(): string | undefined {
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return 'qemu-system-x86 not installed: run scripts/install-deps.sh';
  for (const f of ['vmlinuz', 'initrd.img']) {
    if (!existsSync(join(KATA_GUEST_DIR, f))) return `guest ${f} not built: run scripts/build-kata-guest.sh`;
  }
  return undefined;
}

export const kataMissing = missing();
