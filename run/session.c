/* One request to the guest agent on a connected vsock socket: the request (argv, env,
 * workdir, fresh entropy, the wall-clock time), the files copied in, then this process's
 * stdin as STDIN frames while the agent's STDOUT and STDERR frames go to our stdout and
 * stderr (or are kept for --json), until its EXIT. The agent is the guest: each frame is
 * checked (run/agent_proto.c), its order too, and the run ends with an error at the first
 * that is wrong, at the deadline, or when ember ends. */
#include "run/fd_io.h"
#include "run/run.h"
#include "run/agent_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OUT_LOW (256 * 1024) /* refill the outgoing buffer below this */
#define DONE	1	     /* the callback's "stop here": EXIT came */

struct sess {
	int conn;
	struct vm *vm;
	const struct run_opts *o;
	struct run_result *res;
	struct agent_dec dec;
	struct agent_out_order order;
	uint8_t *obuf; /* frames not yet written to the agent */
	size_t olen, ooff, ocap;
	bool request_sent, start_sent, stdin_open, conn_wr_closed, stdout_gone, stderr_gone;
	bool retry, got_output;
	uint64_t next_ping;
	unsigned next_file;
	int file_fd;
	uint64_t file_left;
	double t_sent;
	char why[256];
};

static uint8_t frame[AGENT_HDR_SIZE + AGENT_FRAME_MAX];

static int set_err(struct run_result *res, int code, const char *fmt, ...)
{
	va_list ap;

	if (res->error[0])
		return -1;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
	res->exit_code = code;
	return -1;
}

static int queue(struct sess *s, const void *p, size_t n)
{
	if (s->ooff && s->ooff == s->olen)
		s->ooff = s->olen = 0;
	if (s->olen + n > s->ocap) {
		size_t cap = (s->olen + n) * 2;
		uint8_t *b = realloc(s->obuf, cap);
		if (!b)
			return set_err(s->res, RUN_FAILED, "out of memory");
		s->obuf = b, s->ocap = cap;
	}
	memcpy(s->obuf + s->olen, p, n);
	s->olen += n;
	return 0;
}

static int queue_frame(struct sess *s, uint32_t type, const void *p, uint32_t len)
{
	agent_hdr_put(frame, type, len);
	if (len)
		memcpy(frame + AGENT_HDR_SIZE, p, len);
	return queue(s, frame, AGENT_HDR_SIZE + len);
}

/* The environment: a PATH and HOME, then --env KEY=VALUE (a later one wins; KEY alone takes
 * this process's value). */
static unsigned build_env(const struct run_opts *o, const char **envp, char **own)
{
	unsigned n = 0, nown = 0;
	const char *base[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			       "HOME=/root" };

	for (unsigned i = 0; i < 2; i++)
		envp[n++] = base[i];
	for (unsigned i = 0; i < o->nenv && n < AGENT_ENVC_MAX; i++) {
		const char *e = o->env[i];
		const char *eq = strchr(e, '=');
		if (!eq) {
			const char *v = getenv(e);
			if (!v || asprintf(&own[nown], "%s=%s", e, v) < 0)
				continue;
			e = own[nown++];
			eq = strchr(e, '=');
		}
		size_t klen = (size_t)(eq - e) + 1;
		unsigned j = 0;
		while (j < n && strncmp(envp[j], e, klen))
			j++;
		envp[j] = e;
		if (j == n)
			n++;
	}
	return n;
}

static int queue_request(struct sess *s)
{
	static struct agent_request r;
	char *own[AGENT_ENVC_MAX] = { 0 };
	struct timespec now;

	memset(&r, 0, sizeof(r));
	r.workdir = s->o->workdir;
	r.argc = (uint32_t)s->o->argc;
	for (int i = 0; i < s->o->argc; i++)
		r.argv[i] = s->o->argv[i];
	r.envc = build_env(s->o, r.envp, own);
	if (getrandom(r.entropy, sizeof(r.entropy), 0) != sizeof(r.entropy))
		return set_err(s->res, RUN_FAILED, "getrandom: %s", strerror(errno));
	clock_gettime(CLOCK_REALTIME, &now);
	r.realtime_sec = now.tv_sec;
	r.realtime_nsec = (uint32_t)now.tv_nsec;
	int n = agent_request_encode(frame, &r);
	for (unsigned i = 0; i < AGENT_ENVC_MAX; i++)
		free(own[i]);
	if (n < 0)
		return set_err(s->res, RUN_FAILED,
			       "the command does not fit a request (at most %u arguments, %u "
			       "variables, %u bytes each, %u in all)",
			       AGENT_ARGC_MAX, AGENT_ENVC_MAX, AGENT_STR_MAX, AGENT_FRAME_MAX);
	s->request_sent = true;
	return queue(s, frame, (size_t)n);
}

