/**
 * tsrun's program entry, bundled to dist/native/tsrun-<hash>.cjs and started by bin/tsrun
 * through dist/native/tsrun-boot.cjs (src/boot/cached-boot.ts).
 */
import { main } from './main.js';

// A reader that goes away (`tsrun list | head -1`) ends the program quietly, as runc ends by
// SIGPIPE; Node ignores SIGPIPE and would die of the unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    // exitCode, not exit(): stdout may be a pipe still being written to
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`tsrun: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
