/*
 * tsshim-exec: executes one plan compiled by src/backends/native (see plan.ts there for
 * the design note). Usage, by the Node side only:
 *
 *   tsshim-exec create|exec --control-fd N [--sealed]
 *   tsshim-exec self-check [--sealed]      (tests: is /proc/self/exe a sealed copy?)
 *
 * The plan arrives on the control fd; frames go back on it (PID, then OK or ERROR). The
 * container process inherits fds 0-2 (and any preserved fds from 3 up) as they are.
 *
 * --sealed: before anything else, re-execute from a sealed memfd copy of this binary,
 * so a container process that reaches /proc/<pid>/exe of ours (CVE-2019-5736: an
 * `exec` child is inside the container's pid namespace before it calls execve) finds a
 * file that can never be written, not the helper on the host.
 */
#define _GNU_SOURCE

#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable even where vm.memfd_noexec says otherwise */
#endif

extern char **environ;

static int control_fd = -1;
static pid_t child_pid; /* killed and reaped by fail_cleanup when we give up */

static int self_is_sealed(void)
{
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int seals;
	if (fd < 0)
		return 0;
	seals = fcntl(fd, F_GET_SEALS);
	close(fd);
	return seals >= 0 && (seals & F_SEAL_WRITE);
}

static void reexec_sealed(char **argv)
{
	int src, mfd;
	struct stat st;
	off_t off = 0;
	if (self_is_sealed())
		return;
	src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (src < 0 || fstat(src, &st) < 0)
		fail(errno, "open own executable");
	mfd = memfd_create("tsshim-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (mfd < 0 && errno == EINVAL)
		mfd = memfd_create("tsshim-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		fail(errno, "memfd_create");
	while (off < st.st_size) {
		ssize_t n = sendfile(mfd, src, &off, (size_t)(st.st_size - off));
		if (n <= 0)
			fail(n < 0 ? errno : EIO, "copy own executable");
	}
	close(src);
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		fail(errno, "seal executable copy");
	fexecve(mfd, argv, environ);
	fail(errno, "re-execute from sealed copy");
}

/* tests: report whether our executable is a sealed copy and whether it can be written */
static int self_check(void)
{
	int sealed = self_is_sealed();
	int fd = open("/proc/self/exe", O_WRONLY | O_CLOEXEC);
	int err = 0;
	if (fd < 0) {
		err = errno;
	} else {
		/* only ever tried on a sealed copy (below); a plain binary is busy (ETXTBSY) */
		if (sealed && pwrite(fd, "", 1, 0) < 0)
			err = errno;
		else if (!sealed)
			err = 0;
		close(fd);
	}
	printf("{\"sealed\":%s,\"writeError\":\"%s\"}\n", sealed ? "true" : "false", err ? strerror(err) : "");
	return 0;
}

static void read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail(n < 0 ? errno : EPIPE, "read plan");
		p += n;
		len -= (size_t)n;
	}
}

static uint8_t *read_plan(struct plan *p)
{
	uint32_t head[3];
	uint8_t *buf;
	const char *msg = NULL;
	read_all(control_fd, head, sizeof(head));
	if (head[0] != PLAN_MAGIC || head[1] != PLAN_VERSION)
		fail(0, "plan: wrong magic or version (helper and backend from different builds?)");
	if (head[2] > PLAN_MAX_BYTES)
		fail(0, "plan: too large (%u bytes)", head[2]);
	buf = malloc(head[2] + 1u);
	if (!buf)
		fail(ENOMEM, "plan");
	read_all(control_fd, buf, head[2]);
	if (plan_decode(buf, head[2], p, &msg) < 0)
		fail(0, "plan: %s", msg);
	return buf;
}

static int connect_console(const struct plan *p)
{
	struct sockaddr_un addr;
	int fd;
	if (!p->console_socket)
		return -1;
	if (strlen(p->console_socket) >= sizeof(addr.sun_path))
		fail(ENAMETOOLONG, "console socket %s", p->console_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail(errno, "console socket");
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, p->console_socket);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		fail(errno, "connect to console socket %s", p->console_socket);
	return fd;
}

