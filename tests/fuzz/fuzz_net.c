/* virtio-net's receive and transmit paths: a driver script (fuzz_dev.h) against a device whose
 * "TAP" is one end of a SOCK_SEQPACKET socketpair (one record per frame, as a TAP with
 * IFF_VNET_HDR gives). HOST: the host network sends a frame of the input's bytes, or reads
 * what the guest sent. The script's first bytes configure MAC, MTU and the rate limiters. */
#include <sys/socket.h>
#include <unistd.h>

#include "virtio/net.h"
#include "fuzz_dev.h"

static int peer = -1;

static void host(struct fuzz_dev *s, struct fin *f)
{
	(void)s;
	static uint8_t frame[65536 + NET_HDR_LEN];
	if (fin8(f) & 1) {
		size_t len = fin16(f), got;
		const uint8_t *p = fin_bytes(f, len, &got);
		memcpy(frame, p, got);
		memset(frame + got, 0, len - got);
		send(peer, frame, len, MSG_DONTWAIT);
	} else {
		while (recv(peer, frame, sizeof(frame), MSG_DONTWAIT) > 0)
			;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_dev_init_machine();
	fuzz_dev()->host_op = host;
	return 0;
}

static bool create(struct fin *f)
{
	uint8_t flags = fin8(f);
	struct net_config cfg = { .iface_id = "eth0", .host_dev_name = "socketpair" };
	cfg.has_mac = flags & 1;
	if (flags & 2)
		cfg.mtu = fin16(f);
	/* Small buckets with a long refill: the limiter says no within the script. */
	if (flags & 4)
		cfg.rx_rate_limiter.bandwidth = (struct token_bucket_config){ fin16(f), 0, 1000 };
	if (flags & 8)
		cfg.tx_rate_limiter.ops = (struct token_bucket_config){ fin8(f), 0, 1000 };
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		abort();
	peer = sv[1];
	char err[ERR_LEN];
	return net_create_on_fd(&fuzz_dev()->m, &cfg, sv[0], &fuzz_dev()->dev, err) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_dev_run(data, size, create);
	close(peer);
	peer = -1;
	return 0;
}
