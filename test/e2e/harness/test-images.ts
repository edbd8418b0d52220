/**
 * The locally built test images (no registry is reachable): scripts/build-image.sh makes
 * OCI image-layout tarballs, cached under <repo>/.cache/images.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { scriptsDir } from './repo-paths.js';

export const BUSYBOX_IMAGE = 'localhost/busybox:tsshim';
export const PAUSE_IMAGE = 'localhost/pause:tsshim';

export interface TestImage {
  ref: string;
  /** OCI image-layout tarball, ready for `ctr images import`. */
  tarball: string;
}

export interface TestImages {
  busybox: TestImage;
  pause: TestImage;
}

let built: Promise<TestImages> | undefined;

async function build(): Promise<TestImages> {
  const result = await execa(join(scriptsDir, 'build-image.sh'), ['all'], { timeout: 120_000, reject: false });
  if (result.exitCode !== 0) {
    throw new Error(`scripts/build-image.sh failed (exit ${result.exitCode}): ${result.stderr}`);
  }
  const byRef = new Map<string, string>();
  for (const line of result.stdout.split('\n')) {
    const [ref, tarball] = line.split('\t');
    if (ref && tarball) byRef.set(ref, tarball);
  }
  const pick = (ref: string): TestImage => {
    const tarball = byRef.get(ref);
    if (!tarball) throw new Error(`scripts/build-image.sh did not report ${ref}: ${result.stdout}`);
    return { ref, tarball };
  };
  return { busybox: pick(BUSYBOX_IMAGE), pause: pick(PAUSE_IMAGE) };
}

/** Builds (or reuses the cached) test images once per process. */
export function buildTestImages(): Promise<TestImages> {
  built ??= build().catch((err: unknown) => {
    built = undefined;
    throw err;
  });
  return built;
}
