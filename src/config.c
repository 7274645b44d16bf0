#include "config.h"

#include <stdlib.h>
#include <string.h>

void vm_config_init(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	/* Firecracker's defaults for a machine nobody configured. */
	cfg->machine.vcpu_count = 1;
	cfg->machine.mem_size_mib = 128;
}

void vm_config_free(struct vm_config *cfg)
{
	free(cfg->boot.kernel_image_path);
	free(cfg->boot.initrd_path);
	free(cfg->boot.boot_args);
	free(cfg->serial_out_path);
	memset(cfg, 0, sizeof(*cfg));
}
