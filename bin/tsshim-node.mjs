#!/usr/bin/env node
// The Node side of containerd-shim-tsshim-v2. containerd runs bin/containerd-shim-tsshim-v2,
// a small C launcher (src/launcher) that answers the common `start`/`delete` itself and
// execs Node with this script, and the unchanged arguments, for everything else; `start`
// also launches the long-lived daemon through this script. All logic lives in the bundled
// build (dist/shim); `npm run build` creates both.
import('../dist/shim/main.mjs').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  process.stderr.write(`containerd-shim-tsshim-v2: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
