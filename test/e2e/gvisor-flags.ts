/**
 * How the e2e suites and the bench run gVisor: tsshim's gvisor backend (a TOML config named by
 * the runtime options, as CRI's ConfigPath does) and the reference, containerd's runc shim with
 * `--runc-binary` pointing at a wrapper script that adds the same runsc flags.
 *
 * Both get `--overlay2=none --file-access=shared`: the suites read and write the container's
 * rootfs from the host (runsc 2024's default overlay keeps writes in a private filestore, and
 * exclusive file access caches what the host changes).
 */
import { chmodSync, existsSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PrivateContainerd } from './harness/private-containerd.js';
import { repoRoot } from './harness/repo-paths.js';
import { configCachePath } from '../../src/shim/config-cache.js';

export interface RunscBuild {
  /** label for titles: "runsc 2022 (bookworm)" */
  label: string;
  binary: string;
  platform: 'ptrace' | 'systrap';
  /** why this build cannot run here, if it cannot */
  missing?: string;
}

export const RUNSC_DEBIAN: RunscBuild = {
  label: 'runsc 2022 (bookworm, ptrace)',
  binary: '/usr/bin/runsc',
  platform: 'ptrace',
  missing: existsSync('/usr/bin/runsc') ? undefined : 'runsc not installed: run scripts/install-deps.sh',
};

const backportsBinary = join(repoRoot, '.cache', 'runsc', 'backports', 'bin', 'runsc');
export const RUNSC_BACKPORTS: RunscBuild = {
  label: 'runsc 2024 (bookworm-backports, systrap)',
  binary: backportsBinary,
  platform: 'systrap',
  missing: existsSync(backportsBinary) ? undefined : 'backports runsc not fetched: run scripts/fetch-runsc.sh',
};

export const SUITE_RUNSC_FLAGS = ['--overlay2=none', '--file-access=shared'];

function tag(build: RunscBuild): string {
  return build.platform;
}

/** tsshim's config for the gvisor backend; `platform` left out lets the backend probe it */
export function gvisorConfigToml(cd: PrivateContainerd, build: RunscBuild, opts: { probePlatform?: boolean } = {}): string {
  const lines = [
    'backend = "gvisor"',
    '[gvisor]',
    `binary = "${build.binary}"`,
    `root = "${join(cd.dir, 'runsc')}"`,
    ...(opts.probePlatform ? [] : [`platform = "${build.platform}"`]),
    `flags = [${SUITE_RUNSC_FLAGS.map((f) => JSON.stringify(f)).join(', ')}]`,
  ];
  return `${lines.join('\n')}\n`;
}

/** `ctr run` flags for tsshim + gvisor (the config file dated back, as on a node) */
export function gvisorRunFlags(build: RunscBuild): (cd: PrivateContainerd) => string[] {
  return (cd) => {
    const file = join(cd.dir, `tsshim-gvisor-${tag(build)}.toml`);
    if (!existsSync(file)) {
      writeFileSync(file, gvisorConfigToml(cd, build));
      const past = new Date(Date.now() - 5000);
      utimesSync(file, past, past);
      cd.addCleanup('afterStop', async () => rmSync(configCachePath(file), { force: true }));
    }
    return ['--runtime-config-path', file];
  };
}

/** runsc with the flags tsshim's backend passes, as a shell command line */
function runscCommand(build: RunscBuild, network: string): string {
  return [build.binary, `--platform=${build.platform}`, `--network=${network}`, ...SUITE_RUNSC_FLAGS].join(' ');
}

/** <cd.dir>/<name>, an executable script with `body` (written once per containerd) */
function wrapperScript(cd: PrivateContainerd, name: string, body: () => string): string {
  const file = join(cd.dir, name);
  if (!existsSync(file)) {
    writeFileSync(file, body());
    chmodSync(file, 0o755);
  }
  return file;
}

/** a runc-compatible wrapper: runsc with the flags tsshim's backend passes */
export function runscWrapper(cd: PrivateContainerd, build: RunscBuild, network = 'none'): string {
  return wrapperScript(cd, `runsc-${tag(build)}-${network}.sh`, () => `#!/bin/sh\nexec ${runscCommand(build, network)} "$@"\n`);
}

/**
 * The pod reference's wrapper: as runscWrapper (network host: the pod's netns), plus the two
 * things containerd's runc shim needs to drive a gVisor pod at all, which gVisor's own shim
 * does itself:
 *  - `start` of an app container spawns its gofer, which inherits runsc's stdout/stderr; the
 *    runc shim reads them to EOF, so StartContainer never returned. Here runsc writes to a
 *    file, printed when runsc exits.
 *  - `kill` of a container whose sandbox is gone fails with "sandbox is not running", which
 *    the runc shim does not take for an exited process (it retried until CRI's deadline).
 *    Here that failure also says runc's "container not running".
 */
export function runscPodReferenceWrapper(cd: PrivateContainerd, build: RunscBuild): string {
  return wrapperScript(cd, `runsc-${tag(build)}-pod-reference.sh`, () => {
    const runsc = runscCommand(build, 'host');
    return [
      '#!/bin/sh',
      'case " $* " in',
      '*" start "*|*" kill "*)',
      '  out=$(mktemp) || exit 1',
      `  ${runsc} "$@" </dev/null >"$out" 2>&1`,
      '  rc=$?',
      '  cat "$out"',
      '  if [ $rc -ne 0 ] && grep -q "is not running" "$out"; then echo "container not running"; fi',
      '  rm -f "$out"',
      '  exit $rc ;;',
      'esac',
      `exec ${runsc} "$@"`,
      '',
    ].join('\n');
  });
}

/** `ctr run` flags for the reference: containerd's runc shim driving runsc through the wrapper */
export function runscReferenceRunFlags(build: RunscBuild): (cd: PrivateContainerd) => string[] {
  return (cd) => ['--runc-binary', runscWrapper(cd, build), '--runc-root', join(cd.dir, 'runsc-ref')];
}
