/*
 * The container's filesystem view. Every path inside the rootfs is resolved with
 * openat2(RESOLVE_IN_ROOT): a symlink in the image (even one swapped in while we work)
 * is resolved as if the rootfs were "/", so no mount, mknod or symlink can land outside
 * it. Mounts then target the resolved object through /proc/self/fd/<n> (the host /proc,
 * still visible before pivot_root), never a path string that could be re-resolved.
 */
#define _GNU_SOURCE

#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int rootfd = -1;

int open_in_root(int root, const char *path, int flags)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	for (;;) {
		long fd = syscall(SYS_openat2, root, path, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			return (int)fd;
		/* EAGAIN: a rename raced the lookup; the kernel asks us to retry */
	}
}

static const char *fd_path(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
	return buf;
}

/* Splits "/a/b/c" into parent "/a/b" (in buf) and name "c"; fails on names we cannot create. */
static const char *split_parent(const char *path, char *buf, size_t len)
{
	size_t n = strnlen(path, len);
	const char *slash, *name;
	if (n >= len)
		fail(ENAMETOOLONG, "%s", path);
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = 0;
	slash = strrchr(buf, '/');
	if (!slash) {
		name = path;
		strcpy(buf, "/");
		return name;
	}
	name = path + (slash - buf) + 1;
	buf[slash == buf ? 1 : (size_t)(slash - buf)] = 0;
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		fail(EINVAL, "cannot create %s", path);
	return name;
}

#define MAX_SYMLINK_HOPS 40

/*
 * mkdir -p inside the root; returns an O_PATH fd of the directory. A component that is a
 * symlink is followed the way the kernel would with the rootfs as "/" (a dangling one
 * gets its target created, inside the root): what runc's securejoin.MkdirAll does.
 */
static int mkdir_all_hops(const char *path, mode_t mode, int hops)
{
	char prefix[4096];
	size_t len = strnlen(path, sizeof(prefix));
	int parent;
	if (len >= sizeof(prefix))
		fail(ENAMETOOLONG, "%s", path);
	if (hops > MAX_SYMLINK_HOPS)
		fail(ELOOP, "create %s in rootfs", path);
	parent = open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
	if (parent < 0)
		fail(errno, "open rootfs");
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		if (i == 0 || path[i - 1] == '/')
			continue; /* leading or doubled slash */
		memcpy(prefix, path, i);
		prefix[i] = 0;
		int fd = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
		if (fd < 0 && errno == ENOENT) {
			const char *name = strrchr(prefix, '/');
			char link[4096];
			ssize_t n;
			name = name ? name + 1 : prefix;
			/* mkdirat never follows a symlink in its last component; a parent fd that
			 * was resolved in the root keeps the new directory inside it */
			if (mkdirat(parent, name, mode) == 0 || errno != EEXIST) {
				fd = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
			} else if ((n = readlinkat(parent, name, link, sizeof(link) - 1)) >= 0) {
				/* a dangling symlink: create what it points to, resolved in the root */
				char target[8192];
				link[n] = 0;
				if (link[0] == '/')
					snprintf(target, sizeof(target), "%s", link);
				else
					snprintf(target, sizeof(target), "%.*s/%s", (int)(name - prefix), prefix, link);
				close(mkdir_all_hops(target, mode, hops + 1));
				fd = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
			} else {
				errno = EEXIST;
			}
		}
		if (fd < 0)
			fail(errno, "open %s in rootfs", prefix);
		close(parent);
		parent = fd;
	}
	return parent;
}

static int mkdir_all_in_root(const char *path, mode_t mode)
{
	return mkdir_all_hops(path, mode, 0);
}

/* the parent directory of path (created), as an O_PATH fd; *name gets the last component */
static int parent_in_root(const char *path, const char **name)
{
	char parent[4096];
	*name = split_parent(path, parent, sizeof(parent));
	return mkdir_all_in_root(parent, 0755);
}

