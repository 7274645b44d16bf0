/* Firecracker's "network-interfaces" objects: PUT /network-interfaces/{id}, PATCH
 * /network-interfaces/{id} and the config file's "network-interfaces" array share these
 * handlers. Like blk_json.h they return 0, or -EINVAL with a message in err
 * (ERR_LEN) that names the interface and the key at fault; a refused request changes
 * nothing. */
#ifndef EMBER_NET_JSON_H
#define EMBER_NET_JSON_H

#include <jansson.h>

#include "virtio/net.h"
#include "virtio/kind.h"

#define IFACE_ID_MAX 64
#define NET_MTU_MIN  68
#define NET_MTU_MAX  65535

/* store is a struct net_set (the device table's store). One NetworkInterface object: iface_id,
 * host_dev_name (a TAP that must exist), and optional guest_mac, mtu, rx_rate_limiter,
 * tx_rate_limiter. path_id is the {id} of the PUT path (it must equal iface_id), or NULL for the
 * config file. An interface with the same iface_id is replaced; a new one is added at the end. */
int net_config_put(void *store, const char *path_id, json_t *body, char *err);
/* PartialNetworkInterface: iface_id plus rx_rate_limiter and/or tx_rate_limiter (buckets
 * not given keep their values). The interface must exist. */
int net_config_patch(void *store, const char *path_id, json_t *body, char *err);
/* The config file's "network-interfaces": an array with distinct iface_ids. */
int net_config_load(void *store, json_t *array, char *err);
/* The device table's row for network interfaces. */
extern const struct device_kind net_kind;

#endif
