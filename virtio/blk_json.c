/* Drive objects: strict validation into a scratch drive_config, then one commit. */
#include "virtio/blk_json.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio/blk.h"
#include "core/json_fields.h"

/* The image must exist and allow what the guest will do with it. */
static int check_path(const char *path, bool read_only, const char *what, char *err)
{
	struct stat st;
	if (path[0] == '\0')
		return cfg_fail(err, "%s: field 'path_on_host' is empty", what);
	if (stat(path, &st) < 0)
		return cfg_fail(err, "%s: path_on_host %.300s: %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return cfg_fail(err, "%s: path_on_host %.300s is not a file or block device", what,
				path);
	if (access(path, read_only ? R_OK : R_OK | W_OK) < 0)
		return cfg_fail(err, "%s: path_on_host %.300s is not %s: %s", what, path,
				read_only ? "readable"
					  : "readable and writable (set is_read_only?)",
				strerror(errno));
	return 0;
}

static void free_drive(void *p)
{
	struct drive_config *d = p;
	free(d->drive_id);
	free(d->path_on_host);
	free(d->partuuid);
	memset(d, 0, sizeof(*d));
}

static const struct cfg_list drives = { .key = "drives",
					.kind = "drive",
					.twins = "drives",
					.id_key = "drive_id",
					.id_max = DRIVE_ID_MAX,
					.items = offsetof(struct drive_set, drives),
					.nr = offsetof(struct drive_set, nr_drives),
					.size = sizeof(struct drive_config),
					.id = offsetof(struct drive_config, drive_id),
					.max = VIRTIO_DEV_MAX,
					.free = free_drive,
					.put = blk_config_put };

int blk_config_put(void *store, const char *path_id, json_t *body, char *err)
{
	struct drive_set *set = store;
	static const char *const keys[] = {
		"drive_id",   "path_on_host", "is_root_device", "is_read_only", "partuuid",
		"cache_type", "io_engine",    "rate_limiter",	"socket",	NULL
	};
	static const char *const caches[] = { "Unsafe", "Writeback", NULL };
	static const char *const engines[] = { "Sync", "Async", NULL };
	const char *id;
	char what[API_WHAT_LEN];
	if (cfg_list_id(&drives, body, path_id, &id, what, err) ||
	    cfg_check_keys(body, what, keys, err))
		return -EINVAL;
	if (cfg_get(body, "socket", false))
		return cfg_fail(err,
				"%s: field 'socket': vhost-user block devices are not supported",
				what);

	struct drive_config next = { 0 };
	const char *path, *partuuid;
	int cache = DRIVE_CACHE_UNSAFE, engine = DRIVE_ENGINE_SYNC;
	if (cfg_get_bool(body, what, "is_root_device", true, &next.is_root_device, err) ||
	    cfg_get_bool(body, what, "is_read_only", false, &next.is_read_only, err) ||
	    cfg_get_str(body, what, "path_on_host", false, &path, err) ||
	    cfg_get_str(body, what, "partuuid", false, &partuuid, err) ||
	    cfg_get_enum(body, what, "cache_type", caches, &cache, err) ||
	    cfg_get_enum(body, what, "io_engine", engines, &engine, err) ||
	    cfg_get_rate_limiter(body, what, "rate_limiter", &next.rate_limiter, err))
		return -EINVAL;
	if (!path)
		return cfg_fail(err, "%s: missing field 'path_on_host'", what);
	if (check_path(path, next.is_read_only, what, err))
		return -EINVAL;
	if (partuuid) {
		/* It lands on the kernel command line: no room for anything but a UUID. */
		size_t n = strlen(partuuid);
		if (n == 0 || n > DRIVE_PARTUUID_MAX ||
		    strspn(partuuid, "0123456789abcdefABCDEF-") != n)
			return cfg_fail(err,
					"%s: field 'partuuid' must be 1 to %d hex digits and '-'",
					what, DRIVE_PARTUUID_MAX);
	}
	if (next.is_root_device) {
		for (unsigned i = 0; i < set->nr_drives; i++)
			if (set->drives[i].is_root_device && strcmp(set->drives[i].drive_id, id))
				return cfg_fail(
					err,
					"%s: field 'is_root_device': drive '%s' is already the "
					"root device",
					what, set->drives[i].drive_id);
	}
	if (engine == DRIVE_ENGINE_ASYNC) {
		char why[ERR_LEN];
		if (blk_uring_probe(why))
			return cfg_fail(err, "%s: field 'io_engine' \"Async\": %s", what, why);
	}
	next.cache_type = (enum drive_cache_type)cache;
	next.io_engine = (enum drive_io_engine)engine;
	next.drive_id = strdup(id);
	next.path_on_host = strdup(path);
	next.partuuid = partuuid ? strdup(partuuid) : NULL;
	return cfg_list_put(&drives, set, id, &next,
			    !next.drive_id || !next.path_on_host || (partuuid && !next.partuuid),
			    what, err);
}

