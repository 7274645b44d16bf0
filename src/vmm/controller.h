/* The controller: the VM's state machine (configuring, running, paused; the process ends
 * with the VM) and every action on it. The API's routes and main() call only these, on the
 * VMM thread (the VM itself comes from builder_init and builder_prepare, vm.h). Each
 * returns 0, or -errno with a message of at most ERR_LEN bytes in err:
 * -EPERM for an action in the wrong phase (PRE_BOOT_ONLY/POST_BOOT_ONLY), -ENOENT for an
 * unknown object, -EINVAL for everything else the caller got wrong. */
#ifndef EMBER_CONTROLLER_H
#define EMBER_CONTROLLER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/vm.h"

#define PRE_BOOT_ONLY  "The requested operation is not supported after starting the microVM."
#define POST_BOOT_ONLY "The requested operation is not supported before starting the microVM."

/* The configuration objects: "boot-source", "machine-config", "serial", "logger",
 * "metrics", or a device kind's key ("drives"; id is its {id}). patch: PATCH semantics;
 * on a running VM only a device kind's PATCH is allowed, and it updates the device. */
int vmm_configure(struct vm *vm, const char *key, const char *id, json_t *body, bool patch,
		  char *err);
/* GET on a device kind's object (key "balloon", id its second path segment or NULL): a new
 * reference in *out. */
int vmm_device_get(struct vm *vm, const char *key, const char *id, json_t **out, char *err);
/* A Firecracker config file: every object, or with SNAPSHOT_LOAD_KEY (config_json.h) the
 * logger, the metrics and the snapshot to load; vmm_start_configured then starts the VM. */
int vmm_load_config_file(struct vm *vm, const char *path, char *err);
/* After vmm_load_config_file: InstanceStart, or the file's snapshot loaded (the VM paused
 * or running, as the body's resume_vm says). */
int vmm_start_configured(struct vm *vm, char *err);
/* The command line's --snapshot: PUT /snapshot/load with the File backend, resumed. */
int vmm_load_snapshot_files(struct vm *vm, const char *state_path, const char *mem_path, char *err);
/* --metrics-path: as PUT /metrics. */
int vmm_open_metrics(struct vm *vm, const char *path, char *err);

int vmm_start(struct vm *vm, char *err);
int vmm_pause(struct vm *vm, char *err);
int vmm_resume(struct vm *vm, char *err);
int vmm_send_ctrl_alt_del(struct vm *vm, char *err);
int vmm_flush_metrics(struct vm *vm, char *err);

/* A snapshot load's clock_realtime: clock (for KVM_SET_CLOCK on vm_fd), read at wall-clock
 * time then_ns, goes forward by the wall-clock time since, never back. A kernel with
 * KVM_CLOCK_REALTIME in KVM_CAP_ADJUST_CLOCK (5.16 and later; PVM's too) does it in
 * KVM_SET_CLOCK against its own reading of the time (the flag and then_ns are set);
 * elsewhere clock->clock gets the gap added. */
struct kvm_clock_data;
void vmm_clock_advance(int vm_fd, struct kvm_clock_data *clock, uint64_t then_ns);

/* "Not started", "Running" or "Paused", as GET / shows it. */
const char *vmm_state_name(const struct vm *vm);
/* GET /machine-config and GET /vm/config (new references). */
json_t *vmm_machine_config_json(const struct vm *vm);
json_t *vmm_config_json(const struct vm *vm);

/* Runs the VMM event loop until the VM ends, stops the vCPUs, flushes the last metrics;
 * returns the exit code. Then vmm_destroy frees everything. */
int vmm_run(struct vm *vm);
void vmm_destroy(struct vm *vm);

#endif
