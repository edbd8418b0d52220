/*
 * The plan: what src/backends/native/plan.ts compiles from an OCI config and this
 * helper executes. The format is described in plan.ts (the design note); the tag and
 * flag numbers below must match PlanTag / PlanFlag there (test/unit/native-plan.test.ts
 * reads this file and compares).
 *
 * Decoding is the only parsing the helper does: bounds-checked little-endian integers
 * and length-prefixed, NUL-terminated strings that point into the plan buffer.
 */
#ifndef TSSHIM_PLAN_H
#define TSSHIM_PLAN_H

#include <stddef.h>
#include <stdint.h>

#define PLAN_MAGIC 0x4c505354u /* "TSPL" little-endian */
#define PLAN_VERSION 1u
#define PLAN_MAX_BYTES (4u << 20)

enum plan_tag {
	T_FLAGS = 1,
	T_NAMESPACE = 2,
	T_UID_MAP = 3,
	T_GID_MAP = 4,
	T_CGROUP_PROCS = 5,
	T_OOM_SCORE_ADJ = 6,
	T_CONSOLE_SOCKET = 7,
	T_EXEC_FIFO = 8,
	T_HOSTNAME = 9,
	T_DOMAINNAME = 10,
	T_ROOTFS = 11,
	T_ROOT_PROPAGATION = 12,
	T_CGROUP_SELF = 13,       /* v1 `tasks` files the child writes "0" to (moves itself) */
	T_CGROUP_CLONE_INTO = 14, /* cgroup2 directory the child is cloned into (CLONE_INTO_CGROUP) */
	T_DEVICE_FILTER = 15,     /* str cgroup2 dir, u32 required, blob eBPF device program (device-filter.ts) */
	T_TIME_OFFSETS = 16,      /* str: /proc/self/timens_offsets text for a new time namespace */

	/* rootfs operations, executed in order before pivot_root */
	T_MOUNT = 20,
	T_MKDIR = 21,
	T_SYMLINK = 22,
	T_MKNOD = 23,
	T_BIND_DEVICE = 24,
	T_REMOUNT = 25,
	T_SET_ATTR = 26, /* mount_setattr(AT_RECURSIVE): a = path, flags = set, prop = clear */

	/* after pivot_root */
	T_SYSCTL = 30,
	T_MASK = 31,
	T_READONLY = 32,

	/* the process */
	T_ARG = 40,
	T_ENV = 41,
	T_CWD = 42,
	T_USER = 43,
	T_GROUP = 44,
	T_RLIMIT = 45,
	T_CAPS = 46,
	T_SECCOMP = 47,
	T_APPARMOR = 48, /* str: AppArmor profile the process changes to at execve */
	T_PRESERVE_FDS = 49,

	/* OCI hooks the helper runs itself (createContainer, startContainer) */
	T_HOOK = 50,       /* u32 kind, u32 timeout (s, 0: none), str path */
	T_HOOK_ARG = 51,   /* str: argument of the last T_HOOK */
	T_HOOK_ENV = 52,   /* str: environment entry of the last T_HOOK */
	T_HOOK_STATE = 53, /* u32 which (0 creating, 1 created), u32 pid offset, str state JSON */
	T_CONSOLE_SIZE = 54, /* u32 rows, u32 columns: the pty's size before the process runs */
};

enum plan_flag {
	F_TERMINAL = 1u << 0,
	F_NO_NEW_PRIVS = 1u << 1,
	F_ROOT_READONLY = 1u << 2,
	F_NO_PIVOT = 1u << 3,
	F_WAIT_START = 1u << 4,  /* create/start split: block on the exec fifo before execve */
	F_DEV_CONSOLE = 1u << 5, /* bind the pty slave onto /dev/console */
	F_SETGROUPS_DENY = 1u << 6,
	F_SETSID = 1u << 7,
	F_HOOK_PAUSE = 1u << 8, /* stop before pivot_root until Node ran prestart/createRuntime */
};

