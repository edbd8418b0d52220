/*
 * Namespaces to join are opened first, all of them, while paths still mean what the
 * caller meant (after setns(CLONE_NEWNS) "/proc/<pid>/ns/..." would be the container's
 * /proc). Then the user namespace is joined first (it decides what the others allow)
 * and the mount namespace last. New namespaces come from clone() in main.c.
 */
#define _GNU_SOURCE

#include "helper.h"

#include <linux/bpf.h>

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const char *ns_name(uint32_t type)
{
	switch (type) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mnt";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "net";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	default: return "unknown";
	}
}

void ns_open(const struct plan *p, struct ns_fds *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < p->n_ns; i++) {
		const struct plan_ns *ns = &p->ns[i];
		if (!ns->path[0]) {
			/* clone cannot take CLONE_NEWTIME (it is in CSIGNAL's bits), and the offsets
			 * must be set before any process enters: see ns_new_time */
			if (ns->type == CLONE_NEWTIME)
				out->new_time = 1;
			else
				out->new_flags |= ns->type;
			continue;
		}
		int fd = open(ns->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail(errno, "open %s namespace %s", ns_name(ns->type), ns->path);
		out->fd[out->n] = fd;
		out->type[out->n] = ns->type;
		out->n++;
	}
}

static void join_one(struct ns_fds *n, size_t i)
{
	if (n->fd[i] < 0)
		return;
	if (setns(n->fd[i], (int)n->type[i]) < 0)
		fail(errno, "setns %s namespace", ns_name(n->type[i]));
	close(n->fd[i]);
	n->fd[i] = -1;
}

void ns_join(struct ns_fds *n)
{
	/* time first: joining it needs CAP_SYS_ADMIN where it was made (the host's user
	 * namespace), which a joined container user namespace would no longer give */
	for (size_t i = 0; i < n->n; i++)
		if (n->type[i] == CLONE_NEWTIME)
			join_one(n, i);
	for (size_t i = 0; i < n->n; i++)
		if (n->type[i] == CLONE_NEWUSER)
			join_one(n, i);
	for (size_t i = 0; i < n->n; i++)
		if (n->type[i] != CLONE_NEWNS)
			join_one(n, i);
	for (size_t i = 0; i < n->n; i++)
		join_one(n, i);
}

/*
 * A new time namespace for the container: unshared here, it applies to the children made
 * from now on, and its offsets can be written until the first of them enters it.
 */
void ns_new_time(const struct plan *p, const struct ns_fds *n)
{
	if (!n->new_time)
		return;
	if (unshare(CLONE_NEWTIME) < 0)
		fail(errno, "unshare time namespace");
	if (p->time_offsets && write_file("/proc/self/timens_offsets", p->time_offsets, strlen(p->time_offsets)) < 0)
		fail(errno, "write time namespace offsets (%s)", p->time_offsets);
}

/*
 * A new network namespace starts with one device, `lo`, and it is down: nothing reaches
 * 127.0.0.1. runc brings it up in every network namespace it creates (its "loopback"
 * network, in the container's init before the rootfs and the hooks), so programs that talk
 * to themselves over loopback work without any network configured. Called by the container
 * process inside its new namespace; a joined namespace (a path) is its owner's to configure
 * and never touched. The device ioctls work on a socket of any family; AF_INET is the usual.
 */
void ns_loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail(errno, "bring up the loopback interface lo: socket");
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		fail(errno, "bring up the loopback interface lo: read its flags");
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			fail(errno, "bring up the loopback interface lo");
	}
	close(fd);
}

static void write_map(pid_t child, const char *file, const struct plan_idmap *m, size_t count)
{
	char path[64], buf[MAX_MAPS * 36];
	size_t used = 0;
	for (size_t i = 0; i < count; i++) {
		int w = snprintf(buf + used, sizeof(buf) - used, "%u %u %u\n", m[i].inside, m[i].outside, m[i].count);
		if (w < 0 || (size_t)w >= sizeof(buf) - used)
			fail(0, "%s too long", file);
		used += (size_t)w;
	}
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)child, file);
	if (write_file(path, buf, used) < 0)
		fail(errno, "write %s", file);
}

void ns_write_id_maps(const struct plan *p, pid_t child)
{
	char path[64];
	if (p->n_uid_maps)
		write_map(child, "uid_map", p->uid_maps, p->n_uid_maps);
	if (p->flags & F_SETGROUPS_DENY) {
		snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)child);
		if (write_file(path, "deny", 4) < 0)
			fail(errno, "write setgroups");
	}
	if (p->n_gid_maps)
		write_map(child, "gid_map", p->gid_maps, p->n_gid_maps);
}

