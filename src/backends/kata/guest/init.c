/*
 * PID 1 of the kata guest (our initramfs; see KATA-CONTRACT "Interface 2").
 *
 *  1. mounts /proc /sys /dev /dev/pts /dev/shm /run /tmp /sys/fs/cgroup (cgroup2);
 *  2. loads the kernel modules named in /lib/modules/load.list (one path a line, already in
 *     dependency order: the image build resolved modules.dep) with finit_module;
 *  3. brings lo up;
 *  4. starts the agent, /usr/bin/node /agent/guest-agent.mjs, with TSSHIM_AGENT_SOCKET set (and
 *     NODE_OPTIONS when the kernel command line has it),
 *     stdout/stderr on the console;
 *  5. once the agent's unix socket accepts connections, listens on AF_VSOCK port `agent.port=`
 *     (kernel command line, default 1024) and relays every accepted connection to the agent's
 *     socket, both directions, half-close aware. Listening only then means a host that
 *     completes the hybrid-vsock CONNECT handshake talks to a ready agent;
 *  6. reaps every child (orphans re-parented to PID 1 included); when the agent exits, syncs
 *     and powers off. Fatal setup errors are printed on the console, then it powers off too
 *     (PID 1 exiting would only panic the kernel).
 *
 * One thread, one poll loop; SIGCHLD arrives through a signalfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT_SOCKET "/run/kata-agent.sock"
#define AGENT_NODE "/usr/bin/node"
#define AGENT_SCRIPT "/agent/guest-agent.mjs"
#define NATIVE_HELPER "/agent/tsshim-native-helper"
#define LOAD_LIST "/lib/modules/load.list"
#define DEFAULT_PORT 1024
#define MAX_CONNS 64
#define BUF_SIZE 65536
/* how long the agent may take to listen before init gives up (TCG boots are slow) */
#define AGENT_READY_TIMEOUT_MS 120000

static void say(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  /* the console is fd 2 once /dev/console is open; /dev/kmsg also lands in the host's log */
  ssize_t w = write(2, "tsshim-init: ", 13);
  w = write(2, line, n);
  (void)w;
}

static void power_off(void) {
  sync();
  reboot(RB_POWER_OFF);
  /* only reached if reboot failed: keep PID 1 alive rather than panic */
  for (;;) pause();
}

static void fatal(const char *fmt, ...) {
  char line[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  say("FATAL: %s; powering off", line);
  power_off();
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- setup ---------------------------------------------------------------------------- */

static void mount_one(const char *src, const char *target, const char *type, unsigned long flags, const char *data) {
  mkdir(target, 0755);
  if (mount(src, target, type, flags, data) < 0 && errno != EBUSY) fatal("mount %s on %s: %s", type, target, strerror(errno));
}

static void mount_all(void) {
  const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  mount_one("proc", "/proc", "proc", nse, NULL);
  mount_one("sysfs", "/sys", "sysfs", nse, NULL);
  mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666");
  mount_one("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_one("cgroup2", "/sys/fs/cgroup", "cgroup2", nse, NULL);
}

/* stdin/stdout/stderr on the console (the kernel opens it only if /dev/console is in the initramfs) */
static void open_console(void) {
  if (fcntl(2, F_GETFD) >= 0) return;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++)
    if (fd != i) dup2(fd, i);
  if (fd > 2) close(fd);
}

static void load_modules(void) {
  FILE *f = fopen(LOAD_LIST, "r");
  if (!f) {
    if (errno != ENOENT) say("cannot read %s: %s", LOAD_LIST, strerror(errno));
    return;
  }
  char path[512];
  while (fgets(path, sizeof path, f)) {
    path[strcspn(path, "\r\n")] = 0;
    if (!path[0] || path[0] == '#') continue;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fatal("module %s: %s", path, strerror(errno));
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) fatal("finit_module %s: %s", path, strerror(errno));
    close(fd);
  }
  fclose(f);
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    say("socket for lo: %s", strerror(errno));
    return;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) say("lo up: %s", strerror(errno));
  } else {
    say("lo flags: %s", strerror(errno));
  }
  close(s);
}

