#!/usr/bin/env bash
# Fetch bookworm-backports' runsc (gVisor, with the systrap platform) next to the system's
# bookworm runsc (ptrace only), WITHOUT installing it: a private apt state (own sources list,
# lists dir, cache dir, empty dpkg status) passed to apt-get with -o options, then
# `apt-get download runsc` + `dpkg -x` into a cache dir. The system's apt sources, lists and dpkg
# database are never touched (same scheme as scripts/fetch-containerd.sh).
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
work="$(mktemp -d "$cache_root/.fetch.XXXXXX")"
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

say "reading Debian $suite from $mirror (private apt state)"
if ! apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1; then
  tail -n 20 "$work/update.log" >&2
  die "apt-get update of the private $suite list failed"
fi
policy="$(apt-cache "${apt_opts[@]}" policy runsc 2>&1)" || die "apt-cache policy runsc failed: $policy"
version="$(awk '/Candidate:/ {print $2}' <<<"$policy")"
[ "$version" != "(none)" ] || version=""
[ -n "$version" ] || die "Debian $suite has no runsc package"

say "downloading runsc $version"
(cd "$work" && apt-get "${apt_opts[@]}" download "runsc=$version" >"$work/download.log" 2>&1) || {
  tail -n 20 "$work/download.log" >&2
  die "apt-get download runsc=$version failed"
}
deb="$(find "$work" -maxdepth 1 -name 'runsc_*.deb' | head -n1)"
[ -n "$deb" ] || die "apt-get download left no runsc_*.deb"
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
