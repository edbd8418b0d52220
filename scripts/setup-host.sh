#!/usr/bin/env bash
# Host preparation the e2e tests and the bench need. Idempotent; needs root.
#
# crun 1.8.1 refuses a hybrid cgroup layout while any controller sits on cgroup2 ("drop all
# controllers from cgroupv2"); on these machines the kernel leaves hugetlb there. Binding
# hugetlb to its own v1 hierarchy at /sys/fs/cgroup/hugetlb (like every other controller here)
# is the least intrusive fix: nothing else uses hugetlb on cgroup2, and runc is unaffected.
set -euo pipefail

cgroup_root=/sys/fs/cgroup
die() { echo "setup-host: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# Pure cgroup v2 (unified) hosts, or hosts without hugetlb, need nothing.
[ "$(stat -fc %T "$cgroup_root")" = "cgroup2fs" ] && exit 0
grep -qw '^hugetlb' /proc/cgroups || exit 0

# Already bound to a v1 hierarchy somewhere? (mountinfo: "... - cgroup <source> <super options>")
if awk -F' - ' '{ split($2, f, " "); if (f[1] == "cgroup" && f[3] ~ /(^|,)hugetlb(,|$)/) found = 1 } END { exit !found }' /proc/self/mountinfo; then
  exit 0
fi

mkdir -p "$cgroup_root/hugetlb"
mount -t cgroup -o hugetlb hugetlb "$cgroup_root/hugetlb" ||
  die "could not mount a v1 hugetlb hierarchy at $cgroup_root/hugetlb (crun will refuse this hybrid layout)"
echo "setup-host: mounted cgroup v1 hugetlb at $cgroup_root/hugetlb (for crun)" >&2
