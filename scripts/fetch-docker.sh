#!/usr/bin/env bash
# Fetch Debian trixie's Docker engine (docker.io: dockerd, docker-proxy) and CLI (docker-cli:
# docker) WITHOUT installing them, for the Docker e2e suite. Same private apt state as
# scripts/fetch-containerd.sh (scripts/lib/private-apt.sh), then `apt-get download` + `dpkg -x`
# into a cache dir. The system's apt sources, lists and dpkg database are never touched. trixie's dockerd is a Go
# binary that needs at most glibc 2.34, so it runs on bookworm; its containerd is not unpacked
# (the suite runs dockerd against a private containerd 1.7 from scripts/fetch-containerd.sh).
#
#   scripts/fetch-docker.sh
#
# Result: <cache>/docker/ with bin/{dockerd,docker,docker-proxy} and a VERSION file (the
# Debian versions of docker.io and docker-cli); prints that directory on stdout. Idempotent: a
# complete cache entry is reused without any network access.
#
# Environment: TSSHIM_CACHE_DIR (default <repo>/.cache), TSSHIM_DEBIAN_MIRROR (default: the
# system's Debian mirror from its apt sources, else http://deb.debian.org/debian),
# TSSHIM_REFETCH=1 (ignore the cache).
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${TSSHIM_CACHE_DIR:-$repo_dir/.cache}/docker"
suite=trixie

say() { echo "fetch-docker: $*" >&2; }
die() { echo "fetch-docker: ERROR: $*" >&2; exit 1; }

# binary -> Debian package that ships it
declare -A package_of=([dockerd]=docker.io [docker-proxy]=docker.io [docker]=docker-cli)
packages=(docker.io docker-cli)

cache_complete() {
  [ -f "$dest/VERSION" ] || return 1
  local b
  for b in "${!package_of[@]}"; do [ -x "$dest/bin/$b" ] || return 1; done
  "$dest/bin/dockerd" --version >/dev/null 2>&1 || return 1
  "$dest/bin/docker" --version >/dev/null 2>&1 || return 1
}

if [ "${TSSHIM_REFETCH:-0}" != 1 ] && cache_complete; then
  echo "$dest"
  exit 0
fi

mkdir -p "$(dirname "$dest")"
work="$(mktemp -d "$(dirname "$dest")/.fetch-docker.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR
# shellcheck source=lib/private-apt.sh
. "$repo_dir/scripts/lib/private-apt.sh"
private_apt_init "$work" "$suite"

versions=()
for pkg in "${packages[@]}"; do
  version="$(private_apt_candidate "$pkg")"
  [ -n "$version" ] || die "Debian $suite has no $pkg package"
  say "downloading $pkg $version"
  deb="$(private_apt_download "$pkg" "$version" "$work")"
  dpkg-deb -x "$deb" "$work/root"
  versions+=("$pkg $version")
done

staged="$work/staged"
mkdir -p "$staged/bin"
for b in "${!package_of[@]}"; do
  found=""
  for dir in "$work/root/usr/bin" "$work/root/usr/sbin" "$work/root/usr/libexec/docker"; do
    if [ -f "$dir/$b" ]; then found="$dir/$b"; break; fi
  done
  [ -n "$found" ] || die "$b not found in ${package_of[$b]}"
  install -m 0755 "$found" "$staged/bin/$b"
done
"$staged/bin/dockerd" --version >/dev/null 2>&1 || die "the fetched dockerd does not run on this system: $("$staged/bin/dockerd" --version 2>&1 | head -n1)"
"$staged/bin/docker" --version >/dev/null 2>&1 || die "the fetched docker CLI does not run on this system: $("$staged/bin/docker" --version 2>&1 | head -n1)"
printf '%s\n' "${versions[@]}" > "$staged/VERSION"

rm -rf "$dest"
mv "$staged" "$dest"
say "Docker ($(paste -sd ';' "$dest/VERSION")) ready in $dest"
echo "$dest"
