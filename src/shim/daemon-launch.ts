/**
 * How `start` launches the daemon: Node with the shim's Node entry script
 * (bin/tsshim-node.mjs, also what the C launcher execs), with Node flags that keep an
 * idle shim small (it is one process per pod, on every node). The C launcher
 * (src/launcher) gets the same flags at build time, from this module.
 */
import { fileURLToPath } from 'node:url';

/**
 * bin/tsshim-node.mjs. Both this source file and the bundle built from it
 * (dist/shim/*.mjs) sit two levels below the repository root.
 */
export function daemonEntry(): string {
  return fileURLToPath(new URL('../../bin/tsshim-node.mjs', import.meta.url));
}

export function daemonNodeFlags(): string[] {
  return [
    // a shim's heap is tiny and mostly long-lived: small young generation, bounded old space
    '--max-semi-space-size=1',
    '--max-old-space-size=128',
    // fewer V8 worker threads (each costs stack and arenas)
    '--v8-pool-size=1',
    '--single-threaded-gc',
  ];
}

/**
 * The daemon's environment: ours, minus NODE_EXTRA_CA_CERTS (the shim never uses TLS and
 * loading those certificates costs ~25 ms per Node start), plus the group key and the
 * name the shim binary was run as (an alias like containerd-shim-tsshim-crun-v2 picks
 * the backend; the C launcher passes it as TSSHIM_ARGV0).
 */
export function daemonEnv(base: NodeJS.ProcessEnv, group: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, TSSHIM_GROUP: group, TSSHIM_ARGV0: shimArgv0(base), ...extra };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** the name the shim binary was invoked as */
export function shimArgv0(env: NodeJS.ProcessEnv = process.env): string {
  return env.TSSHIM_ARGV0 ?? process.argv[1] ?? '';
}
