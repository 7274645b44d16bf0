/* ember-agent: the guest side of ember-run. Listens on a vsock port; each connection carries
 * one request (run/agent_proto.h): the agent takes the host's entropy into the kernel's pool
 * and reseeds it, sets the clock to the host's wall-clock time, writes the files copied in,
 * runs the command with the connection's STDIN frames as its stdin, and sends its stdout,
 * stderr and exit status back. Every frame is checked before use.
 *
 *     ember-agent [--test-hostile] PORT
 *
 * rootfs/init starts it when the kernel command line holds ember.agent=PORT (in the guest's
 * per-run overlay root). --test-hostile (ember.agent.test=hostile) is for ember-run's tests
 * only: argv[0] of a request then names a way to break the protocol (see hostile()).
 * Static, built by `make build/ember-agent`, installed as /bin/ember-agent by
 * rootfs/build-rootfs.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/random.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "run/fd_io.h"
#include "run/agent_proto.h"

#define STDIN_PENDING_MAX (1 << 20) /* stop reading the host while this much waits */

static bool test_hostile;

struct session {
	int conn;
	struct agent_dec dec;
	struct agent_in_order order;
	struct agent_request req;
	uint8_t *req_copy; /* the REQUEST payload that req points into */
	int file_fd;
	char setup_err[512]; /* the first failure before START, sent as ERROR */
	pid_t pid;
	int in_w, out_r, err_r, pidfd;
	uint8_t *pend; /* stdin bytes not yet taken by the command */
	size_t pend_len, pend_off;
	bool stdin_eof, exited, ended;
	int status;
};

static uint8_t frame[AGENT_HDR_SIZE + AGENT_FRAME_MAX];

static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("ember-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int send_frame(int conn, uint32_t type, const void *data, uint32_t len)
{
	agent_hdr_put(frame, type, len);
	if (len)
		memcpy(frame + AGENT_HDR_SIZE, data, len);
	return write_all(conn, frame, AGENT_HDR_SIZE + len);
}

static void send_error(struct session *s, const char *msg)
{
	size_t n = strlen(msg);

	if (n > AGENT_ERROR_MAX)
		n = AGENT_ERROR_MAX;
	if (!n)
		msg = "error", n = 5;
	send_frame(s->conn, AGENT_ERROR, msg, (uint32_t)n);
}

static void setup_fail(struct session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->setup_err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->setup_err, sizeof(s->setup_err), fmt, ap);
	va_end(ap);
}

/* The host's entropy into the pool, credited, and the CRNG reseeded at once: without the
 * reseed, clones of one snapshot would draw the same bytes until the next timed reseed. */
static void take_entropy(struct session *s)
{
	union {
		struct rand_pool_info info;
		uint8_t raw[sizeof(struct rand_pool_info) + AGENT_ENTROPY_SIZE];
	} u;
	int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		setup_fail(s, "cannot open /dev/urandom: %s", strerror(errno));
		return;
	}
	u.info.entropy_count = AGENT_ENTROPY_SIZE * 8;
	u.info.buf_size = AGENT_ENTROPY_SIZE;
	memcpy(u.raw + sizeof(struct rand_pool_info), s->req.entropy, AGENT_ENTROPY_SIZE);
	if (ioctl(fd, RNDADDENTROPY, &u.info) < 0)
		setup_fail(s, "RNDADDENTROPY: %s", strerror(errno));
	else if (ioctl(fd, RNDRESEEDCRNG) < 0)
		setup_fail(s, "RNDRESEEDCRNG: %s", strerror(errno));
	close(fd);
}

static void set_clock(struct session *s)
{
	struct timespec ts = { .tv_sec = (time_t)s->req.realtime_sec,
			       .tv_nsec = (long)s->req.realtime_nsec };

	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		setup_fail(s, "cannot set the clock: %s", strerror(errno));
}

