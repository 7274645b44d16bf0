/* What virtio/balloon.c and virtio/balloon_hint.c share: the device's private struct and its
 * metrics. Nothing else includes it. */
#ifndef EMBER_BALLOON_INTERNAL_H
#define EMBER_BALLOON_INTERNAL_H

#include "core/metrics.h"
#include "virtio/balloon.h"

/* What each queue is: the statistics, hinting and reporting queues exist only when
 * negotiated, and the driver numbers the queues it uses one after the other. */
enum balloon_role { ROLE_NONE, ROLE_INFLATE, ROLE_DEFLATE, ROLE_STATS, ROLE_HINT, ROLE_REPORT };

/* The configuration space (virtio 1.x): num_pages and free_page_hint_cmd_id for the driver,
 * actual from it. poison_val, which follows, exists only with VIRTIO_BALLOON_F_PAGE_POISON,
 * which ember does not offer. */
struct balloon_space {
	uint32_t num_pages;
	uint32_t actual;
	uint32_t hint_cmd; /* the host's last command: STOP, a run's id, DONE */
};

/* Free page hinting: the host's command lives in the configuration space. */
struct balloon_hint {
	uint32_t last_id;   /* the last run id handed out; 0 before the first */
	uint32_t guest_cmd; /* the driver's last command id */
	bool has_guest_cmd; /* it sent one */
	bool ack_on_stop;   /* the driver's STOP of this run gets DONE at once */
};

struct balloon_dev {
	struct virtio_dev vdev; /* first: the transport hands us &vdev */
	struct balloon_space space;
	bool deflate_on_oom, hinting, reporting;
	unsigned interval_s; /* 0: no statistics */
	int timer_fd;
	enum balloon_role role[VIRTIO_QUEUES_MAX];
	/* The statistics buffer the driver gave, held until the timer returns it. */
	bool stats_held;
	uint16_t stats_head;
	uint32_t have;
	uint64_t stats[BALLOON_S_NR];
	struct balloon_hint hint;
	struct virtq_chain chain;
};

/* The "balloon" metrics group, with Firecracker's names. */
enum balloon_metric {
	BM_ACTIVATE_FAILS, /* never: activation has nothing that can fail */
	BM_CFG_FAILS,	   /* configuration writes outside "actual" */
	BM_INFLATE_COUNT,
	BM_STATS_UPDATES,
	BM_STATS_UPDATE_FAILS, /* the timer fired with no buffer to return */
	BM_DEFLATE_COUNT,
	BM_EVENT_FAILS, /* requests that broke the device, PFNs outside guest RAM */
	BM_REPORT_COUNT,
	BM_REPORT_FREED, /* bytes */
	BM_REPORT_FAILS,
	BM_HINT_COUNT, /* hint chains whose pages went back */
	BM_HINT_FREED, /* bytes */
	BM_HINT_FAILS,
	BM_METRIC_COUNT
};
extern struct metric balloon_metrics[BM_METRIC_COUNT];

static inline struct balloon_dev *to_balloon(struct virtio_dev *dev)
{
	return (struct balloon_dev *)dev;
}

/* The guest broke the protocol: counted, and the device needs a reset. */
void balloon_fail(struct balloon_dev *b, const char *why);

/* balloon_hint.c, with the device's lock held: one chain of the hinting queue (a command id
 * or hints); false when it broke the device. */
bool balloon_hint_request(struct balloon_dev *b);
/* The hinting part of the state section, and its checked restore into *hint and *cmd (the
 * configuration space's command); NULL, or why the bytes are refused. */
void balloon_hint_save(const struct balloon_dev *b, struct snap_writer *w);
const char *balloon_hint_load(struct snap_reader *r, struct balloon_hint *hint, uint32_t *cmd);

#endif