/* Refills the outgoing buffer: the request, the files, START. */
static int refill(struct sess *s)
{
	if (!s->request_sent && queue_request(s))
		return -1;
	while (!s->start_sent && s->olen - s->ooff < OUT_LOW) {
		if (s->file_fd < 0 && s->next_file < s->o->ncopies) {
			const struct copy_in *c = &s->o->copies[s->next_file++];
			struct stat st;
			s->file_fd = open(c->host, O_RDONLY | O_CLOEXEC);
			if (s->file_fd < 0 || fstat(s->file_fd, &st) < 0 || !S_ISREG(st.st_mode))
				return set_err(s->res, RUN_FAILED, "--copy-in %s: %s", c->host,
					       s->file_fd < 0 ? strerror(errno) : "not a file");
			int n = agent_file_encode(frame, (uint64_t)st.st_size, st.st_mode & 07777,
						  c->guest);
			if (n < 0)
				return set_err(s->res, RUN_FAILED,
					       "--copy-in %s:%s: the guest path must be absolute "
					       "and the file at most %llu bytes",
					       c->host, c->guest, AGENT_FILE_SIZE_MAX);
			s->file_left = (uint64_t)st.st_size;
			if (queue(s, frame, (size_t)n))
				return -1;
		}
		if (s->file_fd >= 0) {
			static uint8_t buf[AGENT_FRAME_MAX];
			size_t want = s->file_left < sizeof(buf) ? s->file_left : sizeof(buf);
			ssize_t n = want ? read(s->file_fd, buf, want) : 0;
			if (n < 0 || (want && n == 0))
				return set_err(s->res, RUN_FAILED, "--copy-in: %s",
					       n < 0 ? strerror(errno) : "the file shrank");
			if (n && queue_frame(s, AGENT_FILE_DATA, buf, (uint32_t)n))
				return -1;
			s->file_left -= (uint64_t)n;
			if (!s->file_left) {
				close(s->file_fd);
				s->file_fd = -1;
			}
			continue;
		}
		if (queue_frame(s, AGENT_START, NULL, 0))
			return -1;
		s->start_sent = true;
	}
	return 0;
}

static void write_out(int fd, bool *gone, const uint8_t *p, size_t n)
{
	/* Our reader went: the run goes on, its output is dropped. */
	if (!*gone && write_all(fd, p, n))
		*gone = true;
}

static int keep(struct sess *s, char **buf, size_t *len, const uint8_t *p, uint32_t n)
{
	struct run_result *res = s->res;

	if (res->out_len + res->err_len + n > s->o->max_output)
		return set_err(res, RUN_FAILED,
			       "the command's output passed %zu bytes (--max-output); the VM was "
			       "killed",
			       s->o->max_output);
	char *b = realloc(*buf, *len + n + 1);
	if (!b)
		return set_err(res, RUN_FAILED, "out of memory for the output");
	memcpy(b + *len, p, n);
	*len += n;
	b[*len] = 0;
	*buf = b;
	return 0;
}

/* Text from the guest for our messages: printable ASCII only. */
static void sanitize(char *dst, size_t cap, const uint8_t *p, uint32_t n)
{
	size_t i = 0;

	for (uint32_t k = 0; k < n && i + 1 < cap; k++)
		dst[i++] = (p[k] >= ' ' && p[k] <= '~') ? (char)p[k] : '?';
	dst[i] = 0;
}

static int on_frame(void *ctx, uint32_t type, const uint8_t *p, uint32_t len)
{
	struct sess *s = ctx;
	struct run_result *res = s->res;
	struct agent_exit e;
	char msg[AGENT_ERROR_MAX + 1];

	if (agent_out_step(&s->order, type, p, len, s->why, sizeof(s->why)))
		return set_err(res, RUN_FAILED, "the guest agent broke the protocol: %s", s->why);
	switch (type) {
	case AGENT_STARTED:
		res->started = true;
		break;
	case AGENT_STDOUT:
		s->got_output = true;
		if (s->o->json)
			return keep(s, &res->out, &res->out_len, p, len);
		write_out(1, &s->stdout_gone, p, len);
		break;
	case AGENT_STDERR:
		s->got_output = true;
		if (s->o->json)
			return keep(s, &res->errout, &res->err_len, p, len);
		write_out(2, &s->stderr_gone, p, len);
		break;
	case AGENT_ERROR:
		sanitize(msg, sizeof(msg), p, len);
		return set_err(res, RUN_FAILED, "the guest agent could not run the command: %s",
			       msg);
	case AGENT_EXIT:
		agent_exit_parse(p, len, &e, NULL, 0); /* checked by agent_out_step */
		if (e.how == AGENT_EXIT_SIGNAL)
			res->signal = (int)e.value, res->exit_code = 128 + (int)e.value;
		else
			res->exit_code = (int)e.value;
		return -DONE; /* anything after the exit status is not read */
	}
	return 0;
}

