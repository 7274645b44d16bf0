#include "vmm/device_table.h"

#include <string.h>

#include "virtio/balloon_json.h"
#include "virtio/blk_json.h"
#include "virtio/net_json.h"
#include "virtio/rng_json.h"
#include "virtio/vsock_json.h"
#include "vmm/config.h"

const struct device_kind *const device_kinds[] = {
	&blk_kind, &net_kind, &vsock_kind, &rng_kind, &balloon_kind, NULL,
};

_Static_assert(sizeof(device_kinds) / sizeof(device_kinds[0]) <= DEVICE_KINDS_MAX + 1,
	       "vm_config.devices has a slot for every kind");

int device_kind_find(const char *key)
{
	for (int k = 0; device_kinds[k]; k++)
		if (strcmp(device_kinds[k]->key, key) == 0)
			return k;
	return -1;
}
