/* virtio-vsock: the guest's packets and the host side's Unix sockets at once. A driver script
 * (fuzz_dev.h) works the rings; HOST plays the host's processes: connect to uds_path and send
 * bytes (the "CONNECT <port>\n" line, then data), shut down or close, read what arrived, or
 * listen at uds_path_<port> for the guest's connections. Guest CID 3. */
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio/vsock.h"
#include "fuzz_dev.h"

#define CLIENTS	  4
#define LISTENERS 4

static char dir[64], uds[96];
static int client[CLIENTS], listener[LISTENERS];
static char listener_path[LISTENERS][128];

static void set_addr(struct sockaddr_un *sa, const char *path)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
}

static int free_slot(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] < 0)
			return (int)i;
	return -1;
}

static void host(struct fuzz_dev *s, struct fin *f)
{
	(void)s;
	uint8_t op = fin8(f);
	unsigned k = (op >> 3) % CLIENTS;
	struct sockaddr_un sa;
	char buf[4096];
	switch (op % 6) {
	case 0: { /* a host process connects to the device's listener */
		int i = free_slot(client, CLIENTS);
		if (i < 0)
			break;
		client[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		set_addr(&sa, uds);
		connect(client[i], (struct sockaddr *)&sa, sizeof(sa));
		break;
	}
	case 1: { /* it sends bytes */
		size_t got;
		const uint8_t *p = fin_bytes(f, fin8(f), &got);
		if (client[k] >= 0)
			send(client[k], p, got, MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	}
	case 2:
		if (client[k] >= 0)
			shutdown(client[k], SHUT_WR);
		break;
	case 3:
		if (client[k] >= 0)
			close(client[k]);
		client[k] = -1;
		break;
	case 4:
		if (client[k] >= 0)
			while (recv(client[k], buf, sizeof(buf), MSG_DONTWAIT) > 0)
				;
		break;
	case 5: { /* listen at uds_path_<port>, and take the guest connections waiting there */
		uint8_t port = fin8(f);
		for (int i = 0; i < LISTENERS; i++)
			for (int fd; listener[i] >= 0 &&
				     (fd = accept4(listener[i], NULL, NULL,
						   SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
				int c = free_slot(client, CLIENTS);
				if (c < 0)
					close(fd);
				else
					client[c] = fd;
			}
		int i = free_slot(listener, LISTENERS);
		if (i < 0)
			break;
		snprintf(listener_path[i], sizeof(listener_path[i]), "%s_%u", uds, port);
		listener[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		set_addr(&sa, listener_path[i]);
		if (bind(listener[i], (struct sockaddr *)&sa, sizeof(sa)) ||
		    listen(listener[i], 8)) {
			close(listener[i]);
			listener[i] = -1;
		}
		break;
	}
	}
}

static void remove_dir(void)
{
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	fuzz_dev()->host_op = host;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/ember-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	atexit(remove_dir);
	snprintf(uds, sizeof(uds), "%s/v.sock", dir);
	for (int i = 0; i < CLIENTS; i++)
		client[i] = -1;
	for (int i = 0; i < LISTENERS; i++)
		listener[i] = -1;
	return 0;
}

static bool create(struct fin *f)
{
	(void)f;
	struct vsock_config cfg = { .guest_cid = 3, .uds_path = uds };
	char err[ERR_LEN];
	return vsock_create(&fuzz_dev()->m, &cfg, &fuzz_dev()->dev, err) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	for (int i = 0; i < CLIENTS; i++) {
		if (client[i] >= 0)
			close(client[i]);
		client[i] = -1;
	}
	for (int i = 0; i < LISTENERS; i++) {
		if (listener[i] >= 0) {
			close(listener[i]);
			unlink(listener_path[i]);
		}
		listener[i] = -1;
	}
	return 0;
}
