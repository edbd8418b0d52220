/*
 * bin/tsrun: runc's command line over tsshim's native executor (the Node program in
 * src/backends/native/tsrun). This front end is what callers (podman, containerd's runc
 * shim with BinaryName, scripts) run; it is the launcher binary under the name `tsrun`.
 *
 * A standalone `tsrun` pays Node's boot on every command (~50 ms here, far more on a loaded
 * node): runc and crun are done in less. So, as root, a command line goes to a *spare*: a
 * tsrun Node process booted ahead of time, idle on <root>/spare-<key>. It gets our argv,
 * environment, cwd, umask and fds 0-2 (the exchange of src/shim/spare.ts), runs the command
 * and tells us the exit status (protocol: src/backends/native/tsrun/front-end.ts). The
 * processes the caller must see as its descendants stay ours: we spawn the native helper
 * (it starts the container) when the spare asks, we become the subreaper and wait for the
 * container process of a foreground `run`/`exec`, and we forward signals to it, as runc does.
 *
 * One spare per key: the release (this binary, its Node program), the state root, the
 * namespaces, credentials and capabilities of this process, its root directory and its
 * environment: everything that makes a Node tsrun behave differently is the same for the
 * spare. It waits in the root cgroup (not to pin its spawner's cgroup) and stays there
 * when adopted (a move costs ~10 ms); a relative cgroupsPath starts from our cgroups. It
 * exits after TSRUN_SPARE_IDLE seconds (unset or 0: no spares, the default for now) or
 * within a second of its socket going (the root removed).
 *
 * No spare (none yet, not root, an unusual command line, anything failing before the spare
 * took over): exec Node with the same argv, as bin/tsrun always did. Each command boots
 * the spare for the next one.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher-config.h"
#include "launcher.h"

extern char **environ;

#define TSRUN_BOOT "dist/native/tsrun-boot.cjs"
#define TSRUN_DEFAULT_ROOT "/run/tsrun"
#define TSRUN_SPARE_PAYLOAD "tsrun-spare-1"
#define TSRUN_SPARE_IDLE_ENV "TSRUN_SPARE_IDLE"
/* off unless asked for: see the README (tsrun spares) for what is still open */
#define TSRUN_SPARE_IDLE_DEFAULT 0
/* our own fds go above the caller's (stdio, --preserve-fds), which the helper gets */
#define OWN_FDS_FROM 200
#define MAX_MESSAGE (1u << 20)

static char *boot_path;

/* Node with the daemon's flags (the code cache's), tsrun's boot script, our argv: the old bin/tsrun */
static _Noreturn void exec_node(int argc, char **argv)
{
	size_t nflags = 0;
	while (daemon_flags[nflags])
		nflags++;
	char **args = calloc(nflags + (size_t)argc + 3, sizeof *args);
	size_t nenv = 0;
	while (environ && environ[nenv])
		nenv++;
	char **env = calloc(nenv + 1, sizeof *env);
	if (args && env && boot_path) {
		size_t k = put_node_command(args, boot_path);
		for (int i = 1; i < argc; i++)
			args[k++] = argv[i];
		/* Node reads NODE_EXTRA_CA_CERTS at startup (~25-70 ms here); tsrun never uses TLS */
		size_t e = 0;
		for (size_t i = 0; i < nenv; i++)
			if (!has_name(environ[i], "NODE_EXTRA_CA_CERTS"))
				env[e++] = environ[i];
		execve(TSSHIM_NODE, args, env);
	}
	fprintf(stderr, "tsrun: cannot run %s: %s\n", TSSHIM_NODE, strerror(args && env && boot_path ? errno : ENOMEM));
	_exit(1);
}

/*
 * The state root from runc's global flags (runc 1.1: --root, --log, --log-format, --criu,
 * --rootless take a value; --debug, --systemd-cgroup, --help, --version do not). false on
 * anything else: Node parses it and says what is wrong.
 */
