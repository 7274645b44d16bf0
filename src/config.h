/* The VM's configuration as plain C data. The JSON handlers in api/ fill it, from
 * --config-file now and from the HTTP API later; the VMM only ever reads it. */
#ifndef EMBER_CONFIG_H
#define EMBER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define VCPU_MAX 32
#define MEM_MIB_MIN 16
#define MEM_MIB_MAX (1024 * 1024) /* 1 TiB: a sanity bound, not a promise */
#define CMDLINE_MAX 2048          /* Linux's x86 COMMAND_LINE_SIZE */

/* Firecracker's default when boot_args is not given. */
#define DEFAULT_BOOT_ARGS                                                              \
	"reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux " \
	"i8042.nopnp i8042.dumbkbd"

struct boot_source_config {
	char *kernel_image_path; /* NULL until configured */
	char *initrd_path;       /* optional */
	char *boot_args;         /* NULL means DEFAULT_BOOT_ARGS */
};

struct machine_config {
	unsigned vcpu_count;
	unsigned mem_size_mib;
	bool smt;
	bool track_dirty_pages;
};

struct vm_config {
	struct boot_source_config boot;
	struct machine_config machine;
	char *serial_out_path; /* NULL: the guest console goes to stdout */
};

void vm_config_init(struct vm_config *cfg);
void vm_config_free(struct vm_config *cfg);

#endif
