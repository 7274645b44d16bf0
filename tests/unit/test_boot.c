/* e820, the command line, the zero page, page tables and GDT, and gpa_to_hva around the
 * 3 GiB MMIO gap. */
#include "unit_util.h"

#include "x86/boot.h"
#include "x86/layout.h"
#include "x86/loader.h"

#define EBDA_HOLE (HIMEM_START - EBDA_START) /* e820 leaves [0x9fc00, 1 MiB) out */

/* ---- e820 ---- */

static void check_e820(uint64_t mem)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	unsigned n = boot_e820_layout(mem, e, E820_MAX_ENTRIES);
	uint64_t low_end = mem < MMIO_GAP_START ? mem : MMIO_GAP_START;
	assert_int_equal(n, mem > MMIO_GAP_START ? 3 : 2);
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, 0x9fc00);
	assert_int_equal(e[1].addr, HIMEM_START);
	assert_int_equal(e[1].size, low_end - HIMEM_START);
	if (n == 3) {
		assert_int_equal(e[2].addr, MMIO_GAP_END);
		assert_int_equal(e[2].size, mem - 3 * GIB);
	}
	uint64_t sum = 0;
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(e[i].type, E820_RAM);
		/* Nothing of the MMIO gap is RAM. */
		assert_true(e[i].addr + e[i].size <= MMIO_GAP_START || e[i].addr >= MMIO_GAP_END);
		if (i > 0)
			assert_true(e[i].addr >= e[i - 1].addr + e[i - 1].size);
		sum += e[i].size;
	}
	assert_int_equal(sum, mem - EBDA_HOLE);
}

static void e820_layouts(void **state)
{
	(void)state;
	static const uint64_t sizes[] = { 64 * MIB, 1 * GIB, 3 * GIB, 3 * GIB + 512 * MIB,
					  4 * GIB,  8 * GIB };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_e820(sizes[i]);
}

static void e820_respects_max(void **state)
{
	(void)state;
	struct e820_entry e[2];
	memset(e, 0xee, sizeof(e));
	assert_int_equal(boot_e820_layout(8 * GIB, e, 1), 1);
	assert_int_equal(e[1].type, 0xeeeeeeee); /* untouched past max */
}

/* ---- gpa_to_hva across the gap ---- */

static void gpa_to_hva_around_gap(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(8 * GIB);
	uint64_t end = MMIO_GAP_END + 5 * GIB;
	assert_non_null(guest_mem_ptr(&vm->mem, MMIO_GAP_START - 1, 1));
	assert_null(guest_mem_ptr(&vm->mem, MMIO_GAP_START - 1, 2)); /* runs into the gap */
	assert_null(guest_mem_ptr(&vm->mem, MMIO_GAP_START, 1));
	assert_null(guest_mem_ptr(&vm->mem, MMIO_GAP_END - 1, 1));
	uint8_t *hi = guest_mem_ptr(&vm->mem, MMIO_GAP_END, 1);
	assert_non_null(hi);
	assert_ptr_equal(hi, vm->mem.regions[1].hva);
	assert_non_null(guest_mem_ptr(&vm->mem, end - 1, 1));
	assert_non_null(guest_mem_ptr(&vm->mem, MMIO_GAP_END, 5 * GIB));
	assert_null(guest_mem_ptr(&vm->mem, MMIO_GAP_END, 5 * GIB + 1));
	assert_null(guest_mem_ptr(&vm->mem, end, 1));
	assert_null(guest_mem_ptr(&vm->mem, end - 2, 4));
	/* A len that wraps gpa + len around must not look small. */
	assert_null(guest_mem_ptr(&vm->mem, 0x1000, UINT64_MAX));
	assert_null(guest_mem_ptr(&vm->mem, 0x1000, UINT64_MAX - 0xfff));
	assert_null(guest_mem_ptr(&vm->mem, MMIO_GAP_END + 0x1000, UINT64_MAX - 0x1000));
	assert_null(guest_mem_ptr(&vm->mem, UINT64_MAX, 1));
	/* The two regions are separate: writes land where the address says. */
	*(uint8_t *)guest_mem_ptr(&vm->mem, MMIO_GAP_START - 1, 1) = 0x5a;
	*hi = 0xa5;
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&vm->mem, MMIO_GAP_START - 1, 1), 0x5a);
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&vm->mem, MMIO_GAP_END, 1), 0xa5);
}

