/*
 * Plan decoding: records of { u16 tag; u16 zero; u32 len; payload[len] }, payload fields
 * little-endian u32/u64, strings as { u32 n; bytes[n]; NUL }. Every read is bounds
 * checked against its record; an unknown tag is an error (the TS side and this helper
 * are built from the same tree, so a mismatch is a bug worth stopping on).
 */
#define _GNU_SOURCE

#include "plan.h"

#include <stdlib.h>
#include <string.h>

struct cursor {
	const uint8_t *p, *end;
	int bad;
};

static uint32_t get_u32(struct cursor *c)
{
	uint32_t v;
	if (c->bad || (size_t)(c->end - c->p) < 4) {
		c->bad = 1;
		return 0;
	}
	memcpy(&v, c->p, 4);
	c->p += 4;
	return v;
}

static uint64_t get_u64(struct cursor *c)
{
	uint64_t v;
	if (c->bad || (size_t)(c->end - c->p) < 8) {
		c->bad = 1;
		return 0;
	}
	memcpy(&v, c->p, 8);
	c->p += 8;
	return v;
}

/* a string inside the buffer: its NUL is part of the encoding, and no NUL may precede it */
static const char *get_str(struct cursor *c)
{
	uint32_t n = get_u32(c);
	const char *s;
	if (c->bad || (size_t)(c->end - c->p) < (size_t)n + 1 || c->p[n] != 0 || memchr(c->p, 0, n)) {
		c->bad = 1;
		return "";
	}
	s = (const char *)c->p;
	c->p += (size_t)n + 1;
	return s;
}

static const void *get_blob(struct cursor *c, uint32_t *n)
{
	const void *b;
	*n = get_u32(c);
	if (c->bad || (size_t)(c->end - c->p) < *n) {
		c->bad = 1;
		return NULL;
	}
	b = c->p;
	c->p += *n;
	return b;
}

static struct plan_op *new_op(struct plan *p, uint16_t tag)
{
	struct plan_op *op = &p->ops[p->n_ops++];
	memset(op, 0, sizeof(*op));
	op->tag = tag;
	op->a = op->b = op->c = op->d = "";
	return op;
}

