/* Drive objects: strict validation into a scratch drive_config, then one commit. */
#include "virtio/blk_json.h"

#include <errno.h>
#include <stdarg.h>
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
		return api_fail(err, "%s: field 'path_on_host' is empty", what);
	if (stat(path, &st) < 0)
		return api_fail(err, "%s: path_on_host %.300s: %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return api_fail(err, "%s: path_on_host %.300s is not a file or block device", what,
				path);
	if (access(path, read_only ? R_OK : R_OK | W_OK) < 0)
		return api_fail(err, "%s: path_on_host %.300s is not %s: %s", what, path,
				read_only ? "readable"
					  : "readable and writable (set is_read_only?)",
				strerror(errno));
	return 0;
}

static struct drive_config *find_drive(struct vm_config *cfg, const char *id)
{
	for (unsigned i = 0; i < cfg->nr_drives; i++)
		if (strcmp(cfg->drives[i].drive_id, id) == 0)
			return &cfg->drives[i];
	return NULL;
}

/* The drive_id of body, checked against the path's {id}; what becomes "drive 'ID'". */
static int body_id(json_t *body, const char *path_id, const char **id, char *what, char *err)
{
	return api_get_object_id(body, "drive", "drive_id", DRIVE_ID_MAX, path_id, id, what, err);
}

int api_put_drive(struct vm_config *cfg, const char *path_id, json_t *body, char *err)
{
	static const char *const keys[] = {
		"drive_id",   "path_on_host", "is_root_device", "is_read_only", "partuuid",
		"cache_type", "io_engine",    "rate_limiter",	"socket",	NULL
	};
	static const char *const caches[] = { "Unsafe", "Writeback", NULL };
	static const char *const engines[] = { "Sync", "Async", NULL };
	const char *id;
	char what[96];
	if (body_id(body, path_id, &id, what, err) || api_check_keys(body, what, keys, err))
		return -EINVAL;
	if (json_object_get(body, "socket"))
		return api_fail(err,
				"%s: field 'socket': vhost-user block devices are not supported",
				what);

	struct drive_config next = { 0 };
	const char *path, *partuuid;
	int cache = DRIVE_CACHE_UNSAFE, engine = DRIVE_ENGINE_SYNC;
	if (api_get_bool(body, what, "is_root_device", true, &next.is_root_device, err) ||
	    api_get_bool(body, what, "is_read_only", false, &next.is_read_only, err) ||
	    api_get_str(body, what, "path_on_host", &path, err) ||
	    api_get_str(body, what, "partuuid", &partuuid, err) ||
	    api_get_enum(body, what, "cache_type", caches, &cache, err) ||
	    api_get_enum(body, what, "io_engine", engines, &engine, err) ||
	    api_get_rate_limiter(body, what, &next.rate_limiter, err))
		return -EINVAL;
	if (!path)
		return api_fail(err, "%s: missing field 'path_on_host'", what);
	if (check_path(path, next.is_read_only, what, err))
		return -EINVAL;
	if (partuuid) {
		/* It lands on the kernel command line: no room for anything but a UUID. */
		size_t n = strlen(partuuid);
		if (n == 0 || n > DRIVE_PARTUUID_MAX ||
		    strspn(partuuid, "0123456789abcdefABCDEF-") != n)
			return api_fail(err,
					"%s: field 'partuuid' must be 1 to %d hex digits and '-'",
					what, DRIVE_PARTUUID_MAX);
	}
	if (next.is_root_device) {
		for (unsigned i = 0; i < cfg->nr_drives; i++)
			if (cfg->drives[i].is_root_device && strcmp(cfg->drives[i].drive_id, id))
				return api_fail(
					err,
					"%s: field 'is_root_device': drive '%s' is already the "
					"root device",
					what, cfg->drives[i].drive_id);
	}
	if (engine == DRIVE_ENGINE_ASYNC) {
		char why[200];
		if (blk_uring_probe(why, sizeof(why)))
			return api_fail(err, "%s: field 'io_engine' \"Async\": %s", what, why);
	}
	struct drive_config *slot = find_drive(cfg, id);
	if (!slot && cfg->nr_drives >= VIRTIO_DEV_MAX)
		return api_fail(err, "%s: too many drives (at most %d)", what, VIRTIO_DEV_MAX);

	next.cache_type = (enum drive_cache_type)cache;
	next.io_engine = (enum drive_io_engine)engine;
	next.drive_id = strdup(id);
	next.path_on_host = strdup(path);
	next.partuuid = partuuid ? strdup(partuuid) : NULL;
	if (!next.drive_id || !next.path_on_host || (partuuid && !next.partuuid)) {
		drive_config_free(&next);
		return api_fail(err, "%s: out of memory", what);
	}
	if (slot)
		drive_config_free(slot);
	else if (!(slot = api_array_append(&cfg->drives, &cfg->nr_drives, sizeof(*slot)))) {
		drive_config_free(&next);
		return api_fail(err, "%s: out of memory", what);
	}
	*slot = next;
	return 0;
}

int api_patch_drive(struct vm_config *cfg, const char *path_id, json_t *body, char *err)
{
	static const char *const keys[] = { "drive_id", "path_on_host", "rate_limiter", NULL };
	const char *id, *path;
	char what[96];
	if (body_id(body, path_id, &id, what, err))
		return -EINVAL;
	if (api_check_keys(body, what, keys, err)) {
		size_t n = strlen(err);
		snprintf(err + n, API_ERR_LEN - n,
			 " (PATCH changes only path_on_host and rate_limiter)");
		return -EINVAL;
	}
	struct drive_config *d = find_drive(cfg, id);
	if (!d)
		return api_fail(err, "%s: no such drive", what);
	struct rate_limiter_config rl = d->rate_limiter;
	if (api_get_str(body, what, "path_on_host", &path, err) ||
	    api_get_rate_limiter(body, what, &rl, err))
		return -EINVAL;
	char *copy = NULL;
	if (path) {
		if (check_path(path, d->is_read_only, what, err))
			return -EINVAL;
		if (!(copy = strdup(path)))
			return api_fail(err, "%s: out of memory", what);
		free(d->path_on_host);
		d->path_on_host = copy;
	}
	d->rate_limiter = rl;
	return 0;
}

int api_put_drives(struct vm_config *cfg, json_t *array, char *err)
{
	if (!json_is_array(array))
		return api_fail(err, "drives: expected an array of drive objects");
	size_t i;
	json_t *drive;
	json_array_foreach (array, i, drive) {
		/* The file lists each drive once; PUT's replace-by-id would hide a typo. */
		json_t *id = json_is_object(drive) ? json_object_get(drive, "drive_id") : NULL;
		if (json_is_string(id) && find_drive(cfg, json_string_value(id)))
			return api_fail(err,
					"drive '%.64s': field 'drive_id' is used by two drives",
					json_string_value(id));
		char inner[API_ERR_LEN];
		if (api_put_drive(cfg, NULL, drive, inner))
			return api_fail(err, "drives[%zu]: %.450s", i, inner);
	}
	return 0;
}
