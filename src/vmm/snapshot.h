/* Snapshots through the API: PUT /snapshot/create on a paused VM, PUT /snapshot/load in a
 * fresh process. Bodies and messages follow Firecracker's; the state file is ember's own
 * (vmm/snapshot_file.h), the memory file a sparse image of guest RAM. Each returns 0 or
 * -errno with a message in err (controller.h's conventions). */
#ifndef EMBER_SNAPSHOT_H
#define EMBER_SNAPSHOT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/snapshot_mem.h"
#include "vmm/vm.h"

int vmm_snapshot_create(struct vm *vm, json_t *body, char *err);
/* On failure nothing of the snapshot stays: the process can load another or be
 * configured. */
int vmm_snapshot_load(struct vm *vm, json_t *body, char *err);
/* The checks a load makes on a state file before it builds anything (framing, machine,
 * KVM and vCPU sections, the devices' configuration), on a byte buffer and without a VM:
 * for the fuzz and unit tests. 0 or -errno with err. */
int vmm_snapshot_check(const uint8_t *buf, size_t len, char *err);

/* A load's device configuration: the load body's override keys (network_overrides,
 * vsock_override; overrides may be NULL) applied to root, the saved configuration (a JSON
 * object in GET /vm/config's shape, changed in place), then each kind's value loaded into
 * cfg through the kind's checks. Both JSON values are untrusted. */
struct vm_config;
int snapshot_config_apply(struct vm_config *cfg, json_t *root, json_t *overrides, char *err);

/* What a checked state file holds, for ember-snap inspect. */
struct snapshot_device {
	char kind[32]; /* its device table key: "drives", "network-interfaces", ... */
	char id[72];
	unsigned slot; /* virtio-mmio slot */
};
struct snapshot_info {
	unsigned major, minor, nr_vcpus, mem_mib;
	unsigned tsc_khz; /* vCPU 0's TSC frequency; 0: not in the file (before 1.3) */
	struct snap_mem_record mem;
	unsigned nr_devices;
	struct snapshot_device devices[VIRTIO_DEV_MAX];
};
/* vmm_snapshot_check, and on success what the file holds into info (NULL: only the check). */
int vmm_snapshot_inspect(const uint8_t *buf, size_t len, struct snapshot_info *info, char *err);

#endif