/* T_HOOK kinds */
enum hook_kind { HOOK_CREATE_CONTAINER = 0, HOOK_START_CONTAINER = 1 };
#define HOOK_PID_WIDTH 10 /* the pid field of a state JSON: right-aligned, space-padded */

/* T_MOUNT kinds */
enum mount_kind { MK_FS = 0, MK_BIND_DIR = 1, MK_BIND_FILE = 2 };

#define MAX_NS 8
#define MAX_MAPS 64
#define MAX_LIST 4096

struct plan_ns {
	uint32_t type; /* CLONE_NEW* */
	const char *path; /* "" to create a new one */
};

struct plan_idmap {
	uint32_t inside, outside, count;
};

struct plan_rlimit {
	uint32_t resource;
	uint64_t soft, hard;
};

struct plan_hook {
	uint32_t kind, timeout;
	const char *path;
	const char **args, **env; /* NULL-terminated, into the plan's hook pools */
};

/* one rootfs or post-pivot operation, kept in plan order */
struct plan_op {
	uint16_t tag;
	const char *a, *b, *c, *d; /* meaning depends on tag */
	uint64_t flags, prop;
	uint32_t kind, mode, major, minor, uid, gid;
};

struct plan {
	uint32_t flags;
	struct plan_ns ns[MAX_NS];
	size_t n_ns;
	struct plan_idmap uid_maps[MAX_MAPS], gid_maps[MAX_MAPS];
	size_t n_uid_maps, n_gid_maps;
	const char *cgroup_procs[64]; /* the helper writes the child's pid (a migration: slow) */
	size_t n_cgroup_procs;
	const char *cgroup_self[64]; /* the child moves itself: "0" to a v1 `tasks` file (fast) */
	size_t n_cgroup_self;
	const char *cgroup_clone_into;
	const char *time_offsets;
	const char *device_filter_cgroup;
	const void *device_filter; /* struct bpf_insn[] */
	uint32_t device_filter_required; /* 0: the v1 devices controller enforces the rules too */
	uint32_t device_filter_len; /* instructions */
	int has_oom_score_adj;
	int32_t oom_score_adj;
	const char *console_socket;
	const char *exec_fifo;
	const char *hostname, *domainname;
	const char *rootfs;
	uint64_t root_propagation;

	struct plan_op *ops; /* T_MOUNT..T_SET_ATTR, then T_SYSCTL..T_READONLY, in plan order */
	size_t n_ops;

	const char **args, **env;
	size_t n_args, n_env;
	const char *cwd;
	int has_user;
	uint32_t uid, gid, umask; /* umask UINT32_MAX: leave as is */
	uint32_t *groups;
	size_t n_groups;
	struct plan_rlimit *rlimits;
	size_t n_rlimits;
	int has_caps;
	uint64_t cap_bounding, cap_effective, cap_inheritable, cap_permitted, cap_ambient;
	const void *seccomp_filter; /* struct sock_filter[] */
	uint32_t seccomp_len;       /* instructions */
	uint32_t seccomp_flags;     /* SECCOMP_FILTER_FLAG_* */
	const char *apparmor_profile;
	uint32_t preserve_fds;
	uint32_t console_rows, console_cols;

	struct plan_hook *hooks;
	size_t n_hooks;
	const char **hook_args, **hook_env; /* pools: each hook's run, NULL after each */
	size_t n_hook_args, n_hook_env;
	char *hook_state[2]; /* state JSON for createContainer (creating), startContainer (created) */
	size_t hook_state_len[2];
	uint32_t hook_state_pid[2]; /* offset of the HOOK_PID_WIDTH-wide pid field */
};

/* Decodes buf (owned by the caller, must outlive the plan). Returns 0, or -1 with msg set. */
int plan_decode(uint8_t *buf, size_t len, struct plan *p, const char **msg);

#endif