/* an O_PATH fd of a mount target: a directory or a file, created if missing */
static int mount_target(const char *path, int is_file)
{
	int fd, dir;
	const char *name;
	if (!is_file)
		return mkdir_all_in_root(path, 0755);
	fd = open_in_root(rootfd, path, O_PATH);
	if (fd >= 0 || errno != ENOENT)
		goto done;
	dir = parent_in_root(path, &name);
	fd = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		fail(errno, "create mount target %s in rootfs", path);
	close(dir);
	fd = open_in_root(rootfd, path, O_PATH);
done:
	if (fd < 0)
		fail(errno, "open mount target %s in rootfs", path);
	return fd;
}

/* flags a bind remount must keep: in a user namespace they are locked (EPERM otherwise) */
static unsigned long locked_flags(const char *path)
{
	struct statvfs st;
	unsigned long out = 0;
	if (statvfs(path, &st) < 0)
		return 0;
	if (st.f_flag & ST_NOSUID)
		out |= MS_NOSUID;
	if (st.f_flag & ST_NODEV)
		out |= MS_NODEV;
	if (st.f_flag & ST_NOEXEC)
		out |= MS_NOEXEC;
	if (st.f_flag & ST_NOATIME)
		out |= MS_NOATIME;
	if (st.f_flag & ST_NODIRATIME)
		out |= MS_NODIRATIME;
	if (st.f_flag & ST_RELATIME)
		out |= MS_RELATIME;
	return out;
}

#define BIND_ONLY (MS_BIND | MS_REC)

static void do_mount(const struct plan_op *op)
{
	char target[64];
	int tfd = mount_target(op->b, op->kind == MK_BIND_FILE);
	unsigned long flags = (unsigned long)op->flags;
	fd_path(tfd, target, sizeof(target));
	if (op->kind == MK_FS) {
		if (mount(op->a, target, op->c, flags, op->d[0] ? op->d : NULL) < 0)
			fail(errno, "mount %s (%s) on %s", op->a, op->c, op->b);
	} else if (mount(op->a, target, "", flags & BIND_ONLY, NULL) < 0) {
		fail(errno, "bind mount %s on %s", op->a, op->b);
	}
	close(tfd);
	/* the fd still names the directory under the new mount: look the target up again
	 * (in the root) to reach the mount itself for the remount and propagation */
	tfd = open_in_root(rootfd, op->b, O_PATH);
	if (tfd < 0)
		fail(errno, "open %s after mounting", op->b);
	fd_path(tfd, target, sizeof(target));
	/* a bind takes no flags but MS_REC at first; the rest needs a remount */
	if (op->kind != MK_FS && (flags & ~(BIND_ONLY | MS_REMOUNT))) {
		unsigned long keep = locked_flags(target);
		if (mount("", target, "", (flags & ~MS_REC) | keep | MS_BIND | MS_REMOUNT, NULL) < 0)
			fail(errno, "remount %s with its options", op->b);
	}
	if (op->prop && mount("", target, "", (unsigned long)op->prop, NULL) < 0)
		fail(errno, "set propagation of %s", op->b);
	close(tfd);
}

static void do_mknod(const struct plan_op *op)
{
	const char *name;
	int dir = parent_in_root(op->a, &name);
	dev_t dev = makedev(op->major, op->minor);
	if (mknodat(dir, name, op->mode, dev) < 0) {
		struct stat st;
		if (errno != EEXIST)
			fail(errno, "mknod %s", op->a);
		/* an image may ship its own node: replace anything that is not that very node */
		if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			fail(errno, "stat %s", op->a);
		if ((st.st_mode & S_IFMT) != (op->mode & S_IFMT) || st.st_rdev != dev) {
			if (S_ISDIR(st.st_mode) || unlinkat(dir, name, 0) < 0 || mknodat(dir, name, op->mode, dev) < 0)
				fail(errno ? errno : EEXIST, "replace %s with a device node", op->a);
		}
		if (fchmodat(dir, name, op->mode & 07777, 0) < 0)
			fail(errno, "chmod %s", op->a);
	}
	if (fchownat(dir, name, op->uid, op->gid, AT_SYMLINK_NOFOLLOW) < 0)
		fail(errno, "chown %s", op->a);
	close(dir);
}

static void do_bind_device(const struct plan_op *op)
{
	char target[64];
	int tfd = mount_target(op->b, 1);
	if (mount(op->a, fd_path(tfd, target, sizeof(target)), "", MS_BIND, NULL) < 0)
		fail(errno, "bind device %s on %s", op->a, op->b);
	close(tfd);
}

