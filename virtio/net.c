/* virtio-net: frames between the TAP and the guest's rings, through one bounce buffer per
 * direction on receive (a frame may span several merged receive buffers) and straight from
 * the guest's buffers on transmit. Both TAP and queues are watched by the VMM thread's loop:
 * receive stops when the guest has no buffers, leaves frames queued in the TAP, and resumes
 * on the guest's next rx notification. */
#include "virtio/net.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/rate_limiter.h"
#include "core/snapbuf.h"
#include "virtio/tap.h"

#define NET_CONFIG_LEN	12 /* mac[6], status, max_virtqueue_pairs, mtu */
#define NUM_BUFFERS_OFF 10

struct net_dev {
	struct virtio_dev vdev; /* first: the transport hands us &vdev */
	char *id;
	char *tap_name;
	int tap_fd;
	uint16_t mtu;
	uint8_t config[NET_CONFIG_LEN];
	struct rate_limiter rx_rl, tx_rl;
	bool offload_dirty; /* features negotiated, TUNSETOFFLOAD not yet done (VMM thread) */
	bool tap_error_logged;

	/* Receive: a frame read from the TAP that no guest buffer took yet. */
	uint8_t *rx_buf;
	size_t rx_len;
	bool rx_charged;			/* the rx limiter already counted it */
	struct iovec first_iov[VIRTQ_MAX_SIZE]; /* the first buffer: num_buffers lands there */
	unsigned first_nr;
	struct virtq_used_elem used[NET_QUEUE_SIZE]; /* the frame's buffers, pushed at once */
	struct virtq_chain chain;
	/* Per interface, for the log line at exit; the "net" metrics count all of them. */
	uint64_t tx_dropped, rx_dropped;
};

/* The "net" metrics group, over every interface, with Firecracker's names. */
enum net_metric {
	NET_RX_BYTES,
	NET_RX_PACKETS,
	NET_RX_DROPPED, /* no driver, or a frame larger than the buffers allow */
	NET_RX_THROTTLED,
	NET_TX_BYTES,
	NET_TX_PACKETS,
	NET_TX_MALFORMED, /* transmit chains dropped as invalid */
	NET_TX_FAILS,	  /* the TAP refused a frame */
	NET_TX_THROTTLED,
	NET_METRIC_COUNT
};
static struct metric net_metrics[NET_METRIC_COUNT] = {
	[NET_RX_BYTES] = { .name = "rx_bytes_count" },
	[NET_RX_PACKETS] = { .name = "rx_packets_count" },
	[NET_RX_DROPPED] = { .name = "rx_dropped" },
	[NET_RX_THROTTLED] = { .name = "rx_rate_limiter_throttled" },
	[NET_TX_BYTES] = { .name = "tx_bytes_count" },
	[NET_TX_PACKETS] = { .name = "tx_packets_count" },
	[NET_TX_MALFORMED] = { .name = "tx_malformed_frames" },
	[NET_TX_FAILS] = { .name = "tx_fails" },
	[NET_TX_THROTTLED] = { .name = "tx_rate_limiter_throttled" },
};
static struct metric_group net_group = { "net", net_metrics, NET_METRIC_COUNT, NULL };

static struct net_dev *to_net(struct virtio_dev *dev)
{
	return (struct net_dev *)dev;
}

static bool has(const struct net_dev *n, uint64_t feature)
{
	return (n->vdev.driver_features & feature) != 0;
}

/* Applies the offloads the driver accepted to the TAP: what the guest can take in decides
 * what the host may hand it unchecksummed or unsegmented. */
static void apply_offloads(struct net_dev *n)
{
	unsigned flags = 0;
	if (has(n, VIRTIO_NET_F_GUEST_CSUM)) {
		flags |= TUN_F_CSUM;
		if (has(n, VIRTIO_NET_F_GUEST_TSO4))
			flags |= TUN_F_TSO4;
		if (has(n, VIRTIO_NET_F_GUEST_TSO6))
			flags |= TUN_F_TSO6;
	}
	int rc = tap_set_offload(n->tap_fd, flags);
	if (rc)
		log_warn("network interface %s: TAP %s: TUNSETOFFLOAD 0x%x: %s", n->id, n->tap_name,
			 flags, strerror(-rc));
	n->offload_dirty = false;
}

