#include "vmm/config.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "vmm/device_table.h"

void vm_config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	/* Firecracker's defaults for a machine nobody configured. */
	cfg->machine.vcpu_count = 1;
	cfg->machine.mem_size_mib = 128;
	for (unsigned k = 0; device_kinds[k]; k++)
		if (!(cfg->devices[k] = calloc(1, device_kinds[k]->store_size)))
			die("out of memory");
}

void vm_config_free(struct vm_config *cfg)
{
	free(cfg->boot.kernel_image_path);
	free(cfg->boot.initrd_path);
	free(cfg->boot.boot_args);
	free(cfg->serial_out_path);
	for (unsigned k = 0; device_kinds[k]; k++) {
		if (cfg->devices[k])
			device_kinds[k]->free(cfg->devices[k]);
		free(cfg->devices[k]);
	}
	memset(cfg, 0, sizeof(*cfg));
}
