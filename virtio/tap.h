/* The host side of virtio-net: a TAP device that someone else (the orchestrator, a test)
 * created and configured, opened with the virtio-net header in front of every frame. */
#ifndef EMBER_TAP_H
#define EMBER_TAP_H

#include <stddef.h>

/* Opens the existing TAP name for interface iface_id, non-blocking, with IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR and a vnet_hdr_len-byte header. Returns the fd, or -errno with a
 * message naming the interface and the TAP in err: missing, in use, down, not a TAP. */
int tap_open(const char *iface_id, const char *name, int vnet_hdr_len, char *err);
/* Opens /dev/net/tun and attaches it to the existing TAP name (TUNSETIFF with IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR): the fd, or -errno with a message: in use, not a TAP or a
 * multi-queue one, no permission. */
int tap_attach(const char *iface_id, const char *name, char *err);
/* tap_probe.c: what Firecracker finds out at PUT /network-interfaces, where it opens the
 * TAP: that name is a TAP ember can attach to (then it lets go). 0 or -errno with err.
 * Its own file, so that unit tests that configure interfaces on no TAP can stand in for it. */
int tap_probe(const char *iface_id, const char *name, char *err);
/* TUNSETOFFLOAD: which offloads (TUN_F_*) the reader of the TAP, the guest, accepts. */
int tap_set_offload(int fd, unsigned tun_flags);

#endif