/*
 * Where the container process gets its cgroups, fastest first:
 * - cloned straight into the cgroup2 directory (clone3 CLONE_INTO_CGROUP, Linux 5.7);
 * - moving itself, "0" into each v1 `tasks` file: the kernel takes no global lock to
 *   migrate the calling thread (a single-threaded process is all of it);
 * - the helper writing its pid into cgroup.procs: a migration under the global
 *   cgroup_threadgroup_rwsem, whose write side waits for an RCU grace period (~10 ms
 *   here). Only where the child cannot move itself: in a new user namespace.
 */
int cgroup_open_clone_into(const struct plan *p)
{
	int fd;
	if (!p->cgroup_clone_into)
		return -1;
	fd = open(p->cgroup_clone_into, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail(errno, "open cgroup %s", p->cgroup_clone_into);
	return fd;
}

void cgroup_place(const struct plan *p, pid_t child, int cloned_into)
{
	char pid[16], procs[4096];
	int n = snprintf(pid, sizeof(pid), "%d", (int)child);
	for (size_t i = 0; i < p->n_cgroup_procs; i++)
		if (write_file(p->cgroup_procs[i], pid, (size_t)n) < 0)
			fail(errno, "join cgroup: write %s", p->cgroup_procs[i]);
	/* clone3 was not available: the cgroup2 directory the old way */
	if (p->cgroup_clone_into && !cloned_into) {
		if ((size_t)snprintf(procs, sizeof(procs), "%s/cgroup.procs", p->cgroup_clone_into) >= sizeof(procs))
			fail(ENAMETOOLONG, "cgroup %s", p->cgroup_clone_into);
		if (write_file(procs, pid, (size_t)n) < 0)
			fail(errno, "join cgroup: write %s", procs);
	}
}

void cgroup_self_move(const struct plan *p)
{
	for (size_t i = 0; i < p->n_cgroup_self; i++)
		if (write_file(p->cgroup_self[i], "0", 1) < 0)
			fail(errno, "join cgroup: write %s", p->cgroup_self[i]);
}

void write_oom_score_adj(const struct plan *p, pid_t child)
{
	char path[64], val[16];
	int n;
	if (!p->has_oom_score_adj)
		return;
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)child);
	n = snprintf(val, sizeof(val), "%d", (int)p->oom_score_adj);
	if (write_file(path, val, (size_t)n) < 0)
		fail(errno, "set oom_score_adj to %d", (int)p->oom_score_adj);
}

/*
 * cgroup2 has no devices controller: the device rules are an eBPF program (compiled by
 * device-filter.ts) attached to the container's cgroup before the container process
 * exists, so its first mknod or open is already checked. Where the v1 devices controller
 * enforces the same rules (hybrid hosts) the program is a second guard, and a kernel that
 * refuses it does not fail the create. BPF_F_ALLOW_MULTI keeps the
 * programs of parent cgroups in force as well. The attachment lives as long as the
 * cgroup: nothing to clean up but the cgroup itself.
 */
void device_filter_attach(const struct plan *p)
{
	union bpf_attr attr;
	char log[4096];
	int dir, prog;
	if (!p->device_filter)
		return;
	dir = open(p->device_filter_cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		fail(errno, "open cgroup %s for the device filter", p->device_filter_cgroup);
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.expected_attach_type = BPF_CGROUP_DEVICE;
	attr.insn_cnt = p->device_filter_len;
	attr.insns = (uint64_t)(uintptr_t)p->device_filter;
	attr.license = (uint64_t)(uintptr_t) "Apache-2.0";
	strncpy(attr.prog_name, "tsshim_devices", sizeof(attr.prog_name) - 1);
	prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (prog < 0 && !p->device_filter_required) {
		/* a kernel or sandbox without cgroup BPF: the v1 controller has the same rules */
		close(dir);
		return;
	}
	if (prog < 0) {
		/* again with the verifier's log, for the error message */
		int e = errno;
		log[0] = 0;
		attr.log_level = 1;
		attr.log_size = sizeof(log);
		attr.log_buf = (uint64_t)(uintptr_t)log;
		if (syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr)) >= 0)
			log[0] = 0;
		log[sizeof(log) - 1] = 0;
		fail(e, "load the cgroup device filter%s%s", log[0] ? ": " : "", log);
	}
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = (uint32_t)dir;
	attr.attach_bpf_fd = (uint32_t)prog;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr)) < 0 && p->device_filter_required)
		fail(errno, "attach the device filter to cgroup %s", p->device_filter_cgroup);
	close(prog);
	close(dir);
}
