#!/usr/bin/env bash
# Builds the kata backend's guest (KATA-CONTRACT "Interface 2") from Debian packages and our own
# code, nothing prebuilt:
#   <out>/vmlinuz     Debian bookworm's kernel (scripts/fetch-kata.sh kernel)
#   <out>/initrd.img  our init (src/backends/kata/guest/init.c, static) + /usr/bin/node and the
#                     libraries it links + the native executor's helper + the kernel modules for
#                     virtio-pci, virtio-net, vsock, virtio-fs and overlay (with their
#                     dependencies, in load order, /lib/modules/load.list) + the agent
#                     (/agent/guest-agent.mjs)
#   <out>/floor.img   the same kernel's bench floor: an init that powers off at once
#
#   scripts/build-kata-guest.sh [--out DIR] [--agent FILE | --no-agent] [--compression none|gzip|lz4|zstd]
#
# The agent is dist/kata/guest-agent.mjs when it exists, else a placeholder that listens on
# $TSSHIM_AGENT_SOCKET and serves nothing. --agent puts another script there (tests use an echo
# agent), --no-agent none at all (the init then reports it on the console and powers off).
#
# The initrd is two concatenated cpio archives (the kernel unpacks each in turn): a small one
# holding the agent, then the large base (everything but the agent, compressed or not), cached
# under <cache>/kata/build/ by a hash of its inputs. So variants for tests cost a copy, and nothing is rebuilt when no input
# changed. Prints <out> on stdout.
#
# Environment: TSSHIM_CACHE_DIR (default <repo>/.cache), TSSHIM_KATA_INITRD_COMPRESSION (as
# --compression; default: none. Measured under TCG on a loaded 2-core host, boot to the agent
# answering: none 14.4–29 s, lz4 15.5–17.9 s, gzip 19.7–20.6 s, zstd 19.9–23.8 s; the kernel's
# own decompression is slower in emulation than reading the larger file, and none builds in 2 s).
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TSSHIM_CACHE_DIR:-$repo_dir/.cache}/kata"
say() { echo "build-kata-guest: $*" >&2; }
die() { echo "build-kata-guest: ERROR: $*" >&2; exit 1; }

out="$cache_root/guest"
agent_mode=default
agent_file=""
compression="${TSSHIM_KATA_INITRD_COMPRESSION:-none}"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --agent) agent_mode=file; agent_file="$2"; shift 2 ;;
    --no-agent) agent_mode=none; shift ;;
    --compression) compression="$2"; shift 2 ;;
    *) die "unknown argument $1 (usage: $0 [--out DIR] [--agent FILE | --no-agent] [--compression none|gzip|lz4|zstd])" ;;
  esac
done
case "$compression" in
  none) compress=(cat) ;;
  gzip) compress=(gzip -6 -n) ;;
  lz4) compress=(lz4 -l -9 -q) ;; # -l: the legacy frame format, the only one the kernel reads
  zstd) compress=(zstd -q -19 -T0) ;;
  *) die "unknown compression $compression" ;;
esac
[ "$compression" = none ] || command -v "${compress[0]}" >/dev/null || die "${compress[0]} not found (apt-get install ${compress[0]})"
for cmd in cpio gcc ldd sha256sum strip; do command -v "$cmd" >/dev/null || die "$cmd not found"; done

bash "$repo_dir/scripts/fetch-kata.sh" kernel
kernel_dir="$cache_root/kernel"
release="$(cat "$kernel_dir/RELEASE")"
moddir="$kernel_dir/lib/modules/$release"

node_bin="$(readlink -f "$(command -v node)")"
[ -x "$node_bin" ] || die "node not found"
helper="$repo_dir/dist/native/tsshim-exec"
[ -x "$helper" ] || die "$helper missing: run npm run build first"
guest_src="$repo_dir/src/backends/kata/guest"