/* `agent.port=N` from the kernel command line */
static unsigned agent_port(void) {
  char buf[4096];
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return DEFAULT_PORT;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return DEFAULT_PORT;
  buf[n] = 0;
  for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
    if (strncmp(tok, "agent.port=", 11) == 0) {
      char *end;
      unsigned long p = strtoul(tok + 11, &end, 10);
      if (*end == 0 && p > 0 && p < 0xffffffffUL) return (unsigned)p;
      say("ignoring bad %s", tok);
    }
  }
  return DEFAULT_PORT;
}

static pid_t spawn_agent(const sigset_t *blocked) {
  pid_t pid = fork();
  if (pid < 0) fatal("fork: %s", strerror(errno));
  if (pid > 0) return pid;
  sigprocmask(SIG_UNBLOCK, blocked, NULL);
  setsid();
  char *argv[] = {AGENT_NODE, AGENT_SCRIPT, NULL};
  /* NODE_OPTIONS=... on the kernel command line reaches PID 1's environment: passed on, so
     Node's flags can be tuned per VM without rebuilding the image */
  static char node_options[1024];
  const char *opts = getenv("NODE_OPTIONS");
  snprintf(node_options, sizeof node_options, "NODE_OPTIONS=%s", opts ? opts : "");
  char *envp[] = {
      "TSSHIM_AGENT_SOCKET=" AGENT_SOCKET,
      "TSSHIM_NATIVE_HELPER=" NATIVE_HELPER,
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOME=/root",
      "TERM=linux",
      opts ? node_options : NULL,
      NULL,
  };
  execve(AGENT_NODE, argv, envp);
  say("exec %s: %s", AGENT_NODE, strerror(errno));
  _exit(127);
}

static int agent_connect(void) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strcpy(a.sun_path, AGENT_SOCKET);
  /* a unix stream connect completes at once or fails (EAGAIN: backlog full, retry later) */
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

static int vsock_listen(unsigned port) {
  int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) fatal("socket(AF_VSOCK): %s (is vmw_vsock_virtio_transport loaded?)", strerror(errno));
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) fatal("bind vsock port %u: %s", port, strerror(errno));
  if (listen(s, 64) < 0) fatal("listen vsock port %u: %s", port, strerror(errno));
  return s;
}

/* ---- relay ---------------------------------------------------------------------------- */

/* one direction of a connection: bytes read from `from`, not yet written to `to` */
struct half {
  char *buf;
  size_t len, off;
  int eof;      /* `from` reached end of stream */
  int shut;     /* shutdown(to, SHUT_WR) done */
};

struct conn {
  int fd[2]; /* 0: vsock side, 1: agent side */
  struct half dir[2]; /* dir[0]: vsock → agent, dir[1]: agent → vsock */
  int used;
};

static struct conn conns[MAX_CONNS];

static void conn_close(struct conn *c) {
  close(c->fd[0]);
  close(c->fd[1]);
  free(c->dir[0].buf);
  free(c->dir[1].buf);
  memset(c, 0, sizeof *c);
}

static int conn_add(int vsock_fd, int agent_fd) {
  for (int i = 0; i < MAX_CONNS; i++) {
    struct conn *c = &conns[i];
    if (c->used) continue;
    memset(c, 0, sizeof *c);
    c->dir[0].buf = malloc(BUF_SIZE);
    c->dir[1].buf = malloc(BUF_SIZE);
    if (!c->dir[0].buf || !c->dir[1].buf) {
      free(c->dir[0].buf);
      free(c->dir[1].buf);
      return -1;
    }
    c->fd[0] = vsock_fd;
    c->fd[1] = agent_fd;
    c->used = 1;
    return 0;
  }
  return -1;
}

/* Moves what it can in direction d; returns -1 when the connection is broken. */
static int pump(struct conn *c, int d) {
  struct half *h = &c->dir[d];
  int from = c->fd[d], to = c->fd[1 - d];
  for (;;) {
    if (h->off < h->len) {
      ssize_t w = send(to, h->buf + h->off, h->len - h->off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        return -1;
      }
      h->off += (size_t)w;
      continue;
    }
    h->off = h->len = 0;
    if (h->eof) {
      if (!h->shut) {
        shutdown(to, SHUT_WR);
        h->shut = 1;
      }
      return 0;
    }
    ssize_t r = recv(from, h->buf, BUF_SIZE, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) return 0;
      return -1;
    }
    if (r == 0) {
      h->eof = 1;
      continue;
    }
    h->len = (size_t)r;
  }
}

