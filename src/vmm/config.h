/* The VM's configuration as plain C data: the controller fills it from the API and the
 * config file (through config_json.c and each device kind's handlers); the builder reads it. */
#ifndef EMBER_CONFIG_H
#define EMBER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rate_limiter.h"
#include "x86/loader.h"

#define VCPU_MAX    32
#define MEM_MIB_MIN 16
#define MEM_MIB_MAX (1024 * 1024) /* 1 TiB: a sanity bound, not a promise */

/* Firecracker's default when boot_args is not given. */
#define DEFAULT_BOOT_ARGS                                                                          \
	"reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux "               \
	"i8042.nopnp i8042.dumbkbd"

struct boot_source_config {
	char *kernel_image_path; /* NULL until configured */
	char *initrd_path;	 /* optional */
	char *boot_args;	 /* NULL means DEFAULT_BOOT_ARGS */
};

struct machine_config {
	unsigned vcpu_count;
	unsigned mem_size_mib;
	bool smt;
	bool track_dirty_pages;
};

/* Device kinds in the device table (src/vmm/device_table.c) at most. */
#define DEVICE_KINDS_MAX 8

struct vm_config {
	struct boot_source_config boot;
	struct machine_config machine;
	char *serial_out_path; /* NULL: the guest console goes to stdout */
	/* What the console may write; bytes beyond it are dropped. Size 0: no limit. */
	struct token_bucket_config serial_rate_limiter;
	/* Each device kind's own configuration (its store), by its row in the device table.
	 * Only the kind's functions look inside. */
	void *devices[DEVICE_KINDS_MAX];
};

void vm_config_init(struct vm_config *cfg);
void vm_config_free(struct vm_config *cfg);

#endif