static bool global_root(int argc, char **argv, const char **root, int *verb)
{
	static const char *const with_value[] = { "root", "log", "log-format", "criu", "rootless", NULL };
	static const char *const without[] = { "debug", "systemd-cgroup", "help", "h", "version", "v", NULL };
	*root = TSRUN_DEFAULT_ROOT;
	*verb = argc;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-') {
			*verb = i; /* the command */
			return true;
		}
		const char *name = a + (a[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		bool known = false;
		for (const char *const *f = with_value; *f && !known; f++) {
			if (strlen(*f) != len || strncmp(name, *f, len) != 0)
				continue;
			known = true;
			const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!value)
				return false;
			if (strcmp(*f, "root") == 0)
				*root = value;
		}
		for (const char *const *f = without; *f && !known; f++)
			known = strlen(*f) == len && strncmp(name, *f, len) == 0;
		if (!known)
			return false;
	}
	return true;
}

static void hash_file(struct sha256 *h, const char *path, size_t max)
{
	char *text;
	size_t len;
	if (read_file(path, max, &text, &len)) {
		sha256_update(h, text, len);
		free(text);
	}
	sha256_update(h, "", 1);
}

/* <root>/spare-<key> (see the top of this file for what the key covers) */
static bool spare_path_for(const char *root, char *out, size_t cap)
{
	char exe[PATH_MAX], text[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	struct stat boot, slash;
	if (n <= 0 || stat(boot_path, &boot) != 0 || stat("/", &slash) != 0)
		return false;
	exe[n] = '\0';
	struct sha256 h;
	sha256_init(&h);
	hash_str(&h, TSRUN_SPARE_PAYLOAD);
	hash_str(&h, exe);
	/* a rebuild rewrites the boot script: an older build's spare serves nobody */
	snprintf(text, sizeof text, "%lu:%lu:%lld.%09ld", (unsigned long)boot.st_dev, (unsigned long)boot.st_ino, (long long)boot.st_mtim.tv_sec,
		 boot.st_mtim.tv_nsec);
	hash_str(&h, text);
	hash_str(&h, root);
	static const char *const namespaces[] = { "cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "user", "uts", NULL };
	for (const char *const *ns = namespaces; *ns; ns++) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/ns/%s", *ns);
		ssize_t m = readlink(path, text, sizeof text - 1);
		text[m > 0 ? m : 0] = '\0';
		hash_str(&h, text);
	}
	snprintf(text, sizeof text, "/:%lu:%lu", (unsigned long)slash.st_dev, (unsigned long)slash.st_ino);
	hash_str(&h, text);
	/* credentials, capabilities, no_new_privs, seccomp: the lines of /proc/self/status that say them */
	char *status;
	size_t len;
	if (!read_file("/proc/self/status", 1 << 20, &status, &len))
		return false;
	static const char *const fields[] = { "Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:", NULL };
	for (char *line = status; line < status + len;) {
		char *nl = memchr(line, '\n', (size_t)(status + len - line));
		size_t l = nl ? (size_t)(nl - line) : (size_t)(status + len - line);
		for (const char *const *f = fields; *f; f++)
			if (l >= strlen(*f) && strncmp(line, *f, strlen(*f)) == 0)
				sha256_update(&h, line, l + 1 <= (size_t)(status + len - line) ? l + 1 : l);
		line += l + 1;
	}
	free(status);
	hash_file(&h, "/proc/self/attr/current", 4096);
	/* the environment (the spare takes on ours, but Node reads some of it as it boots), less
	   what a shell changes between two commands and nothing reads */
	for (char **e = environ; e && *e; e++)
		if (!has_name(*e, "PWD") && !has_name(*e, "OLDPWD") && !has_name(*e, "_") && !has_name(*e, "SHLVL"))
			hash_str(&h, *e);
	return spare_socket_path(&h, root, out, cap);
}

/* our fd above the caller's fds (stdio, --preserve-fds), which the helper gets */
static int move_high(int fd)
{
	return fd_above(fd, OWN_FDS_FROM);
}

/* the spare's oom_score_adj becomes ours (the runtime a caller runs has the caller's) */
static void copy_oom_score(pid_t pid)
{
	char buf[32], path[64];
	int fd = open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	snprintf(path, sizeof path, "/proc/%ld/oom_score_adj", (long)pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)write_all(fd, buf, (size_t)n);
	close(fd);
}

/* where the next command's spare goes: set once the command line is known */
static const char *next_path, *next_root;
static long long next_idle_sec;
static bool next_booted;

static void boot_next_spare(void)
{
	struct stat st;
	if (stat(next_root, &st) != 0 || !S_ISDIR(st.st_mode))
		return; /* no state root yet: the command that makes it boots the next spare */
	struct spare_spawn sp = {
		.path = next_path, .entry = boot_path, .address = "-", .sweep_dir = next_root, .idle_sec = next_idle_sec,
		.daemon_env = false, .root_cgroup = true,
	};
	spawn_spare_process(&sp);
}

/*
 * The next command's spare boots now, off this one's path: a child of ours does the work
 * (the sweep, the forks) while we go on; it is reaped with our other children, or inherited
 * by Node (whose reaper ignores it) if we exec it.
 */
static void boot_next_spare_async(void)
{
	if (next_booted || !next_path)
		return;
	next_booted = true;
	pid_t pid = fork();
	if (pid == 0) {
		/* none of the caller's stdio in what we start (the spare's raiser lives 250 ms): a
		   container's output pipe held open here would delay its reader's EOF */
		int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		for (int fd = 0; null_fd >= 0 && fd <= 2; fd++)
			dup2(null_fd, fd);
		boot_next_spare();
		_exit(0);
	}
}

/*
 * Hand our command line to the spare on spare_path. The connection (it serves us from
 * now on), or -1: no spare, or it failed before taking over (then it is killed and we
 * run the command ourselves).
 */
static int adopt_spare(const char *spare_path, char **argv)
{
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			return -1; /* a closed stdio fd cannot be passed on: Node deals with it */
	long pid;
	int fd = connect_spare(spare_path, OWN_FDS_FROM, &pid);
	if (fd < 0)
		return -1;
	/* it accepted us and unlinked its socket: the next command's spare can be bound there now */
	boot_next_spare_async();
	bool ok = give_back_priority((pid_t)pid);
	if (ok)
		copy_oom_score((pid_t)pid);
	char *buf = NULL, num[32], cwd[PATH_MAX];
	size_t len = 4, cap = 0;
	mode_t mask = umask(0);
	umask(mask);
	snprintf(num, sizeof num, "%04o", (unsigned)mask);
	char me[24];
	snprintf(me, sizeof me, "%ld", (long)getpid());
	ok = ok && getcwd(cwd, sizeof cwd) && put_field(&buf, &len, &cap, TSRUN_SPARE_PAYLOAD) && put_field(&buf, &len, &cap, cwd) &&
	     put_field(&buf, &len, &cap, num) && put_field(&buf, &len, &cap, me);
	static char *const no_env[] = { NULL };
	ok = ok && put_list(&buf, &len, &cap, argv + 1) && put_list(&buf, &len, &cap, environ ? environ : no_env);
	if (ok) {
		static const int stdio[3] = { 0, 1, 2 };
		set_timeout(fd, SO_SNDTIMEO, SPARE_ADOPT_MS);
		ok = send_payload(fd, buf, len, stdio, 3);
	}
	free(buf);
	ok = ok && adopted(fd);
	if (!ok) {
		kill((pid_t)pid, SIGKILL); /* it may have our stdio: it must not run the command too */
		close(fd);
		return -1;
	}
	set_timeout(fd, SO_SNDTIMEO, 0);
	set_timeout(fd, SO_RCVTIMEO, 0);
	return fd;
}

/* ------------------------------------------------------------------------------------
 * Serving the spare: spawns, waits, signals, the exit status
 * ------------------------------------------------------------------------------------ */

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char s = (unsigned char)sig;
	(void)write(signal_pipe[1], &s, 1);
	errno = saved;
}

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

