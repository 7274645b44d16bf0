/* virtio-balloon (virtio 1.x, "Traditional Memory Balloon Device", device id 5): Firecracker's
 * "balloon". The host sets a target in 4 KiB pages; the driver inflates towards it (each page
 * it gives up is handed back to the host with MADV_DONTNEED) or deflates, and reports how
 * many pages it holds in the configuration space's "actual". Optional: a statistics queue
 * polled from a timer on the VMM thread, deflate on OOM (a feature bit the driver acts on),
 * free page reporting (the driver's free pages handed back as they are reported) and free
 * page hinting (runs the host starts: the driver hints at its free pages, which go back to
 * the host, until it says it is done and the host lets it have them again). A VM has at most
 * one. */
#ifndef EMBER_BALLOON_H
#define EMBER_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/snapbuf.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_BALLOON     5
#define BALLOON_QUEUE_SIZE    256
#define BALLOON_PAGE_SHIFT    12 /* PFNs count 4 KiB pages, whatever the guest's page size */
#define BALLOON_PAGES_PER_MIB 256
/* An inflate or deflate request holds at most this many PFNs: Linux sends at most 256 at a
 * time, as Firecracker accepts. */
#define BALLOON_PFNS_MAX		256
#define BALLOON_STATS_INTERVAL_MAX	65535 /* Firecracker's u16 */
#define VIRTIO_BALLOON_F_STATS_VQ	1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_REPORTING	5
/* free_page_hint_cmd_id's reserved values (virtio 1.2, "Free Page Hinting"); any other is a
 * run's id. The driver sends STOP when its run is over; the host sends DONE to let it use
 * the hinted pages again. */
#define BALLOON_HINT_CMD_STOP 0
#define BALLOON_HINT_CMD_DONE 1

/* The statistics tags (virtio 1.x, "Memory Statistics Tags"), in Firecracker's order. */
enum balloon_stat {
	BALLOON_S_SWAP_IN,
	BALLOON_S_SWAP_OUT,
	BALLOON_S_MAJFLT,
	BALLOON_S_MINFLT,
	BALLOON_S_MEMFREE,
	BALLOON_S_MEMTOT,
	BALLOON_S_AVAIL,
	BALLOON_S_CACHES,
	BALLOON_S_HTLB_PGALLOC,
	BALLOON_S_HTLB_PGFAIL,
	BALLOON_S_NR
};

/* Firecracker's BalloonDeviceConfig (plus free page hinting and reporting, from its API after
 * v1.10): the device exists once configured. */
struct balloon_config {
	bool configured;
	uint32_t amount_mib;
	bool deflate_on_oom;
	unsigned stats_polling_interval_s; /* 0: no statistics */
	bool free_page_hinting, free_page_reporting;
};

/* What the device knows now, for the API. */
struct balloon_state {
	bool running; /* the driver set DRIVER_OK */
	uint32_t target_pages, actual_pages;
	bool deflate_on_oom, free_page_hinting, free_page_reporting;
	unsigned stats_polling_interval_s;
	/* Free page hinting (Firecracker's HintingStatus): the command the host gave last (STOP
	 * before any run, a run's id, DONE), and the driver's last one, if it sent any. */
	uint32_t hint_host_cmd, hint_guest_cmd;
	bool hint_has_guest_cmd;
	/* The driver's latest statistics: have bit i says tag i was reported. */
	uint32_t have;
	uint64_t stats[BALLOON_S_NR];
};

/* The balloon device in machine's next virtio slot; -errno with a message in err. */
int balloon_create(struct machine *machine, const struct balloon_config *cfg,
		   struct virtio_dev **out, char *err);
void balloon_get_state(struct virtio_dev *dev, struct balloon_state *out);
/* A new target: the driver hears of it through a configuration interrupt. -EAGAIN when the
 * driver has not started the device yet (it would not hear). */
int balloon_set_target(struct virtio_dev *dev, uint32_t pages);
/* A new polling interval (non-zero, statistics on): the timer restarts and the driver is
 * asked for statistics now. -EINVAL to switch statistics on or off. */
int balloon_set_stats_interval(struct virtio_dev *dev, unsigned interval_s);
/* Free page hinting: start gives the driver a new run's id (never STOP or DONE) through a
 * configuration interrupt; with acknowledge_on_stop the host answers the driver's STOP of
 * that run with DONE by itself. stop sends DONE. -EOPNOTSUPP without hinting, -EAGAIN when
 * the driver has not started the device. */
int balloon_hint_start(struct virtio_dev *dev, bool acknowledge_on_stop);
int balloon_hint_stop(struct virtio_dev *dev);
/* Snapshots (the VM paused): the target, actual, the statistics and the held statistics
 * buffer, and with hinting its commands; restore checks every value. */
void balloon_save(struct virtio_dev *dev, struct snap_writer *w);
int balloon_restore(struct virtio_dev *dev, struct snap_reader *r, char *err);

#endif
