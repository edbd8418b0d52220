#!/usr/bin/env bash
# Main job: from a fresh clone on a fresh Debian 12 machine (as root), install what is
# needed, start a PRIVATE containerd whose runtime io.containerd.tsshim.v2 is this
# checkout's shim, run a container under tsshim and show its output.
# The containerd instance stays up afterwards; the script prints how to use and stop it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

bash scripts/install-deps.sh

# short paths: unix sockets must stay under 108 bytes
base=/tmp/tsshim-demo
if [ -f "$base/containerd.pid" ] && kill -0 "$(cat "$base/containerd.pid")" 2>/dev/null; then
  echo "demo: stopping the previous demo containerd"
  kill "$(cat "$base/containerd.pid")"; sleep 1
fi
rm -rf "$base"; mkdir -p "$base"
sock="$base/containerd.sock"
cat > "$base/config.toml" <<TOML
version = 2
root = "$base/root"
state = "$base/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
TOML

echo "demo: starting a private containerd ($base)"
PATH="$repo/bin:$PATH" nohup containerd --config "$base/config.toml" > "$base/containerd.log" 2>&1 &
echo $! > "$base/containerd.pid"
for _ in $(seq 100); do ctr --address "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$sock" version >/dev/null

image_tar=$(bash scripts/build-image.sh busybox | cut -f2)
ref=$(bash scripts/build-image.sh busybox | cut -f1)
ctr --address "$sock" images import "$image_tar" >/dev/null

echo "demo: ctr run --rm --runtime io.containerd.tsshim.v2 $ref hello ..."
echo "----------------------------------------------------------------"
ctr --address "$sock" run --rm --runtime io.containerd.tsshim.v2 "$ref" hello \
  sh -c 'echo "hello from a container run by tsshim"; echo "kernel: $(uname -r), pid in container: $$"; id'
echo "----------------------------------------------------------------"
cat <<MSG
The private containerd is still running. Try:
  ctr --address $sock run --rm --runtime io.containerd.tsshim.v2 $ref t1 echo hi
  ctr --address $sock run -d --runtime io.containerd.tsshim.v2 $ref t2 sleep 1000
  ctr --address $sock task exec --exec-id e1 t2 ps
  ctr --address $sock task metrics t2
  ctr --address $sock task kill -s SIGKILL t2 && ctr --address $sock task rm t2 && ctr --address $sock c rm t2
The default backend is tsshim's native executor; runc or crun instead: --runtime io.containerd.tsshim-runc.v2
  or io.containerd.tsshim-crun.v2 (the alias binary picks the backend)
All tests: ./scripts/test.sh      Benchmark against containerd's runc shim: npm run bench
Stop it:  kill \$(cat $base/containerd.pid)
MSG
