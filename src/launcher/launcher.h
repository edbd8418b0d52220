/*
 * What the launcher (launcher.c) shares with tsrun's front end (tsrun-front.c): both are
 * the same binary, picked by the name it runs as.
 */
#ifndef TSSHIM_LAUNCHER_H
#define TSSHIM_LAUNCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

#include "sha256.h"

#define SPARE_READY_MS 1000 /* an idle spare answers at once; a booting one is still sooner than a spawn */
#define SPARE_ADOPT_MS 2000 /* from the hand-over to the spare's answer: a cold start's budget */

/* the release this binary belongs to: <root>/ of <root>/bin/<us> (with its slash) */
extern char *release_root;
/* Node's flags for our programs (daemonNodeFlags in src/shim/daemon-launch.ts), NULL-terminated */
extern const char *const daemon_flags[];
size_t put_node_command(char **argv, const char *entry);

bool write_all(int fd, const void *buf, size_t len);
bool read_file(const char *path, size_t max, char **out, size_t *out_len);
bool has_name(const char *entry, const char *name);
char *concat(const char *a, const char *b);
void fill_addr(struct sockaddr_un *sa, const char *path);
/* 0: something listens there; else the connect's errno */
int probe_daemon(const char *sock);
char **cgroup_mount_points(void);
int join_shim_cgroup(pid_t pid, const char *cgroup, char *const *mounts);
void close_from(int from);
void cloexec_from(int from);
void set_autogroup_nice(pid_t pid, int nice);
void hash_str(struct sha256 *h, const char *s);
bool spare_socket_path(struct sha256 *h, const char *dir, char *out, size_t cap);
void set_timeout(int fd, int opt, int ms);
bool give_back_priority(pid_t pid);
bool put_field(char **buf, size_t *len, size_t *cap, const char *s);
bool put_list(char **buf, size_t *len, size_t *cap, char *const *list);
bool send_payload(int fd, char *buf, size_t len, const int *fds, int nfds);
int fd_above(int fd, int from);
int connect_spare(const char *spare_path, int from, long *pid);
bool adopted(int fd);
void sweep_dead_spares(const char *socket_dir);

/* A spare to boot (detached, SCHED_IDLE at first) on control socket `path`, if none is there. */
struct spare_spawn {
	const char *path;
	const char *entry;      /* the boot script Node runs */
	const char *address;    /* containerd's address, or "-" */
	const char *sweep_dir;  /* where dead spares' sockets are removed from */
	long long idle_sec;
	bool daemon_env;        /* the shim daemon's environment (node_env("-")), else tsrun's */
	bool root_cgroup;       /* wait in the root cgroup of every hierarchy */
};
void spawn_spare_process(const struct spare_spawn *sp);

/* bin/tsrun: runc's command line, handed to a tsrun spare or to Node */
_Noreturn void tsrun_main(int argc, char **argv);

#endif
