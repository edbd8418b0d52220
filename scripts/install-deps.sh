#!/usr/bin/env bash
# Installs everything tsshim's build, tests and bench need on a fresh Debian 12 machine, as
# root, then builds the project. Idempotent: each step is skipped when already satisfied, so
# running it before every test run costs a second or two.
#
#   apt:  containerd, runc, crun, busybox-static, criu, CNI plugins, iproute2, gcc + libc6-dev
#         (C launcher, static pause binary), util-linux/bsdutils tools, systemd + dbus (booted
#         only inside a private namespace by the systemd-driver tests)
#   npm:  `npm ci` when node_modules is missing or does not match package-lock.json
#   build: `npm run build`
#   host: scripts/setup-host.sh (cgroup fix for crun), test images (cached in .cache/)
#   containerd 1.7 and 2.1 (Debian trixie/sid), fetched but NOT installed, for the e2e suites
#         on every containerd: scripts/fetch-containerd.sh (cached in .cache/containerd/)
#   runsc from bookworm-backports (gVisor 2024, systrap platform), fetched but NOT installed:
#         scripts/fetch-runsc.sh (cached in .cache/runsc/), the gvisor e2e suites run on both
#   Docker 26 (Debian trixie's docker.io + docker-cli), fetched but NOT installed, for the Docker
#         e2e suite: scripts/fetch-docker.sh (cached in .cache/docker/)
#   kata: vhost-device-vsock (Debian sid) and bookworm's kernel package, fetched and unpacked but
#         NOT installed (scripts/fetch-kata.sh, cached in .cache/kata/), then the guest image
#         (scripts/build-kata-guest.sh: .cache/kata/guest/{vmlinuz,initrd.img,floor.img})
#
# Environment: TSSHIM_SKIP_BUILD=1 skips `npm run build`; TSSHIM_SKIP_CONTAINERD_FETCH=1 skips
# fetching containerd 1.7/2.1 and the backports runsc (their e2e files then fail with a hint to
# run this script);
# TSSHIM_SKIP_DOCKER_FETCH=1 skips fetching Docker (the Docker e2e file fetches it on first use);
# TSSHIM_SKIP_KATA_FETCH=1 skips the kata fetch and guest build.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_dir"

