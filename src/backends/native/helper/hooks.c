/*
 * The OCI hooks that run in the container's namespaces, by the container process itself
 * (like runc's init): createContainer after the mounts and before pivot_root (so its
 * path resolves in the runtime's filesystem), startContainer after `start`, right before
 * execve (its path resolves in the container). prestart, createRuntime, poststart and
 * poststop run in the runtime's namespaces and belong to the Node side.
 *
 * A hook gets the container's state JSON on stdin, as compiled by the Node side, with
 * the pid field filled in here: the pid as this process sees it, as runc does. Its
 * stdout and stderr are collected (the first KiB) for the error message; it has its
 * timeout, if any, and a failure ends the container process with that message.
 */
#define _GNU_SOURCE

#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUTPUT_MAX 1024

static const char *kind_name(uint32_t kind)
{
	return kind == HOOK_CREATE_CONTAINER ? "createContainer" : "startContainer";
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* a startContainer failure happens after create reported OK: say it on the container's stderr too */
static __attribute__((noreturn)) void hook_failed(uint32_t kind, int err, const char *msg)
{
	if (kind == HOOK_START_CONTAINER)
		dprintf(2, "tsshim-exec: %s%s%s\n", msg, err ? ": " : "", err ? strerror(err) : "");
	fail(err, "%s", msg);
}

static void run_one(const struct plan_hook *h, const char *state, size_t len)
{
	int in[2], out[2];
	char output[OUTPUT_MAX + 1], msg[2 * OUTPUT_MAX];
	size_t got = 0;
	int status = 0, out_open = 1;
	int64_t deadline = h->timeout ? now_ms() + (int64_t)h->timeout * 1000 : 0;
	struct sigaction ign, old;
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		hook_failed(h->kind, errno, "hook pipes");
	pid = fork();
	if (pid < 0)
		hook_failed(h->kind, errno, "fork for hook");
	if (pid == 0) {
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
			_exit(126);
		/* nothing of ours (exec fifo, sync socket, console) reaches the hook */
		syscall(SYS_close_range, 3, ~0u, 0);
		execve(h->path, (char *const *)h->args, (char *const *)h->env);
		dprintf(2, "exec %s: %s", h->path, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	/* a hook that exits without reading its stdin must not kill us with SIGPIPE */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(in[1], state + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* it did not read it all: its exit status decides */
		off += (size_t)n;
	}
	close(in[1]);
	sigaction(SIGPIPE, &old, NULL);

	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		int wait_ms = 10;
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			hook_failed(h->kind, errno, "wait for hook");
		if (deadline) {
			int64_t left = deadline - now_ms();
			if (left <= 0) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				close(out[0]);
				snprintf(msg, sizeof(msg), "%s hook %s: timed out after %u s", kind_name(h->kind), h->path, h->timeout);
				hook_failed(h->kind, 0, msg);
			}
			if (left < wait_ms)
				wait_ms = (int)left;
		}
		if (out_open) {
			struct pollfd pfd = { out[0], POLLIN, 0 };
			if (poll(&pfd, 1, wait_ms) > 0) {
				char buf[512];
				ssize_t n = read(out[0], buf, sizeof(buf));
				if (n > 0) {
					size_t keep = (size_t)n < OUTPUT_MAX - got ? (size_t)n : OUTPUT_MAX - got;
					memcpy(output + got, buf, keep);
					got += keep;
				} else if (n == 0) {
					out_open = 0;
				}
			}
		} else {
			struct timespec ts = { 0, (long)wait_ms * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	close(out[0]);
	output[got] = 0;
	while (got > 0 && (output[got - 1] == '\n' || output[got - 1] == ' '))
		output[--got] = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	snprintf(msg, sizeof(msg), "%s hook %s failed: %s %d%s%s", kind_name(h->kind), h->path,
		 WIFEXITED(status) ? "exit status" : "killed by signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		 got ? ": " : "", output);
	hook_failed(h->kind, 0, msg);
}

void hooks_run(const struct plan *p, uint32_t kind)
{
	int which = kind == HOOK_CREATE_CONTAINER ? 0 : 1;
	char *state = p->hook_state[which];
	char pid[HOOK_PID_WIDTH + 1];
	int any = 0;
	for (size_t i = 0; i < p->n_hooks; i++)
		any |= p->hooks[i].kind == kind;
	if (!any)
		return;
	if (!state)
		hook_failed(kind, EINVAL, "hooks without a state to give them");
	snprintf(pid, sizeof(pid), "%*d", HOOK_PID_WIDTH, (int)getpid());
	memcpy(state + p->hook_state_pid[which], pid, HOOK_PID_WIDTH);
	for (size_t i = 0; i < p->n_hooks; i++)
		if (p->hooks[i].kind == kind)
			run_one(&p->hooks[i], state, p->hook_state_len[which]);
}