static void conn_events(struct conn *c, short ev[2]) {
  /* read side wanted while the buffer is empty and no EOF; write side while bytes wait */
  ev[0] = ev[1] = 0;
  for (int d = 0; d < 2; d++) {
    struct half *h = &c->dir[d];
    if (h->off < h->len) ev[1 - d] |= POLLOUT;
    else if (!h->eof) ev[d] |= POLLIN;
  }
}

/* ---- main loop ---------------------------------------------------------------------------- */

int main(void) {
  if (getpid() != 1) {
    fprintf(stderr, "tsshim-init: must run as PID 1\n");
    return 1;
  }
  mount_all();
  open_console();
  umask(022);
  /* which kernel booted, on the console even with `quiet` (the host's error messages quote it) */
  struct utsname u;
  if (uname(&u) == 0) say("%s %s %s", u.sysname, u.release, u.version);
  load_modules();
  loopback_up();
  unsigned port = agent_port();

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) fatal("signalfd: %s", strerror(errno));

  if (access(AGENT_SCRIPT, R_OK) < 0) fatal("no agent at %s: %s", AGENT_SCRIPT, strerror(errno));
  pid_t agent = spawn_agent(&chld);
  long long started = now_ms();
  int listen_fd = -1;

  struct pollfd pfd[2 + 2 * MAX_CONNS];
  struct conn *owner[2 + 2 * MAX_CONNS];
  for (;;) {
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    if (listen_fd >= 0) pfd[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
    int first_conn = n;
    for (int i = 0; i < MAX_CONNS; i++) {
      struct conn *c = &conns[i];
      if (!c->used) continue;
      short ev[2];
      conn_events(c, ev);
      for (int s = 0; s < 2; s++) {
        owner[n] = c;
        /* a side with nothing to do is left out (-1): its hang-up alone would spin the loop */
        pfd[n++] = (struct pollfd){.fd = ev[s] ? c->fd[s] : -1, .events = ev[s]};
      }
    }
    /* until the agent listens, look for its socket every 10 ms */
    int timeout = listen_fd < 0 ? 10 : -1;
    int r = poll(pfd, n, timeout);
    if (r < 0 && errno != EINTR) fatal("poll: %s", strerror(errno));

    if (listen_fd < 0) {
      int probe = agent_connect();
      if (probe >= 0) {
        close(probe);
        listen_fd = vsock_listen(port);
        say("agent ready after %lld ms, relaying vsock port %u to %s", now_ms() - started, port, AGENT_SOCKET);
      } else if (now_ms() - started > AGENT_READY_TIMEOUT_MS) {
        fatal("the agent did not listen on %s within %d ms", AGENT_SOCKET, AGENT_READY_TIMEOUT_MS);
      }
    }
    if (r <= 0) continue;

    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      int status;
      pid_t p;
      while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
        if (p == agent) {
          if (WIFEXITED(status)) say("agent exited with status %d; powering off", WEXITSTATUS(status));
          else say("agent killed by signal %d; powering off", WTERMSIG(status));
          power_off();
        }
      }
    }
    if (listen_fd >= 0 && first_conn == 2 && (pfd[1].revents & POLLIN)) {
      for (;;) {
        int v = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (v < 0) break;
        int a = agent_connect();
        if (a < 0) {
          say("relay: connect %s: %s", AGENT_SOCKET, strerror(errno));
          close(v);
          continue;
        }
        if (conn_add(v, a) < 0) {
          say("relay: too many connections");
          close(v);
          close(a);
        }
      }
    }
    for (int i = first_conn; i < n; i += 2) {
      struct conn *c = owner[i];
      if (!c->used) continue;
      short any = pfd[i].revents | pfd[i + 1].revents;
      if (!any) continue;
      if (pump(c, 0) < 0 || pump(c, 1) < 0) {
        conn_close(c);
        continue;
      }
      /* both directions ended and flushed */
      if (c->dir[0].shut && c->dir[1].shut) {
        conn_close(c);
        continue;
      }
      /* a reset or a dead socket: recv/send reported it above, or it cannot make progress */
      if (any & (POLLERR | POLLNVAL)) conn_close(c);
    }
  }
}
