/* loader_load_kernel / loader_load_initrd on ELF and bzImage files built by the tests. */
#include "unit_util.h"

#include <elf.h>

#include "x86/loader.h"

/* ---- a minimal ELF64 x86_64 executable: header, program headers, then the payload ---- */

#define PAYLOAD_OFF 0x100
#define SEG_GPA	    0x100000ULL

struct elf_file {
	_Alignas(8) uint8_t buf[0x2000];
	size_t len;
};

static Elf64_Ehdr *ehdr(struct elf_file *f)
{
	return (Elf64_Ehdr *)f->buf;
}

static Elf64_Phdr *phdr(struct elf_file *f, unsigned i)
{
	return (Elf64_Phdr *)(f->buf + sizeof(Elf64_Ehdr)) + i;
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static void make_elf(struct elf_file *f, uint64_t paddr, uint64_t entry, uint64_t filesz,
		     uint64_t memsz)
{
	memset(f, 0, sizeof(*f));
	assert_true(PAYLOAD_OFF + filesz <= sizeof(f->buf));
	Elf64_Ehdr *e = ehdr(f);
	memcpy(e->e_ident, ELFMAG, SELFMAG);
	e->e_ident[EI_CLASS] = ELFCLASS64;
	e->e_ident[EI_DATA] = ELFDATA2LSB;
	e->e_ident[EI_VERSION] = EV_CURRENT;
	e->e_type = ET_EXEC;
	e->e_machine = EM_X86_64;
	e->e_version = EV_CURRENT;
	e->e_entry = entry;
	e->e_phoff = sizeof(Elf64_Ehdr);
	e->e_ehsize = sizeof(Elf64_Ehdr);
	e->e_phentsize = sizeof(Elf64_Phdr);
	e->e_phnum = 1;
	*phdr(f, 0) = (Elf64_Phdr){ .p_type = PT_LOAD,
				    .p_flags = PF_R | PF_W | PF_X,
				    .p_offset = PAYLOAD_OFF,
				    .p_vaddr = paddr,
				    .p_paddr = paddr,
				    .p_filesz = filesz,
				    .p_memsz = memsz,
				    .p_align = 0x1000 };
	for (size_t i = 0; i < filesz; i++)
		f->buf[PAYLOAD_OFF + i] = pattern(i);
	f->len = PAYLOAD_OFF + filesz;
}

/* Loading img into a 16 MiB guest must fail with rc, an error naming the file and, when
 * given, words that show which check refused it. */
static void expect_kernel_fails(const void *img, size_t len, int rc, const char *why)
{
	struct machine *vm = unit_vm_new(16 * MIB);
	const char *path = unit_tmp_file(img, len);
	struct kernel_image k;
	char err[ERR_LEN] = "";
	assert_int_equal(loader_load_kernel(&vm->mem, path, &k, err), rc);
	if (!strstr(err, path) || (why && !strstr(err, why)))
		fail_msg("error \"%s\" should name %s and say \"%s\"", err, path, why ? why : "");
}

static void elf_loads_segment_and_zeroes_tail(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(16 * MIB);
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA + 0x10, 0x200, 0x1000);
	/* Stale bytes where the bss goes: the loader must clear them. */
	memset(unit_gpa(vm, SEG_GPA, 0x2000), 0xcc, 0x2000);
	const char *path = unit_tmp_file(f.buf, f.len);
	struct kernel_image k;
	char err[ERR_LEN] = "";
	assert_int_equal(loader_load_kernel(&vm->mem, path, &k, err), 0);
	assert_int_equal(k.entry, SEG_GPA + 0x10);
	assert_int_equal(k.load_end, SEG_GPA + 0x1000);
	assert_false(k.is_bzimage);
	assert_false(k.is_linux);
	assert_int_equal(k.cmdline_max, 2047);
	const uint8_t *g = unit_gpa(vm, SEG_GPA, 0x2000);
	assert_memory_equal(g, f.buf + PAYLOAD_OFF, 0x200);
	for (size_t i = 0x200; i < 0x1000; i++)
		assert_int_equal(g[i], 0);
	/* memsz ends the segment: what lies beyond is not the loader's. */
	assert_int_equal(g[0x1000], 0xcc);
}