struct exited {
	pid_t pid;
	int code;
};

struct session {
	int conn;
	char *in;
	size_t in_len, in_cap;
	int *fds; /* received with spawn requests, in order */
	size_t nfds, fds_cap;
	pid_t *waiting;
	size_t nwaiting, waiting_cap;
	struct exited *exits; /* reaped before anybody asked */
	size_t nexits, exits_cap;
};

static bool grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return true;
	size_t c = need * 2;
	void *bigger = realloc(*p, c * size);
	if (!bigger)
		return false;
	*p = bigger;
	*cap = c;
	return true;
}

static bool reply(struct session *s, const char *fmt, long a, long b)
{
	char line[64];
	int n = snprintf(line, sizeof line, fmt, a, b);
	return write_all(s->conn, line, (size_t)n);
}

/* the helper (or whatever the spare asks for): our fds 0..inherit-1 as they are, control as fd inherit */
static pid_t spawn_child(int inherit, const char *file, char **argv, int control, int *err)
{
	int report[2];
	if (pipe2(report, O_CLOEXEC) != 0) {
		*err = errno;
		return -1;
	}
	report[0] = move_high(report[0]);
	report[1] = move_high(report[1]);
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (control == inherit ? fcntl(control, F_SETFD, 0) != 0 : dup2(control, inherit) != inherit)
			goto failed;
		/* nothing else of ours: what the exec does not close, it must not inherit */
		cloexec_from(inherit + 1);
		char *envp[] = { NULL };
		execve(file, argv, envp);
	failed:;
		int e = errno;
		(void)write_all(report[1], &e, sizeof e);
		_exit(127);
	}
	close(report[1]);
	if (pid < 0) {
		*err = errno;
		close(report[0]);
		return -1;
	}
	int e = 0;
	ssize_t n;
	do
		n = read(report[0], &e, sizeof e);
	while (n < 0 && errno == EINTR);
	close(report[0]);
	if (n == sizeof e) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		*err = e;
		return -1;
	}
	return pid;
}