# iproute2's ip: the agent configures the guest's interface, routes and neighbours with it
# (busybox's ip has no `neigh replace`)
ip_bin="$(readlink -f "$(command -v ip)")"
[ -x "$ip_bin" ] || die "ip (iproute2) not found"

# node's and ip's shared libraries and the dynamic loader, as ldd resolves them on this host
mapfile -t libs < <({ ldd "$node_bin"; ldd "$ip_bin"; } | awk '/=> \// {print $3} /^[ \t]*\/[^ ]*ld-linux/ {print $1}' | sort -u)
[ "${#libs[@]}" -gt 0 ] || die "ldd found no libraries for $node_bin"

# the modules to load, each after its dependencies (modules.dep), builtins left out
wanted=(virtio_pci virtio_net vmw_vsock_virtio_transport virtiofs overlay)
declare -A seen=()
load_order=()
resolve() {
  local rel="$1" deps dep
  [ -n "${seen[$rel]:-}" ] && return 0
  seen[$rel]=1
  deps="$(awk -v m="$rel:" '$1 == m { $1 = ""; print; exit }' "$moddir/modules.dep")"
  for dep in $deps; do resolve "$dep"; done
  load_order+=("$rel")
}
for name in "${wanted[@]}"; do
  if grep -q "/$name\.ko" "$moddir/modules.builtin"; then continue; fi
  rel="$(awk -F: -v n="/$name.ko" 'index($1, n) && substr($1, length($1) - length(n) + 1) == n {print $1; exit}' "$moddir/modules.dep")"
  [ -n "$rel" ] || die "module $name is neither built in nor in modules.dep of $release"
  resolve "$rel"
done
for rel in "${load_order[@]}"; do
  case "$rel" in *.ko) ;; *) die "$rel: compressed modules are not supported (finit_module wants a plain .ko here)" ;; esac
done

# the base's inputs: contents of our sources, identity (path size mtime) of the large files
base_hash="$(
  {
    echo "v1 $compression $release $(cat "$kernel_dir/VERSION")"
    sha256sum "$0" "$guest_src/init.c" "$helper" | awk '{print $1}'
    for f in "$node_bin" "$ip_bin" "${libs[@]}"; do stat -L -c '%n %s %Y' "$f"; done
    printf '%s\n' "${load_order[@]}"
  } | sha256sum | awk '{print $1}'
)"
floor_hash="$(
  {
    echo "v1 $compression $release $(cat "$kernel_dir/VERSION")"
    sha256sum "$0" "$guest_src/floor-init.c" | awk '{print $1}'
  } | sha256sum | awk '{print $1}'
)"

build_dir="$cache_root/build"
mkdir -p "$build_dir"
base="$build_dir/base-$compression-$base_hash.img"
floor="$build_dir/floor-$compression-$floor_hash.img"

cpio_of() { # <dir> → a newc archive on stdout, owned by root, stable order
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}
add_console() { # /dev/console lets the kernel open init's stdio before devtmpfs is mounted
  mkdir -p "$1/dev"
  mknod -m 600 "$1/dev/console" c 5 1
}

work="$(mktemp -d "$build_dir/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [ ! -f "$base" ]; then
  say "building the initrd base ($compression, kernel $release, ${#load_order[@]} modules)"
  root="$work/base"
  mkdir -p "$root"/{proc,sys,run,tmp,agent,usr/bin,etc,root} "$root/lib/modules"
  add_console "$root"
  gcc -static -O2 -Wall -Wextra -Werror -s -o "$root/init" "$guest_src/init.c"
  cp "$node_bin" "$root/usr/bin/node"
  # Debian's node carries its debug info (~13 MB of 99): the guest unpacks every byte at boot.
  # strip keeps .dynsym (what dlsym and FFI look up in the executable).
  strip "$root/usr/bin/node"
  for lib in "${libs[@]}"; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  install -m 0755 "$helper" "$root/agent/tsshim-native-helper"
  mkdir -p "$root/usr/sbin"
  install -m 0755 "$ip_bin" "$root/usr/sbin/ip"
  : > "$root/lib/modules/load.list"
  for rel in "${load_order[@]}"; do
    mkdir -p "$root/lib/modules/$release/$(dirname "$rel")"
    cp "$moddir/$rel" "$root/lib/modules/$release/$rel"
    echo "/lib/modules/$release/$rel" >> "$root/lib/modules/load.list"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\n' > "$root/etc/group"
  cpio_of "$root" | "${compress[@]}" > "$work/base.img"
  rm -f "$build_dir"/base-"$compression"-*.img
  mv "$work/base.img" "$base"
