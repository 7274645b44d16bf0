/* Firecracker's "network-interfaces": PUT and PATCH /network-interfaces/{id} and the config
 * file's array, with the messages and the all-or-nothing of blk_json.h. */
#ifndef EMBER_NET_JSON_H
#define EMBER_NET_JSON_H

#include <jansson.h>

#include "virtio/net.h"
#include "virtio/kind.h"

#define IFACE_ID_MAX 64
#define NET_MTU_MIN  68
#define NET_MTU_MAX  65535

/* store is a struct net_set. One NetworkInterface: iface_id, host_dev_name (a TAP that must
 * exist), and optional guest_mac, mtu, rx_rate_limiter, tx_rate_limiter. */
int net_config_put(void *store, const char *path_id, json_t *body, char *err);
/* PartialNetworkInterface: rx_rate_limiter and/or tx_rate_limiter of an interface. */
int net_config_patch(void *store, const char *path_id, json_t *body, char *err);
int net_config_load(void *store, json_t *array, char *err);
extern const struct device_kind net_kind;

#endif
