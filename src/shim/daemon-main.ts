/**
 * Entry of the long-lived daemon, bundled on its own (dist/shim/daemon-<hash>.cjs, run by
 * daemon-boot.cjs with V8's code cache) so that the boot reads and compiles one file.
 */
import { parseArgs } from './args.js';
import { runDaemon } from './daemon.js';
import { withoutDaemonTunables } from './daemon-launch.js';

// glibc read them when this process started; what the daemon runs gets containerd's
withoutDaemonTunables(process.env);

runDaemon(parseArgs(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`containerd-shim-tsshim-v2 serve: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