/* Puts the pending frame into the guest's receive buffers. 1 done, 0 not enough buffers
 * (nothing taken from the ring), -1 the device broke. */
static int deliver(struct net_dev *n)
{
	struct virtq *q = &n->vdev.queues[NET_RX_QUEUE];
	bool merge = has(n, VIRTIO_NET_F_MRG_RXBUF);
	size_t off = 0;
	unsigned nr = 0;
	while (off < n->rx_len) {
		if ((!merge && nr == 1) || nr == q->num) {
			/* Larger than the one buffer a frame may use without merging, or than
			 * the whole ring: it can never fit. It is dropped and the buffers go
			 * back unused. */
			virtq_unpop_n(q, (uint16_t)nr);
			n->rx_dropped++;
			metric_inc(&net_metrics[NET_RX_DROPPED]);
			n->rx_len = 0;
			return 1;
		}
		int rc = virtq_pop(q, &n->chain);
		if (rc < 0) {
			virtio_needs_reset(&n->vdev, q->fault);
			return -1;
		}
		if (rc == 0) {
			/* Not enough room yet: every buffer taken goes back, none was used. */
			virtq_unpop_n(q, (uint16_t)nr);
			return 0;
		}
		struct virtq_chain *c = &n->chain;
		struct iovec *wr = c->iov + c->nr_rd;
		if (c->wr_len < (nr == 0 ? NET_HDR_LEN : 1)) {
			virtio_needs_reset(&n->vdev, "receive buffer too small for the header");
			return -1;
		}
		uint64_t take = c->wr_len < n->rx_len - off ? c->wr_len : n->rx_len - off;
		iov_from_buf(wr, c->nr_wr, n->rx_buf + off, take);
		if (nr == 0) {
			memcpy(n->first_iov, wr, c->nr_wr * sizeof(*wr));
			n->first_nr = c->nr_wr;
		}
		n->used[nr].id = c->head;
		n->used[nr].len = (uint32_t)take;
		nr++;
		off += take;
	}
	/* num_buffers (little-endian) in the header at the front of the first buffer. */
	uint8_t hdr[NET_HDR_LEN];
	memcpy(hdr, n->rx_buf, NET_HDR_LEN);
	hdr[NUM_BUFFERS_OFF] = (uint8_t)nr;
	hdr[NUM_BUFFERS_OFF + 1] = (uint8_t)(nr >> 8);
	iov_from_buf(n->first_iov, n->first_nr, hdr, NET_HDR_LEN);
	/* The driver reads num_buffers in the first buffer and must find all of them in the
	 * used ring when it sees the first: one publish for the whole frame. */
	virtq_push_batch(q, n->used, nr);
	metric_inc(&net_metrics[NET_RX_PACKETS]);
	metric_add(&net_metrics[NET_RX_BYTES], n->rx_len - NET_HDR_LEN);
	n->rx_len = 0;
	return 1;
}

/* Moves frames from the TAP into the guest until the TAP is empty, the guest has no
 * buffers, or the limiter says wait. The TAP is edge-triggered: stopping with frames left
 * is fine, as whatever stops us (buffers, the timer) calls this again. */
