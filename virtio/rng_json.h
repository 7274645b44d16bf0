/* Firecracker's "entropy" object: PUT /entropy and the config file's "entropy" share this
 * handler, and rng_kind is the device table's row. Like the other *_json.h it returns 0, or
 * -EINVAL with a message in err (ERR_LEN) that names the key at fault; a refused request
 * changes nothing. */
#ifndef EMBER_RNG_JSON_H
#define EMBER_RNG_JSON_H

#include <jansson.h>

#include "virtio/kind.h"
#include "virtio/rng.h"

/* One EntropyDeviceConfig: an optional rate_limiter and nothing else. A VM has one entropy
 * device: a second PUT replaces the first. store is a struct entropy_config. */
int rng_config_put(void *store, const char *path_id, json_t *body, char *err);

extern const struct device_kind rng_kind;

#endif
