#!/usr/bin/env bash
# Fetch what the kata backend's VMs need besides QEMU, WITHOUT installing anything on the host:
#   - vhost-device-vsock from Debian sid (not in bookworm; runs on bookworm): a private apt state
#     (scripts/lib/private-apt.sh, as scripts/fetch-containerd.sh), `apt-get download` + `dpkg -x`
#     into <cache>/kata/vhost-device-vsock/;
#   - the guest kernel: bookworm's current linux-image-<abi>-amd64 (the package the
#     linux-image-amd64 metapackage depends on), downloaded with the host's own apt state (it is
#     the host's suite) and unpacked into <cache>/kata/kernel/ (vmlinuz, modules, modules.dep).
#     The kernel package is never installed.
#
#   scripts/fetch-kata.sh            # both
#   scripts/fetch-kata.sh vsock      # only vhost-device-vsock
#   scripts/fetch-kata.sh kernel     # only the kernel
#
# Result: <cache>/kata/vhost-device-vsock/bin/vhost-device-vsock (+ VERSION),
# <cache>/kata/kernel/{vmlinuz,lib/modules/<release>/...,VERSION,RELEASE}. Idempotent: complete
# cache entries are reused without any network access.
#
# Environment: TSSHIM_CACHE_DIR (default <repo>/.cache), TSSHIM_DEBIAN_MIRROR (for sid; default:
# the system's Debian mirror), TSSHIM_REFETCH=1 (ignore the cache).
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TSSHIM_CACHE_DIR:-$repo_dir/.cache}/kata"

say() { echo "fetch-kata: $*" >&2; }
die() { echo "fetch-kata: ERROR: $*" >&2; exit 1; }

what="${1:-all}"
case "$what" in all | vsock | kernel) ;; *) die "usage: $0 [all|vsock|kernel]" ;; esac
refetch="${TSSHIM_REFETCH:-0}"
mkdir -p "$cache_root"

# --- vhost-device-vsock (sid) -----------------------------------------------------------------
vsock_dest="$cache_root/vhost-device-vsock"
vsock_complete() {
  [ -f "$vsock_dest/VERSION" ] && [ -x "$vsock_dest/bin/vhost-device-vsock" ] || return 1
  "$vsock_dest/bin/vhost-device-vsock" --help >/dev/null 2>&1
}

fetch_vsock() {
  if [ "$refetch" != 1 ] && vsock_complete; then return 0; fi
  local work
  work="$(mktemp -d "$cache_root/.fetch-vsock.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  # shellcheck source=lib/private-apt.sh
  . "$repo_dir/scripts/lib/private-apt.sh"
  private_apt_init "$work" sid
  local version deb
  version="$(private_apt_candidate vhost-device-vsock)"
  [ -n "$version" ] || die "Debian sid has no vhost-device-vsock package"
  say "downloading vhost-device-vsock $version"
  deb="$(private_apt_download vhost-device-vsock "$version" "$work")"
  dpkg-deb -x "$deb" "$work/root"
  local found
  found="$work/root/usr/bin/vhost-device-vsock"; [ -f "$found" ] || found=""
  [ -n "$found" ] || die "vhost-device-vsock not found in $(basename "$deb")"
  mkdir -p "$work/staged/bin"
  install -m 0755 "$found" "$work/staged/bin/vhost-device-vsock"
  "$work/staged/bin/vhost-device-vsock" --help >/dev/null 2>&1 ||
    die "the fetched vhost-device-vsock does not run on this system: $("$work/staged/bin/vhost-device-vsock" --help 2>&1 | head -n1)"
  printf '%s\n' "$version" > "$work/staged/VERSION"
  rm -rf "$vsock_dest"
  mv "$work/staged" "$vsock_dest"
  say "vhost-device-vsock $version ready in $vsock_dest"
}

# --- guest kernel (bookworm, the host's own suite) ---------------------------------------------
kernel_dest="$cache_root/kernel"
kernel_complete() {
  [ -f "$kernel_dest/VERSION" ] && [ -f "$kernel_dest/RELEASE" ] && [ -f "$kernel_dest/vmlinuz" ] || return 1
  [ -f "$kernel_dest/lib/modules/$(cat "$kernel_dest/RELEASE")/modules.dep" ]
}

fetch_kernel() {
  if [ "$refetch" != 1 ] && kernel_complete; then return 0; fi
  local image
  # linux-image-amd64 is a metapackage naming the current ABI's image package
  image="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  if [ -z "$image" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    image="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  fi
  [ -n "$image" ] || die "apt knows no linux-image-amd64 (apt-get update?)"
  local work version deb release
  work="$(mktemp -d "$cache_root/.fetch-kernel.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  version="$(apt-cache policy "$image" | awk '/Candidate:/ {print $2}')"
  say "downloading $image $version"
  (cd "$work" && apt-get download -q "$image=$version" >"$work/download.log" 2>&1) || {
    tail -n 20 "$work/download.log" >&2
    die "apt-get download $image failed"
  }
  deb="$(find "$work" -maxdepth 1 -name "${image}_*.deb" | head -n1)"
  [ -n "$deb" ] || die "apt-get download left no ${image}_*.deb"
  dpkg-deb -x "$deb" "$work/root"
  release="${image#linux-image-}"
  [ -d "$work/root/lib/modules/$release" ] || die "$(basename "$deb") has no lib/modules/$release"
  local staged="$work/staged"
  mkdir -p "$staged/lib/modules"
  cp "$work/root/boot/vmlinuz-$release" "$staged/vmlinuz"
  cp "$work/root/boot/config-$release" "$staged/config" 2>/dev/null || true
  mv "$work/root/lib/modules/$release" "$staged/lib/modules/$release"
  # the package ships no modules.dep (depmod runs at install time): make it here
  depmod -b "$staged" "$release" || die "depmod failed for $release"
  printf '%s\n' "$version" > "$staged/VERSION"
  printf '%s\n' "$release" > "$staged/RELEASE"
  rm -rf "$kernel_dest"
  mv "$staged" "$kernel_dest"
  say "kernel $release ($version) ready in $kernel_dest"
}

case "$what" in
  all) fetch_vsock; fetch_kernel ;;
  vsock) fetch_vsock ;;
  kernel) fetch_kernel ;;
esac