static int read_agent(struct sess *s)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	ssize_t n = read(s->conn, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0 && !s->res->started && !s->got_output) {
		s->retry = true; /* a connection the guest reset: nothing ran, start over */
		return -1;
	}
	if (n <= 0) {
		char tail[200];
		vm_log_tail(s->vm, tail, sizeof(tail));
		return set_err(s->res, RUN_FAILED,
			       "the guest agent closed the connection%s before the exit status%s "
			       "(console: %s)",
			       agent_dec_idle(&s->dec) ? "" : " inside a frame",
			       n < 0 ? " (a read error)" : "", tail);
	}
	s->why[0] = 0;
	int r = agent_dec_feed(&s->dec, buf, (size_t)n, on_frame, s, s->why, sizeof(s->why));
	if (r == -DONE)
		return DONE;
	if (r == -EPROTO && s->why[0])
		return set_err(s->res, RUN_FAILED, "the guest agent broke the protocol: %s",
			       s->why);
	return r < 0 ? -1 : 0;
}

static int read_stdin(struct sess *s)
{
	static uint8_t buf[AGENT_FRAME_MAX];
	ssize_t n = read(0, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		s->stdin_open = false; /* STDIN_EOF goes out next */
		return 0;
	}
	return queue_frame(s, AGENT_STDIN, buf, (uint32_t)n);
}

static int write_agent(struct sess *s)
{
	ssize_t n = send(s->conn, s->obuf + s->ooff, s->olen - s->ooff, MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		/* The agent stopped reading (it failed, or it is done with stdin): what it
		 * says next tells; our stdin is not forwarded any more. */
		s->conn_wr_closed = true;
		s->stdin_open = false;
		s->olen = s->ooff = 0;
		return 0;
	}
	s->ooff += (size_t)n;
	return 0;
}

/* 0 once READY came, 1 when the connection ended before it, or a negative errno. */
static int wait_ready(struct vm *vm, int conn, uint64_t deadline_ms, char *err)
{
	uint8_t hdr[AGENT_HDR_SIZE];
	size_t have = 0;

	static const uint8_t ping[AGENT_HDR_SIZE] = { AGENT_PING };
	uint64_t next_ping = now_ms() + 10;

	while (have < sizeof(hdr)) {
		uint64_t until = deadline_ms && deadline_ms < next_ping ? deadline_ms : next_ping;
		int r = vm_poll(vm, conn, POLLIN, until);
		if (r == 0 && until == next_ping) {
			/* A reset connection answers a packet with its end (agent_proto.h). */
			if (send(conn, ping, sizeof(ping), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
			    errno != EAGAIN)
				return 1;
			next_ping = now_ms() + 20;
			continue;
		}
		if (r <= 0)
			return vm_wait_error(vm, r, "waiting for the guest agent", err);
		ssize_t n = read(conn, hdr + have, sizeof(hdr) - have);
		if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
			return 1;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(err, ERR_MAX, "reading from the guest agent: %s", strerror(errno));
			return -errno;
		}
		have += (size_t)n;
	}
	struct agent_dec d;
	struct agent_out_order order = { 0 };
	char why[200];
	agent_dec_init(&d, AGENT_SIDE_HOST);
	uint32_t type = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	uint32_t len = hdr[4] | hdr[5] << 8 | hdr[6] << 16 | (uint32_t)hdr[7] << 24;
	if (agent_frame_check(AGENT_SIDE_HOST, type, len, why, sizeof(why)) ||
	    agent_out_step(&order, type, NULL, len, why, sizeof(why))) {
		snprintf(err, ERR_MAX, "the guest agent broke the protocol: %s", why);
		return -EPROTO;
	}
	return 0;
}

/* A restored guest's vsock driver resets the connections it has when it handles the
 * restore's TRANSPORT_RESET event, and tells the host nothing: a connection made just before
 * that never gets READY. wait_ready's pings make the guest end it; an attempt that hears
 * nothing at all for a while (longer each time: an emulated guest is slow) connects again
 * too. The agent drops a connection whose READY went nowhere. */
unsigned run_connects;

