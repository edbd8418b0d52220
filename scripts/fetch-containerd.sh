#!/usr/bin/env bash
# Fetch a newer Debian containerd next to the system's 1.6, WITHOUT installing it: a private apt
# state (scripts/lib/private-apt.sh), then `apt-get download containerd` + `dpkg -x` into a
# cache dir. The system's apt sources, lists and dpkg database are never touched.
#
#   scripts/fetch-containerd.sh 1.7     # Debian trixie: containerd 1.7.x
#   scripts/fetch-containerd.sh 2.1     # Debian sid:    containerd 2.1.x
#
# Result: <cache>/containerd/<line>/ with bin/{containerd,ctr,containerd-shim-runc-v2} and a
# VERSION file (the Debian package version); prints that directory on stdout. Idempotent: a
# complete cache entry is reused without any network access. Only the containerd package is
# unpacked: its runc would need trixie's glibc, the tests keep bookworm's runc/crun.
#
# Environment: TSSHIM_CACHE_DIR (default <repo>/.cache), TSSHIM_DEBIAN_MIRROR (default: the
# system's Debian mirror from its apt sources, else http://deb.debian.org/debian),
# TSSHIM_REFETCH=1 (ignore the cache).
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TSSHIM_CACHE_DIR:-$repo_dir/.cache}/containerd"

say() { echo "fetch-containerd: $*" >&2; }
die() { echo "fetch-containerd: ERROR: $*" >&2; exit 1; }

line="${1:-}"
case "$line" in
  1.7) suite=trixie ;;
  2.1) suite=sid ;;
  *) die "usage: $0 <1.7|2.1>" ;;
esac
dest="$cache_root/$line"
binaries=(containerd ctr containerd-shim-runc-v2)

cache_complete() {
  [ -f "$dest/VERSION" ] || return 1
  local b
  for b in "${binaries[@]}"; do [ -x "$dest/bin/$b" ] || return 1; done
  "$dest/bin/containerd" --version 2>/dev/null | grep -q " v\?$line\." || return 1
}

if [ "${TSSHIM_REFETCH:-0}" != 1 ] && cache_complete; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.fetch-$line.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR
# shellcheck source=lib/private-apt.sh
. "$repo_dir/scripts/lib/private-apt.sh"
private_apt_init "$work" "$suite"
version="$(private_apt_candidate containerd)"
[ -n "$version" ] || die "Debian $suite has no containerd package"
case "$version" in
  "$line".* | *:"$line".*) ;;
  *) die "Debian $suite has containerd $version, not $line.x" ;;
esac

say "downloading containerd $version"
deb="$(private_apt_download containerd "$version" "$work")"
dpkg-deb -x "$deb" "$work/root"

staged="$work/staged"
mkdir -p "$staged/bin"
for b in "${binaries[@]}"; do
  found=""
  for dir in "$work/root/usr/bin" "$work/root/usr/sbin"; do
    if [ -f "$dir/$b" ]; then found="$dir/$b"; break; fi
  done
  [ -n "$found" ] || die "$b not found in $(basename "$deb")"
  install -m 0755 "$found" "$staged/bin/$b"
done
"$staged/bin/containerd" --version >/dev/null 2>&1 || die "the fetched containerd does not run on this system: $("$staged/bin/containerd" --version 2>&1 | head -n1)"
printf '%s\n' "$version" > "$staged/VERSION"

rm -rf "$dest"
mv "$staged" "$dest"
say "containerd $version ready in $dest"
echo "$dest"