static bool handle_spawn(struct session *s, const char *body, size_t len)
{
	if (s->nfds == 0)
		return false;
	int control = s->fds[0];
	memmove(s->fds, s->fds + 1, --s->nfds * sizeof *s->fds);
	/* NUL-separated: inherit count, file, argv… */
	char *copy = malloc(len + 1);
	char **argv = calloc(len + 2, sizeof *argv);
	bool ok = copy && argv;
	size_t n = 0;
	if (ok) {
		memcpy(copy, body, len);
		copy[len] = '\0';
		for (char *p = copy; p <= copy + len; p += strlen(p) + 1)
			argv[n++] = p;
		argv[n] = NULL;
	}
	char *endp;
	long inherit = ok && n >= 3 ? strtol(argv[0], &endp, 10) : -1;
	if (inherit < 3 || inherit > 1024 || *endp != '\0') {
		free(copy);
		free(argv);
		close(control);
		return false;
	}
	int err = 0;
	pid_t pid = spawn_child((int)inherit, argv[1], argv + 2, control, &err);
	close(control);
	free(copy);
	free(argv);
	return pid > 0 ? reply(s, "p%ld\n", (long)pid, 0) : reply(s, "e%ld\n", (long)err, 0);
}

static bool report_exit(struct session *s, pid_t pid, int code)
{
	for (size_t i = 0; i < s->nwaiting; i++) {
		if (s->waiting[i] != pid)
			continue;
		memmove(s->waiting + i, s->waiting + i + 1, (--s->nwaiting - i) * sizeof *s->waiting);
		return reply(s, "w%ld %ld\n", (long)pid, (long)code);
	}
	if (!grow((void **)&s->exits, &s->exits_cap, s->nexits + 1, sizeof *s->exits))
		return false;
	s->exits[s->nexits++] = (struct exited){ pid, code };
	return true;
}

static bool handle_wait(struct session *s, pid_t pid)
{
	for (size_t i = 0; i < s->nexits; i++) {
		if (s->exits[i].pid != pid)
			continue;
		int code = s->exits[i].code;
		memmove(s->exits + i, s->exits + i + 1, (--s->nexits - i) * sizeof *s->exits);
		return reply(s, "w%ld %ld\n", (long)pid, (long)code);
	}
	if (!grow((void **)&s->waiting, &s->waiting_cap, s->nwaiting + 1, sizeof *s->waiting))
		return false;
	s->waiting[s->nwaiting++] = pid;
	return true;
}

static bool reap(struct session *s)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (!report_exit(s, pid, code))
			return false;
	}
	return true;
}

/* reads what the spare sent; fds that came with it are queued for the spawn requests */
static ssize_t receive(struct session *s)
{
	if (!grow((void **)&s->in, &s->in_cap, s->in_len + 65536, 1))
		return -1;
	union {
		char space[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = s->in + s->in_len, .iov_len = s->in_cap - s->in_len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space };
	ssize_t n;
	do
		n = recvmsg(s->conn, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); n >= 0 && cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
			if (!grow((void **)&s->fds, &s->fds_cap, s->nfds + 1, sizeof *s->fds))
				return -1;
			s->fds[s->nfds++] = move_high(fd);
		}
	}
	if (n > 0)
		s->in_len += (size_t)n;
	return n;
}

