/* Firecracker's "drives" objects: PUT /drives/{id}, PATCH /drives/{id} and the config
 * file's "drives" array share these handlers, and blk_kind makes them a device table row. Like
 * config_json.h they return 0, or -EINVAL with a message in err (ERR_LEN) that names the drive and
 * the key at fault; a refused request changes nothing. */
#ifndef EMBER_DRIVES_JSON_H
#define EMBER_DRIVES_JSON_H

#include <jansson.h>

#include "virtio/blk.h"
#include "virtio/kind.h"

#define DRIVE_ID_MAX	   64
#define DRIVE_PARTUUID_MAX 64

/* store is a struct drive_set (the device table's store for drives). One Drive object. path_id is
 * the {id} of PUT /drives/{id} (it must equal drive_id), or NULL for the config file. A drive with
 * the same drive_id is replaced; a new one is added at the end. */
int blk_config_put(void *store, const char *path_id, json_t *body, char *err);
/* PartialDrive: drive_id plus path_on_host and/or rate_limiter (buckets not given keep
 * their values). The drive must exist. */
int blk_config_patch(void *store, const char *path_id, json_t *body, char *err);
/* The config file's "drives": an array of Drive objects with distinct drive_ids. */
int blk_config_load(void *store, json_t *array, char *err);

/* The device table's row for drives. */
extern const struct device_kind blk_kind;

#endif
