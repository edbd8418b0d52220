# shellcheck shell=bash
# Sourced by scripts/fetch-containerd.sh, scripts/fetch-docker.sh and scripts/fetch-runsc.sh: download packages of a newer
# Debian suite WITHOUT touching the system's apt state. A private apt state (own sources list,
# lists dir, cache dir, empty dpkg status) is passed to apt-get with -o options; the system's
# apt sources, lists and dpkg database are never read or written.
#
#   private_apt_init <work dir> <suite>   sets the array private_apt_opts and runs `apt-get update`
#   private_apt_candidate <package>       prints the suite's candidate version (empty: none)
#   private_apt_download <package> <version> <dest dir>   prints the path of the .deb
#
# Environment: TSSHIM_DEBIAN_MIRROR (default: the system's Debian mirror from its apt sources,
# else http://deb.debian.org/debian). Callers define say() and die().

# The mirror the system already uses (a CI machine may have a local one), else Debian's CDN.
private_apt_system_mirror() {
  local uri
  uri="$(grep -hsE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)"
  if [ -z "$uri" ]; then
    uri="$(grep -hsE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit }}' | grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

private_apt_init() {
  local work="$1" suite="$2"
  command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs apt-get and dpkg (Debian)"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"
  local mirror="${TSSHIM_DEBIAN_MIRROR:-$(private_apt_system_mirror)}"
  local apt_dir="$work/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/preferences.d" "$apt_dir/sources.list.d"
  : > "$apt_dir/status"
  printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" > "$apt_dir/sources.list"
  private_apt_opts=(
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
  if ! apt-get "${private_apt_opts[@]}" update >"$work/update.log" 2>&1; then
    tail -n 20 "$work/update.log" >&2
    die "apt-get update of the private $suite list failed"
  fi
}

private_apt_candidate() {
  local policy version
  policy="$(apt-cache "${private_apt_opts[@]}" policy "$1" 2>&1)" || die "apt-cache policy $1 failed: $policy"
  version="$(awk '/Candidate:/ {print $2}' <<<"$policy")"
  [ "$version" = "(none)" ] && version=""
  echo "$version"
}

private_apt_download() {
  local package="$1" version="$2" dest="$3" deb
  (cd "$dest" && apt-get "${private_apt_opts[@]}" download "$package=$version" >"$dest/download-$package.log" 2>&1) || {
    tail -n 20 "$dest/download-$package.log" >&2
    die "apt-get download $package=$version failed"
  }
  deb="$(find "$dest" -maxdepth 1 -name "${package}_*.deb" | head -n1)"
  [ -n "$deb" ] || die "apt-get download left no ${package}_*.deb"
  echo "$deb"
}