static void gpa_to_hva_small_vm(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(64 * MIB);
	assert_int_equal(vm->mem.nr_regions, 1);
	assert_non_null(guest_mem_ptr(&vm->mem, 0, 64 * MIB));
	assert_null(guest_mem_ptr(&vm->mem, 0, 64 * MIB + 1));
	assert_null(guest_mem_ptr(&vm->mem, 64 * MIB, 1));
	assert_null(guest_mem_ptr(&vm->mem, MMIO_GAP_END, 1));
}

/* ---- command line ---- */

static const char *const extras[] = { "virtio_mmio.device=4K@0xc0001000:5",
				      "virtio_mmio.device=4K@0xc0002000:6" };
#define E0 "virtio_mmio.device=4K@0xc0001000:5"
#define E1 "virtio_mmio.device=4K@0xc0002000:6"

static void expect_cmdline(const char *args, unsigned nr, const char *want)
{
	char out[CMDLINE_MAX];
	memset(out, 'x', sizeof(out));
	assert_int_equal(boot_cmdline_build(out, CMDLINE_MAX - 1, args, extras, nr), 0);
	assert_string_equal(out, want);
}

static void cmdline_joins(void **state)
{
	(void)state;
	expect_cmdline("console=ttyS0 reboot=k", 0, "console=ttyS0 reboot=k");
	expect_cmdline("console=ttyS0", 2, "console=ttyS0 " E0 " " E1);
	expect_cmdline("", 1, E0);
	/* init's arguments stay after " --", after everything the VMM adds. */
	expect_cmdline("console=ttyS0 -- init1 init2", 2,
		       "console=ttyS0 " E0 " " E1 " -- init1 init2");
	expect_cmdline("-- init1", 1, E0 " -- init1");
	expect_cmdline("console=ttyS0 --", 1, "console=ttyS0 " E0 " --");
	expect_cmdline("a=1 -- b -- c", 1, "a=1 " E0 " -- b -- c");
}

static void cmdline_length_limit(void **state)
{
	(void)state;
	char args[64], out[64];
	/* "a...a" of 20 bytes plus " " and E0 (34 bytes) = 55. */
	memset(args, 'a', 20);
	args[20] = '\0';
	size_t want = 20 + 1 + strlen(E0);
	memset(out, 'x', sizeof(out));
	assert_int_equal(boot_cmdline_build(out, want, args, extras, 1), 0);
	assert_int_equal(strlen(out), want);
	assert_int_equal(boot_cmdline_build(out, want - 1, args, extras, 1), -ENAMETOOLONG);
	assert_int_equal(boot_cmdline_build(out, 19, args, NULL, 0), -ENAMETOOLONG);
	/* Far beyond the internal buffer, too. */
	char *huge = malloc(3 * CMDLINE_MAX);
	assert_non_null(huge);
	memset(huge, 'b', 3 * CMDLINE_MAX - 1);
	huge[3 * CMDLINE_MAX - 1] = '\0';
	char big[CMDLINE_MAX];
	assert_int_equal(boot_cmdline_build(big, CMDLINE_MAX - 1, huge, extras, 2), -ENAMETOOLONG);
	free(huge);
}

/* ---- zero page ---- */

static struct kernel_image vmlinux_image(void)
{
	return (struct kernel_image){ .entry = 0x1000000,
				      .load_end = 0x2000000,
				      .cmdline_max = CMDLINE_MAX - 1,
				      .initrd_addr_max = 0x37ffffff };
}

static void check_zero_page_e820(const uint8_t *zp, uint64_t mem)
{
	struct e820_entry e[E820_MAX_ENTRIES];
	unsigned n = boot_e820_layout(mem, e, E820_MAX_ENTRIES);
	assert_int_equal(zp[0x1e8], n);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *t = zp + 0x2d0 + 20 * i;
		assert_int_equal(get64(t), e[i].addr);
		assert_int_equal(get64(t + 8), e[i].size);
		assert_int_equal(get32(t + 16), e[i].type);
	}
}