static int decode_record(struct plan *p, uint16_t tag, struct cursor *c, const char **msg)
{
	struct plan_op *op;
	uint32_t n;
	switch (tag) {
	case T_FLAGS:
		p->flags = get_u32(c);
		break;
	case T_NAMESPACE:
		if (p->n_ns >= MAX_NS) {
			*msg = "too many namespaces";
			return -1;
		}
		p->ns[p->n_ns].type = get_u32(c);
		p->ns[p->n_ns].path = get_str(c);
		p->n_ns++;
		break;
	case T_UID_MAP:
	case T_GID_MAP: {
		struct plan_idmap *m = tag == T_UID_MAP ? p->uid_maps : p->gid_maps;
		size_t *count = tag == T_UID_MAP ? &p->n_uid_maps : &p->n_gid_maps;
		if (*count >= MAX_MAPS) {
			*msg = "too many id mappings";
			return -1;
		}
		m[*count].inside = get_u32(c);
		m[*count].outside = get_u32(c);
		m[*count].count = get_u32(c);
		(*count)++;
		break;
	}
	case T_CGROUP_PROCS:
		if (p->n_cgroup_procs >= sizeof(p->cgroup_procs) / sizeof(p->cgroup_procs[0])) {
			*msg = "too many cgroups";
			return -1;
		}
		p->cgroup_procs[p->n_cgroup_procs++] = get_str(c);
		break;
	case T_CGROUP_SELF:
		if (p->n_cgroup_self >= sizeof(p->cgroup_self) / sizeof(p->cgroup_self[0])) {
			*msg = "too many cgroups";
			return -1;
		}
		p->cgroup_self[p->n_cgroup_self++] = get_str(c);
		break;
	case T_CGROUP_CLONE_INTO:
		p->cgroup_clone_into = get_str(c);
		break;
	case T_OOM_SCORE_ADJ:
		p->has_oom_score_adj = 1;
		p->oom_score_adj = (int32_t)get_u32(c);
		break;
	case T_CONSOLE_SOCKET:
		p->console_socket = get_str(c);
		break;
	case T_EXEC_FIFO:
		p->exec_fifo = get_str(c);
		break;
	case T_HOSTNAME:
		p->hostname = get_str(c);
		break;
	case T_DOMAINNAME:
		p->domainname = get_str(c);
		break;
	case T_ROOTFS:
		p->rootfs = get_str(c);
		break;
	case T_ROOT_PROPAGATION:
		p->root_propagation = get_u64(c);
		break;
	case T_MOUNT:
		op = new_op(p, tag);
		op->a = get_str(c); /* source */
		op->b = get_str(c); /* target */
		op->c = get_str(c); /* fstype */
		op->flags = get_u64(c);
		op->prop = get_u64(c);
		op->d = get_str(c); /* data */
		op->kind = get_u32(c);
		break;
	case T_MKDIR:
		op = new_op(p, tag);
		op->a = get_str(c);
		op->mode = get_u32(c);
		break;
	case T_SYMLINK:
		op = new_op(p, tag);
		op->a = get_str(c); /* link content */
		op->b = get_str(c); /* link path */
		break;
	case T_MKNOD:
		op = new_op(p, tag);
		op->a = get_str(c);
		op->mode = get_u32(c);
		op->major = get_u32(c);
		op->minor = get_u32(c);
		op->uid = get_u32(c);
		op->gid = get_u32(c);
		break;
	case T_BIND_DEVICE:
		op = new_op(p, tag);
		op->a = get_str(c); /* host device */
		op->b = get_str(c); /* path in the container */
		break;
	case T_REMOUNT:
		op = new_op(p, tag);
		op->a = get_str(c);
		op->flags = get_u64(c);
		break;
	case T_SET_ATTR:
		op = new_op(p, tag);
		op->a = get_str(c);
		op->flags = get_u64(c); /* MOUNT_ATTR_* to set */
		op->prop = get_u64(c); /* MOUNT_ATTR_* to clear */
		break;
	case T_SYSCTL:
		op = new_op(p, tag);
		op->a = get_str(c); /* path under /proc/sys */
		op->b = get_str(c); /* value */
		break;
	case T_MASK:
	case T_READONLY:
		op = new_op(p, tag);
		op->a = get_str(c);
		break;
	case T_ARG:
		p->args[p->n_args++] = get_str(c);
		break;
	case T_ENV:
		p->env[p->n_env++] = get_str(c);
		break;
	case T_CWD:
		p->cwd = get_str(c);
		break;
	case T_USER:
		p->has_user = 1;
		p->uid = get_u32(c);
		p->gid = get_u32(c);
		p->umask = get_u32(c);
		break;
	case T_GROUP:
		p->groups[p->n_groups++] = get_u32(c);
		break;
	case T_RLIMIT:
		p->rlimits[p->n_rlimits].resource = get_u32(c);
		p->rlimits[p->n_rlimits].soft = get_u64(c);
		p->rlimits[p->n_rlimits].hard = get_u64(c);
		p->n_rlimits++;
		break;
	case T_CAPS:
		p->has_caps = 1;
		p->cap_bounding = get_u64(c);
		p->cap_effective = get_u64(c);
		p->cap_inheritable = get_u64(c);
		p->cap_permitted = get_u64(c);
		p->cap_ambient = get_u64(c);
		break;
	case T_SECCOMP:
		p->seccomp_flags = get_u32(c);
		p->seccomp_filter = get_blob(c, &n);
		if (n % 8 != 0 || n / 8 > 65535) {
			*msg = "seccomp filter is not a whole number of BPF instructions";
			return -1;
		}
		p->seccomp_len = n / 8;
		break;
	case T_TIME_OFFSETS:
		p->time_offsets = get_str(c);
		break;
	case T_DEVICE_FILTER:
		p->device_filter_cgroup = get_str(c);
		p->device_filter_required = get_u32(c);
		p->device_filter = get_blob(c, &n);
		if (n == 0 || n % 8 != 0 || n / 8 > 65535) {
			*msg = "device filter is not a whole number of eBPF instructions";
			return -1;
		}
		p->device_filter_len = n / 8;
		break;
	case T_APPARMOR:
		p->apparmor_profile = get_str(c);
		break;
	case T_PRESERVE_FDS:
		p->preserve_fds = get_u32(c);
		break;
	case T_CONSOLE_SIZE:
		p->console_rows = get_u32(c);
		p->console_cols = get_u32(c);
		break;
	case T_HOOK: {
		struct plan_hook *h = &p->hooks[p->n_hooks++];
		h->kind = get_u32(c);
		h->timeout = get_u32(c);
		h->path = get_str(c);
		if (h->kind != HOOK_CREATE_CONTAINER && h->kind != HOOK_START_CONTAINER) {
			*msg = "unknown hook kind";
			return -1;
		}
		/* each hook's lists start where the previous one's NULL ended them */
		p->hook_args[p->n_hook_args++] = NULL;
		p->hook_env[p->n_hook_env++] = NULL;
		h->args = &p->hook_args[p->n_hook_args];
		h->env = &p->hook_env[p->n_hook_env];
		break;
	}
	case T_HOOK_ARG:
	case T_HOOK_ENV:
		if (p->n_hooks == 0) {
			*msg = "hook argument before any hook";
			return -1;
		}
		if (tag == T_HOOK_ARG)
			p->hook_args[p->n_hook_args++] = get_str(c);
		else
			p->hook_env[p->n_hook_env++] = get_str(c);
		break;
	case T_HOOK_STATE: {
		uint32_t which = get_u32(c), off = get_u32(c);
		const char *json = get_str(c);
		size_t len = strlen(json);
		if (which > 1 || (size_t)off + HOOK_PID_WIDTH > len) {
			*msg = "malformed hook state";
			return -1;
		}
		/* the plan buffer is ours and writable: the pid is filled in place */
		p->hook_state[which] = (char *)json;
		p->hook_state_len[which] = len;
		p->hook_state_pid[which] = off;
		break;
	}
	default:
		*msg = "unknown plan record";
		return -1;
	}
	if (c->bad || c->p != c->end) {
		*msg = "malformed plan record";
		return -1;
	}
	return 0;
}