static void do_symlink(const struct plan_op *op)
{
	const char *name;
	int dir = parent_in_root(op->b, &name);
	if (symlinkat(op->a, dir, name) < 0 && errno != EEXIST)
		fail(errno, "symlink %s -> %s", op->b, op->a);
	close(dir);
}

static void do_remount(const struct plan_op *op)
{
	char target[64];
	int tfd = open_in_root(rootfd, op->a, O_PATH);
	if (tfd < 0)
		fail(errno, "open %s in rootfs", op->a);
	fd_path(tfd, target, sizeof(target));
	if (mount("", target, "", (unsigned long)op->flags | locked_flags(target) | MS_REMOUNT, NULL) < 0)
		fail(errno, "remount %s", op->a);
	close(tfd);
}

/* <linux/mount.h> clashes with glibc's <sys/mount.h>: the few names mount_setattr needs */
struct ts_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* recursive mount attributes ("rro" and the like): the mount at a and every submount */
static void do_setattr(const struct plan_op *op)
{
	struct ts_mount_attr attr = { .attr_set = op->flags, .attr_clr = op->prop };
	int tfd = open_in_root(rootfd, op->a, O_PATH);
	if (tfd < 0)
		fail(errno, "open %s in rootfs", op->a);
	if (syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
		fail(errno, "set recursive mount attributes of %s (mount_setattr, kernel 5.12+)", op->a);
	close(tfd);
}

static void enter_root(const struct plan *p)
{
	if (p->flags & F_NO_PIVOT) {
		/* for ramfs roots, where pivot_root is impossible: move the rootfs over "/" */
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			fail(errno, "move rootfs to /");
		if (chroot(".") < 0)
			fail(errno, "chroot");
	} else {
		/* pivot_root(".", "."): the old root lands on top of the new one and is
		 * detached at once, so no directory for it is needed inside the image */
		int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (oldroot < 0)
			fail(errno, "open old root");
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			fail(errno, "pivot_root");
		/* "." is still the new root: step into the old one, so that making it a slave
		 * (its unmount must not reach the host's mounts) leaves the container's mounts
		 * alone; a bidirectional volume stays shared */
		if (fchdir(oldroot) < 0)
			fail(errno, "chdir to old root");
		close(oldroot);
		if (mount("", ".", "", MS_SLAVE | MS_REC, NULL) < 0)
			fail(errno, "make old root a slave");
		if (umount2(".", MNT_DETACH) < 0)
			fail(errno, "detach old root");
	}
	if (chdir("/") < 0)
		fail(errno, "chdir /");
}

/* mountinfo's octal escapes (\040 for a space) decoded in place */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = 0;
}

/*
 * pivot_root refuses a new root whose parent mount is shared. With rootfsPropagation
 * "shared" or "rshared" (CRI asks for it when a volume is bidirectional) the mount that
 * holds the rootfs is shared by now: that one mount becomes private, as runc does it (only
 * when it is shared). This is the container's mount namespace; the host's mounts keep
 * their propagation.
 */
static void rootfs_parent_private(const char *rootfs)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, best[4096] = "";
	size_t cap = 0, best_len = 0;
	int best_shared = 0;
	if (!f)
		fail(errno, "open /proc/self/mountinfo");
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mountpoint options [optional...] - fstype ... */
		char *save = NULL, *mp = NULL;
		int field = 0, shared = 0, optional = 1;
		for (char *tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), field++) {
			if (field == 4)
				mp = tok;
			else if (field >= 6 && optional) {
				if (!strcmp(tok, "-"))
					optional = 0;
				else if (!strncmp(tok, "shared:", 7))
					shared = 1;
			}
		}
		if (!mp)
			continue;
		unescape_octal(mp);
		size_t n = strlen(mp);
		int holds = !strcmp(mp, "/") || (!strncmp(rootfs, mp, n) && (rootfs[n] == '/' || rootfs[n] == 0));
		/* the longest mount point holding the rootfs; a later line is mounted on top */
		if (holds && n >= best_len && n < sizeof(best)) {
			memcpy(best, mp, n + 1);
			best_len = n;
			best_shared = shared;
		}
	}
	free(line);
	fclose(f);
	if (best_shared && mount("", best, "", MS_PRIVATE, NULL) < 0)
		fail(errno, "make %s private (the mount holding the rootfs)", best);
}

