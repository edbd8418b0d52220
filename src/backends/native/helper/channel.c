/*
 * Where errors go. The helper reports to the Node side (FRAME_ERROR on the control fd);
 * the container child reports to the helper (SYNC_ERROR), which forwards it. Nothing is
 * ever printed: stdout and stderr belong to the container.
 */
#define _GNU_SOURCE

#include "helper.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MSG_MAX 2048

static int report_fd = -1;
static int report_is_sync;
static pid_t doomed_child;

void kill_on_failure(pid_t child)
{
	doomed_child = child;
}

void report_to_node(int fd)
{
	report_fd = fd;
	report_is_sync = 0;
}

void report_to_parent(int sync_fd)
{
	report_fd = sync_fd;
	report_is_sync = 1;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int send_frame(int fd, uint8_t type, const void *payload, size_t len)
{
	uint8_t head[5];
	uint32_t n = (uint32_t)len + 1;
	memcpy(head, &n, 4);
	head[4] = type;
	if (write_all(fd, head, sizeof(head)) < 0)
		return -1;
	return len ? write_all(fd, payload, len) : 0;
}

int send_frame_pid(int fd, uint8_t type, pid_t pid)
{
	int32_t v = pid;
	return send_frame(fd, type, &v, sizeof(v));
}

struct sync_msg {
	uint32_t type;
	int32_t err;
	char msg[MSG_MAX];
};

int send_sync(int fd, uint32_t type, int32_t err, const char *msg)
{
	struct sync_msg m;
	size_t n = 0;
	m.type = type;
	m.err = err;
	if (msg) {
		n = strnlen(msg, MSG_MAX - 1);
		memcpy(m.msg, msg, n);
	}
	m.msg[n] = 0;
	for (;;) {
		ssize_t r = send(fd, &m, offsetof(struct sync_msg, msg) + n + 1, MSG_NOSIGNAL);
		if (r >= 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

int recv_sync(int fd, int32_t *err, char *msg, size_t msg_len)
{
	struct sync_msg m;
	ssize_t r;
	do
		r = recv(fd, &m, sizeof(m), 0);
	while (r < 0 && errno == EINTR);
	if (r < (ssize_t)offsetof(struct sync_msg, msg))
		return -1;
	{
		size_t got = (size_t)r - offsetof(struct sync_msg, msg);
		m.msg[got < MSG_MAX ? got : MSG_MAX - 1] = 0;
	}
	if (err)
		*err = m.err;
	if (msg && msg_len) {
		strncpy(msg, m.msg, msg_len - 1);
		msg[msg_len - 1] = 0;
	}
	return (int)m.type;
}

void fail(int err, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = 0;
	/* nothing we started may outlive a failure */
	if (doomed_child > 0) {
		kill(doomed_child, SIGKILL);
		waitpid(doomed_child, NULL, 0);
	}
	if (err > 0) {
		/* Go's spelling, as runc reports errors ("no such file or directory"): tools match
		 * on it, e.g. Docker turns "no such file or directory" and "permission denied"
		 * from a failed start into exit codes 127 and 126 */
		size_t used = strnlen(msg, sizeof(msg));
		const char *text = strerror(err);
		snprintf(msg + used, sizeof(msg) - used, ": %c%s", tolower((unsigned char)text[0]), text[0] ? text + 1 : "");
	}
	if (report_fd >= 0) {
		if (report_is_sync) {
			send_sync(report_fd, SYNC_ERROR, err, msg);
		} else {
			uint8_t buf[4 + MSG_MAX];
			int32_t e = err;
			size_t len = strnlen(msg, sizeof(msg));
			memcpy(buf, &e, 4);
			memcpy(buf + 4, msg, len);
			send_frame(report_fd, FRAME_ERROR, buf, 4 + len);
		}
	}
	_exit(1);
}

int write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int saved;
	if (fd < 0)
		return -1;
	if (write_all(fd, data, len) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}
