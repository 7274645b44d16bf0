/* ember-vsock: one small static tool for both ends of ember's virtio-vsock device.
 *
 * In the guest it speaks AF_VSOCK. On the host it speaks Firecracker's protocol on the
 * device's Unix socket (uds_path): connect, write "CONNECT <port>\n", read "OK <host_port>\n"
 * once the guest accepted, then the socket is the stream; a guest connect to CID 2 port P
 * reaches the Unix socket "<uds_path>_P". Static, so the busybox guest runs it as it is.
 * Built by `make build/ember-vsock`, installed as /bin/ember-vsock by rootfs/build-rootfs.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "run/fd_io.h"

#define BUF_SIZE (64 * 1024)
#define MAX_PING 100000

static const char *mode = "";
static char buf[BUF_SIZE];

static void usage(void)
{
	fputs("usage: ember-vsock MODE ARGS...\n"
	      "  listen [-n COUNT] PORT [CMD...]\n"
	      "      AF_VSOCK listener on any CID. Each connection, concurrently: echo until the\n"
	      "      peer shuts down its sending side, or run CMD with the connection as its\n"
	      "      stdin and stdout. -n: exit once COUNT connections were served.\n"
	      "  uds-listen [-n COUNT] PATH [CMD...]\n"
	      "      The same on a Unix socket at PATH (for guest connects: <uds_path>_PORT).\n"
	      "  connect [-r TRIES] CID PORT\n"
	      "      stdin and stdout over an AF_VSOCK connection; at stdin EOF the write side\n"
	      "      shuts down, and output goes on until the peer closes. -r: up to TRIES\n"
	      "      connects, 100 ms apart, until one is accepted (stdin is read only then).\n"
	      "  uds-connect [-r TRIES] PATH PORT\n"
	      "      The same through ember's Unix socket PATH (CONNECT PORT, then OK).\n"
	      "  ping CID PORT COUNT, uds-ping PATH PORT COUNT\n"
	      "      COUNT times: connect (CONNECT, OK), send a byte, read its echo, close.\n"
	      "      Prints a PING line: median/min/max of connect and round trip in us.\n"
	      "  stream CID PORT MIB, uds-stream PATH PORT MIB\n"
	      "      Send MIB MiB, shut down the write side, read to EOF (against a sink or a\n"
	      "      source, not an echo). Prints a STREAM line: bytes, seconds, MiB/s.\n"
	      "  sink          read stdin to EOF, print the byte count\n"
	      "  source MIB    write MIB MiB of zeros to stdout\n"
	      "Exit status: 0 on success (and a clean close by the peer), 1 on errors, 2: usage.\n",
	      stderr);
	exit(2);
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ember-vsock %s: ", mode);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static unsigned long parse_num(const char *s, const char *what, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		die("%s must be a number from 0 to %lu, not '%s'", what, max, s);
	return v;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static ssize_t read_some(int fd, void *p, size_t len)
{
	ssize_t n;

	do
		n = read(fd, p, len);
	while (n < 0 && errno == EINTR);
	return n;
}

/* --- where a connection goes: an AF_VSOCK address, or ember's Unix socket plus a port --- */

struct target {
	const char *path; /* Unix socket (Firecracker's protocol), or NULL: AF_VSOCK */
	unsigned cid, port;
};

/* Why the last connect failed, for the caller to die with or to try again. */
static char connect_err[256];

__attribute__((format(printf, 2, 3))) static int connect_failed(int fd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(connect_err, sizeof(connect_err), fmt, ap);
	va_end(ap);
	if (fd >= 0)
		close(fd);
	return -1;
}

static int vsock_connect(unsigned cid, unsigned port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket(AF_VSOCK): %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return connect_failed(fd, "connect to vsock %u:%u: %s", cid, port, strerror(errno));
	return fd;
}

static void unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		die("socket path too long (%zu bytes at most): %s", sizeof(sa->sun_path) - 1, path);
	strcpy(sa->sun_path, path);
}

/* Firecracker's handshake: "CONNECT <port>\n", answered "OK <host_port>\n" once the guest
 * accepted. Read byte by byte: the stream itself follows the line. */
static int uds_connect(const char *path, unsigned port)
{
	struct sockaddr_un sa;
	char line[64];
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket(AF_UNIX): %s", strerror(errno));
	unix_addr(path, &sa);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return connect_failed(fd, "connect to %s: %s", path, strerror(errno));
	len = (size_t)snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (write_all(fd, line, len) < 0)
		return connect_failed(fd, "%s: sending CONNECT %u: %s", path, port,
				      strerror(errno));
	for (len = 0;;) {
		ssize_t n = read_some(fd, line + len, 1);

		if (n < 0)
			return connect_failed(fd, "%s: waiting for OK to CONNECT %u: %s", path,
					      port, strerror(errno));
		if (n == 0)
			return connect_failed(fd,
					      "%s: closed without OK to CONNECT %u (nothing "
					      "listening on guest port %u?)",
					      path, port, port);
		if (line[len] == '\n')
			break;
		if (++len == sizeof(line) - 1)
			die("%s: answer to CONNECT %u too long", path, port);
	}
	line[len] = 0;
	if (strncmp(line, "OK ", 3))
		die("%s: CONNECT %u answered '%s', not OK", path, port, line);
	return fd;
}