fi

if [ ! -f "$floor" ]; then
  root="$work/floor"
  mkdir -p "$root"
  add_console "$root"
  gcc -static -O2 -Wall -Wextra -Werror -s -o "$root/init" "$guest_src/floor-init.c"
  cpio_of "$root" | "${compress[@]}" > "$work/floor.img"
  rm -f "$build_dir"/floor-"$compression"-*.img
  mv "$work/floor.img" "$floor"
fi

# the agent archive, put before the base
agent_root="$work/agent"
mkdir -p "$agent_root/agent"
case "$agent_mode" in
  default)
    if [ -f "$repo_dir/dist/kata/guest-files.txt" ]; then
      # what the agent's build lists (scripts/build-kata-agent.mjs): the bundle, ffi-rs's addon,
      # the native helper; all side by side in /agent
      while IFS= read -r f; do
        [ -n "$f" ] || continue
        [ -f "$repo_dir/$f" ] || die "$f (listed in dist/kata/guest-files.txt) missing: run npm run build"
        cp "$repo_dir/$f" "$agent_root/agent/$(basename "$f")"
      done < "$repo_dir/dist/kata/guest-files.txt"
    elif [ -f "$repo_dir/dist/kata/guest-agent.mjs" ]; then
      cp "$repo_dir/dist/kata/guest-agent.mjs" "$agent_root/agent/guest-agent.mjs"
    else
      say "dist/kata/guest-agent.mjs not built: the initrd gets a placeholder agent that serves nothing"
      cat > "$agent_root/agent/guest-agent.mjs" <<'EOF'
// Placeholder guest agent (the real one is dist/kata/guest-agent.mjs): listens, serves nothing.
import { createServer } from 'node:net';
createServer((s) => s.on('error', () => {})).listen(process.env.TSSHIM_AGENT_SOCKET ?? '/run/kata-agent.sock');
EOF
    fi
    ;;
  file)
    [ -f "$agent_file" ] || die "agent $agent_file not found"
    cp "$agent_file" "$agent_root/agent/guest-agent.mjs"
    ;;
  none) ;;
esac
# shared libraries the agent's native files need beyond node's (ffi-rs's addon: librt)
for f in "$agent_root"/agent/*; do
  [ -f "$f" ] && head -c 4 "$f" | grep -q 'ELF' || continue
  while IFS= read -r lib; do
    [ -n "$lib" ] || continue
    if ! printf '%s\n' "${libs[@]}" | grep -qxF "$lib"; then
      mkdir -p "$agent_root$(dirname "$lib")"
      cp -L "$lib" "$agent_root$lib"
    fi
  done < <(ldd "$f" 2>/dev/null | awk '/=> \// {print $3}')
done

mkdir -p "$out"
cpio_of "$agent_root" > "$work/agent.cpio"
# the small uncompressed archive first: after a compressed member the kernel does not find the
# start of an uncompressed one reliably ("invalid magic at start of compressed archive")
cat "$work/agent.cpio" "$base" > "$work/initrd.img"
cp "$floor" "$work/floor.img"
cp "$kernel_dir/vmlinuz" "$work/vmlinuz"
for f in vmlinuz initrd.img floor.img; do
  if ! cmp -s "$work/$f" "$out/$f"; then mv "$work/$f" "$out/$f"; fi
done
echo "$out"
