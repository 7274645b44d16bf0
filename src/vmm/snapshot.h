/* Snapshots through the API: PUT /snapshot/create on a paused VM, PUT /snapshot/load in a
 * fresh process. Bodies and messages follow Firecracker's; the state file is ember's own
 * (vmm/snapshot_file.h), the memory file a sparse image of guest RAM. Each returns 0 or
 * -errno with a message in err (controller.h's conventions). */
#ifndef EMBER_SNAPSHOT_H
#define EMBER_SNAPSHOT_H

#include <jansson.h>

#include "vmm/vm.h"

int vmm_snapshot_create(struct vm *vm, json_t *body, char *err);
/* On failure nothing of the snapshot stays: the process can load another or be
 * configured. */
int vmm_snapshot_load(struct vm *vm, json_t *body, char *err);

#endif
