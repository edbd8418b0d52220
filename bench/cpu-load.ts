/**
 * The load the "busy" bench rows run under: two CPU-bound processes (the "two CPU-bound
 * processes loading the machine": on 2 cores, each core has a busy loop to share).
 */
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Starts two busy loops, each in a session of its own (where the kernel groups tasks by
 * session, each then weighs as one more workload on the node does). Returns what stops them.
 */
export function startCpuLoad(): () => void {
  // each loop ends by itself once the bench is gone: a killed bench must not leave them spinning
  const loop = `while kill -0 ${process.pid} 2>/dev/null; do :; done`;
  const loops: ChildProcess[] = [0, 1].map(() => spawn('sh', ['-c', loop], { detached: true, stdio: 'ignore' }));
  return () => {
    for (const l of loops) l.kill('SIGKILL');
  };
}
