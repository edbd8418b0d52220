/**
 * Entry of the long-lived daemon, bundled on its own (dist/shim/daemon.mjs) so that the
 * boot loads one file: every extra module file costs an async read and a compile.
 */
import { parseArgs } from './args.js';
import { runDaemon } from './daemon.js';

runDaemon(parseArgs(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`containerd-shim-tsshim-v2 serve: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
