#!/usr/bin/env node
// tsrun's Node entry (bin/tsrun is the shell front that starts it): runc's command line over
// the tsshim native executor (src/backends/native/tsrun).
// All logic lives in the bundled build (dist/native/tsrun.mjs, made by
// scripts/build-native.mjs together with the executor, dist/native/tsshim-exec).
import('../dist/native/tsrun.mjs')
  .then((m) => m.main(process.argv.slice(2)))
  .then((code) => {
    // exitCode, not exit(): stdout may be a pipe still being written to
    process.exitCode = code;
  })
  .catch((err) => {
    process.stderr.write(`tsrun: ${err && err.message ? err.message : err}\n`);
    process.exitCode = 1;
  });