static void elf_linux_note_marks_linux(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(16 * MIB);
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA, 0x40, 0x40);
	/* A PT_NOTE with one "Linux" note, as every kernel since 4.18 has. */
	static const uint8_t note[] = { 6,   0,	  0,   0,   4,	 0, 0, 0, 1,	0,    0,    0,
					'L', 'i', 'n', 'u', 'x', 0, 0, 0, 0xde, 0xad, 0xbe, 0xef };
	size_t off = f.len;
	memcpy(f.buf + off, note, sizeof(note));
	f.len += sizeof(note);
	ehdr(&f)->e_phnum = 2;
	*phdr(&f, 1) = (Elf64_Phdr){ .p_type = PT_NOTE,
				     .p_offset = off,
				     .p_filesz = sizeof(note),
				     .p_memsz = sizeof(note),
				     .p_align = 4 };
	const char *path = unit_tmp_file(f.buf, f.len);
	struct kernel_image k;
	char err[ERR_LEN] = "";
	assert_int_equal(loader_load_kernel(&vm->mem, path, &k, err), 0);
	assert_true(k.is_linux);
	assert_false(k.is_pvm_guest);
}

static void guest_elf_loads(void **state)
{
	(void)state;
	char path[PATH_MAX];
	unit_build_path(path, sizeof(path), "guest.elf");
	size_t len;
	uint8_t *file = unit_read_file(path, &len);
	if (!file)
		fail_msg("%s is missing: run `make all` first", path);
	struct machine *vm = unit_vm_new(16 * MIB);
	struct kernel_image k;
	char err[ERR_LEN] = "";
	int rc = loader_load_kernel(&vm->mem, path, &k, err);
	if (rc)
		fail_msg("loading %s: %s", path, err);
	assert_int_equal(k.entry, 0x100000);
	assert_false(k.is_bzimage);
	assert_false(k.is_linux);
	assert_true(k.load_end > k.entry && k.load_end <= 16 * MIB);
	/* Every PT_LOAD's file bytes are in guest memory at its p_paddr. */
	const Elf64_Ehdr *e = (const Elf64_Ehdr *)file;
	for (unsigned i = 0; i < e->e_phnum; i++) {
		const Elf64_Phdr *p = (const Elf64_Phdr *)(file + e->e_phoff) + i;
		if (p->p_type == PT_LOAD)
			assert_memory_equal(unit_gpa(vm, p->p_paddr, p->p_filesz),
					    file + p->p_offset, p->p_filesz);
	}
	free(file);
}

static void missing_kernel_names_path(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(16 * MIB);
	const char *path = unit_missing_path();
	struct kernel_image k;
	char err[ERR_LEN] = "";
	assert_int_equal(loader_load_kernel(&vm->mem, path, &k, err), -ENOENT);
	assert_non_null(strstr(err, path));
}

static void empty_file_rejected(void **state)
{
	(void)state;
	expect_kernel_fails("", 0, -EINVAL, NULL);
}

static void elf32_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA, 0x100, 0x100);
	ehdr(&f)->e_ident[EI_CLASS] = ELFCLASS32;
	expect_kernel_fails(f.buf, f.len, -EINVAL, "64-bit");
}

static void wrong_machine_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA, 0x100, 0x100);
	ehdr(&f)->e_machine = EM_AARCH64;
	expect_kernel_fails(f.buf, f.len, -EINVAL, "x86_64");
}

static void et_dyn_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA, 0x100, 0x100);
	ehdr(&f)->e_type = ET_DYN;
	expect_kernel_fails(f.buf, f.len, -EINVAL, "executable");
}

static void truncated_segment_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA, 0x200, 0x200);
	expect_kernel_fails(f.buf, PAYLOAD_OFF + 0x100, -EINVAL, "end of the file");
}

static void segment_beyond_memory_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, 16 * MIB - 0x100, 16 * MIB - 0x100, 0x100, 0x1000);
	expect_kernel_fails(f.buf, f.len, -EINVAL, "does not fit");
}

static void segment_below_1mib_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, 0x80000, 0x80000, 0x100, 0x100);
	expect_kernel_fails(f.buf, f.len, -EINVAL, "1 MiB");
}

static void entry_outside_segments_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA + 0x1000, 0x100, 0x1000); /* one past the end */
	expect_kernel_fails(f.buf, f.len, -EINVAL, "entry point");
}

static void no_pt_load_rejected(void **state)
{
	(void)state;
	struct elf_file f;
	make_elf(&f, SEG_GPA, SEG_GPA, 0x100, 0x100);
	phdr(&f, 0)->p_type = PT_NULL;
	expect_kernel_fails(f.buf, f.len, -EINVAL, "no loadable");
}

static void garbage_rejected(void **state)
{
	(void)state;
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = pattern(i);
	expect_kernel_fails(junk, sizeof(junk), -EINVAL, "neither");
}

/* ---- a synthetic bzImage: boot sector + setup sectors, then the protected-mode part ---- */

#define BZ_SETUP_SECTS 4
#define BZ_PM_OFF      ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PM_SIZE     0x3000
#define BZ_LEN	       (BZ_PM_OFF + BZ_PM_SIZE)
#define BZ_HDR_END     0x26c /* end of the 2.15 setup header (kernel_info_offset) */

