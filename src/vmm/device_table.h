/* The device table: one row per kind of virtio device. The controller, the builder, the
 * config file and GET /vm/config reach devices only through it, so a new kind is its own
 * files plus one row here. */
#ifndef EMBER_DEVICE_TABLE_H
#define EMBER_DEVICE_TABLE_H

#include "virtio/kind.h"

/* NULL-terminated, in the order the builder creates devices (and so their virtio slots). */
extern const struct device_kind *const device_kinds[];

/* The row whose key is key ("drives"), or -1. */
int device_kind_find(const char *key);

#endif
