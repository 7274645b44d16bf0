/* A kind of virtio device as the VMM's device table sees it: each device's configuration
 * file (virtio/blk_json.c, net_json.c, vsock_json.c) defines one, and src/vmm/device_table.c
 * lists them. The VMM knows devices only through these rows. */
#ifndef EMBER_KIND_H
#define EMBER_KIND_H

#include <jansson.h>
#include <stdbool.h>

#include "core/machine.h"
#include "core/snapbuf.h"
#include "virtio/virtio.h"

/* What the create hooks made, in virtio-mmio slot order, each with the kernel argument it
 * needs besides its virtio_mmio.device=... (the root drive's root=...), or NULL. */
struct device_set {
	struct virtio_dev *devs[VIRTIO_DEV_MAX];
	const char *args[VIRTIO_DEV_MAX];
	unsigned nr;
};

/* Adds dev (and arg, if not NULL) to set; -ENOSPC when it is full. */
int device_set_add(struct device_set *set, struct virtio_dev *dev, const char *arg);

/* Every hook that takes err returns 0 or -errno with a message of at most ERR_LEN bytes that
 * names the object and the key at fault; a refused call changes nothing. */
struct device_kind {
	const char *key;    /* config-file key, API path (/drives) and GET /vm/config key */
	const char *metric; /* the API's request metrics: "drive" counts drive_count/_fails */
	bool per_id;	    /* /drives/{id}: objects with ids; else one object at /vsock */
	/* A kind without ids whose object has parts (/balloon/statistics): what follows the
	 * path's first segment ("statistics", "hinting/start", without a trailing slash) reaches
	 * its hooks as id (NULL for /balloon itself). false: the rest is ignored, as Firecracker
	 * ignores it. */
	bool subpaths;
	/* A kind with parts whose part of this name takes PATCH without a body (Firecracker's
	 * /balloon/hinting/start and /stop): update gets body NULL when none came. NULL: every
	 * PATCH needs one. */
	const char *bodiless_patch;
	/* A field Firecracker deprecated in this object: a PUT that gives it is answered with
	 * "Deprecation: true" and logged, as Firecracker does. NULL: none. */
	const char *deprecated_field;

	/* The configuration before start, in the kind's own store: store_size zeroed bytes
	 * that the VMM allocates with the VM's configuration. id is the path's {id} for per_id
	 * kinds, NULL otherwise and for the config file. */
	size_t store_size;
	int (*put)(void *store, const char *id, json_t *body, char *err);
	/* PATCH before start, on the configuration; -EPERM with err empty, or NULL: refused
	 * with Firecracker's "not supported before starting" (drives and interfaces). */
	int (*patch)(void *store, const char *id, json_t *body, char *err);
	int (*load)(void *store, json_t *value, char *err); /* the config file's value */
	json_t *(*to_json)(const void *store);		    /* GET /vm/config */
	void (*free)(void *store); /* what the store points to, not the store */

	/* InstanceStart: creates every configured device in machine into set. */
	int (*create)(struct machine *machine, const void *store, struct device_set *set,
		      char *err);
	/* PATCH on the running VM: applies body to dev (the device with this id), and only
	 * when the device took it, commits it to *store. A kind without ids gets dev NULL when
	 * none was configured, and answers that itself. */
	int (*update)(void *store, struct virtio_dev *dev, const char *id, json_t *body, char *err);
	/* GET /key (and /key/{id}): a new reference in *out. dev is the running device, NULL
	 * before start or when none was configured. -EPERM with err left empty: not in this
	 * phase, and the controller answers Firecracker's message for it. NULL: no GET. */
	int (*get)(const void *store, struct virtio_dev *dev, bool started, const char *id,
		   json_t **out, char *err);

	/* Snapshots, on a paused VM. save: the device's own state, after the transport's
	 * (virtio_mmio_save). restore: onto the device create made from the saved
	 * configuration, with the transport restored; the bytes are untrusted. NULL: this kind
	 * cannot be snapshotted yet, and a snapshot of a VM with one is refused. */
	int (*save)(struct virtio_dev *dev, struct snap_writer *w, char *err);
	/* Before anything is saved (the dirty log, the vCPUs' interrupt state): the device
	 * finishes the work it holds, so that save finds it idle and the guest memory and
	 * interrupts that finishing writes are in the snapshot. NULL: nothing to finish. */
	int (*quiesce)(struct virtio_dev *dev, char *err);
	int (*restore)(struct virtio_dev *dev, struct snap_reader *r, char *err);

	/* Snapshot load: override_key is a key of the load request's body (Firecracker's
	 * "network_overrides") whose value, untrusted, override applies to this kind's
	 * configuration as the snapshot saved it (saved: the kind's value in GET /vm/config's
	 * shape, JSON null when the snapshot has none), before load checks it and the devices
	 * are made. NULL: this kind takes no override. */
	const char *override_key;
	int (*override)(json_t *saved, json_t *value, char *err);
};

#endif
