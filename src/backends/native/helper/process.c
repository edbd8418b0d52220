/*
 * The container process, after its namespaces and filesystem are in place. Everything
 * that can fail is done before SYNC_READY, so `create` (and `exec`) report it; after
 * READY only waiting for `start`, a seccomp filter that needs no_new_privs, and
 * execve() remain.
 *
 * Privileges are dropped in the one order that works: bounding set first (needs
 * CAP_SETPCAP), a seccomp filter without no_new_privs while CAP_SYS_ADMIN is still
 * there, then ids with PR_SET_KEEPCAPS so the permitted set survives setuid, then the
 * capability sets, then ambient (which needs permitted and inheritable).
 */
#define _GNU_SOURCE

#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

/* set by process_setup: args[0] resolved against the container's PATH */
static char exec_path[4096];
/* set by process_setup: the plan's environment, plus HOME where it has none */
static const char **exec_env;

static void send_master(int sock, int master, const char *name)
{
	struct msghdr msg;
	struct iovec iov;
	char control[CMSG_SPACE(sizeof(int))];
	struct cmsghdr *cmsg;
	memset(&msg, 0, sizeof(msg));
	memset(control, 0, sizeof(control));
	iov.iov_base = (void *)name;
	iov.iov_len = strlen(name);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control;
	msg.msg_controllen = sizeof(control);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &master, sizeof(int));
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			fail(errno, "send the pty master to the console socket");
}

void process_console(const struct plan *p, int console_sock)
{
	int master, slave, unlock = 0;
	unsigned int n;
	char name[64];
	if (!(p->flags & F_TERMINAL))
		return;
	/* the container's own devpts instance (newinstance), else whatever /dev/ptmx is */
	master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		fail(errno, "open a pty master in the container (is devpts mounted on /dev/pts?)");
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
		fail(errno, "unlock pty");
	/* sized before the process can look (an exec runs at once; the shim's resize came late) */
	if (p->console_rows && p->console_cols) {
		struct winsize ws = { .ws_row = (unsigned short)p->console_rows, .ws_col = (unsigned short)p->console_cols };
		if (ioctl(master, TIOCSWINSZ, &ws) < 0)
			fail(errno, "set the pty size to %ux%u", p->console_rows, p->console_cols);
	}
	snprintf(name, sizeof(name), "/dev/pts/%u", n);
	/* TIOCGPTPEER opens the slave through the master: no path lookup to race */
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		fail(errno, "open pty slave");
	if (console_sock < 0)
		fail(EINVAL, "terminal requested without a console socket");
	send_master(console_sock, master, name);
	close(master);
	close(console_sock);
	if (p->flags & F_DEV_CONSOLE) {
		int fd = open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
		if (fd >= 0)
			close(fd);
		if (mount(name, "/dev/console", "", MS_BIND, NULL) < 0)
			fail(errno, "bind %s on /dev/console", name);
	}
	if (setsid() < 0 && errno != EPERM)
		fail(errno, "setsid");
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		fail(errno, "make the pty the controlling terminal");
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			fail(errno, "dup pty onto fd %d", fd);
	if (slave > 2)
		close(slave);
}

