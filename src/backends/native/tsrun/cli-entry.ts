/**
 * tsrun's program entry, bundled to dist/native/tsrun-<hash>.cjs and started by bin/tsrun
 * (the C front end, src/launcher/tsrun-front.c) through dist/native/tsrun-boot.cjs
 * (src/boot/cached-boot.ts): for one command line, or as a spare that waits for one
 * (`-spare …`, see front-end.ts).
 */
import { main } from './main.js';
import { parseSpareArgs } from '../../../shim/spare.js';

// A reader that goes away (`tsrun list | head -1`) ends the program quietly, as runc ends by
// SIGPIPE; Node ignores SIGPIPE and would die of the unhandled EPIPE with a stack trace.
function quietOnEpipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(process.exitCode ?? 0);
    });
  }
}

const spare = parseSpareArgs(process.argv.slice(2));
if (spare) {
  // loaded only here: a plain tsrun command never needs it
  void import('./front-end.js').then(async ({ serveAsSpare }) => {
    // stdout and stderr are synchronous writers there (serveAsSpare says why): an EPIPE
    // fails the command, which the front end then ends with
    await serveAsSpare(spare, (argv, frontEnd) => main(argv, frontEnd));
    process.exit(0);
  });
} else {
  quietOnEpipe();
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
}
