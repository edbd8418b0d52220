/**
 * Whether the kata e2e tests can run here: QEMU installed and the guest built
 * (scripts/install-deps.sh does both). A reason when not, shown in the skipped tests' titles.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './harness/repo-paths.js';
import { readCmdline } from './harness/proc-fs.js';

export const KATA_GUEST_DIR = join(repoRoot, '.cache', 'kata', 'guest');

function missing(): string | undefined {
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return 'qemu-system-x86 not installed: run scripts/install-deps.sh';
  for (const f of ['vmlinuz', 'initrd.img']) {
    if (!existsSync(join(KATA_GUEST_DIR, f))) return `guest ${f} not built: run scripts/build-kata-guest.sh`;
  }
  return undefined;
}

export const kataMissing = missing();

/** processes whose command line names a kata state root (QEMU, virtiofsd, the vsock device): "pid: argv" */
export function vmProcesses(stateRoot: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = readCmdline(Number(name));
    if (argv.some((a) => a.includes(stateRoot))) out.push(`${name}: ${argv.join(' ').slice(0, 160)}`);
  }
  return out;
}
