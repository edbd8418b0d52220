/**
 * How `start` launches the daemon: the same entry script, with Node flags that keep an
 * idle shim small (it is one process per pod, on every node).
 */
export function daemonEntry(): string {
  return process.argv[1]!;
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
