#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh Debian 12 machine (as root):
# installs what it needs (apt, npm ci, build), then runs unit, component and e2e tests
# (e2e against private containerd instances with real runc/crun) and ends with a line
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || { echo "install failed"; echo "0 passed, 1 failed"; exit 1; }

report=$(mktemp -t tsshim-vitest-XXXXXX.json)
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
node -e '
  const fs = require("fs");
  let r;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { console.log("0 passed, 1 failed"); process.exit(0); }
  const failedSuites = (r.testResults || []).filter((f) => f.status === "failed" && (f.assertionResults || []).length === 0).length;
  // skipped tests (those that need what this machine lacks, e.g. AppArmor) on a line of their
  // own: the last line is exactly "N passed, N failed"
  if (r.numPendingTests) console.log(`${r.numPendingTests} skipped`);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + failedSuites} failed`);
' "$report"
rm -f "$report"
exit $status