/* Up to TRIES attempts, 100 ms apart, each failure but the last reported on stderr as "try
 * N of TRIES failed" (a client's answer to a guest too busy to answer within the 2 s that
 * Firecracker and Linux allow a connect); dies after the last. */
static int target_connect(const struct target *t, unsigned long tries)
{
	for (unsigned long i = 1;; i++) {
		int fd = t->path ? uds_connect(t->path, t->port) : vsock_connect(t->cid, t->port);

		if (fd >= 0)
			return fd;
		if (i >= tries)
			die("%s", connect_err);
		fprintf(stderr, "ember-vsock %s: try %lu of %lu failed: %s\n", mode, i, tries,
			connect_err);
		usleep(100 * 1000);
	}
}

/* --- joining stdin and stdout to a connection --- */

/* stdin to the socket in a child (then a half-close), the socket to stdout here: blocking
 * I/O both ways, and neither direction waits on the other. Returns the exit status. */
static int join_stdio(int sock)
{
	int rc = 0, status;
	ssize_t n;
	pid_t child;

	signal(SIGPIPE, SIG_IGN);
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		int e = 0;

		while ((n = read_some(0, buf, sizeof(buf))) > 0)
			if ((e = write_all(sock, buf, (size_t)n)) < 0)
				break;
		if (n < 0)
			fprintf(stderr, "ember-vsock %s: reading stdin: %s\n", mode,
				strerror(errno));
		else if (e < 0)
			fprintf(stderr, "ember-vsock %s: sending: %s\n", mode, strerror(-e));
		else if (shutdown(sock, SHUT_WR) < 0 && errno != ENOTCONN)
			fprintf(stderr, "ember-vsock %s: shutdown: %s\n", mode, strerror(errno));
		_exit(n < 0 || e < 0);
	}
	while ((n = read_some(sock, buf, sizeof(buf))) > 0) {
		int e = write_all(1, buf, (size_t)n);

		if (e < 0) {
			fprintf(stderr, "ember-vsock %s: writing stdout: %s\n", mode, strerror(-e));
			rc = 1;
			break;
		}
	}
	if (n < 0) {
		fprintf(stderr, "ember-vsock %s: receiving: %s\n", mode, strerror(errno));
		rc = 1;
	}
	/* The peer closed: what stdin still holds has nowhere to go. */
	if (waitpid(child, &status, WNOHANG) == child) {
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			rc = 1;
	} else {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	close(sock);
	return rc;
}

/* --- listeners --- */

static void serve_conn(int conn, char **cmd)
{
	ssize_t n;

	if (cmd) {
		if (dup2(conn, 0) < 0 || dup2(conn, 1) < 0)
			die("dup2: %s", strerror(errno));
		close(conn);
		execvp(cmd[0], cmd);
		die("exec %s: %s", cmd[0], strerror(errno));
	}
	while ((n = read_some(conn, buf, sizeof(buf))) > 0) {
		int e = write_all(conn, buf, (size_t)n);

		if (e < 0)
			die("echo: %s", strerror(-e));
	}
	if (n < 0)
		die("receiving: %s", strerror(errno));
	/* The peer will send no more: neither will we. */
	shutdown(conn, SHUT_WR);
	close(conn);
	exit(0);
}

/* Accepts COUNT connections (0: forever), each served in a child of its own. */
static int serve(int lfd, const char *name, unsigned long count, char **cmd)
{
	unsigned long served = 0;

	if (listen(lfd, 128) < 0)
		die("listen on %s: %s", name, strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "listening on %s\n", name);
	while (!count || served < count) {
		int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept on %s: %s", name, strerror(errno));
		}
		pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			close(lfd);
			signal(SIGPIPE, SIG_DFL);
			serve_conn(conn, cmd);
		}
		close(conn);
		served++;
	}
	close(lfd);
	while (wait(NULL) > 0)
		;
	return 0;
}

static int vsock_listener(unsigned port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
				  .svm_cid = VMADDR_CID_ANY,
				  .svm_port = port };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket(AF_VSOCK): %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind to vsock port %u: %s", port, strerror(errno));
	return fd;
}

