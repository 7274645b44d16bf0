/* The loader and boot params against the real guest kernel that `make kernel` builds into
 * build/guest/. Without it these tests are skipped, saying so. */
#include "unit_util.h"

#include <elf.h>

#include "x86/boot.h"
#include "x86/layout.h"
#include "x86/loader.h"

#define GUEST_MEM (256 * MIB)

/* Fills path with build/guest/<name>, or skips the test with the reason printed. */
static void need_file(char *path, size_t len, const char *name)
{
	char rel[64];
	snprintf(rel, sizeof(rel), "../guest/%s", name);
	unit_build_path(path, len, rel);
	if (access(path, R_OK) != 0) {
		print_message("# %s is missing: run `make kernel` (or `make rootfs`) to build it\n",
			      path);
		skip();
	}
}

static struct machine *load_real(const char *name, struct kernel_image *k)
{
	char path[PATH_MAX];
	need_file(path, sizeof(path), name);
	struct machine *vm = unit_vm_new(GUEST_MEM);
	char err[ERR_LEN] = "";
	int rc = loader_load_kernel(&vm->mem, path, k, err);
	if (rc)
		fail_msg("loading %s: %s", path, err);
	return vm;
}

static void real_bzimage_loads(void **state)
{
	(void)state;
	struct kernel_image k;
	struct machine *vm = load_real("bzImage", &k);
	assert_true(k.is_bzimage);
	assert_true(k.is_linux);
	assert_true(k.protocol >= 0x20c);
	assert_memory_equal(k.setup_hdr + (0x202 - SETUP_HDR_OFFSET), "HdrS", 4);
	uint32_t load = get32(k.setup_hdr + (0x214 - SETUP_HDR_OFFSET));
	assert_int_equal(k.entry, (uint64_t)load + 0x200);
	assert_true(load >= HIMEM_START);
	assert_true(k.load_end > k.entry && k.load_end <= GUEST_MEM);
	assert_in_range(k.cmdline_max, 255, CMDLINE_MAX - 1);
	assert_true(k.initrd_addr_max >= 0x37ffffff);

	/* The zero page carries the kernel's own header plus what the loader filled in. */
	char err[ERR_LEN] = "";
	assert_int_equal(boot_write_params(&vm->mem, &k, "console=ttyS0", 0, 0, err), 0);
	const uint8_t *zp = unit_gpa(vm, ZERO_PAGE_ADDR, 4096);
	assert_int_equal(get16(zp + 0x1fe), 0xaa55);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(get16(zp + 0x206), k.protocol);
	assert_int_equal(get32(zp + 0x214), load);
	assert_int_equal(get32(zp + 0x228), CMDLINE_ADDR);
}

static void real_vmlinux_loads(void **state)
{
	(void)state;
	struct kernel_image k;
	struct machine *vm = load_real("vmlinux", &k);
	assert_false(k.is_bzimage);
	assert_true(k.is_linux);
	/* Linux x86_64 runs from CONFIG_PHYSICAL_START, 16 MiB unless configured otherwise. */
	assert_true(k.entry >= HIMEM_START && k.entry < k.load_end);
	assert_true(k.load_end <= GUEST_MEM);
	/* startup_64 begins with code, not with the zeroes of an unloaded page. */
	const uint8_t *code = unit_gpa(vm, k.entry, 64);
	bool nonzero = false;
	for (int i = 0; i < 64; i++)
		nonzero |= code[i] != 0;
	assert_true(nonzero);
}

static void real_initramfs_above_kernel(void **state)
{
	(void)state;
	struct kernel_image k;
	struct machine *vm = load_real("bzImage", &k);
	char path[PATH_MAX];
	need_file(path, sizeof(path), "initramfs.cpio.gz");
	uint64_t gpa = 0, size = 0;
	char err[ERR_LEN] = "";
	int rc = loader_load_initrd(&vm->mem, path, &k, &gpa, &size, err);
	if (rc)
		fail_msg("loading %s: %s", path, err);
	assert_true(size > 0);
	assert_true(gpa >= k.load_end);
	assert_true(gpa + size - 1 <= k.initrd_addr_max);
	assert_true(gpa + size <= GUEST_MEM);
	const uint8_t *g = unit_gpa(vm, gpa, 2);
	assert_int_equal(g[0], 0x1f); /* gzip magic */
	assert_int_equal(g[1], 0x8b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT_TEST(real_bzimage_loads),
		UNIT_TEST(real_vmlinux_loads),
		UNIT_TEST(real_initramfs_above_kernel),
	};
	return cmocka_run_group_tests_name("real_kernel", tests, NULL, NULL);
}
