/**
 * Entry of the long-lived daemon, bundled on its own (dist/shim/daemon-<hash>.cjs, run by
 * daemon-boot.cjs with V8's code cache) so that the boot reads and compiles one file.
 */
import { parseArgs } from './args.js';
import { runDaemon } from './daemon.js';
import { shimArgv0, withoutDaemonTunables } from './daemon-launch.js';
import { setCommandLine, shimCommandLine } from './process-name.js';
import { applyAdoption, confirmAdoption, parseSpareArgs, waitForAdoption, type Adoption } from './spare.js';

// A spare (src/shim/spare.ts) waits here, booted, until a `start` hands it a group.
const spare = parseSpareArgs(process.argv.slice(2));
let adoption: Adoption | undefined;
if (spare) {
  adoption = waitForAdoption(spare);
  if (!adoption) process.exit(0);
  applyAdoption(adoption);
}

// glibc read them when this process started; what the daemon runs gets containerd's
withoutDaemonTunables(process.env);

const args = parseArgs(adoption ? adoption.argv : process.argv.slice(2));
// `ps`/`pgrep containerd-shim` find us as they find every other shim (process-name.ts)
setCommandLine(shimCommandLine({ binary: shimBinaryName(), namespace: args.namespace, id: args.id, address: args.address, debug: args.debug }));

runDaemon(args, { listenerFd: adoption?.listenerFd, adopted: adoption !== undefined })
  .then(() => {
    if (adoption) confirmAdoption(adoption);
  })
  .catch((err) => {
    process.stderr.write(`containerd-shim-tsshim-v2 serve: ${err instanceof Error ? err.message : err}\n`);
    process.exit(1);
  });

/** the shim binary containerd ran (an alias picks a backend), or our name if that is unknown (a manual `node … serve`) */
function shimBinaryName(): string {
  const argv0 = shimArgv0();
  return /^containerd-shim-/.test(argv0.slice(argv0.lastIndexOf('/') + 1)) ? argv0 : 'containerd-shim-tsshim-v2';
}