/* one complete message off the input: 1 handled, 0 incomplete, -1 broken; *exit_code on X */
static int next_message(struct session *s, int *exit_code)
{
	char *nl = memchr(s->in, '\n', s->in_len);
	if (!nl)
		return s->in_len > 64 ? -1 : 0;
	size_t head = (size_t)(nl - s->in) + 1;
	char kind = s->in[0];
	/* "S" has no number; the others one, ending at the newline (strtol alone would skip
	   the newline of an "S" and read on into whatever follows it) */
	long value = 0;
	if (kind == 'S') {
		if (nl != s->in + 1)
			return -1;
	} else {
		char *end;
		value = s->in[1] >= '0' && s->in[1] <= '9' ? strtol(s->in + 1, &end, 10) : -1;
		if (value < 0 || end != nl)
			return -1;
	}
	size_t used = head;
	bool ok = true;
	switch (kind) {
	case 'S':
		ok = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
		break;
	case 'P':
		if (value <= 0 || (unsigned long)value > MAX_MESSAGE)
			return -1;
		if (s->in_len < head + (size_t)value)
			return 0;
		ok = handle_spawn(s, s->in + head, (size_t)value);
		used += (size_t)value;
		break;
	case 'W':
		ok = value > 0 && handle_wait(s, (pid_t)value);
		break;
	case 'X':
		*exit_code = (int)(value & 0xff);
		break;
	default:
		return -1;
	}
	memmove(s->in, s->in + used, s->in_len - used);
	s->in_len -= used;
	return ok ? 1 : -1;
}

