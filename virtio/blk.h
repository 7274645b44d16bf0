/* virtio-block over a raw image file, with two I/O engines as Firecracker names them:
 * "Sync" (the VMM thread does each request with preadv/pwritev/fdatasync) and "Async"
 * (io_uring, completions through an eventfd in the event loop). */
#ifndef EMBER_BLK_H
#define EMBER_BLK_H

#include <stddef.h>
#include <stdint.h>

#include "core/rate_limiter.h"
#include "virtio/virtio.h"

enum drive_cache_type { DRIVE_CACHE_UNSAFE, DRIVE_CACHE_WRITEBACK };
enum drive_io_engine { DRIVE_ENGINE_SYNC, DRIVE_ENGINE_ASYNC };

/* One entry of Firecracker's "drives": a raw image file served as virtio-block. */
struct drive_config {
	char *drive_id;
	char *path_on_host;
	char *partuuid; /* root=PARTUUID=... instead of root=/dev/vda; NULL if unset */
	bool is_root_device;
	bool is_read_only;
	enum drive_cache_type cache_type;
	enum drive_io_engine io_engine;
	struct rate_limiter_config rate_limiter;
};

/* The drives of a VM, in the order configured. */
struct drive_set {
	struct drive_config *drives;
	unsigned nr_drives;
};

#define VIRTIO_ID_BLOCK 2

/* Feature bits (virtio 1.x, "Block Device"). */
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO	      5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9

#define VIRTIO_BLK_T_IN	    0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define BLK_QUEUE_SIZE	  256
#define BLK_SEG_MAX	  (BLK_QUEUE_SIZE - 2) /* the header and the status take one each */
#define BLK_SECTOR_SIZE	  512
#define BLK_ID_BYTES	  20
#define BLK_REQ_MAX_BYTES (1ULL << 30) /* larger requests are refused, not attempted */

struct blk_dev;
struct blk_req;
struct blk_engine;

struct blk_engine_ops {
	const char *name;
	/* Starts req (IN, OUT or FLUSH); the engine calls blk_req_done when it finishes,
	 * possibly before returning. -errno if it could not even start. */
	int (*submit)(struct blk_engine *e, struct blk_req *req);
	/* Hands the requests submitted since the last call to the kernel. */
	void (*flush_batch)(struct blk_engine *e);
	/* event_fd became readable: completes what finished. */
	void (*reap)(struct blk_engine *e);
	/* Later requests go to fd (PATCH path_on_host); those in flight finish on the old. */
	int (*set_fd)(struct blk_engine *e, int fd);
	void (*destroy)(struct blk_engine *e);
	/* Waits up to ms for a request in flight to finish, completing what finished. NULL
	 * when every request completes inside submit. */
	void (*wait)(struct blk_engine *e, unsigned ms);
};

struct blk_engine {
	const struct blk_engine_ops *ops;
	int fd;	      /* the image */
	int event_fd; /* -1 when every request completes inside submit */
};

struct blk_req {
	struct blk_dev *blk;
	uint32_t type;
	uint64_t offset;   /* bytes into the image */
	uint64_t len;	   /* data bytes */
	uint64_t done;	   /* data bytes moved so far: short transfers continue from here */
	struct iovec *iov; /* the data buffers not yet moved (inside chain.iov) */
	unsigned nr_iov;
	uint8_t *status; /* the request's status byte in guest memory */
	unsigned epoch;	 /* the device's reset count when the request started */
	struct blk_req *next_free;
	struct virtq_chain chain;
};

/* result: data bytes moved (0 for FLUSH) or -errno. VMM thread, device lock held. */
void blk_req_done(struct blk_req *req, int64_t result);

struct blk_engine *blk_sync_create(int fd, char *err);
struct blk_engine *blk_uring_create(int fd, unsigned depth, char *err);
/* 0 if this host can run the Async engine, else -errno and why in err. */
int blk_uring_probe(char *err);

/* One virtio-blk device for drive cfg in vm's next virtio slot. -errno and a message
 * naming the drive in err on failure. */
int blk_create(struct machine *machine, const struct drive_config *cfg, struct virtio_dev **out,
	       char *err);
/* Snapshots (the VM paused): blk_quiesce waits for the requests in flight (the Async
 * engine's) and gives them back to the driver, -EBUSY when they take more than
 * BLK_QUIESCE_MS. blk_save writes the disk size, which blk_restore requires again, and the
 * rate limiter's buckets; blk_restore takes a state without them (format 1.3) as full
 * buckets. */
#define BLK_QUIESCE_MS 10000
int blk_quiesce(struct virtio_dev *dev, char *err);
int blk_save(struct virtio_dev *dev, struct snap_writer *w, char *err);
int blk_restore(struct virtio_dev *dev, struct snap_reader *r, char *err);
/* PATCH /drives/{id} on the running device dev: cfg (already validated) gives the drive's
 * path_on_host and rate_limiter. A new image takes effect for the next request, with a
 * configuration interrupt when its size differs. -errno and err, with nothing changed. */
int blk_update(struct virtio_dev *dev, const struct drive_config *cfg, char *err);
/* The root device's root=... ro|rw kernel argument. */
const char *blk_root_arg(struct virtio_dev *dev);

#endif
