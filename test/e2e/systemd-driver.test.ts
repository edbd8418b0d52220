/**
 * The systemd cgroup driver under a real systemd. This host's init is not systemd, so a real
 * one is booted as PID 1 of private namespaces in a cgroup subtree of its own
 * (harness/private-systemd.ts), and the suites in ./inside-systemd run there, in a vitest of
 * their own: containerd, its CRI, the shims, runc and the containers all live in systemd's
 * namespaces and reach it over D-Bus, as on a node whose kubelet uses the systemd driver.
 *
 * - ctr suite: the reference runc shim with --runc-systemd-cgroup, and tsshim's native backend
 *   with systemd_cgroup = true (inside-systemd/ctr-systemd.inner.test.ts);
 * - CRI: pods with kubelet's `kubepods-burstable-pod<uid>.slice` parents, scope units checked
 *   through systemctl (inside-systemd/cri-systemd.inner.test.ts).
 *
 * Each inner run's failures are reported here by name; nothing of it may be left on the host.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateSystemd } from './harness/private-systemd.js';
import { repoRoot } from './harness/repo-paths.js';

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  testResults: Array<{ name: string; status: string; message?: string; assertionResults: Array<{ fullName: string; status: string; failureMessages: string[] }> }>;
}

const CNI_DIR = '/var/lib/cni';

describe('systemd cgroup driver under a real systemd (private namespaces)', () => {
  let sd: PrivateSystemd | undefined;
  let dir: string;
  let madeCniDir = false;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsshim-sd-e2e-'));
    // containerd's CNI result cache is written there inside; the rest of / is read-only
    if (!existsSync(CNI_DIR)) {
      mkdirSync(CNI_DIR, { recursive: true });
      madeCniDir = true;
    }
    sd = await PrivateSystemd.boot({ dir, writablePaths: [repoRoot, CNI_DIR] });
  });

  afterAll(async () => {
    await sd?.stop();
    rmSync(dir, { recursive: true, force: true });
    if (madeCniDir) {
      try {
        rmSync(join(CNI_DIR, 'results'), { recursive: false, force: true });
        if (readdirSync(CNI_DIR).length === 0) rmdirSync(CNI_DIR);
      } catch {
        // still in use by something else
      }
    }
  });

  async function runInside(file: string, minimumPassed: number): Promise<void> {
    const report = join(dir, `${file.replace(/\W/g, '_')}.json`);
    const node = (await execa('sh', ['-c', 'command -v node'])).stdout.trim();
    const result = await sd!.run(node, [join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', file, '--reporter=json', `--outputFile=${report}`], {
      cwd: repoRoot,
      env: { ...process.env, TSSHIM_E2E_INSIDE_SYSTEMD: '1', HOME: dir },
      timeout: 20 * 60_000,
    });
    const json = existsSync(report) ? (JSON.parse(readFileSync(report, 'utf8')) as VitestJson) : undefined;
    const failures = (json?.testResults ?? []).flatMap((f) => [
      ...(f.status === 'failed' && f.assertionResults.length === 0 ? [`${f.name}: ${f.message ?? 'failed to load'}`] : []),
      ...f.assertionResults.filter((a) => a.status === 'failed').map((a) => `${a.fullName}: ${a.failureMessages.join('\n').slice(0, 1500)}`),
    ]);
    const output = `exit ${result.exitCode}\n${String(result.stderr ?? '').slice(-3000)}`;
    expect(json, `no report from the inner vitest: ${output}`).toBeDefined();
    expect(failures, output).toEqual([]);
    expect(json!.numPassedTests).toBeGreaterThanOrEqual(minimumPassed);
    expect(result.exitCode, output).toBe(0);
  }

  it('ctr suite: the runc reference and tsshim native, both with the systemd driver', async () => {
    await runInside('test/e2e/inside-systemd/ctr-systemd.inner.test.ts', 60);
  }, 25 * 60_000);

  it('CRI: kubelet-style .slice pods with SystemdCgroup, runc and tsshim native, on containerd 1.6 and 2.1', async () => {
    await runInside('test/e2e/inside-systemd/cri-systemd.inner.test.ts', 4);
  }, 25 * 60_000);

  it('nothing of it is left on the host after stop', async () => {
    const pids = sd!.processes();
    await sd!.stop();
    for (const pid of pids) expect(existsSync(`/proc/${pid}`), `pid ${pid}`).toBe(false);
    for (const h of sd!.hierarchies) expect(existsSync(h.hostRoot), h.hostRoot).toBe(false);
  });
});
