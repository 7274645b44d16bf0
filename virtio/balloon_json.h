/* Firecracker's "balloon" object: PUT /balloon and the config file's "balloon" share the
 * configuration handler; PATCH /balloon and /balloon/statistics change the running device;
 * GET /balloon and /balloon/statistics read it. balloon_kind is the device table's row.
 * Returns 0, or -errno with Firecracker's message in err (ERR_LEN); a refused request
 * changes nothing. */
#ifndef EMBER_BALLOON_JSON_H
#define EMBER_BALLOON_JSON_H

#include <jansson.h>

#include "virtio/balloon.h"
#include "virtio/kind.h"

/* One BalloonDeviceConfig; a second PUT replaces the first. store is a struct
 * balloon_config. */
int balloon_config_put(void *store, const char *path_id, json_t *body, char *err);
/* GET /balloon/statistics's body from the device's state (Firecracker's BalloonStats). */
json_t *balloon_stats_json(const struct balloon_state *st);

extern const struct device_kind balloon_kind;

#endif
