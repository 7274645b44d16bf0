/* NetworkInterface objects: strict validation into a scratch net_config, then one commit. */
#include "virtio/net_json.h"

#include <errno.h>
#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_fields.h"
#include "virtio/tap.h"
#include "virtio/virtio.h"

/* "06:00:AC:10:00:02": six hex pairs separated by colons; a multicast address cannot be a
 * NIC's own. */
static int parse_mac(const char *s, uint8_t mac[6], const char *what, char *err)
{
	unsigned v[6];
	int end = 0;
	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &end) != 6 ||
	    end != 17 || strspn(s, "0123456789abcdefABCDEF:") != 17)
		return cfg_fail(
			err, "%s: field 'guest_mac' must look like 06:00:ac:10:00:02, not '%.32s'",
			what, s);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	if (mac[0] & 1)
		return cfg_fail(err, "%s: field 'guest_mac' %s is a multicast address", what, s);
	return 0;
}

static void free_net(void *p)
{
	struct net_config *n = p;
	free(n->iface_id);
	free(n->host_dev_name);
	memset(n, 0, sizeof(*n));
}

static const struct cfg_list nets = { .key = "network-interfaces",
				      .kind = "network interface",
				      .twins = "interfaces",
				      .id_key = "iface_id",
				      .mismatch_names_ids = true,
				      .id_max = IFACE_ID_MAX,
				      .items = offsetof(struct net_set, nets),
				      .nr = offsetof(struct net_set, nr_nets),
				      .size = sizeof(struct net_config),
				      .id = offsetof(struct net_config, iface_id),
				      .max = VIRTIO_DEV_MAX,
				      .free = free_net,
				      .put = net_config_put };

int net_config_put(void *store, const char *path_id, json_t *body, char *err)
{
	struct net_set *set = store;
	static const char *const keys[] = { "iface_id", "host_dev_name",   "guest_mac",
					    "mtu",	"rx_rate_limiter", "tx_rate_limiter",
					    NULL };
	const char *id, *tap, *mac;
	char what[API_WHAT_LEN];
	if (cfg_list_id(&nets, body, path_id, &id, what, err) ||
	    cfg_check_keys(body, what, keys, err))
		return -EINVAL;
	struct net_config next = { 0 };
	if (cfg_get_str(body, what, "host_dev_name", false, &tap, err) ||
	    cfg_get_str(body, what, "guest_mac", false, &mac, err) ||
	    cfg_get_rate_limiter(body, what, "rx_rate_limiter", &next.rx_rate_limiter, err) ||
	    cfg_get_rate_limiter(body, what, "tx_rate_limiter", &next.tx_rate_limiter, err))
		return -EINVAL;
	if (!tap)
		return cfg_fail(err, "%s: missing field 'host_dev_name'", what);
	if (tap[0] == '\0' || strlen(tap) >= IFNAMSIZ)
		return cfg_fail(err, "%s: field 'host_dev_name' must be 1 to %d characters", what,
				IFNAMSIZ - 1);
	/* Caught here rather than at InstanceStart, as Firecracker opens the TAP at PUT: the
	 * orchestrator creates it first. InstanceStart opens it again (and checks it is up). */
	if (if_nametoindex(tap) == 0)
		return cfg_fail(err, "%s: host_dev_name: TAP device %.16s does not exist", what,
				tap);
	char why[ERR_LEN];
	if (tap_probe(id, tap, why))
		return cfg_fail(err, "%.450s", why); /* it names the interface and the TAP */
	if (mac) {
		if (parse_mac(mac, next.guest_mac, what, err))
			return -EINVAL;
		next.has_mac = true;
	}
	json_t *mtu = json_object_get(body, "mtu");
	if (mtu && !json_is_null(mtu)) {
		if (!json_is_integer(mtu) || json_integer_value(mtu) < NET_MTU_MIN ||
		    json_integer_value(mtu) > NET_MTU_MAX)
			return cfg_fail(err, "%s: field 'mtu' must be an integer from %d to %d",
					what, NET_MTU_MIN, NET_MTU_MAX);
		next.mtu = (uint16_t)json_integer_value(mtu);
	}
	for (unsigned i = 0; i < set->nr_nets; i++) {
		const struct net_config *o = &set->nets[i];
		if (strcmp(o->iface_id, id) == 0)
			continue;
		if (strcmp(o->host_dev_name, tap) == 0)
			return cfg_fail(err, "%s: TAP %s is already used by network interface '%s'",
					what, tap, o->iface_id);
		if (next.has_mac && o->has_mac && memcmp(o->guest_mac, next.guest_mac, 6) == 0)
			return cfg_fail(
				err, "%s: guest_mac %s is already used by network interface '%s'",
				what, mac, o->iface_id);
	}
	next.iface_id = strdup(id);
	next.host_dev_name = strdup(tap);
	return cfg_list_put(&nets, set, id, &next, !next.iface_id || !next.host_dev_name, what,
			    err);
}