/* serves the spare until it says the exit status; our exit status */
static int serve(int conn)
{
	struct session s = { .conn = conn };
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
		sigaction(forwarded[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = conn, .events = POLLIN }, { .fd = signal_pipe[0], .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pfd[1].revents & POLLIN) {
			unsigned char sigs[64];
			ssize_t n = read(signal_pipe[0], sigs, sizeof sigs);
			for (ssize_t i = 0; i < n; i++) {
				int sig = sigs[i];
				if (sig == SIGCHLD) {
					if (!reap(&s))
						return 1;
				} else if (s.nwaiting > 0) {
					for (size_t k = 0; k < s.nwaiting; k++)
						kill(s.waiting[k], sig);
				} else if (sig != SIGWINCH) {
					/* nothing to forward to: we die of it, as runc would (the spare then ends too) */
					signal(sig, SIG_DFL);
					raise(sig);
				}
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = receive(&s);
			if (n <= 0) {
				fprintf(stderr, "tsrun: the tsrun process serving this command ended without an exit status\n");
				return 1;
			}
			int code = -1, r;
			while ((r = next_message(&s, &code)) > 0 && code < 0)
				;
			if (r < 0) {
				fprintf(stderr, "tsrun: the tsrun process serving this command sent a malformed message\n");
				return 1;
			}
			if (code >= 0)
				return code;
		}
	}
}

/* runc's container ids (validateId in src/backends/native/state.ts) */
static bool valid_id(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n <= 1024 && strcmp(id, ".") != 0 && strcmp(id, "..") != 0 &&
	       strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-.") == n;
}

/*
 * <root>/<id>/state.json as writeState wrote it (JSON.stringify of NativeState, version and
 * id first) and with no hooks to run, read into *text; false for anything else (Node then
 * does the command and says what is wrong). The keys are ours and no string holds an
 * unescaped quote, so searching the text for `"key":` cannot hit a value.
 */
static bool read_plain_state(const char *root, const char *id, char *dir, size_t dir_cap, char **text, size_t *len)
{
	char file[PATH_MAX], head[1100];
	if (!valid_id(id) || snprintf(dir, dir_cap, "%s/%s", root, id) >= (int)dir_cap ||
	    snprintf(file, sizeof file, "%s/state.json", dir) >= (int)sizeof file || !read_file(file, 1u << 20, text, len))
		return false;
	int hl = snprintf(head, sizeof head, "{\"version\":1,\"id\":\"%s\",", id);
	if (*len > (size_t)hl && memcmp(*text, head, (size_t)hl) == 0 && !memmem(*text, *len, "\"hooks\":", 8))
		return true;
	free(*text);
	return false;
}

/*
 * `tsrun [global flags] start <id>` without Node, when nothing but the exec fifo is to
 * do: release the init waiting on it, remove it, and mark the state started, exactly as
 * NativeRuntime.start writes it (the same JSON with "started":true). Anything else (poststart
 * hooks to run, no init waiting, an unexpected state file) returns, and Node does the
 * command and reports what is wrong. Returns only when nothing was done.
 */
static void start_alone(int argc, char **argv, int verb, const char *root)
{
	if (verb + 2 != argc || argv[verb + 1][0] == '-')
		return;
	const char *id = argv[verb + 1];
	char dir[PATH_MAX], file[PATH_MAX], fifo[PATH_MAX], tmp[PATH_MAX];
	char *text;
	size_t len;
	if (!read_plain_state(root, id, dir, sizeof dir, &text, &len))
		return;
	static const char not_started[] = "\"started\":false,";
	char *flag = memmem(text, len, not_started, sizeof not_started - 1);
	bool plain = flag && !memmem(flag + 1, len - (size_t)(flag + 1 - text), not_started, sizeof not_started - 1) &&
		     snprintf(file, sizeof file, "%s/state.json", dir) < (int)sizeof file && snprintf(fifo, sizeof fifo, "%s/exec.fifo", dir) < (int)sizeof fifo &&
		     snprintf(tmp, sizeof tmp, "%s/.state.json.%ld", dir, (long)getpid()) < (int)sizeof tmp;
	int fd = plain ? open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC) : -1;
	if (fd < 0) {
		free(text);
		return; /* not created, or its init is gone: Node says which */
	}
	ssize_t n;
	do
		n = write(fd, "0", 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n != 1) {
		free(text);
		return;
	}
	/* from here on the container runs: what fails is reported, as Node would */
	const char *what = "remove the exec fifo";
	bool ok = unlink(fifo) == 0 || errno == ENOENT;
	if (ok) {
		what = "write the state";
		/* "started":false, → "started":true, : one byte shorter */
		size_t at = (size_t)(flag - text);
		memcpy(text + at, "\"started\":true,", sizeof not_started - 2);
		memmove(text + at + sizeof not_started - 2, text + at + sizeof not_started - 1, len - at - (sizeof not_started - 1));
		len--;
		int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ok = out >= 0 && write_all(out, text, len);
		if (out >= 0 && close(out) != 0)
			ok = false;
		ok = ok && rename(tmp, file) == 0;
		if (!ok)
			unlink(tmp);
	}
	int err = errno;
	free(text);
	if (!ok) {
		fprintf(stderr, "tsrun: start %s: %s: %s\n", id, what, strerror(err));
		_exit(1);
	}
	_exit(0);
}

/* the value of a top-level "key":"string" of a state file (no escapes in it), or NULL */
static char *state_string(const char *text, size_t len, const char *key)
{
	char needle[64];
	int n = snprintf(needle, sizeof needle, ",\"%s\":\"", key);
	const char *at = memmem(text, len, needle, (size_t)n);
	if (!at)
		return NULL;
	at += n;
	const char *end = memchr(at, '"', len - (size_t)(at - text));
	if (!end || memchr(at, '\\', (size_t)(end - at)))
		return NULL;
	return strndup(at, (size_t)(end - at));
}

