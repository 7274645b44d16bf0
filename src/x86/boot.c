#include "x86/boot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "x86/layout.h"

/* boot_params offsets (Documentation/arch/x86/zero-page.rst and boot.rst). */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES	     0x1e8
#define BP_BOOT_FLAG	     0x1fe
#define BP_HEADER	     0x202
#define BP_VERSION	     0x206
#define BP_TYPE_OF_LOADER    0x210
#define BP_LOADFLAGS	     0x211
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE	     0x21c
#define BP_HEAP_END_PTR	     0x224
#define BP_CMD_LINE_PTR	     0x228
#define BP_KERNEL_ALIGNMENT  0x230
#define BP_CMDLINE_SIZE	     0x238
#define BP_E820_TABLE	     0x2d0

#define LOADED_HIGH  0x01
#define CAN_USE_HEAP 0x80

unsigned boot_e820_layout(uint64_t mem_size, struct e820_entry *out, unsigned max)
{
	unsigned n = 0;
	/* Low memory up to the EBDA, where the MP table lives. */
	if (n < max)
		out[n++] = (struct e820_entry){ 0, EBDA_START, E820_RAM };
	uint64_t low_end = mem_size < MMIO_GAP_START ? mem_size : MMIO_GAP_START;
	if (low_end > HIMEM_START && n < max)
		out[n++] = (struct e820_entry){ HIMEM_START, low_end - HIMEM_START, E820_RAM };
	if (mem_size > MMIO_GAP_START && n < max)
		out[n++] = (struct e820_entry){ MMIO_GAP_END, mem_size - MMIO_GAP_START, E820_RAM };
	return n;
}

int boot_cmdline_build(char *out, size_t max_len, const char *boot_args, const char *const *extra,
		       unsigned nr_extra)
{
	const char *init_args = NULL;
	size_t head_len = strlen(boot_args);
	if (strncmp(boot_args, "-- ", 3) == 0 || strcmp(boot_args, "--") == 0) {
		init_args = boot_args;
		head_len = 0;
	} else {
		const char *sep = strstr(boot_args, " -- ");
		if (!sep && head_len >= 3 && strcmp(boot_args + head_len - 3, " --") == 0)
			sep = boot_args + head_len - 3;
		if (sep) {
			init_args = sep + 1;
			head_len = (size_t)(sep - boot_args);
		}
	}
	/* Trailing spaces of the head would double up with our separators. */
	while (head_len > 0 && boot_args[head_len - 1] == ' ')
		head_len--;

	char buf[CMDLINE_MAX * 2];
	size_t len = (size_t)snprintf(buf, sizeof(buf), "%.*s", (int)head_len, boot_args);
	for (unsigned i = 0; i < nr_extra && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? " " : "",
					extra[i]);
	if (init_args && len < sizeof(buf))
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? " " : "",
					init_args);
	if (len >= sizeof(buf) || len > max_len)
		return -ENAMETOOLONG;
	memcpy(out, buf, len + 1);
	return 0;
}

uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

static void put16(uint8_t *zp, unsigned off, uint16_t v)
{
	memcpy(zp + off, &v, sizeof(v));
}
static void put32(uint8_t *zp, unsigned off, uint32_t v)
{
	memcpy(zp + off, &v, sizeof(v));
}

int boot_write_params(const struct guest_mem *mem, const struct kernel_image *k,
		      const char *cmdline, uint64_t initrd_gpa, uint64_t initrd_size, char *err)
{
	uint8_t *zp = guest_mem_ptr_w(mem, ZERO_PAGE_ADDR, 4096);
	size_t cmd_len = strlen(cmdline);
	char *cmd_dst = guest_mem_ptr_w(mem, CMDLINE_ADDR, cmd_len + 1);
	if (!zp || !cmd_dst)
		return errf(err, -ENOMEM, "guest memory too small for the boot parameters");
	if (cmd_len > k->cmdline_max)
		return errf(err, -ENAMETOOLONG,
			    "kernel command line is %zu bytes, the kernel accepts at most %u",
			    cmd_len, k->cmdline_max);
	memcpy(cmd_dst, cmdline, cmd_len + 1);
	memset(zp, 0, 4096);

	if (k->is_bzimage) {
		/* The kernel reads its own setup header back from boot_params. */
		memcpy(zp + 0x1f1, k->setup_hdr, k->setup_hdr_len);
	} else {
		put16(zp, BP_BOOT_FLAG, 0xaa55);
		memcpy(zp + BP_HEADER, "HdrS", 4);
		put16(zp, BP_VERSION, 0x020f);
		put32(zp, BP_KERNEL_ALIGNMENT, 0x01000000);
	}
	zp[BP_TYPE_OF_LOADER] = 0xff; /* "undefined" loader id */
	zp[BP_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	put16(zp, BP_HEAP_END_PTR, 0xfe00);
	put32(zp, BP_CMD_LINE_PTR, (uint32_t)CMDLINE_ADDR);
	put32(zp, BP_CMDLINE_SIZE, (uint32_t)cmd_len);
	zp[BP_EXT_CMD_LINE_PTR] = 0; /* CMDLINE_ADDR is below 4 GiB */
	if (initrd_size) {
		put32(zp, BP_RAMDISK_IMAGE, (uint32_t)initrd_gpa);
		put32(zp, BP_RAMDISK_SIZE, (uint32_t)initrd_size);
		put32(zp, BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_gpa >> 32));
		put32(zp, BP_EXT_RAMDISK_SIZE, (uint32_t)(initrd_size >> 32));
	}
	struct e820_entry e820[E820_MAX_ENTRIES];
	unsigned n = boot_e820_layout(mem->size, e820, E820_MAX_ENTRIES);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + BP_E820_TABLE, e820, n * sizeof(e820[0]));
	return 0;
}

int boot_write_page_tables(const struct guest_mem *mem)
{
	uint64_t *pml4 = guest_mem_ptr_w(mem, PML4_ADDR, 4096);
	uint64_t *pdpt = guest_mem_ptr_w(mem, PDPT_ADDR, 4096);
	uint64_t *pd = guest_mem_ptr_w(mem, PD_ADDR, 4 * 4096);
	uint64_t *gdt = guest_mem_ptr_w(mem, GDT_ADDR, BOOT_GDT_ENTRIES * 8);
	uint64_t *idt = guest_mem_ptr_w(mem, IDT_ADDR, 8);
	if (!pml4 || !pdpt || !pd || !gdt || !idt)
		return -ENOMEM;
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PDPT_ADDR | 0x3; /* present, writable */
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (PD_ADDR + i * 4096) | 0x3;
	/* Present, writable, 2 MiB page: 4 GiB covers RAM below the gap and the MMIO devices,
	 * so even a guest that never builds page tables can reach them. */
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83;

	gdt[0] = 0;
	gdt[1] = 0;
	gdt[BOOT_CS_SELECTOR / 8] = boot_gdt_entry(0xa09b, 0, 0xfffff);	 /* 64-bit code */
	gdt[BOOT_DS_SELECTOR / 8] = boot_gdt_entry(0xc093, 0, 0xfffff);	 /* flat data */
	gdt[BOOT_TSS_SELECTOR / 8] = boot_gdt_entry(0x808b, 0, 0xfffff); /* busy TSS */
	idt[0] = 0;
	return 0;
}
