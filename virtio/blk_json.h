/* Firecracker's "drives" objects: PUT /drives/{id}, PATCH /drives/{id} and the config
 * file's "drives" array share these handlers. Like config_json.h they return 0, or
 * -EINVAL with a message in err (API_ERR_LEN) that names the drive and the key at fault;
 * a refused request changes nothing. */
#ifndef EMBER_DRIVES_JSON_H
#define EMBER_DRIVES_JSON_H

#include <jansson.h>

#include "vmm/config.h"
#include "vmm/config_json.h"

#define DRIVE_ID_MAX	   64
#define DRIVE_PARTUUID_MAX 64

/* One Drive object. path_id is the {id} of PUT /drives/{id} (it must equal drive_id), or
 * NULL for the config file. A drive with the same drive_id is replaced; a new one is
 * added at the end. */
int api_put_drive(struct vm_config *cfg, const char *path_id, json_t *body, char *err);
/* PartialDrive: drive_id plus path_on_host and/or rate_limiter (buckets not given keep
 * their values). The drive must exist. */
int api_patch_drive(struct vm_config *cfg, const char *path_id, json_t *body, char *err);
/* The config file's "drives": an array of Drive objects with distinct drive_ids. */
int api_put_drives(struct vm_config *cfg, json_t *array, char *err);

#endif
