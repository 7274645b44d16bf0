#include "vmm/config.h"

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
	for (unsigned i = 0; i < cfg->nr_drives; i++)
		drive_config_free(&cfg->drives[i]);
	free(cfg->drives);
	for (unsigned i = 0; i < cfg->nr_nets; i++)
		net_config_free(&cfg->nets[i]);
	free(cfg->nets);
	vsock_config_free(cfg->vsock);
	memset(cfg, 0, sizeof(*cfg));
}

void drive_config_free(struct drive_config *d)
{
	free(d->drive_id);
	free(d->path_on_host);
	free(d->partuuid);
	memset(d, 0, sizeof(*d));
}

void net_config_free(struct net_config *n)
{
	free(n->iface_id);
	free(n->host_dev_name);
	memset(n, 0, sizeof(*n));
}

void vsock_config_free(struct vsock_config *v)
{
	if (!v)
		return;
	free(v->vsock_id);
	free(v->uds_path);
	free(v);
}