static void process_rx(struct net_dev *n)
{
	struct virtq *q = &n->vdev.queues[NET_RX_QUEUE];
	bool pushed = false;
	if (!q->active)
		return;
	for (unsigned budget = NET_QUEUE_SIZE;; budget--) {
		if (budget == 0) {
			/* A busy TAP does not keep the VMM thread: come back after the other
			 * events. */
			virtio_queue_kick(&n->vdev, NET_RX_QUEUE);
			break;
		}
		if (n->rx_len == 0) {
			ssize_t r = read(n->tap_fd, n->rx_buf, NET_FRAME_MAX);
			if (r < 0) {
				if (errno != EAGAIN && errno != EINTR && !n->tap_error_logged) {
					n->tap_error_logged = true;
					log_warn("network interface %s: reading TAP %s: %s", n->id,
						 n->tap_name, strerror(errno));
				}
				break;
			}
			if (r < NET_HDR_LEN)
				continue;
			n->rx_len = (size_t)r;
			n->rx_charged = false;
		}
		if (!n->rx_charged) {
			if (!rate_limiter_consume(&n->rx_rl, 1, n->rx_len - NET_HDR_LEN,
						  monotonic_ns())) {
				metric_inc(&net_metrics[NET_RX_THROTTLED]);
				break; /* the timer calls us back */
			}
			n->rx_charged = true;
		}
		int rc = deliver(n);
		if (rc < 0)
			return;
		/* The frame did not fit in the buffers the guest has (maybe none, maybe too
		 * few): the next buffer it adds must notify, not only one past those already
		 * there. Some arrived meanwhile: try again. */
		if (rc == 0 && virtq_enable_notify_beyond(q))
			continue;
		if (rc == 0)
			break;
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(&n->vdev, NET_RX_QUEUE);
}

/* Frames larger than this (header included) are dropped: the negotiated segmentation
 * offloads allow 64 KiB, otherwise one MTU-sized Ethernet frame. */
static uint64_t tx_max(const struct net_dev *n)
{
	if (has(n, VIRTIO_NET_F_HOST_TSO4) || has(n, VIRTIO_NET_F_HOST_TSO6))
		return NET_FRAME_MAX;
	return NET_HDR_LEN + (n->mtu ? n->mtu : NET_MTU_DEFAULT) + 14 + 4;
}

static void process_tx(struct net_dev *n)
{
	struct virtq *q = &n->vdev.queues[NET_TX_QUEUE];
	bool pushed = false;
	for (unsigned budget = NET_QUEUE_SIZE;;) {
		if (n->tx_rl.blocked)
			break;
		if (budget-- == 0) {
			virtio_queue_kick(&n->vdev, NET_TX_QUEUE);
			break;
		}
		struct virtq_chain *c = &n->chain;
		int rc = virtio_queue_pop(&n->vdev, NET_TX_QUEUE, c);
		if (rc < 0)
			return;
		if (rc == 0)
			break;
		/* Transmit buffers are all device-readable; a frame is header plus payload. */
		if (c->nr_wr || c->rd_len <= NET_HDR_LEN || c->rd_len > tx_max(n)) {
			n->tx_dropped++;
			metric_inc(&net_metrics[NET_TX_MALFORMED]);
			virtio_dev_warn(
				&n->vdev,
				"dropped a transmit chain of %llu bytes (%u writable buffers)",
				(unsigned long long)c->rd_len, c->nr_wr);
		} else {
			if (!rate_limiter_consume(&n->tx_rl, 1, c->rd_len - NET_HDR_LEN,
						  monotonic_ns())) {
				metric_inc(&net_metrics[NET_TX_THROTTLED]);
				virtq_unpop(q);
				break;
			}
			ssize_t w = writev(n->tap_fd, c->iov, (int)c->nr_rd);
			if (w < 0) {
				/* The TAP is down or its queue full: the frame is lost, as on a
				 * wire; the guest's TCP retransmits. */
				n->tx_dropped++;
				metric_inc(&net_metrics[NET_TX_FAILS]);
			} else {
				metric_inc(&net_metrics[NET_TX_PACKETS]);
				metric_add(&net_metrics[NET_TX_BYTES], c->rd_len - NET_HDR_LEN);
			}
		}
		virtq_push(q, c->head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(&n->vdev, NET_TX_QUEUE);
}

static void net_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct net_dev *n = to_net(dev);
	if (n->offload_dirty)
		apply_offloads(n);
	if (q == NET_RX_QUEUE)
		process_rx(n);
	else
		process_tx(n);
}

static void on_tap(void *opaque, uint32_t events)
{
	struct net_dev *n = opaque;
	(void)events;
	pthread_mutex_lock(&n->vdev.lock);
	if (virtio_dev_running(&n->vdev)) {
		if (n->offload_dirty)
			apply_offloads(n);
		process_rx(n);
	} else {
		/* No driver: frames are dropped rather than left to fill the TAP's queue. */
		while (read(n->tap_fd, n->rx_buf, NET_FRAME_MAX) > 0) {
			n->rx_dropped++;
			metric_inc(&net_metrics[NET_RX_DROPPED]);
		}
	}
	pthread_mutex_unlock(&n->vdev.lock);
}

static void on_rx_timer(void *opaque, uint32_t events)
{
	struct net_dev *n = opaque;
	(void)events;
	pthread_mutex_lock(&n->vdev.lock);
	rate_limiter_timer_event(&n->rx_rl);
	if (virtio_dev_running(&n->vdev))
		process_rx(n);
	pthread_mutex_unlock(&n->vdev.lock);
}

static void on_tx_timer(void *opaque, uint32_t events)
{
	struct net_dev *n = opaque;
	(void)events;
	pthread_mutex_lock(&n->vdev.lock);
	rate_limiter_timer_event(&n->tx_rl);
	if (virtio_dev_running(&n->vdev))
		process_tx(n);
	pthread_mutex_unlock(&n->vdev.lock);
}

static int set_limits(struct net_dev *n, const struct net_config *cfg)
{
	struct evloop *loop = &n->vdev.machine->loop;
	int rc = rate_limiter_apply(&n->rx_rl, &cfg->rx_rate_limiter, loop, on_rx_timer, n);
	return rc ? rc : rate_limiter_apply(&n->tx_rl, &cfg->tx_rate_limiter, loop, on_tx_timer, n);
}

/* vCPU thread: the TAP ioctl waits for the VMM thread, which the transport kicks next. */
static int net_activate(struct virtio_dev *dev)
{
	to_net(dev)->offload_dirty = true;
	return 0;
}

static void net_reset(struct virtio_dev *dev)
{
	struct net_dev *n = to_net(dev);
	n->rx_len = 0; /* its buffers belonged to the old rings */
}

static void net_destroy(struct virtio_dev *dev)
{
	struct net_dev *n = to_net(dev);
	if (n->tap_fd >= 0) {
		evloop_remove(&dev->machine->loop, n->tap_fd);
		close(n->tap_fd);
	}
	rate_limiter_destroy(&n->rx_rl, &dev->machine->loop);
	rate_limiter_destroy(&n->tx_rl, &dev->machine->loop);
	if (n->tx_dropped || n->rx_dropped)
		log_debug("network interface %s: %llu transmit and %llu receive frames dropped",
			  n->id, (unsigned long long)n->tx_dropped,
			  (unsigned long long)n->rx_dropped);
	free(n->rx_buf);
	free(n->id);
	free(n->tap_name);
	free(n);
}

static const struct virtio_dev_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.activate = net_activate,
	.reset = net_reset,
	.queue_notify = net_queue_notify,
	.destroy = net_destroy,
};

int net_create(struct machine *machine, const struct net_config *cfg, struct virtio_dev **out,
	       char *err)
{
	int fd = tap_open(cfg->iface_id, cfg->host_dev_name, NET_HDR_LEN, err);
	if (fd < 0)
		return fd;
	return net_create_on_fd(machine, cfg, fd, out, err);
}

int net_create_on_fd(struct machine *machine, const struct net_config *cfg, int tap_fd,
		     struct virtio_dev **out, char *err)
{
	struct net_dev *n = calloc(1, sizeof(*n));
	if (!n) {
		close(tap_fd);
		return errf(err, -ENOMEM, "network interface %s: out of memory", cfg->iface_id);
	}
	n->tap_fd = tap_fd;
	n->rx_rl.timer_fd = n->tx_rl.timer_fd = -1;
	n->vdev.machine = machine;
	n->id = strdup(cfg->iface_id);
	n->tap_name = strdup(cfg->host_dev_name);
	n->rx_buf = malloc(NET_FRAME_MAX);
	int rc = -ENOMEM;
	if (!n->id || !n->tap_name || !n->rx_buf) {
		snprintf(err, ERR_LEN, "network interface %s: out of memory", cfg->iface_id);
		goto fail;
	}
	n->mtu = cfg->mtu;
	if ((rc = set_limits(n, cfg))) {
		snprintf(err, ERR_LEN, "network interface %s: rate limiter: %s", n->id,
			 strerror(-rc));
		goto fail;
	}

	uint64_t features = VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4 |
			    VIRTIO_NET_F_GUEST_TSO6 | VIRTIO_NET_F_HOST_TSO4 |
			    VIRTIO_NET_F_HOST_TSO6 | VIRTIO_NET_F_MRG_RXBUF |
			    (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			    (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (cfg->has_mac) {
		features |= VIRTIO_NET_F_MAC;
		memcpy(n->config, cfg->guest_mac, 6);
	}
	if (cfg->mtu) {
		features |= VIRTIO_NET_F_MTU;
		n->config[10] = (uint8_t)cfg->mtu;
		n->config[11] = (uint8_t)(cfg->mtu >> 8);
	}
	n->vdev.config = n->config;
	n->vdev.config_len = NET_CONFIG_LEN;
	rc = virtio_mmio_init(&n->vdev, machine, &net_ops, n->id, 2, NET_QUEUE_SIZE, features);
	if (rc) {
		snprintf(err, ERR_LEN,
			 "network interface %s: cannot create the virtio-mmio device: %s", n->id,
			 rc == -ENOSPC ? "no free virtio slot (at most 19 devices)"
				       : strerror(-rc));
		goto fail;
	}
	/* From here on the device belongs to the VM and is destroyed with it. */
	if ((rc = evloop_add(&machine->loop, n->tap_fd, EPOLLIN | EPOLLET, on_tap, n)))
		return errf(err, rc, "network interface %s: event loop: %s", n->id, strerror(-rc));
	static bool registered; /* the group is there once, with the first interface */
	if (!registered) {
		metrics_register(&net_group);
		registered = true;
	}
	if (out)
		*out = &n->vdev;
	log_debug("network interface %s: TAP %s%s", n->id, n->tap_name,
		  rate_limiter_active(&n->rx_rl) || rate_limiter_active(&n->tx_rl)
			  ? ", rate-limited"
			  : "");
	return 0;
fail:
	net_destroy(&n->vdev); /* closes the TAP; it was never in the loop */
	return rc;
}

int net_update(struct virtio_dev *dev, const struct net_config *cfg, char *err)
{
	struct net_dev *n = to_net(dev);
	pthread_mutex_lock(&n->vdev.lock);
	int rc = set_limits(n, cfg);
	if (rc)
		snprintf(err, ERR_LEN, "network interface %s: rate limiter: %s", n->id,
			 strerror(-rc));
	else if (virtio_dev_running(&n->vdev)) {
		/* The new limits may allow what the old ones held back. */
		process_rx(n);
		process_tx(n);
	}
	pthread_mutex_unlock(&n->vdev.lock);
	return rc;
}

int net_save(struct virtio_dev *dev, struct snap_writer *w, char *err)
{
	struct net_dev *n = to_net(dev);
	(void)err;
	pthread_mutex_lock(&dev->lock);
	snapw_u8(w, (dev->device_features & VIRTIO_NET_F_MAC) != 0);
	snapw_bytes(w, n->config, 6);
	snapw_u16(w, n->mtu);
	uint64_t now = monotonic_ns();
	rate_limiter_save(&n->rx_rl, now, w);
	rate_limiter_save(&n->tx_rl, now, w);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int net_restore(struct virtio_dev *dev, struct snap_reader *r, char *err)
{
	struct net_dev *n = to_net(dev);
	bool has_mac = snapr_u8(r) != 0;
	uint8_t mac[6];
	snapr_bytes(r, mac, sizeof(mac));
	uint16_t mtu = snapr_u16(r);
	if (r->bad)
		return errf(err, -EINVAL, "network interface %s: snapshot state truncated", n->id);
	if (has_mac != ((dev->device_features & VIRTIO_NET_F_MAC) != 0) ||
	    (has_mac && memcmp(mac, n->config, 6) != 0) || mtu != n->mtu)
		return errf(err, -EINVAL,
			    "network interface %s: the saved device's MAC or MTU is not its "
			    "configuration's",
			    n->id);
	pthread_mutex_lock(&dev->lock);
	uint64_t now = monotonic_ns();
	struct rate_limiter rx = n->rx_rl, tx = n->tx_rl;
	int rc = rate_limiter_restore(&rx, r, now);
	if (!rc)
		rc = rate_limiter_restore(&tx, r, now);
	if (!rc && !snapr_done(r))
		rc = -EINVAL;
	if (!rc) {
		n->rx_rl = rx;
		n->tx_rl = tx;
	}
	pthread_mutex_unlock(&dev->lock);
	if (rc)
		return errf(err, rc,
			    "network interface %s: the saved rate limiter state does not fit its "
			    "configuration",
			    n->id);
	log_debug("network interface %s: restored on TAP %s", n->id, n->tap_name);
	return 0;
}
