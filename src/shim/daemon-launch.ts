/**
 * How `start` launches the daemon: Node with the daemon's boot loader
 * (dist/shim/daemon-boot.cjs, see src/boot/cached-boot.ts), with Node flags chosen for a small,
 * quick-to-boot shim (it is one process per pod, on every node). The C launcher
 * (src/launcher) gets the same entry and flags at build time, from this module.
 */
import { fileURLToPath } from 'node:url';

/** the daemon's entry, relative to the repository root */
export const DAEMON_ENTRY = 'dist/shim/daemon-boot.cjs';

/**
 * dist/shim/daemon-boot.cjs. This source file (src/shim) and the bundles built from it
 * (dist/shim) both sit two levels below the repository root.
 */
export function daemonEntry(): string {
  return fileURLToPath(new URL(`../../${DAEMON_ENTRY}`, import.meta.url));
}

export function daemonNodeFlags(): string[] {
  return [
    // GC on the main thread: no GC helper threads (each costs a stack and a malloc arena).
    // Measured here it also boots faster; a 1 MiB semi-space did not (more scavenges
    // while the bundle loads) and saved no anonymous memory.
    '--single-threaded-gc',
    // one V8 platform worker instead of one per core: three fewer threads, same boot time
    '--v8-pool-size=1',
    // V8 checks the code cache's checksum only in debug builds; without it a damaged
    // daemon-<hash>.cache crashes Node (V8 CHECK) instead of being rejected. Costs nothing
    // measurable here.
    '--verify-snapshot-checksum',
    // No optimising (TurboFan) and no baseline (Sparkplug) compiler: a shim runs each path
    // a few times per container, never hot enough to gain from compiled code, and both
    // keep code and compiler memory resident. Measured here, one shim with one container:
    // 7.5 → 7.2 MiB anonymous, RSS −4.7 MiB (compiler code pages of the node binary left
    // untouched); `ctr run` latency and 20 MB of container output through the shim took
    // the same time.
    '--no-opt',
    '--no-sparkplug',
  ];
}

/**
 * glibc's malloc for the daemon: one arena for all its threads. By default a thread that
 * mallocs while another holds the main arena gets an arena of its own, and one of Node's
 * threads kept ~0.4 MiB resident in a second arena that malloc_trim could not free
 * (measured here: one shim with one container, 8.6 → 8.2 MiB anonymous). The daemon's
 * other threads malloc rarely, so they contend for nothing. Appended to GLIBC_TUNABLES
 * (a later setting of a tunable wins) and taken out again when the daemon boots
 * (withoutDaemonTunables), so the runtimes and hooks it runs get containerd's environment.
 */
export const DAEMON_GLIBC_TUNABLES = 'glibc.malloc.arena_max=1';

/** GLIBC_TUNABLES for the daemon: the inherited value, then ours */
export function daemonGlibcTunables(inherited: string | undefined): string {
  return inherited ? `${inherited}:${DAEMON_GLIBC_TUNABLES}` : DAEMON_GLIBC_TUNABLES;
}

/** the daemon's environment with our tunables taken out again (daemonGlibcTunables undone) */
export function withoutDaemonTunables(env: NodeJS.ProcessEnv): void {
  const value = env.GLIBC_TUNABLES;
  if (value === DAEMON_GLIBC_TUNABLES) delete env.GLIBC_TUNABLES;
  else if (value?.endsWith(`:${DAEMON_GLIBC_TUNABLES}`)) env.GLIBC_TUNABLES = value.slice(0, -DAEMON_GLIBC_TUNABLES.length - 1);
}

/**
 * The daemon's environment: ours, minus NODE_EXTRA_CA_CERTS (the shim never uses TLS and
 * loading those certificates costs ~25 ms per Node start), plus the group key, the
 * name the shim binary was run as (an alias like containerd-shim-tsshim-crun-v2 picks
 * the backend; the C launcher passes it as TSSHIM_ARGV0) and our malloc tunables.
 */
export function daemonEnv(base: NodeJS.ProcessEnv, group: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    TSSHIM_GROUP: group,
    TSSHIM_ARGV0: shimArgv0(base),
    GLIBC_TUNABLES: daemonGlibcTunables(base.GLIBC_TUNABLES),
    ...extra,
  };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** the name the shim binary was invoked as */
export function shimArgv0(env: NodeJS.ProcessEnv = process.env): string {
  return env.TSSHIM_ARGV0 ?? process.argv[1] ?? '';
}