static void drop_bounding(uint64_t keep)
{
	for (int cap = 0; cap < 64; cap++) {
		if (keep & (1ull << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			fail(errno, "drop capability %d from the bounding set", cap);
		}
	}
}

static void set_caps(const struct plan *p)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	for (int i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(p->cap_effective >> (32 * i));
		data[i].permitted = (uint32_t)(p->cap_permitted >> (32 * i));
		data[i].inheritable = (uint32_t)(p->cap_inheritable >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail(errno, "capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail(errno, "clear ambient capabilities");
	for (int cap = 0; cap < 64; cap++) {
		if (!(p->cap_ambient & (1ull << cap)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			fail(errno, "raise ambient capability %d (it must be permitted and inheritable)", cap);
	}
}

static void load_seccomp(const struct plan *p)
{
	struct sock_fprog prog;
	prog.len = (unsigned short)p->seccomp_len;
	prog.filter = (struct sock_filter *)(uintptr_t)p->seccomp_filter;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog) < 0)
		fail(errno, "load seccomp filter");
}

static void set_user(const struct plan *p)
{
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail(errno, "keep capabilities across setuid");
	if (!(p->flags & F_SETGROUPS_DENY) && setgroups(p->n_groups, p->groups) < 0)
		fail(errno, "setgroups");
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		fail(errno, "setgid %u", p->gid);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		fail(errno, "setuid %u", p->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail(errno, "reset keepcaps");
}

/* the value of NAME in the plan's environment (execvp would use ours, which is empty) */
static const char *plan_getenv(const struct plan *p, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < p->n_env; i++)
		if (!strncmp(p->env[i], name, n) && p->env[i][n] == '=')
			return p->env[i] + n + 1;
	return NULL;
}

#define MAX_PASSWD (4u << 20)

/*
 * The home directory of uid in the container's /etc/passwd, "/" without an entry: what runc
 * puts in HOME when the spec has none. The file comes from the image, so it is opened
 * without blocking (a FIFO there must not hang us) and read only if it is a regular file
 * of sane size.
 */
static char *home_of(uint32_t uid)
{
	static char home[4096];
	int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	strcpy(home, "/");
	if (fd < 0)
		return home;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_PASSWD) {
		close(fd);
		return home;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return home;
	}
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* name:password:uid:gid:gecos:home:shell */
		char *field[7] = { 0 };
		char *s = line;
		size_t n = 0;
		line[strcspn(line, "\n")] = 0;
		while (n < 7) {
			field[n++] = s;
			s = strchr(s, ':');
			if (!s)
				break;
			*s++ = 0;
		}
		char *end;
		if (n < 6 || !*field[2])
			continue;
		unsigned long id = strtoul(field[2], &end, 10);
		if (*end || id != uid)
			continue;
		snprintf(home, sizeof home, "%s", field[5]);
		break;
	}
	free(line);
	fclose(f);
	return home;
}

/* the plan's environment with HOME set when it has none or an empty one, as runc does */
static const char **environment_with_home(const struct plan *p)
{
	const char *current = plan_getenv(p, "HOME");
	if (current && *current)
		return p->env;
	const char **env = calloc(p->n_env + 2, sizeof(*env));
	char *home = NULL;
	size_t n = 0;
	if (!env || asprintf(&home, "HOME=%s", home_of(p->has_user ? p->uid : 0)) < 0)
		fail(ENOMEM, "environment");
	for (size_t i = 0; i < p->n_env; i++)
		if (strncmp(p->env[i], "HOME=", 5) != 0)
			env[n++] = p->env[i];
	env[n] = home;
	return env;
}

static int executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * arg0 in one PATH entry (dlen bytes at dir) as Go's exec.LookPath looks, which runc 1.1
 * uses: an empty entry means ".", and a command found through a relative entry is refused
 * rather than run. True when exec_path names it.
 */
static int found_in(const char *dir, size_t dlen, const char *arg0)
{
	if (dlen == 0) {
		dir = ".";
		dlen = 1;
	}
	if (dlen + 1 + strlen(arg0) + 1 > sizeof(exec_path))
		return 0;
	memcpy(exec_path, dir, dlen);
	exec_path[dlen] = '/';
	strcpy(exec_path + dlen + 1, arg0);
	if (!executable(exec_path))
		return 0;
	if (dir[0] != '/')
		fail(0, "exec: \"%s\": cannot run executable found relative to current directory", arg0); /* Go's words */
	return 1;
}

static void resolve_executable(const struct plan *p)
{
	const char *arg0 = p->args[0], *path, *end;
	if (strchr(arg0, '/')) {
		if (strlen(arg0) >= sizeof(exec_path))
			fail(ENAMETOOLONG, "exec %s", arg0);
		strcpy(exec_path, arg0);
		if (!executable(exec_path)) {
			if (errno == ENOENT)
				fail(ENOENT, "exec: \"%s\": stat %s", arg0, arg0); /* runc's words */
			fail(errno ? errno : EACCES, "exec: \"%s\"", arg0);
		}
		return;
	}
	/* only the PATH of the process's own environment, as runc: no default without one
	 * ("" has no entries, "a:" has two, the second empty) */
	path = plan_getenv(p, "PATH");
	if (path && *path) {
		for (const char *dir = path;; dir = end + 1) {
			end = strchrnul(dir, ':');
			if (found_in(dir, (size_t)(end - dir), arg0))
				return;
			if (!*end)
				break;
		}
	}
	fail(0, "exec: \"%s\": executable file not found in $PATH", arg0);
}

/*
 * AppArmor's change_onexec, as runc does it: the profile takes effect at execve. Done first,
 * as root with every capability, through the container's /proc (the kernel's attr files;
 * the apparmor/ directory where the LSM has its own, the shared one on older kernels).
 */
static void apply_apparmor(const char *profile)
{
	static const char *const paths[] = { "/proc/thread-self/attr/apparmor/exec", "/proc/self/attr/exec" };
	char cmd[4096];
	int n = snprintf(cmd, sizeof cmd, "exec %s", profile);
	if (n < 0 || (size_t)n >= sizeof cmd)
		fail(ENAMETOOLONG, "AppArmor profile name");
	int missing = ENOENT;
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
		int fd = open(paths[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			missing = errno;
			continue;
		}
		ssize_t w = write(fd, cmd, (size_t)n);
		int e = errno;
		close(fd);
		if (w == n)
			return;
		fail(w < 0 ? e : EIO, "apply AppArmor profile \"%s\" (%s)", profile, paths[i]);
	}
	fail(missing, "apply AppArmor profile \"%s\": no attr file under /proc (is /proc mounted in the container?)", profile);
}

void process_setup(const struct plan *p, int sync_fd, int fifo_fd)
{
	int cwd_done = 0;
	(void)fifo_fd;
	if (p->apparmor_profile)
		apply_apparmor(p->apparmor_profile);
	if ((p->flags & F_SETSID) && !(p->flags & F_TERMINAL) && setsid() < 0 && errno != EPERM)
		fail(errno, "setsid");
	for (size_t i = 0; i < p->n_rlimits; i++) {
		struct rlimit rl = { (rlim_t)p->rlimits[i].soft, (rlim_t)p->rlimits[i].hard };
		if (setrlimit((int)p->rlimits[i].resource, &rl) < 0)
			fail(errno, "setrlimit %u (soft %llu, hard %llu)", p->rlimits[i].resource,
			     (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
	}
	if (p->has_caps)
		drop_bounding(p->cap_bounding);
	if (p->seccomp_filter && !(p->flags & F_NO_NEW_PRIVS))
		load_seccomp(p);
	if (p->cwd && chdir(p->cwd) == 0)
		cwd_done = 1;
	else if (p->cwd && errno != EACCES && errno != EPERM)
		fail(errno, "chdir to cwd (\"%s\") set in config.json failed", p->cwd); /* runc's words */
	/* read in the container's root, while still root */
	exec_env = environment_with_home(p);
	if (p->has_user)
		set_user(p);
	/* a cwd only the target user may enter */
	if (p->cwd && !cwd_done && chdir(p->cwd) < 0)
		fail(errno, "chdir to cwd (\"%s\") set in config.json failed", p->cwd); /* runc's words */
	if (p->has_caps)
		set_caps(p);
	if (p->umask != UINT32_MAX)
		umask((mode_t)p->umask);
	if ((p->flags & F_NO_NEW_PRIVS) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(errno, "set no_new_privs");
	if (p->n_args == 0)
		fail(EINVAL, "no process args");
	errno = 0;
	resolve_executable(p);
	if (send_sync(sync_fd, SYNC_READY, 0, NULL) < 0)
		_exit(1); /* the helper is gone: nobody would ever start us */
}

/* blocks until `start` writes a byte into the exec fifo; false if it was closed empty */
static int wait_for_start(int fifo_fd)
{
	struct pollfd pfd = { fifo_fd, POLLIN, 0 };
	char c;
	ssize_t n;
	/* a FIFO opened O_RDONLY|O_NONBLOCK reports no POLLHUP until a writer has come
	 * and gone, so this sleeps until `start` opens the other end */
	for (;;) {
		int r = poll(&pfd, 1, -1);
		if (r > 0)
			break;
		if (r < 0 && errno != EINTR)
			return 0;
	}
	do
		n = read(fifo_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1;
}

void process_exec(const struct plan *p, int fifo_fd)
{
	if (p->flags & F_WAIT_START) {
		if (!wait_for_start(fifo_fd))
			_exit(0); /* the container was deleted before it started */
	}
	if (fifo_fd >= 0)
		close(fifo_fd);
	/* like runc: after start, as the container's user, before a no_new_privs filter */
	hooks_run(p, HOOK_START_CONTAINER);
	if (p->seccomp_filter && (p->flags & F_NO_NEW_PRIVS))
		load_seccomp(p);
	/* no descriptor of ours may reach the container: everything above the preserved
	 * ones closes at execve (the sync socket too, which tells `exec` it worked) */
	if (syscall(SYS_close_range, 3 + p->preserve_fds, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
		fail(errno, "close_range");
	for (unsigned int fd = 3; fd < 3 + p->preserve_fds; fd++) {
		int fl = fcntl((int)fd, F_GETFD);
		if (fl >= 0)
			fcntl((int)fd, F_SETFD, fl & ~FD_CLOEXEC);
	}
	execve(exec_path, (char *const *)p->args, (char *const *)(exec_env ? exec_env : p->env));
	if (p->flags & F_WAIT_START)
		dprintf(2, "tsshim-exec: exec %s: %s\n", exec_path, strerror(errno));
	fail(errno, "exec %s", exec_path);
}