void rootfs_prepare(const struct plan *p)
{
	if (!p->rootfs)
		return;
	umask(0); /* modes in the plan are exact; the process umask is set later */
	if (mount("", "/", "", (unsigned long)p->root_propagation, NULL) < 0)
		fail(errno, "set propagation of /");
	/* a recursive slave, private or unbindable "/" (rslave is the default) leaves no
	 * shared mount: only the other propagations need the mountinfo lookup */
	if (!((p->root_propagation & MS_REC) && (p->root_propagation & (MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE))))
		rootfs_parent_private(p->rootfs);
	/* the rootfs must be a mount point for pivot_root; the bind also makes the
	 * container's root its own mount, so remounting it read-only touches nothing else */
	if (mount(p->rootfs, p->rootfs, "", MS_BIND | MS_REC, NULL) < 0)
		fail(errno, "bind rootfs %s", p->rootfs);
	rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail(errno, "open rootfs %s", p->rootfs);
	for (size_t i = 0; i < p->n_ops; i++) {
		const struct plan_op *op = &p->ops[i];
		switch (op->tag) {
		case T_MOUNT: do_mount(op); break;
		case T_MKDIR: close(mkdir_all_in_root(op->a, op->mode)); break;
		case T_SYMLINK: do_symlink(op); break;
		case T_MKNOD: do_mknod(op); break;
		case T_BIND_DEVICE: do_bind_device(op); break;
		case T_REMOUNT: do_remount(op); break;
		case T_SET_ATTR: do_setattr(op); break;
		default: break; /* post-pivot operations */
		}
	}
	/* like runc: a working directory missing from the image is created, root-owned, 0755,
	 * after the mounts (it may be inside one) and before the root turns read-only */
	if (p->cwd && p->cwd[0])
		close(mkdir_all_in_root(p->cwd, 0755));
	if (fchdir(rootfd) < 0)
		fail(errno, "chdir to rootfs");
	close(rootfd);
	rootfd = -1;
}

/* after rootfs_prepare (and the createContainer hooks, which keep the cwd as it is) */
void rootfs_enter(const struct plan *p)
{
	if (p->rootfs)
		enter_root(p);
}

static void make_readonly(const char *path)
{
	if (mount(path, path, "", MS_BIND | MS_REC, NULL) < 0) {
		if (errno == ENOENT)
			return; /* nothing to protect */
		fail(errno, "bind %s for read-only", path);
	}
	if (mount("", path, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | locked_flags(path), NULL) < 0)
		fail(errno, "remount %s read-only", path);
}

static void mask(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return;
		fail(errno, "stat masked path %s", path);
	}
	if (S_ISDIR(st.st_mode)) {
		if (mount("tmpfs", path, "tmpfs", MS_RDONLY, NULL) < 0)
			fail(errno, "mask %s", path);
	} else if (mount("/dev/null", path, "", MS_BIND, NULL) < 0) {
		fail(errno, "mask %s", path);
	}
}

static void write_sysctl(const char *key, const char *value)
{
	char path[512];
	if ((size_t)snprintf(path, sizeof(path), "/proc/sys/%s", key) >= sizeof(path))
		fail(ENAMETOOLONG, "sysctl %s", key);
	if (write_file(path, value, strlen(value)) < 0)
		fail(errno, "sysctl %s=%s", key, value);
}

void rootfs_finalize(const struct plan *p)
{
	for (size_t i = 0; i < p->n_ops; i++) {
		const struct plan_op *op = &p->ops[i];
		switch (op->tag) {
		case T_SYSCTL: write_sysctl(op->a, op->b); break;
		case T_READONLY: make_readonly(op->a); break;
		case T_MASK: mask(op->a); break;
		default: break;
		}
	}
	if (p->rootfs && (p->flags & F_ROOT_READONLY)) {
		if (mount("", "/", "", MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"), NULL) < 0)
			fail(errno, "remount / read-only");
	}
}
