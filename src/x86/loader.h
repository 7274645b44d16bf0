/* Kernel and initrd loading: vmlinux (ELF64) or bzImage (its protected-mode part, entered
 * through the 64-bit boot protocol). */
#ifndef EMBER_LOADER_H
#define EMBER_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/guest_mem.h"
#include "core/log.h"

#define CMDLINE_MAX	 2048 /* Linux's x86 COMMAND_LINE_SIZE */
#define SETUP_HDR_OFFSET 0x1f1
#define SETUP_HDR_MAX	 0x7f /* bytes from 0x1f1 to the end of boot_params' header area */

struct kernel_image {
	uint64_t entry;	   /* guest-physical 64-bit entry point */
	uint64_t load_end; /* first byte after everything loaded */
	bool is_bzimage;
	bool is_linux;	   /* a Linux kernel (not, e.g., the freestanding test guest) */
	bool is_pvm_guest; /* a Linux kernel built to run on PVM */
	/* bzImage only: the setup header as found in the file, copied into boot_params. */
	uint8_t setup_hdr[SETUP_HDR_MAX];
	size_t setup_hdr_len;
	uint16_t protocol;	  /* boot protocol version, e.g. 0x20f */
	uint32_t initrd_addr_max; /* highest address the initrd may occupy */
	uint32_t cmdline_max;	  /* longest command line, without the NUL */
};

/* Loads the image at path into guest memory. 0, or -errno / -EINVAL with a message that
 * names the file in err. */
int loader_load_kernel(const struct guest_mem *mem, const char *path, struct kernel_image *k,
		       char *err);
/* Places the initrd as high as possible below min(low RAM end, initrd_addr_max), above
 * the kernel. */
int loader_load_initrd(const struct guest_mem *mem, const char *path, const struct kernel_image *k,
		       uint64_t *gpa, uint64_t *size, char *err);

#endif
