/**
 * tsrun's program entry, bundled to dist/native/tsrun-<hash>.cjs and started by bin/tsrun
 * through dist/native/tsrun-boot.cjs (src/boot/cached-boot.ts).
 */
import { main } from './main.js';

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
