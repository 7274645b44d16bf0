/* The VM's configuration as plain C data. The JSON handlers in api/ fill it, from
 * --config-file now and from the HTTP API later; the VMM only ever reads it. */
#ifndef EMBER_CONFIG_H
#define EMBER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define VCPU_MAX    32
#define MEM_MIB_MIN 16
#define MEM_MIB_MAX (1024 * 1024) /* 1 TiB: a sanity bound, not a promise */
#define CMDLINE_MAX 2048	  /* Linux's x86 COMMAND_LINE_SIZE */

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

/* Firecracker's TokenBucket: size tokens refill every refill_time_ms, one_time_burst extra
 * tokens are spent first and never come back. size or refill_time_ms 0: no limit. */
struct token_bucket_config {
	uint64_t size;
	uint64_t one_time_burst;
	uint64_t refill_time_ms;
};

/* Firecracker's RateLimiter; shared by drives and (later) network interfaces. */
struct rate_limiter_config {
	struct token_bucket_config bandwidth; /* tokens are bytes */
	struct token_bucket_config ops;	      /* tokens are requests */
};

enum drive_cache_type { DRIVE_CACHE_UNSAFE, DRIVE_CACHE_WRITEBACK };
enum drive_io_engine { DRIVE_ENGINE_SYNC, DRIVE_ENGINE_ASYNC };

/* One entry of Firecracker's "drives": a raw image file served as virtio-block. */
struct drive_config {
	char *drive_id;
	char *path_on_host;
	char *partuuid; /* root=PARTUUID=... instead of root=/dev/vda; NULL if unset */
	bool is_root_device;
	bool is_read_only;
	enum drive_cache_type cache_type;
	enum drive_io_engine io_engine;
	struct rate_limiter_config rate_limiter;
};

/* One entry of Firecracker's "network-interfaces": virtio-net over a host TAP device. */
struct net_config {
	char *iface_id;
	char *host_dev_name; /* the TAP, e.g. "tap0" */
	bool has_mac;
	uint8_t guest_mac[6];
	uint16_t mtu; /* 0: not announced to the guest */
	struct rate_limiter_config rx_rate_limiter;
	struct rate_limiter_config tx_rate_limiter;
};

/* Firecracker's vsock object; a VM has at most one vsock device. */
#define VSOCK_CID_MIN 3 /* 0-2 are reserved: hypervisor, local, host */
struct vsock_config {
	char *vsock_id; /* optional (deprecated in Firecracker); NULL when not given */
	uint32_t guest_cid;
	char *uds_path; /* host listener; guest connections to port P go to uds_path_P */
};

struct vm_config {
	struct boot_source_config boot;
	struct machine_config machine;
	char *serial_out_path;	     /* NULL: the guest console goes to stdout */
	struct drive_config *drives; /* in guest order: the root device first */
	unsigned nr_drives;
	struct net_config *nets; /* in guest order: eth0 first */
	unsigned nr_nets;
	struct vsock_config *vsock; /* NULL: no vsock device */
};

void vm_config_init(struct vm_config *cfg);
void vm_config_free(struct vm_config *cfg);
void drive_config_free(struct drive_config *d);
void net_config_free(struct net_config *n);
void vsock_config_free(struct vsock_config *v); /* frees v itself too */

#endif
