#!/usr/bin/env bash
# Fetch bookworm-backports' runsc (gVisor, with the systrap platform) next to the system's
# bookworm runsc (ptrace only), WITHOUT installing it: a private apt state
# (scripts/lib/private-apt.sh, as scripts/fetch-containerd.sh), then `apt-get download runsc` +
# `dpkg -x` into a cache dir. The system's apt sources, lists and dpkg database are never touched.
#
#   scripts/fetch-runsc.sh
#
# Result: <cache>/runsc/<debian version>/bin/runsc and a VERSION file; a symlink
# <cache>/runsc/backports points at it. Prints the bin/runsc path on stdout. Idempotent: a
# complete cache entry is reused without any network access. The tests point tsshim's
# `[gvisor] binary` (and the reference's runc-binary wrapper) at it.
#
# Environment: TSSHIM_CACHE_DIR (default <repo>/.cache), TSSHIM_DEBIAN_MIRROR (default: the
# system's Debian mirror from its apt sources, else http://deb.debian.org/debian),
# TSSHIM_REFETCH=1 (ignore the cache).
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TSSHIM_CACHE_DIR:-$repo_dir/.cache}/runsc"
suite=bookworm-backports
link="$cache_root/backports"

say() { echo "fetch-runsc: $*" >&2; }
die() { echo "fetch-runsc: ERROR: $*" >&2; exit 1; }

cache_complete() {
  [ -f "$link/VERSION" ] && [ -x "$link/bin/runsc" ] || return 1
  "$link/bin/runsc" --version >/dev/null 2>&1
}

if [ "${TSSHIM_REFETCH:-0}" != 1 ] && cache_complete; then
  echo "$(cd "$link" && pwd -P)/bin/runsc"
  exit 0
fi

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

# shellcheck source=lib/private-apt.sh
. "$repo_dir/scripts/lib/private-apt.sh"
private_apt_init "$work" "$suite"
version="$(private_apt_candidate runsc)"
[ -n "$version" ] || die "Debian $suite has no runsc package"
say "downloading runsc $version"
deb="$(private_apt_download runsc "$version" "$work")"
dpkg-deb -x "$deb" "$work/root"

found=""
for dir in "$work/root/usr/bin" "$work/root/usr/sbin"; do
  if [ -f "$dir/runsc" ]; then found="$dir/runsc"; break; fi
done
[ -n "$found" ] || die "runsc not found in $(basename "$deb")"
staged="$work/staged"
mkdir -p "$staged/bin"
install -m 0755 "$found" "$staged/bin/runsc"
"$staged/bin/runsc" --version >/dev/null 2>&1 || die "the fetched runsc does not run on this system: $("$staged/bin/runsc" --version 2>&1 | head -n1)"
printf '%s\n' "$version" > "$staged/VERSION"

# Debian versions hold '~' and ':'; the directory name keeps only what is safe in a path.
dir_name="$(printf '%s' "$version" | tr -c 'A-Za-z0-9.+-' '_')"
dest="$cache_root/$dir_name"
rm -rf "$dest"
mv "$staged" "$dest"
ln -sfn "$dir_name" "$link"
say "runsc $version ready in $dest"
echo "$dest/bin/runsc"
