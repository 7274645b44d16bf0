/* JSON handlers for Firecracker's configuration objects. One handler per object, shared by
 * --config-file and (later) the HTTP API, so both accept and refuse exactly the same input.
 * Each returns 0, or -EINVAL with a message naming the key at fault in err. */
#ifndef EMBER_CONFIG_JSON_H
#define EMBER_CONFIG_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define API_ERR_LEN 512

int api_put_boot_source(struct vm_config *cfg, json_t *body, char *err);
/* partial: PATCH semantics, only the keys present change; PUT requires vcpu_count and
 * mem_size_mib. */
int api_put_machine_config(struct vm_config *cfg, json_t *body, bool partial, char *err);
/* {"serial_out_path": PATH}: the guest console goes to PATH instead of stdout. */
int api_put_serial(struct vm_config *cfg, json_t *body, char *err);
/* Checks the combination (e.g. smt with an odd vcpu_count, a kernel configured). */
int api_validate_for_start(const struct vm_config *cfg, char *err);

/* Reads a Firecracker-style config file: an object whose keys name the objects above. */
int api_load_config_file(const char *path, struct vm_config *cfg, char *err);

#endif