/* A PartialDrive for an existing drive *d: *next is what it becomes, with a path_on_host of
 * its own if the body gives one. Nothing changes yet. */
static int parse_patch(struct drive_set *set, const char *path_id, json_t *body,
		       struct drive_config **d, struct drive_config *next, char *err)
{
	static const char *const keys[] = { "drive_id", "path_on_host", "rate_limiter", NULL };
	const char *path;
	char what[API_WHAT_LEN];
	if (!(*d = cfg_list_patch_target(&drives, set, path_id, body, keys,
					 "path_on_host and rate_limiter", what, err)))
		return -EINVAL;
	*next = **d;
	/* Firecracker refuses a PATCH of a virtio-block drive that names nothing to change
	 * (_drive_patch in test_api.py: "Running method expected different backend."). */
	if (!cfg_get(body, "path_on_host", false) && !cfg_get(body, "rate_limiter", false))
		return cfg_fail(err,
				"%s: nothing to update: PATCH takes path_on_host and/or "
				"rate_limiter",
				what);
	if (cfg_get_str(body, what, "path_on_host", false, &path, err) ||
	    cfg_get_rate_limiter(body, what, "rate_limiter", &next->rate_limiter, err) ||
	    (path && check_path(path, next->is_read_only, what, err)))
		return -EINVAL;
	if (path && !(next->path_on_host = strdup(path)))
		return cfg_fail(err, "%s: out of memory", what);
	return 0;
}

/* *next becomes the drive unless rc refuses it; the path_on_host that lost goes. */
static int commit_patch(struct drive_config *d, struct drive_config *next, int rc)
{
	if (next->path_on_host != d->path_on_host)
		free(rc ? next->path_on_host : d->path_on_host);
	if (!rc)
		*d = *next;
	return rc;
}

int blk_config_patch(void *store, const char *path_id, json_t *body, char *err)
{
	struct drive_config *d, next;
	int rc = parse_patch(store, path_id, body, &d, &next, err);
	return rc ? rc : commit_patch(d, &next, 0);
}

int blk_config_load(void *store, json_t *array, char *err)
{
	return cfg_list_load(&drives, store, array, err);
}

/* The device table's hooks: the store is a struct drive_set. */

static json_t *kind_to_json(const void *store)
{
	const struct drive_set *set = store;
	json_t *drives = json_array();
	for (unsigned i = 0; i < set->nr_drives; i++) {
		const struct drive_config *d = &set->drives[i];
		/* Every field Firecracker shows, null where unset (test_get_full_config). */
		json_t *obj = json_pack(
			"{s:s, s:o, s:b, s:s, s:b, s:s, s:o, s:s, s:n}", "drive_id", d->drive_id,
			"partuuid", d->partuuid ? json_string(d->partuuid) : json_null(),
			"is_root_device", d->is_root_device, "cache_type",
			d->cache_type == DRIVE_CACHE_WRITEBACK ? "Writeback" : "Unsafe",
			"is_read_only", d->is_read_only, "path_on_host", d->path_on_host,
			"rate_limiter", cfg_rate_limiter_json(&d->rate_limiter), "io_engine",
			d->io_engine == DRIVE_ENGINE_ASYNC ? "Async" : "Sync", "socket");
		json_array_append_new(drives, obj);
	}
	return drives;
}

static void kind_free(void *store)
{
	cfg_list_free(&drives, store);
}

/* The root device first, so that it is /dev/vda as in Firecracker; it brings root=. */
static int kind_create(struct machine *machine, const void *store, struct device_set *out,
		       char *err)
{
	const struct drive_set *set = store;
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < set->nr_drives; i++) {
			const struct drive_config *d = &set->drives[i];
			if (d->is_root_device != (pass == 0))
				continue;
			struct virtio_dev *dev;
			int rc = blk_create(machine, d, &dev, err);
			if (rc)
				return rc;
			if (device_set_add(out, dev, d->is_root_device ? blk_root_arg(dev) : NULL))
				return cfg_fail(err,
						"drive %s: too many virtio devices (at most %d)",
						d->drive_id, VIRTIO_DEV_MAX);
		}
	}
	return 0;
}

static int kind_update(void *store, struct virtio_dev *dev, const char *id, json_t *body, char *err)
{
	struct drive_config *d, next;
	int rc = parse_patch(store, id, body, &d, &next, err);
	return rc ? rc : commit_patch(d, &next, blk_update(dev, &next, err));
}

const struct device_kind blk_kind = {
	.key = "drives",
	.metric = "drive",
	.per_id = true,
	.store_size = sizeof(struct drive_set),
	.put = blk_config_put,
	.load = blk_config_load,
	.to_json = kind_to_json,
	.free = kind_free,
	.create = kind_create,
	.update = kind_update,
	.save = blk_save,
	.quiesce = blk_quiesce,
	.restore = blk_restore,
};
