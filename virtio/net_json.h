/* Firecracker's "network-interfaces" objects: PUT /network-interfaces/{id}, PATCH
 * /network-interfaces/{id} and the config file's "network-interfaces" array share these
 * handlers. Like drives_json.h they return 0, or -EINVAL with a message in err
 * (API_ERR_LEN) that names the interface and the key at fault; a refused request changes
 * nothing. */
#ifndef EMBER_NET_JSON_H
#define EMBER_NET_JSON_H

#include <jansson.h>

#include "vmm/config.h"
#include "vmm/config_json.h"

#define IFACE_ID_MAX 64
#define NET_MTU_MIN  68
#define NET_MTU_MAX  65535

/* One NetworkInterface object: iface_id, host_dev_name (a TAP that must exist), and
 * optional guest_mac, mtu, rx_rate_limiter, tx_rate_limiter. path_id is the {id} of the
 * PUT path (it must equal iface_id), or NULL for the config file. An interface with the
 * same iface_id is replaced; a new one is added at the end. */
int api_put_net(struct vm_config *cfg, const char *path_id, json_t *body, char *err);
/* PartialNetworkInterface: iface_id plus rx_rate_limiter and/or tx_rate_limiter (buckets
 * not given keep their values). The interface must exist. */
int api_patch_net(struct vm_config *cfg, const char *path_id, json_t *body, char *err);
/* The config file's "network-interfaces": an array with distinct iface_ids. */
int api_put_nets(struct vm_config *cfg, json_t *array, char *err);
/* The interfaces as GET /vm/config shows them (a new reference). */
json_t *api_nets_json(const struct vm_config *cfg);

#endif