int plan_decode(uint8_t *buf, size_t len, struct plan *p, const char **msg)
{
	size_t n_records = 0, off = 0;
	memset(p, 0, sizeof(*p));
	p->umask = UINT32_MAX;
	/* first pass: count records, so every list can be sized once */
	while (off < len) {
		uint32_t rlen;
		if (len - off < 8) {
			*msg = "truncated plan record header";
			return -1;
		}
		memcpy(&rlen, buf + off + 4, 4);
		if (len - off - 8 < rlen) {
			*msg = "truncated plan record";
			return -1;
		}
		off += 8 + (size_t)rlen;
		n_records++;
	}
	if (n_records > MAX_LIST * 4) {
		*msg = "plan has too many records";
		return -1;
	}
	p->ops = calloc(n_records + 1, sizeof(*p->ops));
	p->args = calloc(n_records + 1, sizeof(*p->args));
	p->env = calloc(n_records + 1, sizeof(*p->env));
	p->groups = calloc(n_records + 1, sizeof(*p->groups));
	p->rlimits = calloc(n_records + 1, sizeof(*p->rlimits));
	p->hooks = calloc(n_records + 1, sizeof(*p->hooks));
	/* room for a NULL after every hook's arguments and environment */
	p->hook_args = calloc(2 * n_records + 2, sizeof(*p->hook_args));
	p->hook_env = calloc(2 * n_records + 2, sizeof(*p->hook_env));
	if (!p->ops || !p->args || !p->env || !p->groups || !p->rlimits || !p->hooks || !p->hook_args || !p->hook_env) {
		*msg = "out of memory";
		return -1;
	}
	for (off = 0; off < len;) {
		uint16_t tag, zero;
		uint32_t rlen;
		struct cursor c;
		memcpy(&tag, buf + off, 2);
		memcpy(&zero, buf + off + 2, 2);
		memcpy(&rlen, buf + off + 4, 4);
		if (zero != 0) {
			*msg = "malformed plan record header";
			return -1;
		}
		c.p = buf + off + 8;
		c.end = c.p + rlen;
		c.bad = 0;
		if (decode_record(p, tag, &c, msg) < 0)
			return -1;
		off += 8 + (size_t)rlen;
	}
	/* NULL-terminated for execve */
	p->args[p->n_args] = NULL;
	p->env[p->n_env] = NULL;
	p->hook_args[p->n_hook_args] = NULL;
	p->hook_env[p->n_hook_env] = NULL;
	return 0;
}
