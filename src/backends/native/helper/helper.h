/*
 * tsshim-exec: the native backend's executor. Shared declarations of its modules:
 *   main.c        entry, sealed re-exec, the create and exec flows (helper side)
 *   channel.c     frames to the Node side, the helper<->child sync channel, fail()
 *   namespaces.c  joining namespaces, id maps, cgroup placement of the child
 *   rootfs.c      mounts, devices, pivot_root, masked and readonly paths
 *   process.c     the container process: console, rlimits, user, caps, seccomp, exec
 *   hooks.c       createContainer and startContainer hooks, run by the container process
 * See src/backends/native/plan.ts for the design note.
 */
#ifndef TSSHIM_HELPER_H
#define TSSHIM_HELPER_H

#include <stdint.h>
#include <sys/types.h>

#include "plan.h"

/* fd on which the Node side sent the plan and reads our frames (a unix socket) */
#define CONTROL_FD 3

/* frames to the Node side: { u32 len; u8 type; payload[len - 1] } */
enum frame_type {
	FRAME_PID = 1,   /* i32 pid: the container process exists (kill it if we fail) */
	FRAME_OK = 2,    /* i32 pid: ready (create: blocked until start; exec: running) */
	FRAME_ERROR = 3, /* i32 errno, then the message bytes */
	FRAME_HOOKS = 4, /* i32 pid: mounts done, before pivot_root: run prestart/createRuntime,
	                    then write HOOKS_DONE (one byte) on the control fd */
};
#define HOOKS_DONE 1

/* helper <-> child sync messages (SOCK_SEQPACKET, one message each) */
enum sync_type {
	SYNC_GO = 10,    /* helper -> child: ids mapped, cgroups joined: go on */
	SYNC_READY = 11, /* child -> helper: set up, about to wait for start (or exec) */
	SYNC_ERROR = 12, /* child -> helper: failed, with errno and message */
	SYNC_HOOKS = 13, /* child -> helper: at the hooks point (F_HOOK_PAUSE); GO resumes it */
};

/* channel.c */
void report_to_node(int fd);        /* fail() writes FRAME_ERROR to fd, then exits */
void report_to_parent(int sync_fd); /* fail() sends SYNC_ERROR on the sync socket */
void kill_on_failure(pid_t child);   /* fail() kills and reaps it first (0: nothing) */
__attribute__((noreturn, format(printf, 2, 3))) void fail(int err, const char *fmt, ...);
int send_frame(int fd, uint8_t type, const void *payload, size_t len);
int send_frame_pid(int fd, uint8_t type, pid_t pid);
int send_sync(int fd, uint32_t type, int32_t err, const char *msg);
/* returns the message type, -1 on EOF/error; err/msg filled for SYNC_ERROR */
int recv_sync(int fd, int32_t *err, char *msg, size_t msg_len);
int write_file(const char *path, const char *data, size_t len);

/* namespaces.c */
struct ns_fds {
	int fd[MAX_NS];
	uint32_t type[MAX_NS];
	size_t n;
	uint32_t new_flags; /* CLONE_NEW* to create with clone */
	int new_time;       /* a new time namespace: unshare + offsets before clone (ns_new_time) */
};
void ns_open(const struct plan *p, struct ns_fds *out);
void ns_join(struct ns_fds *n);
void ns_new_time(const struct plan *p, const struct ns_fds *n); /* helper side, before clone */
void ns_write_id_maps(const struct plan *p, pid_t child);
void ns_loopback_up(void); /* child side, in its new network namespace */
int cgroup_open_clone_into(const struct plan *p); /* fd for clone3, -1 when none */
void cgroup_place(const struct plan *p, pid_t child, int cloned_into); /* helper side */
void cgroup_self_move(const struct plan *p);      /* child side */
void write_oom_score_adj(const struct plan *p, pid_t child);
void device_filter_attach(const struct plan *p); /* cgroup2 device rules, before clone */

/* rootfs.c */
void rootfs_prepare(const struct plan *p);   /* mounts, devices */
void rootfs_enter(const struct plan *p);     /* pivot_root (or chroot for no_pivot) */
void rootfs_finalize(const struct plan *p);  /* sysctls, readonly, masked, root ro */
int open_in_root(int rootfd, const char *path, int flags);

/* process.c */
void process_console(const struct plan *p, int console_sock);
void process_setup(const struct plan *p, int sync_fd, int fifo_fd);
__attribute__((noreturn)) void process_exec(const struct plan *p, int fifo_fd);

/* hooks.c */
void hooks_run(const struct plan *p, uint32_t kind); /* the plan's hooks of that kind, in order */

#endif
