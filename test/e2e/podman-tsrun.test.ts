/**
 * Debian's podman with bin/tsrun as its OCI runtime (`podman --runtime <repo>/bin/tsrun`):
 * a locally loaded busybox image runs, its output comes back, and nothing of the
 * container stays. Podman gets private storage dirs, so the host's is untouched.
 *
 * This host's root lacks CAP_SYS_RESOURCE, so podman's default rlimits (NOFILE and
 * NPROC at 1048576) cannot be granted by any runtime (runc and crun fail the same way):
 * the runs pass limits the host allows.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './harness/repo-paths.js';
import { BUSYBOX_IMAGE, buildTestImages } from './harness/test-images.js';

const podmanInstalled = fs.existsSync('/usr/bin/podman');
const isRoot = process.getuid?.() === 0;
const TSRUN = join(repoRoot, 'bin/tsrun');
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

describe.skipIf(!podmanInstalled || !isRoot)(`podman --runtime bin/tsrun${podmanInstalled ? '' : ' (skipped: podman is not installed)'}`, () => {
  let dir: string;
  const podman = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        'podman',
        ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--cgroup-manager', 'cgroupfs', '--runtime', TSRUN, ...args],
        { timeout: 120_000, encoding: 'utf8' },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  let hadLibpodParent = false;
  beforeAll(async () => {
    hadLibpodParent = fs.existsSync('/sys/fs/cgroup/memory/libpod_parent');
    const build = (await import(join(repoRoot, 'scripts/build-native.mjs'))) as { buildNative: (r: string) => string; buildTsrun: (r: string) => Promise<string> };
    build.buildNative(repoRoot);
    await build.buildTsrun(repoRoot);
    dir = fs.mkdtempSync(join(os.tmpdir(), 'tsshim-podman-'));
    const images = await buildTestImages();
    const loaded = await podman(['load', '-i', images.busybox.tarball]);
    expect(loaded.code, loaded.stderr).toBe(0);
  });

  afterAll(async () => {
    if (!dir) return;
    await podman(['rm', '--all', '--force']);
    await podman(['rmi', '--all', '--force']);
    fs.rmSync(dir, { recursive: true, force: true });
    // podman's cgroupfs manager leaves its conmon cgroup behind (with any runtime)
    if (!hadLibpodParent) {
      for (const c of fs.readdirSync('/sys/fs/cgroup')) {
        for (const d of [join('/sys/fs/cgroup', c, 'libpod_parent/conmon'), join('/sys/fs/cgroup', c, 'libpod_parent')]) {
          try {
            fs.rmdirSync(d);
          } catch {
            // not there, or in use
          }
        }
      }
    }
  });

  it('runs echo hi and removes the container', async () => {
    const r = await podman(['run', '--rm', ...ULIMITS, BUSYBOX_IMAGE, 'echo', 'hi']);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ code: 0, stdout: 'hi\n' });
    expect((await podman(['ps', '-aq'])).stdout).toBe('');
  });

  it('passes the exit code and applies the container settings', async () => {
    const r = await podman(['run', '--rm', ...ULIMITS, '--hostname', 'podbox', '--memory', '64m', BUSYBOX_IMAGE, 'sh', '-c', 'hostname; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; exit 5']);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe(`podbox\n${64 * 1024 * 1024}\n`);
  });
});
