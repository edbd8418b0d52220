#!/usr/bin/env bash
# Build the test images as OCI image-layout tarballs (no registry is reachable):
#   busybox: Debian's busybox-static + applet symlinks + minimal /etc
#   pause:   a tiny static C program (test/e2e/images/pause.c) that sleeps until SIGTERM/SIGINT
#
# Usage: scripts/build-image.sh [busybox|pause|all]     (default: all)
# Prints one line per image on stdout: "<image ref><TAB><tarball path>".
# Output is reproducible (fixed mtimes, owners, order) and cached under <repo>/.cache/images;
# a cache entry is rebuilt when its inputs (this script, the busybox binary, pause.c) change.
set -euo pipefail

readonly BUSYBOX_REF="localhost/busybox:tsshim"
readonly PAUSE_REF="localhost/pause:tsshim"

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${TSSHIM_CACHE_DIR:-$repo_dir/.cache}/images"
pause_src="$repo_dir/test/e2e/images/pause.c"
busybox_bin="${BUSYBOX_BIN:-/bin/busybox}"

die() { echo "build-image: $*" >&2; exit 1; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch="$(uname -m)" ;;
esac

# Deterministic tar of a directory tree: sorted names, root owner, epoch mtimes.
det_tar() { # <src dir> <out file>
  tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$1" -cf "$2" .
}

# Write one blob into <layout>/blobs/sha256 and echo "<digest> <size>".
add_blob() { # <layout dir> <file>
  local digest size
  digest="$(sha256_of "$2")"
  size="$(stat -c %s "$2")"
  mv "$2" "$1/blobs/sha256/$digest"
  echo "$digest $size"
}

# Assemble an image layout from a rootfs directory and pack it into <out>.
# Config: <entrypoint-json> <cmd-json> (JSON arrays or null).
pack_image() { # <rootfs> <ref> <entrypoint json> <cmd json> <out tarball>
  local rootfs="$1" ref="$2" entrypoint="$3" cmd="$4" out="$5"
  local work layout layer_digest layer_size config_digest config_size manifest_digest manifest_size
  work="$(mktemp -d "${cache_dir}/.pack.XXXXXX")"
  layout="$work/layout"
  mkdir -p "$layout/blobs/sha256"

  det_tar "$rootfs" "$work/layer.tar"
  read -r layer_digest layer_size < <(add_blob "$layout" "$work/layer.tar")

  # Uncompressed layer: its digest is also its diff_id.
  printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"tsshim scripts/build-image.sh"}]}' \
    "$arch" "$entrypoint" "$cmd" "$layer_digest" > "$work/config.json"
  read -r config_digest config_size < <(add_blob "$layout" "$work/config.json")

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" > "$work/manifest.json"
  read -r manifest_digest manifest_size < <(add_blob "$layout" "$work/manifest.json")

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$arch" "$ref" "${ref##*:}" > "$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"

  det_tar "$layout" "$work/image.tar"
  mv "$work/image.tar" "$out"
  rm -rf "$work"
}

busybox_rootfs() { # <dir>
  local root="$1" applet
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,var/tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 0700 "$root/root"
  install -m 0755 "$busybox_bin" "$root/bin/busybox"
  # --list-full gives each applet's canonical directory (bin/ls, usr/bin/awk, ...).
  while read -r applet; do
    case "$applet" in
      */*) ;;
      *) continue ;; # e.g. "linuxrc"
    esac
    [ "$applet" = "bin/busybox" ] && continue
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done < <("$busybox_bin" --list-full)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
}

pause_rootfs() { # <dir>
  local root="$1"
  command -v gcc >/dev/null || die "gcc is needed to build the pause image (apt-get install gcc libc6-dev)"
  mkdir -p "$root"/{proc,sys,dev,etc}
  gcc -static -Os -s -o "$root/pause" "$pause_src" || die "compiling $pause_src failed (static libc missing? apt-get install libc6-dev)"
  chmod 0755 "$root/pause"
}

# Build <name> unless the cached tarball's key matches the current inputs.
build() { # <name>
  local name="$1" ref key out tmp
  out="$cache_dir/$name.oci.tar"
  case "$name" in
    busybox)
      [ -x "$busybox_bin" ] || die "$busybox_bin not found (apt-get install busybox-static)"
      ref="$BUSYBOX_REF"
      key="$(sha256_of "${BASH_SOURCE[0]}") $(sha256_of "$busybox_bin") $arch"
      ;;
    pause)
      [ -f "$pause_src" ] || die "$pause_src not found"
      ref="$PAUSE_REF"
      key="$(sha256_of "${BASH_SOURCE[0]}") $(sha256_of "$pause_src") $arch $(gcc -dumpfullversion 2>/dev/null || echo nogcc)"
      ;;
    *) die "unknown image '$name' (busybox|pause|all)" ;;
  esac
  if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
    printf '%s\t%s\n' "$ref" "$out"
    return
  fi
  tmp="$(mktemp -d "${cache_dir}/.rootfs.XXXXXX")"
  trap 'rm -rf "$tmp"' RETURN
  "${name}_rootfs" "$tmp/rootfs"
  case "$name" in
    busybox) pack_image "$tmp/rootfs" "$ref" null '["sh"]' "$out.tmp" ;;
    pause) pack_image "$tmp/rootfs" "$ref" '["/pause"]' null "$out.tmp" ;;
  esac
  mv "$out.tmp" "$out"
  printf '%s' "$key" > "$out.key"
  printf '%s\t%s\n' "$ref" "$out"
}

mkdir -p "$cache_dir"
case "${1:-all}" in
  all) build busybox; build pause ;;
  busybox | pause) build "$1" ;;
  *) die "usage: $0 [busybox|pause|all]" ;;
esac