/* mkfifo + open for reading without blocking: the child keeps this end until start */
static int make_exec_fifo(const struct plan *p)
{
	int fd;
	if (!p->exec_fifo)
		return -1;
	if (mkfifo(p->exec_fifo, 0600) < 0)
		fail(errno, "create exec fifo %s", p->exec_fifo);
	fd = open(p->exec_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		unlink(p->exec_fifo);
		fail(e, "open exec fifo %s", p->exec_fifo);
	}
	return fd;
}

/* struct clone_args of Linux 5.7 (CLONE_ARGS_SIZE_VER2), spelled out: libc has none */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#define CLONE3_INTO_CGROUP 0x200000000ULL

/*
 * fork-like clone: the child continues here with its own copy of everything. With a
 * cgroup fd, clone3 puts the child into that cgroup2 directory at birth (*into = 1);
 * kernels without it get a plain clone, and the helper places the child afterwards.
 */
static pid_t clone_child(uint32_t flags, int cgroup_fd, int *into)
{
	pid_t pid;
	*into = 0;
	if (cgroup_fd >= 0) {
		struct clone3_args a;
		memset(&a, 0, sizeof(a));
		a.flags = flags | CLONE3_INTO_CGROUP;
		a.exit_signal = SIGCHLD;
		a.cgroup = (uint64_t)cgroup_fd;
		pid = (pid_t)syscall(SYS_clone3, &a, sizeof(a));
		if (pid >= 0) {
			*into = 1;
			return pid;
		}
		if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
			fail(errno, "clone3 into cgroup (flags 0x%x)", flags);
	}
	pid = (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, 0);
	if (pid < 0)
		fail(errno, "clone (flags 0x%x)", flags);
	return pid;
}

static __attribute__((noreturn)) void give_up_on_child(int err, const char *msg)
{
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
	}
	fail(0, "%s%s%s", msg, err ? ": " : "", err ? strerror(err) : "");
}

/*
 * Waits for the child's next message. `expect` (READY, or HOOKS) returns; so does the sync socket closing
 * when eof_is_success (it is close-on-exec: the exec succeeded). An error or a dead
 * child ends the helper with the child's error, the child killed and reaped.
 */
static void await_child(int sync_fd, int expect, int eof_is_success)
{
	int32_t err = 0;
	char msg[2048];
	int t = recv_sync(sync_fd, &err, msg, sizeof(msg));
	if (t == expect || (t < 0 && eof_is_success))
		return;
	if (t == SYNC_ERROR) {
		/* forwarded as the child said it, errno included */
		uint8_t buf[4 + sizeof(msg)];
		size_t len = strnlen(msg, sizeof(msg));
		if (child_pid > 0) {
			kill(child_pid, SIGKILL);
			waitpid(child_pid, NULL, 0);
		}
		memcpy(buf, &err, 4);
		memcpy(buf + 4, msg, len);
		send_frame(control_fd, FRAME_ERROR, buf, 4 + len);
		_exit(1);
	}
	{
		int status = 0;
		char why[96];
		if (child_pid > 0 && waitpid(child_pid, &status, 0) == child_pid) {
			child_pid = 0;
			if (WIFSIGNALED(status))
				snprintf(why, sizeof(why), "container process was killed by signal %d during setup", WTERMSIG(status));
			else
				snprintf(why, sizeof(why), "container process exited with status %d during setup", WEXITSTATUS(status));
		} else {
			snprintf(why, sizeof(why), "container process vanished during setup");
		}
		give_up_on_child(0, why);
	}
}