static void zero_page_for_vmlinux(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(64 * MIB);
	uint8_t *zp = unit_gpa(vm, ZERO_PAGE_ADDR, 4096);
	memset(zp, 0xcc, 4096); /* stale bytes the writer must clear */
	struct kernel_image k = vmlinux_image();
	const char *cmd = "console=ttyS0 reboot=k panic=1";
	char err[ERR_LEN] = "";
	assert_int_equal(boot_write_params(&vm->mem, &k, cmd, 0x3f00000, 0x12345, err), 0);
	assert_int_equal(get16(zp + 0x1fe), 0xaa55);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_true(get16(zp + 0x206) >= 0x20c);
	assert_int_equal(zp[0x210], 0xff);
	assert_int_equal(zp[0x211] & 0x01, 0x01); /* LOADED_HIGH */
	assert_int_equal(get32(zp + 0x228), 0x20000);
	assert_int_equal(get32(zp + 0x0c8), 0); /* ext_cmd_line_ptr */
	assert_string_equal((const char *)unit_gpa(vm, 0x20000, strlen(cmd) + 1), cmd);
	assert_int_equal(get32(zp + 0x238), strlen(cmd));
	assert_int_equal(get32(zp + 0x218), 0x3f00000);
	assert_int_equal(get32(zp + 0x21c), 0x12345);
	assert_int_equal(get32(zp + 0x0c0), 0);
	assert_int_equal(get32(zp + 0x0c4), 0);
	check_zero_page_e820(zp, 64 * MIB);
	assert_int_equal(zp[0], 0); /* screen_info and the rest: zero */
	assert_int_equal(zp[0xfff], 0);
}

static void zero_page_without_initrd_and_big_memory(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(4 * GIB);
	uint8_t *zp = unit_gpa(vm, ZERO_PAGE_ADDR, 4096);
	memset(zp, 0xcc, 4096);
	struct kernel_image k = vmlinux_image();
	char err[ERR_LEN] = "";
	assert_int_equal(boot_write_params(&vm->mem, &k, "", 0, 0, err), 0);
	assert_int_equal(get32(zp + 0x218), 0);
	assert_int_equal(get32(zp + 0x21c), 0);
	assert_int_equal(*unit_gpa(vm, 0x20000, 1), 0);
	check_zero_page_e820(zp, 4 * GIB);
}

static void zero_page_cmdline_too_long(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(64 * MIB);
	struct kernel_image k = vmlinux_image();
	char cmd[CMDLINE_MAX + 1];
	memset(cmd, 'c', CMDLINE_MAX);
	cmd[CMDLINE_MAX] = '\0'; /* 2048 bytes: one over */
	char err[ERR_LEN] = "";
	assert_int_equal(boot_write_params(&vm->mem, &k, cmd, 0, 0, err), -ENAMETOOLONG);
	assert_true(err[0] != '\0');
	cmd[CMDLINE_MAX - 1] = '\0'; /* 2047: exactly what the kernel accepts */
	assert_int_equal(boot_write_params(&vm->mem, &k, cmd, 0, 0, err), 0);
	assert_int_equal(strlen((const char *)unit_gpa(vm, 0x20000, CMDLINE_MAX)), CMDLINE_MAX - 1);
	k.cmdline_max = 10; /* a bzImage may accept less */
	assert_int_equal(boot_write_params(&vm->mem, &k, "console=ttyS0", 0, 0, err),
			 -ENAMETOOLONG);
}

/* ---- page tables and GDT ---- */

static void gdt_entry_known_values(void **state)
{
	(void)state;
	assert_int_equal(boot_gdt_entry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffULL);
	assert_int_equal(boot_gdt_entry(0xc093, 0, 0xfffff), 0x00cf93000000ffffULL);
	assert_int_equal(boot_gdt_entry(0x808b, 0, 0xfffff), 0x008f8b000000ffffULL);
	assert_int_equal(boot_gdt_entry(0, 0, 0), 0);
	/* Base split over bits 16-39 and 56-63, limit over 0-15 and 48-51. */
	assert_int_equal(boot_gdt_entry(0x0089, 0x12345678, 0x67), 0x1200893456780067ULL);
}