/* true if pid is alive and is the process that started at start_time (initAlive in state.ts) */
static bool init_alive(long pid, const char *start_time)
{
	char path[64], *stat;
	size_t len;
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if (pid <= 0 || !read_file(path, 4096, &stat, &len))
		return false;
	char *text = realloc(stat, len + 1);
	if (!text) {
		free(stat);
		return true; /* unsure: Node decides */
	}
	text[len] = '\0';
	/* after the comm's closing parenthesis: state (field 3), then fields 4.. ; starttime is 22 */
	char *p = strrchr(text, ')');
	bool alive = true;
	if (p && p[1] == ' ') {
		char state = p[2];
		p += 2;
		for (int field = 3; field < 22 && p; field++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		size_t sl = strlen(start_time);
		bool same = p && strncmp(p, start_time, sl) == 0 && (p[sl] == ' ' || p[sl] == '\0' || p[sl] == '\n');
		alive = same && state != 'Z' && state != 'X';
	}
	free(text);
	return alive;
}

/* a cgroup dir with no process and no child cgroup (or none at all) */
static bool cgroup_unused(const char *dir)
{
	char procs[PATH_MAX];
	if (snprintf(procs, sizeof procs, "%s/cgroup.procs", dir) >= (int)sizeof procs)
		return false;
	char *text;
	size_t len;
	if (!read_file(procs, 1 << 20, &text, &len))
		return errno == ENOENT;
	free(text);
	if (len != 0)
		return false;
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool none = true;
	struct dirent *e;
	while (none && (e = readdir(d)) != NULL)
		if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			none = false;
	closedir(d);
	return none;
}

/*
 * any mount point below dir (not dir itself): the container's mounts leaked to the host.
 * A mount point with an escaped byte (octal in mountinfo) counts as one: Node decides.
 */
static bool mounts_below(const char *dir)
{
	char *text;
	size_t len;
	if (!read_file("/proc/self/mountinfo", 16u << 20, &text, &len))
		return true;
	size_t dl = strlen(dir);
	bool found = false;
	for (char *line = text; !found && line < text + len;) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		char *end = nl ? nl : text + len;
		/* fields: id parent major:minor root mount-point … */
		char *f = line;
		for (int i = 0; i < 4 && f; i++) {
			f = memchr(f, ' ', (size_t)(end - f));
			if (f)
				f++;
		}
		char *fe = f ? memchr(f, ' ', (size_t)(end - f)) : NULL;
		if (f && fe) {
			size_t fl = (size_t)(fe - f);
			found = memchr(f, '\\', fl) != NULL || (fl > dl + 1 && strncmp(f, dir, dl) == 0 && f[dl] == '/');
		}
		line = end + 1;
	}
	free(text);
	return found;
}

/*
 * `tsrun [global flags] delete [--force] <id>` without Node, for a container whose
 * processes are all gone: its init dead, its cgroup (the same path in every hierarchy)
 * empty and without child cgroups, no hooks, no systemd unit, no mount leaked below its
 * rootfs. Removes the cgroup dirs and the state dir, as NativeRuntime.destroy does then.
 * Anything else returns before anything is removed, and Node does the command.
 */