static void run_create(const struct plan *p)
{
	struct ns_fds ns;
	int sv[2], fifo_fd, console_fd, cgroup_fd, cloned_into;
	int32_t go_err;

	fifo_fd = make_exec_fifo(p);
	console_fd = connect_console(p);
	ns_open(p, &ns);
	ns_join(&ns);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fail(errno, "socketpair");
	/* a new cgroup namespace must be rooted at the container's cgroup, which the child
	 * joins only after clone: it unshares that one itself, after SYNC_GO */
	cgroup_fd = cgroup_open_clone_into(p);
	device_filter_attach(p);
	ns_new_time(p, &ns);
	child_pid = clone_child(ns.new_flags & ~(uint32_t)CLONE_NEWCGROUP, cgroup_fd, &cloned_into);
	kill_on_failure(child_pid);
	if (child_pid == 0) {
		kill_on_failure(0);
		if (cgroup_fd >= 0)
			close(cgroup_fd);
		close(sv[0]);
		close(control_fd);
		report_to_parent(sv[1]);
		if (recv_sync(sv[1], &go_err, NULL, 0) != SYNC_GO)
			_exit(1);
		cgroup_self_move(p);
		if ((ns.new_flags & CLONE_NEWUSER) && p->n_uid_maps) {
			/* become the namespace's root where it is mapped; ids are set for real later */
			if (setresgid(0, 0, 0) < 0 && errno != EINVAL)
				fail(errno, "setgid 0 in user namespace");
			if (setresuid(0, 0, 0) < 0 && errno != EINVAL)
				fail(errno, "setuid 0 in user namespace");
		}
		if ((ns.new_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
			fail(errno, "unshare cgroup namespace");
		if (ns.new_flags & CLONE_NEWNET)
			ns_loopback_up();
		if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
			fail(errno, "sethostname %s", p->hostname);
		if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
			fail(errno, "setdomainname %s", p->domainname);
		rootfs_prepare(p);
		if (p->flags & F_HOOK_PAUSE) {
			/* prestart and createRuntime run now, on the Node side, in the runtime's namespaces */
			if (send_sync(sv[1], SYNC_HOOKS, 0, NULL) < 0 || recv_sync(sv[1], &go_err, NULL, 0) != SYNC_GO)
				_exit(1);
		}
		hooks_run(p, HOOK_CREATE_CONTAINER);
		rootfs_enter(p);
		process_console(p, console_fd);
		rootfs_finalize(p);
		process_setup(p, sv[1], fifo_fd);
		process_exec(p, fifo_fd);
	}
	close(sv[1]);
	if (console_fd >= 0)
		close(console_fd);
	if (fifo_fd >= 0)
		close(fifo_fd);
	if (send_frame_pid(control_fd, FRAME_PID, child_pid) < 0)
		give_up_on_child(errno, "report pid");
	if (ns.new_flags & CLONE_NEWUSER)
		ns_write_id_maps(p, child_pid);
	if (cgroup_fd >= 0)
		close(cgroup_fd);
	/*
	 * Where the helper has to migrate the child (see cgroup_place), the kernel waits for
	 * an RCU grace period, while the child's mounts are CPU work: the two overlap unless
	 * the child needs its cgroup first (a new cgroup namespace is rooted where the child
	 * is). The child runs no container code before READY, by which time it is placed.
	 */
	if (ns.new_flags & CLONE_NEWCGROUP)
		cgroup_place(p, child_pid, cloned_into);
	if (send_sync(sv[0], SYNC_GO, 0, NULL) < 0)
		give_up_on_child(errno, "release container process");
	if (!(ns.new_flags & CLONE_NEWCGROUP))
		cgroup_place(p, child_pid, cloned_into);
	write_oom_score_adj(p, child_pid);
	if (p->flags & F_HOOK_PAUSE) {
		uint8_t done = 0;
		await_child(sv[0], SYNC_HOOKS, 0);
		if (send_frame_pid(control_fd, FRAME_HOOKS, child_pid) < 0)
			give_up_on_child(errno, "report the hooks point");
		/* the Node side runs the hooks; anything but HOOKS_DONE (EOF: it gave up) ends us */
		if (read(control_fd, &done, 1) != 1 || done != HOOKS_DONE)
			give_up_on_child(0, "prestart/createRuntime hooks did not complete");
		if (send_sync(sv[0], SYNC_GO, 0, NULL) < 0)
			give_up_on_child(errno, "resume container process after hooks");
	}
	await_child(sv[0], SYNC_READY, 0);
	if (send_frame_pid(control_fd, FRAME_OK, child_pid) < 0)
		give_up_on_child(errno, "report ready");
	/* exiting hands the container process to the caller's subreaper */
	_exit(0);
}

static void run_exec(const struct plan *p)
{
	struct ns_fds ns;
	int sv[2], console_fd, cgroup_fd, cloned_into;
	int32_t go_err;

	console_fd = connect_console(p);
	ns_open(p, &ns);
	/* only the pid namespace is joined here (it applies to children); the child joins
	 * the rest, so this process keeps the host's view of /proc and the cgroup tree */
	for (size_t i = 0; i < ns.n; i++) {
		if (ns.type[i] != CLONE_NEWPID)
			continue;
		if (setns(ns.fd[i], CLONE_NEWPID) < 0)
			fail(errno, "setns pid namespace");
		close(ns.fd[i]);
		ns.fd[i] = -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fail(errno, "socketpair");
	cgroup_fd = cgroup_open_clone_into(p);
	child_pid = clone_child(0, cgroup_fd, &cloned_into);
	kill_on_failure(child_pid);
	if (child_pid == 0) {
		kill_on_failure(0);
		if (cgroup_fd >= 0)
			close(cgroup_fd);
		close(sv[0]);
		close(control_fd);
		report_to_parent(sv[1]);
		/* nobody else may open our /proc/<pid>/exe or ptrace us while we are the helper */
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		if (recv_sync(sv[1], &go_err, NULL, 0) != SYNC_GO)
			_exit(1);
		/* still host root in the host's mount namespace: it can move itself */
		cgroup_self_move(p);
		ns_join(&ns);
		process_console(p, console_fd);
		process_setup(p, sv[1], -1);
		process_exec(p, -1);
	}
	close(sv[1]);
	if (console_fd >= 0)
		close(console_fd);
	for (size_t i = 0; i < ns.n; i++)
		if (ns.fd[i] >= 0)
			close(ns.fd[i]);
	if (cgroup_fd >= 0)
		close(cgroup_fd);
	if (send_frame_pid(control_fd, FRAME_PID, child_pid) < 0)
		give_up_on_child(errno, "report pid");
	cgroup_place(p, child_pid, cloned_into);
	write_oom_score_adj(p, child_pid);
	if (send_sync(sv[0], SYNC_GO, 0, NULL) < 0)
		give_up_on_child(errno, "release exec process");
	await_child(sv[0], SYNC_READY, 0);
	/* READY came right before execve; an error after it means execve failed, and the
	 * socket closing (close-on-exec) without one means it succeeded */
	await_child(sv[0], SYNC_READY, 1);
	if (send_frame_pid(control_fd, FRAME_OK, child_pid) < 0)
		give_up_on_child(errno, "report ready");
	_exit(0);
}

/* the kernel's struct sigaction (the same on x86_64 and arm64) */
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

/*
 * A spawner may leave signals ignored or blocked, and both survive execve into the
 * container: start from defaults. glibc's posix_spawn (Node's, here) ignores the two
 * signals glibc keeps for itself (32, 33) in the child, and glibc's sigaction() refuses
 * to touch those: the raw system call resets them too, so the container sees no ignored
 * signal, as under runc.
 */
static void reset_signals(void)
{
	struct kernel_sigaction ksa;
	sigset_t none;
	memset(&ksa, 0, sizeof(ksa));
	ksa.handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int sealed = 0;
	struct plan plan;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--sealed"))
			sealed = 1;
		else if (!strcmp(argv[i], "--control-fd") && i + 1 < argc)
			control_fd = atoi(argv[++i]);
		else if (strcmp(mode, "self-check"))
			return 2; /* self-check runs as a script interpreter too: the script follows */
	}
	if (!strcmp(mode, "self-check")) {
		if (sealed)
			reexec_sealed(argv);
		return self_check();
	}
	if ((strcmp(mode, "create") && strcmp(mode, "exec")) || control_fd < 3 || fcntl(control_fd, F_GETFD) < 0)
		return 2;
	/* fds 3 .. control-1 are the caller's preserved fds; anything above the control fd
	 * is a leak from whoever spawned us and must not reach the container */
	if (syscall(SYS_close_range, (unsigned int)control_fd + 1, ~0u, 0) < 0)
		return 2;
	report_to_node(control_fd);
	reset_signals();
	if (sealed)
		reexec_sealed(argv);
	read_plan(&plan);
	if (!strcmp(mode, "create"))
		run_create(&plan);
	else
		run_exec(&plan);
	return 0;
}