/* mkdir -p of path's parent directories. */
static int make_parents(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = 0;
		int r = mkdir(path, 0755);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

static void file_begin(struct session *s, const uint8_t *p, uint32_t len)
{
	struct agent_file f;

	s->file_fd = -1;
	if (agent_file_parse(p, len, &f, NULL, 0) || s->setup_err[0])
		return;
	int r = make_parents(f.path);
	if (r < 0) {
		setup_fail(s, "copy-in %s: cannot make its directory: %s", f.path, strerror(-r));
		return;
	}
	s->file_fd = open(f.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, f.mode);
	if (s->file_fd < 0 || fchmod(s->file_fd, f.mode) < 0) {
		setup_fail(s, "copy-in %s: %s", f.path, strerror(errno));
		return;
	}
	if (!s->order.file_left) {
		close(s->file_fd);
		s->file_fd = -1;
	}
}

static void file_data(struct session *s, const uint8_t *p, uint32_t len)
{
	if (s->file_fd < 0)
		return; /* a failed file: its bytes are dropped, the ERROR comes at START */
	int r = write_all(s->file_fd, p, len);
	if (r < 0)
		setup_fail(s, "copy-in: write: %s", strerror(-r));
	if (r < 0 || !s->order.file_left) {
		close(s->file_fd);
		s->file_fd = -1;
	}
}

__attribute__((noreturn)) static void child_exec(struct session *s, int in_r, int out_w, int err_w)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		_exit(126);
	const char *wd = s->req.workdir[0] ? s->req.workdir : "/";
	if (chdir(wd) < 0) {
		dprintf(2, "ember-agent: workdir %s: %s\n", wd, strerror(errno));
		_exit(126);
	}
	execvpe(s->req.argv[0], (char **)s->req.argv, (char **)s->req.envp);
	int e = errno;
	dprintf(2, "ember-agent: %s: %s\n", s->req.argv[0], strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

static int spawn(struct session *s)
{
	int in[2], out[2], err[2];

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		setup_fail(s, "pipe: %s", strerror(errno));
		return -1;
	}
	/* vfork: no copy of the agent's page tables (see main). The child only makes
	 * system calls before its exec; it writes nothing the agent reads (the pid goes into
	 * the session after the child is gone). */
	pid_t pid = vfork();
	if (pid == 0)
		child_exec(s, in[0], out[1], err[1]);
	if (pid < 0) {
		setup_fail(s, "fork: %s", strerror(errno));
		return -1;
	}
	s->pid = pid;
	close(in[0]), close(out[1]), close(err[1]);
	s->in_w = in[1], s->out_r = out[0], s->err_r = err[0];
	fcntl(s->in_w, F_SETFL, O_NONBLOCK);
	s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (s->pidfd < 0) {
		setup_fail(s, "pidfd_open: %s", strerror(errno));
		kill(s->pid, SIGKILL);
		return -1;
	}
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Hands pending stdin to the command as far as its pipe takes it. */
static void flush_stdin(struct session *s)
{
	while (s->in_w >= 0 && s->pend_off < s->pend_len) {
		ssize_t n = write(s->in_w, s->pend + s->pend_off, s->pend_len - s->pend_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) { /* the command closed its stdin: drop the rest */
			close_fd(&s->in_w);
			break;
		}
		s->pend_off += (size_t)n;
	}
	s->pend_off = s->pend_len = 0;
	if (s->stdin_eof)
		close_fd(&s->in_w);
}

static int queue_stdin(struct session *s, const uint8_t *p, uint32_t len)
{
	if (s->in_w < 0)
		return 0;
	if (s->pend_off) {
		memmove(s->pend, s->pend + s->pend_off, s->pend_len - s->pend_off);
		s->pend_len -= s->pend_off, s->pend_off = 0;
	}
	uint8_t *n = realloc(s->pend, s->pend_len + len);
	if (!n)
		return -ENOMEM;
	s->pend = n;
	memcpy(s->pend + s->pend_len, p, len);
	s->pend_len += len;
	flush_stdin(s);
	return 0;
}

static bool hostile(struct session *s);

static int on_frame(void *ctx, uint32_t type, const uint8_t *p, uint32_t len)
{
	struct session *s = ctx;
	char why[256];

	if (agent_in_step(&s->order, type, p, len, why, sizeof(why))) {
		say("%s", why);
		return -EPROTO;
	}
	switch (type) {
	case AGENT_REQUEST:
		s->req_copy = malloc(len);
		if (!s->req_copy)
			return -ENOMEM;
		memcpy(s->req_copy, p, len);
		if (agent_request_parse(s->req_copy, len, &s->req, why, sizeof(why))) {
			send_error(s, why);
			return -EPROTO;
		}
		if (test_hostile && hostile(s))
			return -ECANCELED;
		take_entropy(s);
		set_clock(s);
		break;
	case AGENT_FILE:
		file_begin(s, p, len);
		break;
	case AGENT_FILE_DATA:
		file_data(s, p, len);
		break;
	case AGENT_START:
		if (!s->setup_err[0])
			spawn(s);
		if (s->setup_err[0]) {
			send_error(s, s->setup_err);
			return -ECANCELED;
		}
		if (send_frame(s->conn, AGENT_STARTED, NULL, 0) < 0)
			return -EPIPE;
		break;
	case AGENT_STDIN:
		return queue_stdin(s, p, len);
	case AGENT_STDIN_EOF:
		s->stdin_eof = true;
		flush_stdin(s);
		break;
	}
	return 0;
}

/* Reads a pipe once: forwards what it holds as one frame; closes it at its end. */
static int forward(struct session *s, int *fd, uint32_t type)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	ssize_t n = read(*fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		close_fd(fd);
		return 0;
	}
	return send_frame(s->conn, type, buf, (uint32_t)n);
}

/* The command ended: whatever it left in its pipes goes out, processes it left behind in
 * its session are killed (the VM is thrown away after this request anyway), then EXIT. */
static void finish(struct session *s)
{
	kill(-s->pid, SIGKILL);
	int *fds[2] = { &s->out_r, &s->err_r };
	uint32_t types[2] = { AGENT_STDOUT, AGENT_STDERR };
	for (int i = 0; i < 2; i++) {
		if (*fds[i] < 0)
			continue;
		fcntl(*fds[i], F_SETFL, O_NONBLOCK);
		while (*fds[i] >= 0) {
			static uint8_t buf[AGENT_FRAME_MAX];
			ssize_t n = read(*fds[i], buf, sizeof(buf));
			if (n <= 0 || send_frame(s->conn, types[i], buf, (uint32_t)n) < 0)
				close_fd(fds[i]);
		}
	}
	uint8_t out[AGENT_HDR_SIZE + AGENT_EXIT_SIZE];
	int n = WIFSIGNALED(s->status)
			? agent_exit_encode(out, AGENT_EXIT_SIGNAL, WTERMSIG(s->status))
			: agent_exit_encode(out, AGENT_EXIT_CODE, WEXITSTATUS(s->status) & 0xff);
	write_all(s->conn, out, (size_t)n);
}

static void serve(int conn)
{
	static struct session ss;
	struct session *s = &ss;
	static uint8_t buf[AGENT_FRAME_MAX];
	char why[256];

	free(s->req_copy);
	free(s->pend);
	memset(s, 0, sizeof(*s));
	s->conn = conn;
	s->file_fd = s->in_w = s->out_r = s->err_r = s->pidfd = -1;
	s->pid = -1;
	agent_dec_init(&s->dec, AGENT_SIDE_AGENT);
	if (send_frame(conn, AGENT_READY, NULL, 0) < 0)
		return;
	for (;;) {
		struct pollfd p[5];
		int np = 0, i_conn = -1, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
		if (s->pend_len - s->pend_off < STDIN_PENDING_MAX)
			i_conn = np, p[np++] = (struct pollfd){ conn, POLLIN, 0 };
		if (s->in_w >= 0 && s->pend_len > s->pend_off)
			i_in = np, p[np++] = (struct pollfd){ s->in_w, POLLOUT, 0 };
		if (s->out_r >= 0)
			i_out = np, p[np++] = (struct pollfd){ s->out_r, POLLIN, 0 };
		if (s->err_r >= 0)
			i_err = np, p[np++] = (struct pollfd){ s->err_r, POLLIN, 0 };
		if (s->pidfd >= 0)
			i_pid = np, p[np++] = (struct pollfd){ s->pidfd, POLLIN, 0 };
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (i_conn >= 0 && p[i_conn].revents) {
			ssize_t n = read(conn, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break; /* the host went: nothing to answer to */
			int r = agent_dec_feed(&s->dec, buf, (size_t)n, on_frame, s, why,
					       sizeof(why));
			if (r == -EPROTO && why[0])
				say("%s", why);
			if (r < 0)
				break;
		}
		if (i_in >= 0 && p[i_in].revents)
			flush_stdin(s);
		if (i_out >= 0 && p[i_out].revents && forward(s, &s->out_r, AGENT_STDOUT) < 0)
			break;
		if (i_err >= 0 && p[i_err].revents && forward(s, &s->err_r, AGENT_STDERR) < 0)
			break;
		if (i_pid >= 0 && p[i_pid].revents) {
			if (waitpid(s->pid, &s->status, WNOHANG) == s->pid) {
				finish(s);
				s->ended = true;
				break;
			}
		}
	}
	if (s->pid > 0 && !s->ended) {
		kill(-s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	close_fd(&s->in_w), close_fd(&s->out_r), close_fd(&s->err_r), close_fd(&s->pidfd);
	close_fd(&s->file_fd);
}

/* --test-hostile: argv[0] of the request picks how the reply breaks the protocol; true when
 * it did (the connection then ends). */
static bool hostile(struct session *s)
{
	const char *how = s->req.argv[0];
	static uint8_t junk[AGENT_FRAME_MAX];
	uint8_t hdr[AGENT_HDR_SIZE];

	memset(junk, 'x', sizeof(junk));
	if (!strcmp(how, "lie-size")) { /* a frame far beyond the limit, then silence */
		send_frame(s->conn, AGENT_STARTED, NULL, 0);
		agent_hdr_put(hdr, AGENT_STDOUT, 0x40000000);
		write_all(s->conn, hdr, sizeof(hdr));
		write_all(s->conn, junk, 100);
		for (;;)
			pause();
	} else if (!strcmp(how, "truncated")) { /* a frame cut short by the end */
		send_frame(s->conn, AGENT_STARTED, NULL, 0);
		agent_hdr_put(hdr, AGENT_STDOUT, 1000);
		write_all(s->conn, hdr, sizeof(hdr));
		write_all(s->conn, junk, 10);
		return true;
	} else if (!strcmp(how, "endless")) { /* output that never ends */
		send_frame(s->conn, AGENT_STARTED, NULL, 0);
		while (send_frame(s->conn, AGENT_STDOUT, junk, sizeof(junk)) == 0)
			;
		return true;
	} else if (!strcmp(how, "stall")) { /* started, then nothing for ever */
		send_frame(s->conn, AGENT_STARTED, NULL, 0);
		for (;;)
			pause();
	} else if (!strcmp(how, "no-exit")) { /* output, then the end without a status */
		send_frame(s->conn, AGENT_STARTED, NULL, 0);
		send_frame(s->conn, AGENT_STDOUT, "partial\n", 8);
		return true;
	} else if (!strcmp(how, "garbage")) { /* a frame type nobody knows */
		send_frame(s->conn, AGENT_STARTED, NULL, 0);
		send_frame(s->conn, 0x4242, "??", 2);
		for (;;)
			pause();
	} else if (!strcmp(how, "after-exit")) { /* more after the exit status */
		uint8_t out[AGENT_HDR_SIZE + AGENT_EXIT_SIZE];
		send_frame(s->conn, AGENT_STARTED, NULL, 0);
		write_all(s->conn, out, (size_t)agent_exit_encode(out, AGENT_EXIT_CODE, 0));
		send_frame(s->conn, AGENT_STDOUT, "late\n", 5);
		for (;;)
			pause();
	}
	return false;
}

int main(int argc, char **argv)
{
	int a = 1;

	if (a < argc && !strcmp(argv[a], "--test-hostile"))
		test_hostile = true, a++;
	if (a + 1 != argc) {
		fputs("usage: ember-agent [--test-hostile] PORT\n", stderr);
		return 2;
	}
	char *end;
	unsigned long port = strtoul(argv[a], &end, 10);
	if (*end || end == argv[a] || port > UINT_MAX - 1) {
		say("bad port '%s'", argv[a]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK,
				    .svm_cid = VMADDR_CID_ANY,
				    .svm_port = (unsigned)port };
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 64) < 0) {
		say("vsock port %lu: %s", port, strerror(errno));
		return 1;
	}
	for (;;) {
		int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			say("accept: %s", strerror(errno));
			sleep(1);
			continue;
		}
		/* Served here, not in a child: a fork of the agent costs a guest that was just
		 * restored (every page it touches is new to it) more than the command's own.
		 * The VM serves one request; a connection the guest reset ends at once. */
		serve(conn);
		close(conn);
	}
}
