/**
 * The runtimes the bench compares. The first one is the reference every ratio is computed
 * against. Add a variant here (e.g. tsshim with the native or crun backend) to get a column.
 */
import { accessSync, constants, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PrivateContainerd } from '../test/e2e/harness/private-containerd.js';
import { tsshimBinary } from '../test/e2e/harness/repo-paths.js';
import { configCachePath } from '../src/shim/config-cache.js';

export interface BenchRuntime {
  /** Column title. */
  label: string;
  /** containerd runtime name passed to `ctr run --runtime`. */
  runtime: string;
  /** Extra `ctr run` flags (runtime options) for this variant. */
  runFlags(cd: PrivateContainerd): string[];
  /** Why this runtime cannot be measured here, or undefined when it can be tried. */
  unavailableReason(): string | undefined;
  /**
   * Latency with the shim already up: a container of the same group keeps running while the
   * latency is sampled, as on a node whose pods share one shim (`shim.group = "namespace"`).
   * Memory is not measured again for it (the grouped column has it).
   */
  warm?: boolean;
  /**
   * containerd's environment for this runtime (its shims inherit it): such a runtime gets a
   * private containerd of its own, and only its latency is measured.
   */
  containerdEnv?(): Record<string, string>;
}

/**
 * tsshim as a node would run it: no runtime options (so `start` takes the C launcher's
 * fast path). 'default' is io.containerd.tsshim.v2 with no config, i.e. the native
 * executor; a named backend goes by the runtime name's alias (io.containerd.tsshim-crun.v2
 * → bin/containerd-shim-tsshim-crun-v2). grouped: every container of the run goes to one
 * shim (the group annotation), which is what a pod gets through CRI — and what
 * `shim.group = "namespace"` does for a whole node.
 */
function tsshimVariant(backend: 'default' | 'runc' | 'crun', grouped = false, warm = false): BenchRuntime {
  return {
    label: `tsshim${backend === 'default' ? ' (native)' : `+${backend}`}${grouped ? ', 1 shim for all' : ''}${warm ? ', warm' : ''}`,
    warm,
    runtime: backend === 'default' ? 'io.containerd.tsshim.v2' : `io.containerd.tsshim-${backend}.v2`,
    runFlags() {
      // a group of its own per variant: the warm one's resident must not keep the other's shim up
      return grouped ? ['--annotation', `io.containerd.tsshim.v2.group=bench${warm ? '-warm' : ''}`] : [];
    },
    unavailableReason() {
      try {
        accessSync(tsshimBinary, constants.X_OK);
        return undefined;
      } catch {
        return `${tsshimBinary} is missing or not executable (run npm run build)`;
      }
    },
  };
}

/**
 * tsshim (native) with its config named by TSSHIM_CONFIG in containerd's environment, the
 * documented way besides the runtime options: a config file with the defaults, old
 * enough for `start` to fingerprint it, so that the C launcher answers later starts.
 */
function tsshimConfigEnvVariant(label = 'tsshim (native), TSSHIM_CONFIG', config = '[shim]\ngroup = "pod"\n'): BenchRuntime {
  const base = tsshimVariant('default');
  let file: string | undefined;
  return {
    ...base,
    label,
    containerdEnv() {
      if (!file) {
        const dir = mkdtempSync(join(tmpdir(), 'tsshim-bench-config-'));
        const configFile = join(dir, 'config.toml');
        file = configFile;
        writeFileSync(configFile, config);
        const hourAgo = new Date(Date.now() - 3600_000);
        utimesSync(configFile, hourAgo, hourAgo);
        // the file and the fingerprint `start` leaves of it
        process.on('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          rmSync(configCachePath(configFile), { force: true });
        });
      }
      return { TSSHIM_CONFIG: file };
    },
  };
}

export const REFERENCE: BenchRuntime = {
  label: 'runc shim (ref)',
  runtime: 'io.containerd.runc.v2',
  runFlags: (cd) => ['--runc-root', cd.runtimeRoot],
  unavailableReason: () => undefined,
};

export const BENCH_RUNTIMES: BenchRuntime[] = [
  REFERENCE,
  tsshimVariant('default'),
  tsshimConfigEnvVariant(),
  // every start spawns its daemon, as the first start on an idle node does (no spare booted yet)
  tsshimConfigEnvVariant('tsshim (native), no spare', '[shim]\nspare = false\n'),
  tsshimVariant('runc'),
  tsshimVariant('crun'),
  tsshimVariant('default', true),
  tsshimVariant('default', true, true),
];

/**
 * The runtimes to measure: all of BENCH_RUNTIMES, or, when `filter` (TSSHIM_BENCH_VARIANTS)
 * is set, the reference plus those whose label contains one of its comma-separated parts
 * (`native` or `crun,runc`): a quicker run while working on one variant.
 */
export function selectRuntimes(filter: string | undefined): BenchRuntime[] {
  const parts = (filter ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0) return BENCH_RUNTIMES;
  const chosen = BENCH_RUNTIMES.filter((rt) => rt === REFERENCE || parts.some((p) => rt.label.includes(p)));
  if (chosen.length === 1) throw new Error(`TSSHIM_BENCH_VARIANTS=${filter} matches no runtime (labels: ${BENCH_RUNTIMES.map((rt) => rt.label).join('; ')})`);
  return chosen;
}
