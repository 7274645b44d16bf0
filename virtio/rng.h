/* virtio-rng (virtio 1.x, "Entropy Device", device id 4): Firecracker's "entropy" device.
 * One queue of device-writable buffers; each request is filled from the host's getrandom(),
 * at most RNG_REQ_MAX bytes of it, as the token buckets allow. A VM has at most one. */
#ifndef EMBER_RNG_H
#define EMBER_RNG_H

#include <stdbool.h>

#include "core/rate_limiter.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_RNG  4
#define RNG_QUEUE_SIZE 256
/* A larger buffer gets this much: the driver asks again for the rest. It bounds the time
 * one request holds the VMM thread, and what one request takes from the buckets. */
#define RNG_REQ_MAX (64 * 1024)

/* Firecracker's EntropyDeviceConfig: the device exists once configured. */
struct entropy_config {
	bool configured;
	struct rate_limiter_config rate_limiter; /* bytes handed out, and requests */
};

/* The entropy device in machine's next virtio slot. -errno with a message in err. */
int rng_create(struct machine *machine, const struct entropy_config *cfg, struct virtio_dev **out,
	       char *err);

#endif
