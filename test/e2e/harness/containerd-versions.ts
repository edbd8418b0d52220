/**
 * The containerd release lines the e2e suites run on. 1.6 is the system's (Debian 12); 1.7 and
 * 2.1 are Debian trixie's and sid's packages, fetched but never installed by
 * scripts/fetch-containerd.sh into <repo>/.cache/containerd/<line>/bin.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { scriptsDir } from './repo-paths.js';

export const CONTAINERD_LINES = ['1.6', '1.7', '2.1'] as const;
export type ContainerdLine = (typeof CONTAINERD_LINES)[number];

export interface ContainerdBinaries {
  line: ContainerdLine;
  containerd: string;
  ctr: string;
  /**
   * Directory holding this line's containerd-shim-runc-v2, put on containerd's PATH ahead of the
   * system's so that the reference shim matches the daemon; undefined for the system's 1.6.
   */
  binDir: string | undefined;
}

/** containerd's config.toml `version` for a line: 2.x reads version 3 natively. */
export function configVersionOf(line: ContainerdLine): 2 | 3 {
  return line.startsWith('2.') ? 3 : 2;
}

/**
 * containerd 1.7/2.x write OCI runtime-spec 1.2 which crun 1.8.1 (Debian 12) refuses: crun can
 * only run under containerd 1.6 on this host.
 */
export function crunUsableWith(line: ContainerdLine): boolean {
  return line === '1.6';
}

const fetched = new Map<ContainerdLine, Promise<string>>();

async function fetchLine(line: ContainerdLine): Promise<string> {
  const result = await execa('bash', [join(scriptsDir, 'fetch-containerd.sh'), line], { timeout: 300_000, reject: false });
  const dir = result.stdout.trim().split('\n').pop() ?? '';
  if (result.exitCode !== 0 || dir === '') {
    throw new Error(`scripts/fetch-containerd.sh ${line} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  }
  return dir;
}

/** Where the binaries of `line` are; fetches 1.7/2.1 into the cache on first use (idempotent). */
export async function containerdBinaries(line: ContainerdLine): Promise<ContainerdBinaries> {
  if (line === '1.6') return { line, containerd: 'containerd', ctr: 'ctr', binDir: undefined };
  let dir = fetched.get(line);
  if (!dir) {
    dir = fetchLine(line);
    fetched.set(line, dir);
    dir.catch(() => fetched.delete(line));
  }
  const binDir = join(await dir, 'bin');
  return { line, containerd: join(binDir, 'containerd'), ctr: join(binDir, 'ctr'), binDir };
}