static void delete_alone(int argc, char **argv, int verb, const char *root)
{
	const char *id = NULL;
	for (int i = verb + 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--force") == 0 || strcmp(a, "-f") == 0 || strcmp(a, "--force=true") == 0 || strcmp(a, "-force") == 0)
			continue;
		if (a[0] == '-' || id)
			return;
		id = a;
	}
	char dir[PATH_MAX];
	char *text;
	size_t len;
	if (!id || !read_plain_state(root, id, dir, sizeof dir, &text, &len))
		return;
	char *rootfs = NULL, *cgroup = NULL, *start_time = NULL, *paths = NULL;
	char **mounts = NULL;
	bool plain = !memmem(text, len, "\"systemdUnit\":", 14);
	rootfs = plain ? state_string(text, len, "rootfs") : NULL;
	cgroup = rootfs ? state_string(text, len, "cgroupPath") : NULL;
	start_time = cgroup ? state_string(text, len, "initStartTime") : NULL;
	const char *pid_at = memmem(text, len, ",\"initPid\":", 11);
	long pid = pid_at ? strtol(pid_at + 11, NULL, 10) : 0;
	/* every path in cgroupPaths the same as cgroupPath (an absolute cgroupsPath): the
	   container's cgroup is <mount>/<cgroupPath> in every hierarchy */
	bool uniform = cgroup && cgroup[0] == '/' && strcmp(cgroup, "/") != 0;
	const char *cp = uniform ? memmem(text, len, ",\"cgroupPaths\":{", 16) : NULL;
	if (uniform && cp) {
		/* the object's end: braces counted outside strings */
		const char *end = NULL, *p = cp + 15;
		for (int depth = 0; p < text + len && !end; p++) {
			if (*p == '"') {
				const char *q = memchr(p + 1, '"', len - (size_t)(p + 1 - text));
				if (!q)
					break;
				p = q;
			} else if (*p == '{') {
				depth++;
			} else if (*p == '}' && --depth == 0) {
				end = p;
			}
		}
		if (!end || memchr(cp, '\\', (size_t)(end - cp))) {
			uniform = false;
		} else {
			paths = strndup(cp, (size_t)(end - cp));
			size_t cl = strlen(cgroup);
			for (char *v = paths ? strstr(paths, "\":\"") : NULL; uniform && v; v = strstr(v, "\":\"")) {
				v += 3;
				uniform = strncmp(v, cgroup, cl) == 0 && v[cl] == '"';
			}
			uniform = uniform && paths;
		}
	}
	bool ok = uniform && start_time && !init_alive(pid, start_time) && (mounts = cgroup_mount_points()) != NULL && !mounts_below(rootfs);
	for (size_t i = 0; ok && mounts[i]; i++) {
		char cg[PATH_MAX];
		ok = snprintf(cg, sizeof cg, "%s%s", mounts[i], cgroup) < (int)sizeof cg && cgroup_unused(cg);
	}
	/* all checked: from here on it is done, as Node would */
	for (size_t i = 0; ok && mounts[i]; i++) {
		char cg[PATH_MAX];
		snprintf(cg, sizeof cg, "%s%s", mounts[i], cgroup);
		ok = rmdir(cg) == 0 || errno == ENOENT;
	}
	/* a cgroup that would not go (a task still leaving): Node waits and retries */
	if (ok) {
		DIR *d = opendir(dir);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char entry[PATH_MAX];
			if (snprintf(entry, sizeof entry, "%s/%s", dir, e->d_name) < (int)sizeof entry)
				(void)unlink(entry);
		}
		if (d)
			closedir(d);
		ok = rmdir(dir) == 0 || errno == ENOENT;
	}
	for (size_t i = 0; mounts && mounts[i]; i++)
		free(mounts[i]);
	free(mounts);
	free(paths);
	free(start_time);
	free(cgroup);
	free(rootfs);
	free(text);
	if (ok)
		_exit(0);
}

_Noreturn void tsrun_main(int argc, char **argv)
{
	boot_path = concat(release_root, TSRUN_BOOT);
	const char *idle_text = getenv(TSRUN_SPARE_IDLE_ENV);
	char *idle_end = NULL;
	long long idle_sec = idle_text && *idle_text ? strtoll(idle_text, &idle_end, 10) : TSRUN_SPARE_IDLE_DEFAULT;
	const char *root;
	int verb;
	if (!boot_path || geteuid() != 0 || !global_root(argc, argv, &root, &verb))
		exec_node(argc, argv);
	if (verb < argc && strcmp(argv[verb], "start") == 0)
		start_alone(argc, argv, verb, root);
	if (verb < argc && strcmp(argv[verb], "delete") == 0)
		delete_alone(argc, argv, verb, root);
	/* a build making or checking the code cache runs Node itself, and boots no spare of its environment */
	bool cache_run = getenv(TSSHIM_CODE_CACHE_PRODUCE_ENV) || getenv(TSSHIM_CODE_CACHE_CHECK_ENV);
	if (cache_run || (idle_end && *idle_end) || idle_sec <= 0)
		exec_node(argc, argv);
	char abs_root[PATH_MAX], spare_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (root[0] == '/') {
		snprintf(abs_root, sizeof abs_root, "%s", root);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd) || snprintf(abs_root, sizeof abs_root, "%s/%s", cwd, root) >= (int)sizeof abs_root)
			exec_node(argc, argv);
	}
	size_t rl = strlen(abs_root);
	while (rl > 1 && abs_root[rl - 1] == '/')
		abs_root[--rl] = '\0';
	if (!spare_path_for(abs_root, spare_path, sizeof spare_path))
		exec_node(argc, argv);
	next_path = spare_path;
	next_root = abs_root;
	next_idle_sec = idle_sec;
	int conn = adopt_spare(spare_path, argv);
	if (conn < 0) {
		boot_next_spare_async();
		exec_node(argc, argv);
	}
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		_exit(1); /* cannot happen short of fd exhaustion; the spare sees EOF and ends */
	signal_pipe[0] = move_high(signal_pipe[0]);
	signal_pipe[1] = move_high(signal_pipe[1]);
	_exit(serve(conn));
}