int session_connect(struct vm *vm, unsigned port, uint64_t deadline_ms, char *err)
{
	uint64_t wait = 2000;

	for (;;) {
		int conn = vm_vsock_connect(vm, "v.sock", port, deadline_ms, err);
		if (conn < 0)
			return conn;
		run_connects++;
		uint64_t until = now_ms() + wait;
		int r = wait_ready(vm, conn,
				   deadline_ms && deadline_ms < until ? deadline_ms : until, err);
		if (r == 0)
			return conn;
		close(conn);
		if (r == -ETIMEDOUT && (!deadline_ms || now_ms() < deadline_ms)) {
			wait = wait < 16000 ? wait * 2 : wait;
			continue;
		}
		if (r < 0)
			return r;
	}
}

int session_run(struct vm *vm, int conn, const struct run_opts *o, struct run_result *res)
{
	static struct sess ss;
	struct sess *s = &ss;
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->conn = conn, s->vm = vm, s->o = o, s->res = res;
	s->file_fd = -1;
	/* A terminal or nothing at all as stdin: the command gets an empty one. */
	s->stdin_open = fstat(0, &st) == 0 && !isatty(0);
	agent_dec_init(&s->dec, AGENT_SIDE_HOST);
	s->order.phase = 1; /* READY came in session_connect */
	fcntl(conn, F_SETFL, fcntl(conn, F_GETFL) | O_NONBLOCK);
	int stdin_flags = s->stdin_open ? fcntl(0, F_GETFL) : -1;
	if (stdin_flags >= 0)
		fcntl(0, F_SETFL, stdin_flags | O_NONBLOCK);
	bool eof_queued = false;
	int result = -1;
	s->t_sent = now_s();
	s->next_ping = now_ms() + 20;
	for (;;) {
		if (refill(s))
			break;
		if (s->start_sent && !s->stdin_open && !eof_queued && !s->conn_wr_closed) {
			eof_queued = true;
			if (queue_frame(s, AGENT_STDIN_EOF, NULL, 0))
				break;
		}
		/* PING: a reset connection answers with its end (see agent_proto.h). */
		uint64_t now = now_ms();
		if (now >= s->next_ping && !s->conn_wr_closed) {
			if (queue_frame(s, AGENT_PING, NULL, 0))
				break;
			s->next_ping = now + (res->started ? 1000 : 20);
		}
		bool want_out = s->olen > s->ooff && !s->conn_wr_closed;
		/* Our stdin only once the command runs: before, the run may start over. */
		bool want_in = res->started && s->stdin_open && s->olen - s->ooff < OUT_LOW;
		struct pollfd p[4] = {
			{ conn, (short)(POLLIN | (want_out ? POLLOUT : 0)), 0 },
			{ want_in ? 0 : -1, POLLIN, 0 },
			{ vm->pidfd, POLLIN, 0 },
			{ run_sigfd, POLLIN, 0 },
		};
		int timeout = s->conn_wr_closed ? -1 : (int)(s->next_ping - now);
		if (run_deadline_ms) {
			if (now >= run_deadline_ms) {
				res->timed_out = true;
				set_err(res, RUN_TIMEOUT, "timed out after %g s; the VM was killed",
					o->timeout_s);
				break;
			}
			if (run_deadline_ms - now < (uint64_t)timeout)
				timeout = (int)(run_deadline_ms - now);
		}
		int n = poll(p, 4, timeout);
		if (n < 0 && errno != EINTR) {
			set_err(res, RUN_FAILED, "poll: %s", strerror(errno));
			break;
		}
		if (n <= 0)
			continue;
		if (p[3].revents) {
			struct signalfd_siginfo si;
			if (read(run_sigfd, &si, sizeof(si)) == sizeof(si))
				run_signal = (int)si.ssi_signo;
			set_err(res, 128 + run_signal,
				"interrupted by signal %d; the VM was killed", run_signal);
			break;
		}
		if (p[0].revents & POLLOUT)
			write_agent(s);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int r = read_agent(s);
			if (r == DONE) {
				result = 0;
				break;
			}
			if (r < 0)
				break;
		}
		if (p[1].revents && read_stdin(s))
			break;
		if (p[2].revents) {
			char tail[300];
			vm_log_tail(vm, tail, sizeof(tail));
			set_err(res, RUN_FAILED, "ember exited while the command ran: %s", tail);
			break;
		}
	}
	if (s->retry)
		result = 1;
	res->t_command = now_s() - s->t_sent;
	if (stdin_flags >= 0)
		fcntl(0, F_SETFL, stdin_flags);
	if (s->file_fd >= 0)
		close(s->file_fd);
	free(s->obuf);
	return result;
}
