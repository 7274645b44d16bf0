/* The ember child of one run: a private directory for its sockets, config and log, the
 * process (killed with us: PR_SET_PDEATHSIG), the vsock connection to the guest, and the
 * teardown that leaves nothing behind. */
#include "run/run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t run_deadline_ms;
int run_sigfd = -1;
int run_signal;

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int run_signals_init(char *err)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Output to a reader that went away is an error of the write, not a death. */
	signal(SIGPIPE, SIG_IGN);
	run_sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (run_sigfd < 0)
		return fail(err, -errno, "signalfd: %s", strerror(errno));
	return 0;
}

void vm_path(const struct vm *vm, const char *name, char *path)
{
	snprintf(path, PATH_MAX, "%s/%s", vm->dir, name);
}

int write_file(const char *path, const char *data, char *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t len = strlen(data);

	if (fd < 0)
		return fail(err, -errno, "%s: %s", path, strerror(errno));
	ssize_t n = write(fd, data, len);
	int e = errno;
	close(fd);
	if (n != (ssize_t)len)
		return fail(err, -EIO, "%s: write: %s", path, n < 0 ? strerror(e) : "short");
	return 0;
}

int unix_addr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

int vm_init(struct vm *vm, char *err)
{
	const char *tmp = getenv("TMPDIR");

	memset(vm, 0, sizeof(*vm));
	vm->pid = -1;
	vm->pidfd = -1;
	/* Socket paths must fit sun_path: a long TMPDIR falls back to /tmp. */
	if (!tmp || !*tmp || strlen(tmp) > 60)
		tmp = "/tmp";
	snprintf(vm->dir, sizeof(vm->dir), "%s/ember-run.XXXXXX", tmp);
	if (!mkdtemp(vm->dir)) {
		int e = errno;
		vm->dir[0] = 0;
		return fail(err, -e, "cannot make a directory in %s: %s", tmp, strerror(e));
	}
	snprintf(vm->sockdir, sizeof(vm->sockdir), "%s", vm->dir);
	return 0;
}

int vm_spawn(struct vm *vm, char *const args[], char *err)
{
	return vm_spawn_prep(vm, args, NULL, NULL, err);
}

int vm_spawn_prep(struct vm *vm, char *const args[], int (*prep)(void *ctx), void *ctx, char *err)
{
	char log[PATH_MAX];
	/* The child's check that we are still there: getppid() reads 0 in a PID namespace of
	 * the child's own (--jail), a pidfd of ours works in any. */
	int parent = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (parent < 0)
		return fail(err, -errno, "pidfd_open: %s", strerror(errno));

	vm_path(vm, "ember.log", log);
	int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (lfd < 0) {
		close(parent);
		return fail(err, -errno, "%s: %s", log, strerror(errno));
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(lfd);
		close(parent);
		return fail(err, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		/* ember goes with us, however we end */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		struct pollfd gone = { parent, POLLIN, 0 };
		if (poll(&gone, 1, 0) != 0)
			_exit(127);
		close(parent);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int nul = open("/dev/null", O_RDONLY);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0)
			_exit(127);
		if (prep && prep(ctx) < 0)
			_exit(127); /* prep said why on stderr: the log */
		execv(args[0], args);
		dprintf(2, "ember-run: cannot run %s: %s\n", args[0], strerror(errno));
		_exit(127);
	}
	close(lfd);
	close(parent);
	vm->pid = pid;
	vm->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->pidfd < 0)
		return fail(err, -errno, "pidfd_open: %s", strerror(errno));
	return 0;
}

/* ember ended? Collects its status once. */
static bool ember_ended(struct vm *vm)
{
	if (vm->ended)
		return true;
	if (vm->pid > 0 && waitpid(vm->pid, &vm->status, WNOHANG) == vm->pid) {
		vm->ended = true;
		vm->pid = -1;
	}
	return vm->ended;
}

int vm_poll(struct vm *vm, int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		struct pollfd p[3] = { { fd, events, 0 },
				       { vm->pidfd, POLLIN, 0 },
				       { run_sigfd, POLLIN, 0 } };
		int timeout = -1;
		if (deadline_ms) {
			uint64_t now = now_ms();
			if (now >= deadline_ms)
				return 0;
			timeout = (int)(deadline_ms - now);
		}
		int n = poll(p, 3, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (p[2].revents) {
			struct signalfd_siginfo si;
			if (read(run_sigfd, &si, sizeof(si)) == sizeof(si))
				run_signal = (int)si.ssi_signo;
			return -EINTR;
		}
		if (p[0].revents)
			return 1;
		if (p[1].revents && ember_ended(vm))
			return -ECHILD;
		if (p[1].revents) /* readable before the status is there: let it settle */
			usleep(1000);
	}
}

