/* JSON handlers for Firecracker's machine-wide objects (boot-source, machine-config, serial;
 * the devices' own are their kinds' hooks) and the config file. Shared by --config-file and
 * the HTTP API, so both accept and refuse exactly the same input.
 * Each returns 0, or -EINVAL with a message naming the key at fault in err. */
#ifndef EMBER_CONFIG_JSON_H
#define EMBER_CONFIG_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/config.h"

int config_put_boot_source(struct vm_config *cfg, json_t *body, char *err);
/* partial: PATCH semantics, only the keys present change; PUT requires vcpu_count and
 * mem_size_mib. */
int config_put_machine_config(struct vm_config *cfg, json_t *body, bool partial, char *err);
/* {"serial_out_path": PATH, "rate_limiter": TokenBucket}, both optional: the guest console
 * goes to PATH instead of stdout, and what it writes beyond the bucket is dropped. */
int config_put_serial(struct vm_config *cfg, json_t *body, char *err);
/* Checks the combination (e.g. smt with an odd vcpu_count, a kernel configured). */
int config_validate_for_start(const struct vm_config *cfg, char *err);

/* A config file's key whose value is a PUT /snapshot/load body: the VM comes from that
 * snapshot instead of the file's own configuration. */
#define SNAPSHOT_LOAD_KEY "snapshot-load"

/* Keys of a config file that configure ember itself rather than the VM ("logger",
 * "metrics") or that name a snapshot to start from (SNAPSHOT_LOAD_KEY): the caller's handler
 * takes them (0 or -errno with err set). */
typedef int (*config_key_fn)(void *opaque, const char *key, json_t *val, char *err);

/* Reads a Firecracker-style config file: an object whose keys name the objects above;
 * "logger", "metrics" and SNAPSHOT_LOAD_KEY go to own_key (NULL: they are refused as
 * unknown). A file with SNAPSHOT_LOAD_KEY has no other key for the VM, one without it has
 * "boot-source". */
int config_load_file(const char *path, struct vm_config *cfg, config_key_fn own_key, void *opaque,
		     char *err);

#endif