static void make_bzimage(uint8_t *b, uint64_t pref_address, uint32_t init_size)
{
	memset(b, 0, BZ_LEN);
	b[0x1f1] = BZ_SETUP_SECTS;
	put32(b + 0x1f4, BZ_PM_SIZE / 16); /* syssize, in 16-byte paragraphs */
	put16(b + 0x1fe, 0xaa55);
	b[0x200] = 0xeb; /* jmp over the header: its offset gives the header's length */
	b[0x201] = BZ_HDR_END - 0x202;
	memcpy(b + 0x202, "HdrS", 4);
	put16(b + 0x206, 0x20f);
	put32(b + 0x214, 0x100000); /* code32_start, rewritten by the loader */
	put32(b + 0x22c, 0x7fffffff);
	put16(b + 0x236, 1); /* XLF_KERNEL_64 */
	put32(b + 0x238, 1000);
	put32(b + 0x258, (uint32_t)pref_address);
	put32(b + 0x25c, (uint32_t)(pref_address >> 32));
	put32(b + 0x260, init_size);
	for (size_t i = 0; i < BZ_PM_SIZE; i++)
		b[BZ_PM_OFF + i] = pattern(i);
}

static void expect_bzimage_at(uint64_t pref, uint64_t want_load)
{
	static uint8_t b[BZ_LEN];
	make_bzimage(b, pref, 4 * MIB);
	struct machine *vm = unit_vm_new(64 * MIB);
	const char *path = unit_tmp_file(b, BZ_LEN);
	struct kernel_image k;
	char err[ERR_LEN] = "";
	int rc = loader_load_kernel(&vm->mem, path, &k, err);
	if (rc)
		fail_msg("bzImage refused: %s", err);
	assert_true(k.is_bzimage);
	assert_true(k.is_linux);
	assert_int_equal(k.entry, want_load + 0x200);
	assert_int_equal(k.load_end, want_load + 4 * MIB); /* init_size > file part */
	assert_int_equal(k.protocol, 0x20f);
	assert_int_equal(k.initrd_addr_max, 0x7fffffff);
	assert_int_equal(k.cmdline_max, 1000);
	assert_int_equal(k.setup_hdr_len, BZ_HDR_END - 0x1f1);
	/* The header comes across as is, except code32_start: the address it was loaded at. */
	assert_memory_equal(k.setup_hdr, b + 0x1f1, 0x214 - 0x1f1);
	assert_int_equal(get32(k.setup_hdr + 0x214 - 0x1f1), want_load);
	assert_memory_equal(k.setup_hdr + 0x218 - 0x1f1, b + 0x218, BZ_HDR_END - 0x218);
	assert_memory_equal(unit_gpa(vm, want_load, BZ_PM_SIZE), b + BZ_PM_OFF, BZ_PM_SIZE);
}

static void bzimage_loads_at_pref_address(void **state)
{
	(void)state;
	expect_bzimage_at(16 * MIB, 16 * MIB);
}

static void bzimage_pref_address_too_high_rejected(void **state)
{
	(void)state;
	/* 62 MiB + 4 MiB of init_size does not fit in 64 MiB: the kernel cannot run here. */
	static uint8_t b[BZ_LEN];
	make_bzimage(b, 62 * MIB, 4 * MIB);
	struct machine *vm = unit_vm_new(64 * MIB);
	const char *path = unit_tmp_file(b, BZ_LEN);
	struct kernel_image k;
	char err[ERR_LEN] = "";
	assert_int_equal(loader_load_kernel(&vm->mem, path, &k, err), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "needs 66 MiB"));
}

static void bzimage_old_protocol_rejected(void **state)
{
	(void)state;
	static uint8_t b[BZ_LEN];
	make_bzimage(b, 16 * MIB, 4 * MIB);
	put16(b + 0x206, 0x20b);
	expect_kernel_fails(b, BZ_LEN, -EINVAL, "too old");
}

static void bzimage_without_kernel64_rejected(void **state)
{
	(void)state;
	static uint8_t b[BZ_LEN];
	make_bzimage(b, 16 * MIB, 4 * MIB);
	put16(b + 0x236, 0x2); /* other xloadflags bits without XLF_KERNEL_64 */
	expect_kernel_fails(b, BZ_LEN, -EINVAL, "64-bit");
}

static void bzimage_truncated_rejected(void **state)
{
	(void)state;
	static uint8_t b[BZ_LEN];
	make_bzimage(b, 16 * MIB, 4 * MIB);
	put32(b + 0x1f4, BZ_PM_SIZE / 16 + 1);
	expect_kernel_fails(b, BZ_LEN, -EINVAL, "truncated");
}