say() { echo "install-deps: $*"; }
die() { echo "install-deps: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, mounts, cgroups)"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null || die "needs a Debian system (apt-get/dpkg-query not found)"
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  [ "${ID:-}" = debian ] && [ "${VERSION_ID:-}" = 12 ] || say "warning: tested on Debian 12, this is ${PRETTY_NAME:-unknown}"
fi

# --- apt packages ------------------------------------------------------------------------
packages=(
  containerd runc crun busybox-static criu containernetworking-plugins iproute2
  gcc libc6-dev
  bsdutils   # script: gives ctr -t a pty in the e2e suite
  mount      # mount/umount
  util-linux # unshare, nsenter
  tar coreutils
  podman     # the native executor's CLI (bin/tsrun) is tested as podman's --runtime
  systemd dbus   # a real systemd (+ D-Bus system bus) as PID 1 of a private namespace: the systemd cgroup driver's tests
  skopeo     # turns the OCI test image into a docker-archive for `docker load` (Docker e2e)
  runsc      # gVisor 2022 (ptrace platform): the gvisor backend's default runsc
  qemu-system-x86   # the kata backend's hypervisor (also ships /usr/lib/qemu/virtiofsd)
  kmod cpio  # the kata guest build: depmod for the fetched kernel's modules, the initramfs archive
)
missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt_log="$(mktemp -t tsshim-apt-XXXXXX.log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    die "apt-get failed (full log: $apt_log)"
  fi
  rm -f "$apt_log"
else
  say "apt packages present"
fi
for cmd in containerd ctr containerd-shim-runc-v2 runc crun runsc busybox gcc script skopeo qemu-system-x86_64 cpio depmod; do
  command -v "$cmd" >/dev/null || die "$cmd not found on PATH after installing packages"
done

# --- node + npm ----------------------------------------------------------------------------
command -v node >/dev/null || die "node not found (Node 20 is expected on the machine)"
command -v npm >/dev/null || die "npm not found (comes with Node 20)"
# 20.16: process.getBuiltinModule (src/sys/lazy-builtins.ts)
node -e 'process.exit(typeof process.getBuiltinModule === "function" ? 0 : 1)' || die "Node >= 20.16 required, found $(node --version)"

# node_modules is stale unless every locked package is installed at its locked version
# (optional packages may be absent: they are platform-specific).
lock_satisfied() {
  [ -d node_modules ] || return 1
  node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    for (const [path, meta] of Object.entries(lock.packages || {})) {
      if (!path.startsWith("node_modules/") || meta.link) continue;
      let installed;
      try { installed = JSON.parse(fs.readFileSync(path + "/package.json", "utf8")).version; } catch { installed = undefined; }
      if (installed === undefined && meta.optional) continue;
      if (installed !== meta.version) { console.error(`${path}: locked ${meta.version}, installed ${installed}`); process.exit(1); }
    }
  ' 2>/dev/null
}
if lock_satisfied; then
  say "node_modules matches package-lock.json"
else
  say "npm ci"
  npm_log="$(mktemp -t tsshim-npm-XXXXXX.log)"
  if ! npm ci --no-audit --no-fund --loglevel=error >"$npm_log" 2>&1; then
    # The registry reachable here serves only this platform's builds of packages with
    # per-platform optional dependencies (esbuild, rollup), so the lock file cannot list
    # the others and `npm ci` refuses it as out of sync. `npm install --no-save` installs
    # exactly the locked versions that exist for this platform and writes nothing.
    if grep -q 'EUSAGE' "$npm_log"; then
      say "npm ci refused the lock file (platform-only registry); npm install --no-save"
      if ! npm install --no-save --no-audit --no-fund --loglevel=error >"$npm_log" 2>&1; then
        tail -n 30 "$npm_log" >&2
        die "npm install failed (full log: $npm_log)"
      fi
    else
      tail -n 30 "$npm_log" >&2
      die "npm ci failed (full log: $npm_log)"
    fi
  fi
  rm -f "$npm_log"
fi

# --- build ----------------------------------------------------------------------------------
if [ "${TSSHIM_SKIP_BUILD:-0}" != 1 ]; then
  say "npm run build"
  build_log="$(mktemp -t tsshim-build-XXXXXX.log)"
  if ! npm run build --silent >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    die "npm run build failed (full log: $build_log)"
  fi
  rm -f "$build_log"
fi

# --- host setup and test images ---------------------------------------------------------------
bash scripts/setup-host.sh || die "scripts/setup-host.sh failed"
bash scripts/build-image.sh all >/dev/null || die "scripts/build-image.sh failed"
if [ "${TSSHIM_SKIP_CONTAINERD_FETCH:-0}" != 1 ]; then
  for line in 1.7 2.1; do
    bash scripts/fetch-containerd.sh "$line" >/dev/null || die "scripts/fetch-containerd.sh $line failed"
  done
  bash scripts/fetch-runsc.sh >/dev/null || die "scripts/fetch-runsc.sh failed"
fi
if [ "${TSSHIM_SKIP_DOCKER_FETCH:-0}" != 1 ]; then
  bash scripts/fetch-docker.sh >/dev/null || die "scripts/fetch-docker.sh failed"
fi
if [ "${TSSHIM_SKIP_KATA_FETCH:-0}" != 1 ]; then
  bash scripts/fetch-kata.sh || die "scripts/fetch-kata.sh failed"
  if [ "${TSSHIM_SKIP_BUILD:-0}" != 1 ]; then
    bash scripts/build-kata-guest.sh >/dev/null || die "scripts/build-kata-guest.sh failed"
  fi
fi
say "done"
