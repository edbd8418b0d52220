#!/usr/bin/env bash
# Fetch a newer Debian containerd next to the system's 1.6, WITHOUT installing it: a private apt
# state (own sources list, lists dir, cache dir, empty dpkg status) passed to apt-get with -o
# options, then `apt-get download containerd` + `dpkg -x` into a cache dir. The system's apt
# sources, lists and dpkg database are never touched.
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

command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs apt-get and dpkg (Debian)"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"

# The mirror the system already uses (a CI machine may have a local one), else Debian's CDN.
system_mirror() {
  local uri
  uri="$(grep -hsE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)"
  if [ -z "$uri" ]; then
    uri="$(grep -hsE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit }}' | grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${TSSHIM_DEBIAN_MIRROR:-$(system_mirror)}"

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.fetch-$line.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR
apt_dir="$work/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/preferences.d" "$apt_dir/sources.list.d"
: > "$apt_dir/status"
printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" > "$apt_dir/sources.list"

apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::Etc::Preferences=$apt_dir/preferences"
  -o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::State::Status=$apt_dir/status"
  -o "Dir::State::extended_states=$apt_dir/extended_states"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::archives=$apt_dir/cache/archives"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "APT::Get::List-Cleanup=false"
  -o "Debug::NoLocking=false"
  -q
)

say "containerd $line: reading Debian $suite from $mirror (private apt state)"
if ! apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1; then
  tail -n 20 "$work/update.log" >&2
  die "apt-get update of the private $suite list failed"
fi
policy="$(apt-cache "${apt_opts[@]}" policy containerd 2>&1)" || die "apt-cache policy containerd failed: $policy"
version="$(awk '/Candidate:/ {print $2}' <<<"$policy")"
[ "$version" != "(none)" ] || version=""
[ -n "$version" ] || die "Debian $suite has no containerd package"
case "$version" in
  "$line".* | *:"$line".*) ;;
  *) die "Debian $suite has containerd $version, not $line.x" ;;
esac

say "downloading containerd $version"
(cd "$work" && apt-get "${apt_opts[@]}" download "containerd=$version" >"$work/download.log" 2>&1) || {
  tail -n 20 "$work/download.log" >&2
  die "apt-get download containerd=$version failed"
}
deb="$(find "$work" -maxdepth 1 -name 'containerd_*.deb' | head -n1)"
[ -n "$deb" ] || die "apt-get download left no containerd_*.deb"
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
