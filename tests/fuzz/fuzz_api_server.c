/* The API thread's connection handling (api/server.c) with its parser: ember's HTTP server on
 * its Unix socket, in its own thread under its own seccomp filter, and a client that sends the
 * input in chunks (the first byte sets their size; 64 of them at most) and reads what comes back,
 * then closes its end. This thread is the VMM thread: it routes the requests handed over (the
 * routes of a VM that is configuring). Requests, pipelining, bodies beyond the payload limit (1 KiB
 * here), "Expect: 100-continue", replies the client is slow to read: the server must answer
 * and close the connection within 10 s of the client's end, and never crash.
 *
 * Routes open what a body names: the target runs in the scratch root of fuzz_sandbox.h,
 * emptied after every input. The VM and the server live from one input to the next. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "api/api.h"
#include "core/metrics.h"
#include "fuzz.h"
#include "fuzz_sandbox.h"

#define SOCK_PATH   "/api.sock"
#define MAX_PAYLOAD 1024

static struct vm vm;
static struct api_ctx ctx = { .vm = &vm, .instance_id = "fuzz" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	enter_scratch_root(*argc, *argv);
	api_metrics_init();
	fuzz_quiet();
	builder_init(&vm, false);
	char err[ERR_LEN] = "";
	if (!api_server_start(&ctx, SOCK_PATH, MAX_PAYLOAD, err)) {
		fprintf(stderr, "fuzz_api_server: %s\n", err);
		abort();
	}
	return 0;
}

/* The VMM thread's turn (requests the server handed over), and the client reads what
 * arrived. False once the server closed the connection. */
static bool pump(int c, int wait_ms)
{
	/* Until either side has something: a request handed over, or bytes for the client. */
	struct pollfd fds[2] = { { .fd = c, .events = POLLIN },
				 { .fd = vm.m.loop.epoll_fd, .events = POLLIN } };
	poll(fds, 2, wait_ms);
	evloop_poll(&vm.m.loop, 0);
	char buf[4096];
	for (;;) {
		ssize_t r = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return false;
		if (r < 0)
			return true;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	size_t chunk = fin8(&f) * 4 + 1;
	/* At most 64 sends: an input of 16 KiB in 1-byte sends spent 16,000 round trips between
	 * the threads for what a few dozen cuts already show (the rate was 500 inputs/s). */
	if (chunk < (f.n + 63) / 64)
		chunk = (f.n + 63) / 64;
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = SOCK_PATH };
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)))
		die_errno("connect " SOCK_PATH);
	bool open = true;
	while (open && fin_more(&f)) {
		size_t got, sent = 0;
		const uint8_t *p = fin_bytes(&f, chunk, &got);
		while (open && sent < got) {
			ssize_t n = send(c, p + sent, got - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				open = false; /* the server closed: it had said why */
			open = pump(c, n > 0 ? 0 : 1) && open;
		}
	}
	shutdown(c, SHUT_WR);
	uint64_t deadline = now_ms() + 10000;
	while (open) {
		open = pump(c, 1);
		if (open && now_ms() > deadline) {
			fprintf(stderr, "fuzz_api_server: the connection is still open 10 s after "
					"the client's end\n");
			abort();
		}
	}
	close(c);
	/* What routes changed in the process stays in the VM; files and sinks go. */
	log_open("/null");
	metrics_open("/null");
	fuzz_quiet();
	empty_scratch_root(&SOCK_PATH[1]); /* the server's socket stays */
	return 0;
}