int vm_wait_error(struct vm *vm, int r, const char *what, char *err)
{
	char tail[300];

	if (r == -EINTR)
		return fail(err, r, "interrupted (signal %d) while %s", run_signal, what);
	if (r == 0)
		return fail(err, -ETIMEDOUT, "timed out while %s", what);
	vm_log_tail(vm, tail, sizeof(tail));
	if (r == -ECHILD)
		return fail(err, r, "ember exited (status %d) while %s: %s",
			    WIFEXITED(vm->status) ? WEXITSTATUS(vm->status)
						  : 128 + WTERMSIG(vm->status),
			    what, tail);
	return fail(err, r, "%s: %s", what, strerror(-r));
}

int vm_wait_file(struct vm *vm, const char *name, uint64_t deadline_ms, char *err)
{
	char path[PATH_MAX];
	int r = 0;

	snprintf(path, sizeof(path), "%.3000s/%s", vm->sockdir, name);
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (in < 0)
		return fail(err, -errno, "inotify: %s", strerror(errno));
	if (inotify_add_watch(in, vm->sockdir, IN_CREATE | IN_MOVED_TO) < 0) {
		r = fail(err, -errno, "inotify on %s: %s", vm->sockdir, strerror(errno));
		goto out;
	}
	/* Looked at after the watch is in place: a file made in between is not missed. */
	while (access(path, F_OK) != 0) {
		r = vm_poll(vm, in, POLLIN, deadline_ms);
		if (r <= 0) {
			r = vm_wait_error(vm, r, "waiting for the VM", err);
			goto out;
		}
		char buf[4096];
		while (read(in, buf, sizeof(buf)) > 0)
			;
		r = 0;
	}
out:
	close(in);
	return r;
}

/* One attempt: 1 connected (fd in *out), 0 refused (retry), or a negative errno. */
static int connect_once(struct vm *vm, const char *path, unsigned port, uint64_t deadline_ms,
			int *out, char *err)
{
	struct sockaddr_un sa;
	char line[64];
	size_t have = 0;

	if (unix_addr(&sa, path))
		return fail(err, -ENAMETOOLONG, "%s: too long for a socket path", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		if (e == ECONNREFUSED || e == ENOENT || e == EAGAIN)
			return 0;
		return fail(err, -e, "connect to %s: %s", path, strerror(e));
	}
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return 0;
	}
	/* "OK <port>\n", read byte by byte: the agent's frames follow it. */
	while (have < sizeof(line) - 1) {
		int r = vm_poll(vm, fd, POLLIN, deadline_ms);
		if (r <= 0) {
			close(fd);
			return vm_wait_error(vm, r, "connecting to the guest agent", err);
		}
		ssize_t k = read(fd, line + have, 1);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0) { /* closed: nobody listens on the port yet */
			close(fd);
			return 0;
		}
		if (line[have++] == '\n')
			break;
	}
	line[have] = 0;
	if (strncmp(line, "OK ", 3) != 0 || line[have - 1] != '\n') {
		close(fd);
		return fail(err, -EPROTO, "the vsock socket answered '%.40s' to CONNECT", line);
	}
	*out = fd;
	return 1;
}

int vm_vsock_connect(struct vm *vm, const char *name, unsigned port, uint64_t deadline_ms,
		     char *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%.3000s/%s", vm->sockdir, name);
	for (;;) {
		int fd = -1;
		int r = connect_once(vm, path, port, deadline_ms, &fd, err);
		if (r < 0)
			return r;
		if (r == 1)
			return fd;
		/* Not listening yet (a cold boot): try again shortly. */
		if (deadline_ms && now_ms() >= deadline_ms)
			return fail(err, -ETIMEDOUT, "timed out connecting to the guest agent");
		if (ember_ended(vm))
			return vm_wait_error(vm, -ECHILD, "connecting to the guest agent", err);
		struct pollfd p = { run_sigfd, POLLIN, 0 };
		if (poll(&p, 1, 20) > 0)
			return vm_wait_error(vm, vm_poll(vm, -1, 0, deadline_ms),
					     "connecting to the guest agent", err);
	}
}

void vm_log_tail(struct vm *vm, char *buf, size_t len)
{
	char path[PATH_MAX];
	char raw[4096];

	buf[0] = 0;
	vm_path(vm, "ember.log", path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(raw) - 1 ? size - (off_t)sizeof(raw) + 1 : 0;
	ssize_t n = pread(fd, raw, sizeof(raw) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	raw[n] = 0;
	/* The last lines that fit, on one line, printable only. */
	while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r'))
		raw[--n] = 0;
	const char *start = n > (ssize_t)len - 1 ? raw + n - (len - 1) : raw;
	size_t i = 0;
	for (; *start && i < len - 1; start++)
		buf[i++] = (*start == '\n') ? '|' : (*start < ' ' || *start > '~') ? '?' : *start;
	buf[i] = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

void vm_destroy(struct vm *vm)
{
	if (vm->pid > 0 && !vm->ended) {
		kill(vm->pid, SIGKILL);
		while (waitpid(vm->pid, &vm->status, 0) < 0 && errno == EINTR)
			;
		vm->ended = true;
		vm->pid = -1;
	}
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	if (vm->cgroup[0])
		rmdir(vm->cgroup); /* empty now: its one process was ember */
	vm->cgroup[0] = 0;
	if (vm->dir[0])
		nftw(vm->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	vm->dir[0] = 0;
}