/* A PartialNetworkInterface for an existing interface: *c is it, *next what it becomes. */
static int parse_patch(struct net_set *set, const char *path_id, json_t *body,
		       struct net_config **c, struct net_config *next, char *err)
{
	static const char *const keys[] = { "iface_id", "rx_rate_limiter", "tx_rate_limiter",
					    NULL };
	char what[API_WHAT_LEN];
	if (!(*c = cfg_list_patch_target(&nets, set, path_id, body, keys,
					 "rx_rate_limiter and tx_rate_limiter", what, err)))
		return -EINVAL;
	*next = **c;
	if (cfg_get_rate_limiter(body, what, "rx_rate_limiter", &next->rx_rate_limiter, err) ||
	    cfg_get_rate_limiter(body, what, "tx_rate_limiter", &next->tx_rate_limiter, err))
		return -EINVAL;
	return 0;
}

int net_config_patch(void *store, const char *path_id, json_t *body, char *err)
{
	struct net_config *c, next;
	int rc = parse_patch(store, path_id, body, &c, &next, err);
	if (!rc)
		*c = next;
	return rc;
}

int net_config_load(void *store, json_t *array, char *err)
{
	return cfg_list_load(&nets, store, array, err);
}

static json_t *kind_to_json(const void *store)
{
	const struct net_set *set = store;
	json_t *arr = json_array();
	for (unsigned i = 0; i < set->nr_nets; i++) {
		const struct net_config *n = &set->nets[i];
		char mac[18];
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->guest_mac[0],
			 n->guest_mac[1], n->guest_mac[2], n->guest_mac[3], n->guest_mac[4],
			 n->guest_mac[5]);
		/* Every field Firecracker shows, null where unset (test_get_full_config). */
		json_t *obj = json_pack(
			"{s:s, s:s, s:o, s:o, s:o, s:o}", "iface_id", n->iface_id, "host_dev_name",
			n->host_dev_name, "guest_mac", n->has_mac ? json_string(mac) : json_null(),
			"mtu", n->mtu ? json_integer(n->mtu) : json_null(), "rx_rate_limiter",
			cfg_rate_limiter_json(&n->rx_rate_limiter), "tx_rate_limiter",
			cfg_rate_limiter_json(&n->tx_rate_limiter));
		json_array_append_new(arr, obj);
	}
	return arr;
}

/* The device table's hooks: the store is a struct net_set. */

static void kind_free(void *store)
{
	cfg_list_free(&nets, store);
}

static int kind_create(struct machine *machine, const void *store, struct device_set *out,
		       char *err)
{
	const struct net_set *set = store;
	for (unsigned i = 0; i < set->nr_nets; i++) {
		struct virtio_dev *dev;
		int rc = net_create(machine, &set->nets[i], &dev, err);
		if (rc)
			return rc;
		if (device_set_add(out, dev, NULL))
			return cfg_fail(
				err, "network interface %s: too many virtio devices (at most %d)",
				set->nets[i].iface_id, VIRTIO_DEV_MAX);
	}
	return 0;
}

static int kind_update(void *store, struct virtio_dev *dev, const char *id, json_t *body, char *err)
{
	struct net_config *c, next;
	int rc = parse_patch(store, id, body, &c, &next, err);
	if (!rc && !(rc = net_update(dev, &next, err)))
		*c = next;
	return rc;
}

/* network_overrides: [{iface_id, host_dev_name}] onto the saved interfaces. Each names one
 * of them and the TAP it uses from now on; load then checks that TAP as a PUT would (it
 * exists, ember can attach to it, no other interface uses it). */
static int kind_override(json_t *saved, json_t *value, char *err)
{
	static const char *const keys[] = { "iface_id", "host_dev_name", NULL };
	if (!json_is_array(value))
		return cfg_fail(err, "network_overrides: expected an array");
	size_t i;
	json_t *o;
	json_array_foreach (value, i, o) {
		char what[48];
		const char *id, *tap;
		snprintf(what, sizeof(what), "network_overrides[%zu]", i);
		if (!json_is_object(o))
			return cfg_fail(err, "%s: expected an object", what);
		if (cfg_check_keys(o, what, keys, err) ||
		    cfg_get_str(o, what, "iface_id", true, &id, err) ||
		    cfg_get_str(o, what, "host_dev_name", true, &tap, err))
			return -EINVAL;
		json_t *iface = NULL, *it;
		size_t j;
		if (json_is_array(saved))
			json_array_foreach (saved, j, it) {
				json_t *sid = json_object_get(it, "iface_id");
				if (json_is_string(sid) &&
				    strcmp(json_string_value(sid), id) == 0) {
					iface = it;
					break;
				}
			}
		/* Firecracker's words for it: "Unknown Network Interface." */
		if (!json_is_object(iface))
			return cfg_fail(
				err,
				"%s: Unknown Network Interface: the snapshot has no network "
				"interface '%.64s'",
				what, id);
		json_object_set_new(iface, "host_dev_name", json_string(tap));
	}
	return 0;
}

const struct device_kind net_kind = {
	.key = "network-interfaces",
	.metric = "network",
	.per_id = true,
	.store_size = sizeof(struct net_set),
	.put = net_config_put,
	.load = net_config_load,
	.to_json = kind_to_json,
	.free = kind_free,
	.create = kind_create,
	.update = kind_update,
	.save = net_save,
	.restore = net_restore,
	.override_key = "network_overrides",
	.override = kind_override,
};
