/* Firecracker's "drives": PUT and PATCH /drives/{id} and the config file's array, and
 * blk_kind, their device table row. The handlers return 0, or -EINVAL with a message in err
 * (ERR_LEN) that names the drive and the key at fault; a refused request changes nothing. */
#ifndef EMBER_DRIVES_JSON_H
#define EMBER_DRIVES_JSON_H

#include <jansson.h>

#include "virtio/blk.h"
#include "virtio/kind.h"

#define DRIVE_ID_MAX	   64
#define DRIVE_PARTUUID_MAX 64

/* store is a struct drive_set. One Drive; path_id is the {id} of the path (drive_id must equal
 * it) or NULL for the config file. A drive with the same drive_id is replaced. */
int blk_config_put(void *store, const char *path_id, json_t *body, char *err);
/* PartialDrive: path_on_host and/or rate_limiter of a drive (absent buckets stay). */
int blk_config_patch(void *store, const char *path_id, json_t *body, char *err);
int blk_config_load(void *store, json_t *array, char *err);

extern const struct device_kind blk_kind;

#endif
