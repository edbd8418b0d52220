/**
 * Node's own floor, measured in the same run as everything else: what a Node process costs
 * before any tsshim code runs. The shim daemon and tsrun are Node programs (the design
 * card's choice), so no work of ours can take them below these figures; the bench prints
 * them next to the targets so that a target below the floor shows as such.
 *
 *  - memory: an idle Node unix-socket server with the daemon's Node flags (what a shim is
 *    when it has nothing to do), read after the same settling time as the shims;
 *  - start: `node -e 0` with tsrun's flags (bin/tsrun), the part of every tsrun call that
 *    happens before tsrun's code.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { daemonNodeFlags } from '../src/shim/daemon-launch.js';
import { readMemory, type MemoryUsage } from '../test/e2e/harness/proc-fs.js';

/** the environment our programs run with (bin/tsrun and the launcher drop it) */
function nodeEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** an idle `net.createServer().listen(socket)`, `settleMs` after it accepted a connection */
export async function idleNodeServerMemory(settleMs = 1_000): Promise<MemoryUsage> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-bench-floor-'));
  const socket = path.join(dir, 's.sock');
  const child = spawn(process.execPath, [...daemonNodeFlags(), '-e', "require('net').createServer().listen(process.argv[1])", socket], {
    env: nodeEnv(),
    stdio: 'ignore',
  });
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const connected = await new Promise<boolean>((resolve) => {
        const c = net.connect(socket, () => {
          c.destroy();
          resolve(true);
        });
        c.on('error', () => resolve(false));
      });
      if (connected) break;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('idle Node server did not listen within 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, settleMs));
    const usage = readMemory(child.pid!);
    if (!usage) throw new Error('idle Node server: no smaps_rollup');
    return usage;
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** one `node -e 0` with tsrun's flags, in ms */
export function nodeStartMs(): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [...daemonNodeFlags(), '-e', '0'], { env: nodeEnv(), stdio: 'ignore', timeout: 30_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node -e 0 exited ${r.status ?? r.signal}`);
  return ms;
}

/** One figure of the floor and the reference's in the same run (MiB). */
export interface FloorCell {
  label: string;
  mib: number;
  refMib: number | undefined;
}

/** "PSS 16.9 MiB (2.59x ref), anonymous 5.9 MiB (1.81x ref)" */
export function describeFloor(cells: FloorCell[]): string {
  return cells
    .map(({ label, mib, refMib }) => {
      const ratio = refMib ? ` (${(mib / refMib).toFixed(2)}x ref)` : '';
      return `${label} ${mib >= 100 ? mib.toFixed(0) : mib.toFixed(1)} MiB${ratio}`;
    })
    .join(', ');
}