static int uds_listener(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket(AF_UNIX): %s", strerror(errno));
	unix_addr(path, &sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind to %s: %s", path, strerror(errno));
	return fd;
}

/* --- measurements --- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void stats(const char *name, uint64_t *v, unsigned long n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	printf(" %s_median_us=%llu %s_min_us=%llu %s_max_us=%llu", name,
	       (unsigned long long)v[(n - 1) / 2], name, (unsigned long long)v[0], name,
	       (unsigned long long)v[n - 1]);
}

static int ping(const struct target *t, unsigned long count)
{
	uint64_t *conn_us = calloc(count, sizeof(uint64_t));
	uint64_t *rtt_us = calloc(count, sizeof(uint64_t));

	if (!conn_us || !rtt_us)
		die("out of memory");
	for (unsigned long i = 0; i < count; i++) {
		uint64_t t0 = now_us(), t1, t2;
		int fd = target_connect(t, 1);
		char c = 'x';
		ssize_t n;

		t1 = now_us();
		int e = write_all(fd, &c, 1);

		if (e < 0)
			die("sending: %s", strerror(-e));
		n = read_some(fd, &c, 1);
		if (n <= 0)
			die("waiting for the echo: %s", n ? strerror(errno) : "closed by the peer");
		t2 = now_us();
		close(fd);
		conn_us[i] = t1 - t0;
		rtt_us[i] = t2 - t1;
	}
	printf("PING n=%lu", count);
	stats("connect", conn_us, count);
	stats("rtt", rtt_us, count);
	printf("\n");
	return 0;
}

/* Sends MIB MiB, half-closes, reads to EOF; timed from the connection being up. */
static int stream(const struct target *t, unsigned long mib)
{
	uint64_t sent = 0, recvd = 0, t0, t1;
	int fd = target_connect(t, 1);
	ssize_t n;
	double secs;

	t0 = now_us();
	memset(buf, 0xa5, sizeof(buf));
	for (unsigned long i = 0; i < mib * (1024 * 1024 / BUF_SIZE); i++) {
		int e = write_all(fd, buf, sizeof(buf));

		if (e < 0)
			die("sending after %llu bytes: %s", (unsigned long long)sent, strerror(-e));
		sent += sizeof(buf);
	}
	if (shutdown(fd, SHUT_WR) < 0)
		die("shutdown: %s", strerror(errno));
	while ((n = read_some(fd, buf, sizeof(buf))) > 0)
		recvd += (uint64_t)n;
	if (n < 0)
		die("receiving after %llu bytes: %s", (unsigned long long)recvd, strerror(errno));
	t1 = now_us();
	close(fd);
	secs = (double)(t1 - t0) / 1e6;
	printf("STREAM sent_bytes=%llu recv_bytes=%llu secs=%.3f MiBps=%.2f\n",
	       (unsigned long long)sent, (unsigned long long)recvd, secs,
	       (double)(sent > recvd ? sent : recvd) / (1024 * 1024) / (secs > 0 ? secs : 1e-6));
	return 0;
}

static int sink(void)
{
	uint64_t total = 0;
	ssize_t n;

	while ((n = read_some(0, buf, sizeof(buf))) > 0)
		total += (uint64_t)n;
	if (n < 0)
		die("reading stdin: %s", strerror(errno));
	printf("%llu\n", (unsigned long long)total);
	return 0;
}

static int source(unsigned long mib)
{
	for (unsigned long i = 0; i < mib * (1024 * 1024 / BUF_SIZE); i++) {
		int e = write_all(1, buf, sizeof(buf));

		if (e < 0)
			die("writing stdout: %s", strerror(-e));
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct target t = { 0 };
	unsigned long count = 0, tries = 1;
	int uds;

	if (argc < 2)
		usage();
	mode = argv[1];
	argv += 2;
	argc -= 2;
	uds = !strncmp(mode, "uds-", 4);
	const char *m = uds ? mode + 4 : mode;

	if (!strcmp(m, "listen")) {
		if (argc >= 2 && !strcmp(argv[0], "-n")) {
			count = parse_num(argv[1], "COUNT", 1000000);
			argv += 2;
			argc -= 2;
		}
		if (argc < 1)
			usage();
		char **cmd = argc > 1 ? argv + 1 : NULL;

		if (uds)
			return serve(uds_listener(argv[0]), argv[0], count, cmd);
		return serve(vsock_listener(parse_num(argv[0], "PORT", UINT32_MAX)), argv[0], count,
			     cmd);
	}
	if (!uds && !strcmp(m, "sink") && argc == 0)
		return sink();
	if (!uds && !strcmp(m, "source") && argc == 1)
		return source(parse_num(argv[0], "MIB", 1UL << 20));

	/* The rest take a target: CID PORT, or PATH PORT; connect may try again. */
	if (!strcmp(m, "connect") && argc >= 2 && !strcmp(argv[0], "-r")) {
		tries = parse_num(argv[1], "TRIES", 100);
		if (!tries)
			usage();
		argv += 2;
		argc -= 2;
	}
	if (argc < 2)
		usage();
	if (uds)
		t.path = argv[0];
	else
		t.cid = parse_num(argv[0], "CID", UINT32_MAX);
	t.port = parse_num(argv[1], "PORT", UINT32_MAX);
	if (!strcmp(m, "connect") && argc == 2)
		return join_stdio(target_connect(&t, tries));
	if (!strcmp(m, "ping") && argc == 3) {
		count = parse_num(argv[2], "COUNT", MAX_PING);
		if (!count)
			usage();
		return ping(&t, count);
	}
	if (!strcmp(m, "stream") && argc == 3)
		return stream(&t, parse_num(argv[2], "MIB", 1UL << 20));
	usage();
}
