/* The 64-bit Linux boot protocol: boot_params (zero page) with e820 and command line,
 * identity page tables and the GDT that long-mode entry needs. */
#ifndef EMBER_BOOT_H
#define EMBER_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "x86/loader.h"
#include "core/guest_mem.h"

#define E820_RAM	 1
#define E820_MAX_ENTRIES 128

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* GDT selectors the boot protocol asks for (__BOOT_CS, __BOOT_DS) and our TSS. */
#define BOOT_CS_SELECTOR  0x10
#define BOOT_DS_SELECTOR  0x18
#define BOOT_TSS_SELECTOR 0x20
#define BOOT_GDT_ENTRIES  5

/* The RAM ranges for a guest of mem_size bytes; returns the number of entries. */
unsigned boot_e820_layout(uint64_t mem_size, struct e820_entry *out, unsigned max);

/* Joins boot_args and the VMM's own arguments (virtio_mmio.device=...), keeping everything
 * after " -- " last since the kernel hands it to init. -ENAMETOOLONG past max_len. */
int boot_cmdline_build(char *out, size_t max_len, const char *boot_args, const char *const *extra,
		       unsigned nr_extra);

/* A GDT descriptor from Intel's flags/access word, base and limit. */
uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

/* Writes the zero page at ZERO_PAGE_ADDR and the command line at CMDLINE_ADDR. */
int boot_write_params(const struct guest_mem *mem, const struct kernel_image *k,
		      const char *cmdline, uint64_t initrd_gpa, uint64_t initrd_size, char *err);
/* Identity-maps the first 4 GiB with 2 MiB pages and writes the GDT and an empty IDT. */
int boot_write_page_tables(const struct guest_mem *mem);

#endif
