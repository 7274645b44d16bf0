/* Firecracker's "vsock" object: PUT /vsock and the config file's "vsock" share this
 * handler. Like blk_json.h and net_json.h it returns 0, or -EINVAL with a message in
 * err (ERR_LEN) that names the key (and the path) at fault; a refused request changes
 * nothing. */
#ifndef EMBER_VSOCK_JSON_H
#define EMBER_VSOCK_JSON_H

#include <jansson.h>

#include "virtio/vsock.h"
#include "virtio/kind.h"

#define VSOCK_ID_MAX 64
/* uds_path plus "_<port>" (at most "_4294967295") must fit sun_path with its NUL. */
#define VSOCK_PORT_SUFFIX_MAX 11
#define VSOCK_UDS_PATH_MAX    (108 - 1 - VSOCK_PORT_SUFFIX_MAX)

/* One Vsock object: guest_cid (3 to 2^32-1), uds_path (in a directory that exists, short
 * enough for the "_PORT" sockets of guest connections) and an optional vsock_id. A VM has
 * one vsock device: a second PUT replaces the first. store is a struct vsock_config. */
int vsock_config_put(void *store, const char *path_id, json_t *body, char *err);

/* The device table's row for the vsock device. */
extern const struct device_kind vsock_kind;

#endif
