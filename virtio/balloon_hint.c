/* virtio-balloon's free page hinting (virtio 1.2, "Free Page Hinting"; Linux's
 * VIRTIO_BALLOON_F_FREE_PAGE_HINT). The host starts a run by writing a new command id into
 * the configuration space. The driver answers on the hinting queue: first the id it read (a
 * 4-byte device-readable buffer), then device-writable buffers over blocks of free memory it
 * has taken for itself (hints), then STOP. Hinted pages go back to the host. The driver keeps
 * them until the host writes DONE, which it does on PATCH /balloon/hinting/stop, or by itself
 * on the driver's STOP when the run was started with acknowledge_on_stop.
 *
 * A hint counts only while its run is the host's current one: once the host has sent DONE
 * (or a newer id) the driver may be using those pages again, and a hint still in the queue
 * must not throw their contents away. The API and the queue both run under the device's
 * lock, so a hint is either given back before DONE is written or looked at after. */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "virtio/balloon_internal.h"

static bool running_id(uint32_t cmd)
{
	return cmd != BALLOON_HINT_CMD_STOP && cmd != BALLOON_HINT_CMD_DONE;
}

/* A new command for the driver: it reads it on the configuration interrupt. */
static void send_cmd(struct balloon_dev *b, uint32_t cmd)
{
	b->space.hint_cmd = cmd;
	virtio_config_changed(&b->vdev);
}

/* The driver's command id: the run it hints for, or STOP at its end. */
static bool cmd_request(struct balloon_dev *b)
{
	struct virtq_chain *c = &b->chain;
	uint32_t cmd;
	if (c->nr_wr || c->rd_len != sizeof(cmd)) {
		balloon_fail(b,
			     "a free page hinting command that is not one 4-byte readable buffer");
		return false;
	}
	iov_to_buf(c->iov, c->nr_rd, &cmd, sizeof(cmd));
	uint32_t prev = b->hint.guest_cmd;
	bool had = b->hint.has_guest_cmd;
	b->hint.guest_cmd = cmd;
	b->hint.has_guest_cmd = true;
	if (running_id(cmd))
		return true;
	if (cmd == BALLOON_HINT_CMD_DONE) /* the host's word: taken as the end of the run */
		virtio_dev_warn(&b->vdev, "free page hinting: the driver sent DONE");
	/* Only the end of the host's current run is acknowledged: a STOP of an older run
	 * must not end the one the host started since. */
	if (b->hint.ack_on_stop && had && prev == b->space.hint_cmd && running_id(prev))
		send_cmd(b, BALLOON_HINT_CMD_DONE);
	return true;
}

bool balloon_hint_request(struct balloon_dev *b)
{
	struct virtq_chain *c = &b->chain;
	if (c->nr_rd)
		return cmd_request(b);
	uint32_t run = b->space.hint_cmd;
	if (!running_id(run) || !b->hint.has_guest_cmd || b->hint.guest_cmd != run)
		return true; /* a hint from an ended or older run: its pages are the driver's */
	metric_inc(&balloon_metrics[BM_HINT_COUNT]);
	for (unsigned i = 0; i < c->nr_wr; i++) {
		uint64_t n = 0;
		int rc = guest_mem_discard(&b->vdev.machine->mem, c->iov[i].iov_base,
					   c->iov[i].iov_len, &n);
		if (rc) {
			metric_inc(&balloon_metrics[BM_HINT_FAILS]);
			virtio_dev_warn(&b->vdev, "free page hint: %s", strerror(-rc));
		}
		metric_add(&balloon_metrics[BM_HINT_FREED], n);
	}
	return true;
}

/* -EOPNOTSUPP without hinting, -EAGAIN before the driver started the device, else 0 with the
 * lock held. */
static int lock_running(struct balloon_dev *b)
{
	if (!b->hinting)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&b->vdev.lock);
	if (virtio_dev_running(&b->vdev))
		return 0;
	pthread_mutex_unlock(&b->vdev.lock);
	return -EAGAIN;
}

int balloon_hint_start(struct virtio_dev *dev, bool acknowledge_on_stop)
{
	struct balloon_dev *b = to_balloon(dev);
	int rc = lock_running(b);
	if (rc)
		return rc;
	uint32_t id = b->hint.last_id + 1;
	if (!running_id(id)) /* wrapped past the reserved values */
		id = BALLOON_HINT_CMD_DONE + 1;
	b->hint.last_id = id;
	b->hint.ack_on_stop = acknowledge_on_stop;
	send_cmd(b, id);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

int balloon_hint_stop(struct virtio_dev *dev)
{
	struct balloon_dev *b = to_balloon(dev);
	int rc = lock_running(b);
	if (rc)
		return rc;
	send_cmd(b, BALLOON_HINT_CMD_DONE);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

void balloon_hint_save(const struct balloon_dev *b, struct snap_writer *w)
{
	snapw_u32(w, b->space.hint_cmd);
	snapw_u32(w, b->hint.last_id);
	snapw_u32(w, b->hint.guest_cmd);
	snapw_u8(w, b->hint.has_guest_cmd);
	snapw_u8(w, b->hint.ack_on_stop);
}

const char *balloon_hint_load(struct snap_reader *r, struct balloon_hint *hint, uint32_t *cmd)
{
	uint32_t host = snapr_u32(r), last = snapr_u32(r), guest = snapr_u32(r);
	uint8_t has_guest = snapr_u8(r), ack = snapr_u8(r);
	if (has_guest > 1 || ack > 1)
		return "undefined hinting flags";
	/* Run ids are handed out in turn and skip the reserved values; the host's command is
	 * one of those or the latest run's. */
	if (last == BALLOON_HINT_CMD_DONE || (running_id(host) && host != last))
		return "a hinting command the host never gave";
	if (!has_guest && guest)
		return "a guest hinting command without the flag that says it came";
	*hint = (struct balloon_hint){
		.last_id = last, .guest_cmd = guest, .has_guest_cmd = has_guest, .ack_on_stop = ack
	};
	*cmd = host;
	return NULL;
}