static void page_tables_identity_map(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(64 * MIB);
	assert_int_equal(boot_write_page_tables(&vm->mem), 0);
	const uint8_t *pml4 = unit_gpa(vm, PML4_ADDR, 4096);
	const uint8_t *pdpt = unit_gpa(vm, PDPT_ADDR, 4096);
	assert_int_equal(get64(pml4) & ~0xfffULL, PDPT_ADDR);
	assert_int_equal(get64(pml4) & 0x3, 0x3); /* present, writable */
	for (unsigned i = 1; i < 512; i++)
		assert_int_equal(get64(pml4 + 8 * i), 0);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(get64(pdpt + 8 * i) & ~0xfffULL, PD_ADDR + 0x1000 * i);
		assert_int_equal(get64(pdpt + 8 * i) & 0x3, 0x3);
	}
	assert_int_equal(get64(pdpt + 8 * 4), 0);
	/* Walk a few addresses through the tables: each maps to itself with a 2 MiB page. */
	static const uint64_t addrs[] = { 0,	      0x100000,	      0x1000000,   0x3fe00000,
					  0x40000000, MMIO_GAP_START, IOAPIC_ADDR, 0xffffffffULL };
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		uint64_t a = addrs[i];
		uint64_t pdpte = get64(pdpt + 8 * (a >> 30));
		uint64_t pde = get64(unit_gpa(vm, (pdpte & ~0xfffULL) + 8 * ((a >> 21) & 511), 8));
		assert_int_equal(pde & 0x83, 0x83); /* present, writable, PS */
		assert_int_equal(pde & ~0x1fffffULL, a & ~0x1fffffULL);
	}
}

static void gdt_segments(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(64 * MIB);
	assert_int_equal(boot_write_page_tables(&vm->mem), 0);
	const uint8_t *gdt = unit_gpa(vm, GDT_ADDR, BOOT_GDT_ENTRIES * 8);
	assert_int_equal(get64(gdt), 0);
	uint64_t cs = get64(gdt + BOOT_CS_SELECTOR);
	uint64_t ds = get64(gdt + BOOT_DS_SELECTOR);
	/* Code: present, DPL 0, execute/read, L=1, D=0. */
	assert_int_equal((cs >> 40) & 0xff, 0x9b);
	assert_int_equal((cs >> 53) & 1, 1);
	assert_int_equal((cs >> 54) & 1, 0);
	/* Data: present, read/write, 4 KiB granular, 32-bit, base 0, limit 4 GiB. */
	assert_int_equal((ds >> 40) & 0xff, 0x93);
	assert_int_equal((ds >> 55) & 1, 1);
	assert_int_equal((ds >> 54) & 1, 1);
	assert_int_equal(ds & 0xffff, 0xffff);
	assert_int_equal((ds >> 48) & 0xf, 0xf);
	assert_int_equal(cs, 0x00af9b000000ffffULL);
	assert_int_equal(ds, 0x00cf93000000ffffULL);
}

static void gdt_tss_survives_idt(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(64 * MIB);
	assert_int_equal(boot_write_page_tables(&vm->mem), 0);
	/* The vCPU's GDTR covers BOOT_GDT_ENTRIES entries; the TSS descriptor must still be
	 * there after the IDT is written. */
	const uint8_t *gdt = unit_gpa(vm, GDT_ADDR, BOOT_GDT_ENTRIES * 8);
	assert_int_equal(get64(gdt + BOOT_TSS_SELECTOR), boot_gdt_entry(0x808b, 0, 0xfffff));
	if (IDT_ADDR < GDT_ADDR + BOOT_GDT_ENTRIES * 8 && GDT_ADDR < IDT_ADDR + 8)
		fail_msg("IDT at 0x%llx overlaps the GDT [0x%llx, 0x%llx)",
			 (unsigned long long)IDT_ADDR, (unsigned long long)GDT_ADDR,
			 (unsigned long long)(GDT_ADDR + BOOT_GDT_ENTRIES * 8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT_TEST(e820_layouts),
		UNIT_TEST(e820_respects_max),
		UNIT_TEST(gpa_to_hva_around_gap),
		UNIT_TEST(gpa_to_hva_small_vm),
		UNIT_TEST(cmdline_joins),
		UNIT_TEST(cmdline_length_limit),
		UNIT_TEST(zero_page_for_vmlinux),
		UNIT_TEST(zero_page_without_initrd_and_big_memory),
		UNIT_TEST(zero_page_cmdline_too_long),
		UNIT_TEST(gdt_entry_known_values),
		UNIT_TEST(page_tables_identity_map),
		UNIT_TEST(gdt_segments),
		UNIT_TEST(gdt_tss_survives_idt),
	};
	return cmocka_run_group_tests_name("boot", tests, NULL, NULL);
}