/* ---- initrd ---- */

static void check_initrd(uint64_t mem, uint64_t load_end, uint32_t addr_max, size_t len)
{
	struct machine *vm = unit_vm_new(mem);
	uint8_t *data = malloc(len);
	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = pattern(i + 11);
	const char *path = unit_tmp_file(data, len);
	struct kernel_image k = { .load_end = load_end, .initrd_addr_max = addr_max };
	uint64_t gpa = 0, size = 0;
	char err[ERR_LEN] = "";
	int rc = loader_load_initrd(&vm->mem, path, &k, &gpa, &size, err);
	if (rc)
		fail_msg("initrd refused: %s", err);
	uint64_t top = mem < 3 * GIB ? mem : 3 * GIB;
	if (addr_max && (uint64_t)addr_max + 1 < top)
		top = (uint64_t)addr_max + 1;
	assert_int_equal(size, len);
	assert_int_equal(gpa % 4096, 0);
	assert_true(gpa >= load_end);
	assert_true(gpa + size <= top);
	/* As high as it goes: another page up would cross the top. */
	assert_true(gpa + 4096 + size > top);
	assert_memory_equal(unit_gpa(vm, gpa, size), data, len);
	free(data);
}

static void initrd_placed_high_and_aligned(void **state)
{
	(void)state;
	check_initrd(64 * MIB, 2 * MIB, 0x37ffffff, 10000);
}

static void initrd_respects_addr_max(void **state)
{
	(void)state;
	check_initrd(64 * MIB, 2 * MIB, 32 * MIB - 1, 12345);
}

static void initrd_stays_below_the_gap(void **state)
{
	(void)state;
	check_initrd(4 * GIB, 2 * MIB, 0xffffffff, 5000);
}

static void expect_initrd_fails(uint64_t mem, uint64_t load_end, const char *path)
{
	struct machine *vm = unit_vm_new(mem);
	struct kernel_image k = { .load_end = load_end, .initrd_addr_max = 0x37ffffff };
	uint64_t gpa = 0, size = 0;
	char err[ERR_LEN] = "";
	assert_true(loader_load_initrd(&vm->mem, path, &k, &gpa, &size, err) < 0);
	if (!strstr(err, path))
		fail_msg("error \"%s\" should name %s", err, path);
	assert_int_equal(size, 0);
}

static void initrd_too_large_rejected(void **state)
{
	(void)state;
	const char *path = unit_tmp_file("", 0);
	assert_int_equal(truncate(path, 32 * MIB), 0); /* sparse: costs no disk */
	expect_initrd_fails(16 * MIB, 1 * MIB, path);
}

static void initrd_overlapping_kernel_rejected(void **state)
{
	(void)state;
	static uint8_t data[2 * MIB];
	const char *path = unit_tmp_file(data, sizeof(data));
	expect_initrd_fails(16 * MIB, 15 * MIB, path);
}

static void initrd_missing_names_path(void **state)
{
	(void)state;
	expect_initrd_fails(16 * MIB, 1 * MIB, unit_missing_path());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT_TEST(elf_loads_segment_and_zeroes_tail),
		UNIT_TEST(elf_linux_note_marks_linux),
		UNIT_TEST(guest_elf_loads),
		UNIT_TEST(missing_kernel_names_path),
		UNIT_TEST(empty_file_rejected),
		UNIT_TEST(elf32_rejected),
		UNIT_TEST(wrong_machine_rejected),
		UNIT_TEST(et_dyn_rejected),
		UNIT_TEST(truncated_segment_rejected),
		UNIT_TEST(segment_beyond_memory_rejected),
		UNIT_TEST(segment_below_1mib_rejected),
		UNIT_TEST(entry_outside_segments_rejected),
		UNIT_TEST(no_pt_load_rejected),
		UNIT_TEST(garbage_rejected),
		UNIT_TEST(bzimage_loads_at_pref_address),
		UNIT_TEST(bzimage_pref_address_too_high_rejected),
		UNIT_TEST(bzimage_old_protocol_rejected),
		UNIT_TEST(bzimage_without_kernel64_rejected),
		UNIT_TEST(bzimage_truncated_rejected),
		UNIT_TEST(initrd_placed_high_and_aligned),
		UNIT_TEST(initrd_respects_addr_max),
		UNIT_TEST(initrd_stays_below_the_gap),
		UNIT_TEST(initrd_too_large_rejected),
		UNIT_TEST(initrd_overlapping_kernel_rejected),
		UNIT_TEST(initrd_missing_names_path),
	};
	return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
