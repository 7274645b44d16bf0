/* virtio-net over a host TAP device: queue 0 receives (TAP to guest), queue 1 transmits.
 * The 12-byte virtio-net header travels through the TAP unchanged (IFF_VNET_HDR), so the
 * checksum and segmentation offloads the guest negotiates cost ember nothing. */
#ifndef EMBER_NET_H
#define EMBER_NET_H

#include <stddef.h>
#include <stdint.h>

#include "core/rate_limiter.h"
#include "virtio/virtio.h"

/* One entry of Firecracker's "network-interfaces": virtio-net over a host TAP device. */
struct net_config {
	char *iface_id;
	char *host_dev_name; /* the TAP, e.g. "tap0" */
	bool has_mac;
	uint8_t guest_mac[6];
	uint16_t mtu; /* 0: not announced to the guest */
	struct rate_limiter_config rx_rate_limiter;
	struct rate_limiter_config tx_rate_limiter;
};

/* The network interfaces of a VM, in guest order: eth0 first. */
struct net_set {
	struct net_config *nets;
	unsigned nr_nets;
};

#define VIRTIO_ID_NET 1

/* Feature bits (virtio 1.x, "Network Device"). */
#define VIRTIO_NET_F_CSUM	(1ULL << 0)
#define VIRTIO_NET_F_GUEST_CSUM (1ULL << 1)
#define VIRTIO_NET_F_MTU	(1ULL << 3)
#define VIRTIO_NET_F_MAC	(1ULL << 5)
#define VIRTIO_NET_F_GUEST_TSO4 (1ULL << 7)
#define VIRTIO_NET_F_GUEST_TSO6 (1ULL << 8)
#define VIRTIO_NET_F_HOST_TSO4	(1ULL << 11)
#define VIRTIO_NET_F_HOST_TSO6	(1ULL << 12)
#define VIRTIO_NET_F_MRG_RXBUF	(1ULL << 15)

#define NET_QUEUE_SIZE 256
#define NET_RX_QUEUE   0
#define NET_TX_QUEUE   1
/* struct virtio_net_hdr_mrg_rxbuf: flags, gso_type, hdr_len, gso_size, csum_start,
 * csum_offset, num_buffers. With VIRTIO_F_VERSION_1 it is always this long. */
#define NET_HDR_LEN 12
/* The largest frame with its header: a 64 KiB GSO packet plus an Ethernet and VLAN header. */
#define NET_FRAME_MAX	(NET_HDR_LEN + 65535 + 14 + 4)
#define NET_MTU_DEFAULT 1500

/* One virtio-net device for interface cfg in vm's next virtio slot, its TAP opened and
 * checked. -errno and a message naming the interface in err on failure. */
int net_create(struct machine *machine, const struct net_config *cfg, struct virtio_dev **out,
	       char *err);
/* net_create over tap_fd, already open (tap_open's flags, or in tests one end of a
 * SOCK_SEQPACKET socketpair: one frame, virtio-net header first, per record). The device
 * owns tap_fd from here, also on failure. */
int net_create_on_fd(struct machine *machine, const struct net_config *cfg, int tap_fd,
		     struct virtio_dev **out, char *err);
/* PATCH /network-interfaces/{id} on the running device dev: new rx/tx rate limiters. */
int net_update(struct virtio_dev *dev, const struct net_config *cfg, char *err);

/* Snapshots (the VM paused). The TAP's name, the MAC and the limits are the configuration's
 * (the snapshot keeps it, network_overrides may name another TAP); the device saves its
 * MAC and MTU, which net_restore requires of the device made from that configuration, and
 * the levels of its rx and tx limiters. A frame read from the TAP and not yet delivered is
 * lost, as on a wire. */
struct snap_writer;
struct snap_reader;
int net_save(struct virtio_dev *dev, struct snap_writer *w, char *err);
int net_restore(struct virtio_dev *dev, struct snap_reader *r, char *err);

#endif
