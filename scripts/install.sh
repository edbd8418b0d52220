#!/usr/bin/env bash
# Installs tsshim on this node from this checkout, or removes it again:
#
#   scripts/install.sh [--prefix /usr/local] [--config-dir /etc/tsshim] [--no-build] [--force]
#   scripts/install.sh --uninstall [--prefix /usr/local] [--force]
#
# Builds if needed, copies a self-contained release into PREFIX/lib/tsshim/<version>+<build>,
# links containerd-shim-tsshim-v2, its aliases and tsrun into PREFIX/bin, writes
# /etc/tsshim/config.toml if there is none and prints the containerd, Kubernetes and Docker
# snippets for this host. scripts/install.mjs does the work and says what goes where; this
# front only checks what it needs to run at all (bash builtins only until then).
set -euo pipefail

die() { echo "tsshim install: ERROR: $*" >&2; exit "${2:-1}"; }

[ "${EUID:-$(id -u)}" = 0 ] || die "must run as root (it writes under the prefix and /etc, and checks running shims)" 77

uninstall=0 build=1 check_only=0
for arg in "$@"; do
  case "$arg" in
    --uninstall) uninstall=1 ;;
    --no-build) build=0 ;;
    --check-only) check_only=1 ;; # the checks below and nothing else (scripts/npm-postinstall.mjs)
  esac
done

# Node >= 20.16: process.getBuiltinModule (src/sys/lazy-builtins.ts)
command -v node >/dev/null 2>&1 || die "Node.js >= 20.16 is required and no \`node\` is on PATH (Debian: apt-get install nodejs, or NodeSource's node 20)" 69
node_version="$(node -p 'process.versions.node' 2>/dev/null || true)"
IFS=. read -r node_major node_minor _ <<<"$node_version"
if ! [[ "$node_major" =~ ^[0-9]+$ && "$node_minor" =~ ^[0-9]+$ ]] || [ "$node_major" -lt 20 ] || { [ "$node_major" = 20 ] && [ "$node_minor" -lt 16 ]; }; then
  die "Node.js >= 20.16 is required; \`node\` on PATH ($(command -v node)) is ${node_version:-unknown}" 69
fi

# gcc: the C launcher and the native executor are compiled on this machine
if [ "$uninstall" = 0 ] && [ "$build" = 1 ]; then
  cc="${CC:-cc}"
  command -v "$cc" >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 \
    || die "gcc is required: the C launcher and executor are built on this machine (Debian: apt-get install gcc libc6-dev)" 69
  command -v "$cc" >/dev/null 2>&1 || { cc=gcc; export CC=gcc; }
  # the executor links statically: libc.a comes with libc6-dev
  [ "$("$cc" -print-file-name=libc.a 2>/dev/null)" != libc.a ] \
    || die "libc.a not found: the native executor links statically (Debian: apt-get install libc6-dev)" 69
fi

[ "$check_only" = 0 ] || exit 0

# the real script dir: npm links this script into PREFIX/bin as tsshim-install
self="$(readlink -f "${BASH_SOURCE[0]}")"
exec node "${self%/*}/install.mjs" "$@"
