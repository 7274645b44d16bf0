/* The snapshot state file's parsers (src/vmm/snapshot_file.c, src/x86/vcpu_state.c) on
 * corrupt input: every truncation, every flipped byte, lengths and counts that point past
 * the end, all refused with a message and never read out of bounds. */
#include "unit_util.h"

#include "core/log.h"
#include "vmm/snapshot.h"
#include "vmm/snapshot_file.h"
#include "x86/vcpu_state.h"

/* A file of three sections: two small ones, and one of 300 bytes. */
static struct snap_writer sample(void)
{
	struct snap_writer w = { 0 };
	snapshot_file_start(&w);
	size_t s = snapw_begin(&w, SNAP_MACHINE, 0);
	snapw_u32(&w, 1);
	snapw_end(&w, s);
	s = snapw_begin(&w, SNAP_VCPU, 0);
	for (unsigned i = 0; i < 300; i++)
		snapw_u8(&w, (uint8_t)i);
	snapw_end(&w, s);
	s = snapw_begin(&w, SNAP_SERIAL, 0);
	snapw_end(&w, s);
	snapshot_file_seal(&w, 3);
	assert_false(w.oom);
	return w;
}

static struct snap_file file;

static int parse(const uint8_t *buf, size_t len, char *err)
{
	err[0] = '\0';
	int rc = snapshot_file_parse(buf, len, &file, err);
	if (rc)
		assert_true(err[0] != '\0');
	return rc;
}

/* The CRC-32C check value from the standard ("123456789"). */
static void crc32c_check_value(void **state)
{
	(void)state;
	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283);
}

static void good_file(void **state)
{
	(void)state;
	struct snap_writer w = sample();
	char err[ERR_LEN];
	assert_int_equal(parse(w.buf, w.len, err), 0);
	assert_int_equal(file.nr, 3);
	const struct snap_section *s = snapshot_file_find(&file, SNAP_VCPU, 0);
	assert_non_null(s);
	assert_int_equal(s->len, 300);
	assert_int_equal(s->data[299], (uint8_t)299);
	assert_null(snapshot_file_find(&file, SNAP_VCPU, 1));
	snapw_free(&w);
}

/* Each shorter prefix, in a buffer of exactly its length (ASan sees any over-read). */
static void every_truncation(void **state)
{
	(void)state;
	struct snap_writer w = sample();
	char err[ERR_LEN];
	for (size_t n = 0; n < w.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, w.buf, n);
		assert_int_equal(parse(copy, n, err), -EINVAL);
		assert_non_null(
			strstr(err, n < SNAP_HEADER_LEN ? "less than its header" : "truncated"));
		free(copy);
	}
	snapw_free(&w);
}

static void every_flipped_byte(void **state)
{
	(void)state;
	struct snap_writer w = sample();
	char err[ERR_LEN];
	for (size_t i = 0; i < w.len; i++) {
		w.buf[i] ^= 0x10;
		assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
		w.buf[i] ^= 0x10;
	}
	assert_int_equal(parse(w.buf, w.len, err), 0);
	snapw_free(&w);
}

/* Header fields rewritten and the checksum recomputed, so that the field's own check is
 * the one that refuses it. */
static void set_and_reseal(struct snap_writer *w, size_t off, const void *v, size_t n)
{
	memcpy(w->buf + off, v, n);
	uint32_t zero = 0, crc;
	memcpy(w->buf + 24, &zero, 4);
	crc = crc32c(0, w->buf, w->len);
	memcpy(w->buf + 24, &crc, 4);
}

static void header_fields(void **state)
{
	(void)state;
	char err[ERR_LEN];
	struct snap_writer w = sample();
	w.buf[0] = 'X';
	assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "bad magic"));
	snapw_free(&w);

	w = sample();
	uint16_t major = 2;
	set_and_reseal(&w, 8, &major, 2);
	assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "snapshot format version 2."));
	snapw_free(&w);

	/* A newer minor version parses: it only adds sections. */
	w = sample();
	uint16_t minor = 7;
	set_and_reseal(&w, 10, &minor, 2);
	assert_int_equal(parse(w.buf, w.len, err), 0);
	assert_int_equal(file.minor, 7);
	snapw_free(&w);

	w = sample();
	uint32_t hdr = 64;
	set_and_reseal(&w, 12, &hdr, 4);
	assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "header length"));
	snapw_free(&w);

	w = sample();
	uint32_t nr = SNAP_SECTIONS_MAX + 1;
	set_and_reseal(&w, 28, &nr, 4);
	assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "sections, at most"));
	snapw_free(&w);

	/* Fewer sections than the file holds: bytes left over. */
	w = sample();
	nr = 2;
	set_and_reseal(&w, 28, &nr, 4);
	assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "after its 2 sections"));
	snapw_free(&w);

	/* More sections than it holds. */
	w = sample();
	nr = 4;
	set_and_reseal(&w, 28, &nr, 4);
	assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "section 3: header truncated"));
	snapw_free(&w);
}

static void section_lengths(void **state)
{
	(void)state;
	char err[ERR_LEN];
	/* The second section's length, huge and one past the end: no wrap-around. */
	uint64_t lens[] = { UINT64_MAX, UINT64_MAX - 15, 301 + 16 };
	for (unsigned i = 0; i < 3; i++) {
		struct snap_writer w = sample();
		set_and_reseal(&w, SNAP_HEADER_LEN + 16 + 4 + 8, &lens[i], 8);
		assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
		assert_non_null(strstr(err, "section 1"));
		snapw_free(&w);
	}
	/* The same tag and instance twice. */
	struct snap_writer w = sample();
	uint32_t tag = SNAP_MACHINE;
	set_and_reseal(&w, SNAP_HEADER_LEN + 16 + 4, &tag, 4);
	assert_int_equal(parse(w.buf, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "repeats"));
	snapw_free(&w);
}

/* A vCPU section as vcpu_state_save lays it out, with msrs MSRs and nent CPUID entries. */
static struct snap_writer vcpu_section(uint32_t msrs, uint32_t msr_index, uint32_t nent)
{
	static struct vcpu_state st;
	struct snap_writer w = { 0 };
	snapw_blob(&w, &st.mp_state, sizeof(st.mp_state));
	snapw_blob(&w, &st.regs, sizeof(st.regs));
	snapw_blob(&w, &st.sregs, sizeof(st.sregs));
	snapw_u8(&w, 1);
	snapw_blob(&w, &st.xsave, sizeof(st.xsave));
	snapw_u8(&w, 0);
	snapw_blob(&w, &st.debugregs, sizeof(st.debugregs));
	snapw_blob(&w, &st.lapic, sizeof(st.lapic));
	snapw_u32(&w, msrs);
	for (uint32_t i = 0; i < msrs && i < 100; i++) {
		snapw_u32(&w, msr_index);
		snapw_u64(&w, i);
	}
	snapw_blob(&w, &st.events, sizeof(st.events));
	snapw_u32(&w, nent);
	for (uint32_t i = 0; i < nent && i < 300; i++)
		snapw_bytes(&w, &st.cpuid[0], sizeof(st.cpuid[0]));
	return w;
}

static int parse_vcpu(const struct snap_writer *w, size_t len, char *err)
{
	static struct vcpu_state st;
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, w->buf, len);
	struct snap_reader r = snapr_init(copy, len);
	int rc = vcpu_state_parse(&r, &st, err);
	free(copy);
	return rc;
}

static void vcpu_sections(void **state)
{
	(void)state;
	char err[ERR_LEN];
	struct snap_writer w = vcpu_section(2, 0xc0000082, 3);
	assert_int_equal(parse_vcpu(&w, w.len, err), 0);
	/* Every truncation. */
	for (size_t n = 0; n < w.len; n += 7)
		assert_int_equal(parse_vcpu(&w, n, err), -EINVAL);
	snapw_free(&w);

	w = vcpu_section(VCPU_STATE_MSRS_MAX + 1, 0x10, 1);
	assert_int_equal(parse_vcpu(&w, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "MSRs (at most"));
	snapw_free(&w);

	/* An MSR ember does not restore (IA32_FEATURE_CONTROL). */
	w = vcpu_section(1, 0x3a, 1);
	assert_int_equal(parse_vcpu(&w, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "MSR 0x3a is not one ember restores"));
	snapw_free(&w);

	w = vcpu_section(1, 0x10, VCPU_STATE_CPUID_MAX + 1);
	assert_int_equal(parse_vcpu(&w, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "CPUID entries"));
	snapw_free(&w);

	/* A register block of another size (a kernel with a bigger struct, or a forgery). */
	w = (struct snap_writer){ 0 };
	snapw_u32(&w, sizeof(struct kvm_mp_state) + 4);
	snapw_u64(&w, 0);
	assert_int_equal(parse_vcpu(&w, w.len, err), -EINVAL);
	assert_non_null(strstr(err, "wrong size"));
	snapw_free(&w);
}

static void vm_section(void **state)
{
	(void)state;
	char err[ERR_LEN];
	static struct vm_kvm_state st, out;
	for (unsigned i = 0; i < 3; i++)
		st.chips[i].chip_id = i;
	struct snap_writer w = { 0 };
	snapw_u64(&w, 123);
	snapw_blob(&w, &st.pit, sizeof(st.pit));
	for (unsigned i = 0; i < 3; i++)
		snapw_blob(&w, &st.chips[i], sizeof(st.chips[i]));
	struct snap_reader r = snapr_init(w.buf, w.len);
	assert_int_equal(vm_kvm_state_parse(&r, &out, err), 0);
	assert_int_equal(out.clock.clock, 123);
	/* The IOAPIC saved as chip 0. */
	size_t chip2 = w.len - sizeof(st.chips[2]);
	w.buf[chip2] = 0;
	r = snapr_init(w.buf, w.len);
	assert_int_equal(vm_kvm_state_parse(&r, &out, err), -EINVAL);
	assert_non_null(strstr(err, "irqchip 2 has id 0"));
	r = snapr_init(w.buf, w.len - 1);
	assert_int_equal(vm_kvm_state_parse(&r, &out, err), -EINVAL);
	snapw_free(&w);
}

/* A whole state file as a snapshot of one vCPU and mem_mib MiB writes it, with conf as the
 * devices' configuration; the vCPU and VM sections hold zeros. */
static struct snap_writer whole_file(uint32_t vcpus, uint32_t mem_mib, const char *conf)
{
	static struct vm_kvm_state kvm;
	struct snap_writer w = { 0 };
	snapshot_file_start(&w);
	size_t s = snapw_begin(&w, SNAP_MACHINE, 0);
	snapw_u32(&w, vcpus);
	snapw_u32(&w, mem_mib);
	snapw_u8(&w, 0);
	snapw_u32(&w, 1);
	snapw_u64(&w, 0);
	snapw_u64(&w, (uint64_t)mem_mib << 20);
	snapw_u32(&w, 0);
	snapw_end(&w, s);
	s = snapw_begin(&w, SNAP_CONFIG, 0);
	snapw_bytes(&w, conf, strlen(conf));
	snapw_end(&w, s);
	s = snapw_begin(&w, SNAP_KVM_VM, 0);
	snapw_u64(&w, 0);
	snapw_blob(&w, &kvm.pit, sizeof(kvm.pit));
	for (unsigned i = 0; i < 3; i++) {
		kvm.chips[i].chip_id = i;
		snapw_blob(&w, &kvm.chips[i], sizeof(kvm.chips[i]));
	}
	snapw_end(&w, s);
	struct snap_writer v = vcpu_section(1, 0x10, 1);
	s = snapw_begin(&w, SNAP_VCPU, 0);
	snapw_bytes(&w, v.buf, v.len);
	snapw_end(&w, s);
	snapw_free(&v);
	s = snapw_begin(&w, SNAP_SERIAL, 0);
	snapw_end(&w, s);
	s = snapw_begin(&w, SNAP_I8042, 0);
	snapw_end(&w, s);
	snapshot_file_seal(&w, 6);
	assert_false(w.oom);
	return w;
}

static void check_whole(uint32_t vcpus, uint32_t mem_mib, const char *conf, const char *want)
{
	char err[ERR_LEN] = "";
	struct snap_writer w = whole_file(vcpus, mem_mib, conf);
	int rc = vmm_snapshot_check(w.buf, w.len, err);
	if (!want) {
		assert_int_equal(rc, 0);
	} else {
		assert_int_equal(rc, -EINVAL);
		if (!strstr(err, want))
			fail_msg("'%s' does not say '%s'", err, want);
	}
	snapw_free(&w);
}

/* The checks behind the framing, on a whole file (vmm_snapshot_check, the fuzz entry). */
static void whole_files(void **state)
{
	(void)state;
	check_whole(1, 128, "{}", NULL);
	check_whole(1, 128, "{\"drives\": []}", NULL);
	check_whole(0, 128, "{}", "0 vCPUs (1 to 32)");
	/* A vCPU count the file's sections do not back. */
	check_whole(2, 128, "{}", "no vCPU section");
	check_whole(1, 8, "{}", "8 MiB of memory");
	/* One region of 4 GiB is not how ember lays out 4 GiB (a gap at 3 GiB). */
	check_whole(1, 4096, "{}", "memory layout");
	check_whole(1, 128, "[]", "not a JSON object");
	check_whole(1, 128, "{\"drives\": [1", "not a JSON object");
	check_whole(1, 128, "{\"floppies\": []}", "unknown kind 'floppies'");
	check_whole(1, 128, "{\"drives\": [{\"drive_id\": 3}]}", "drive");
	/* Every truncation of the whole file, in a buffer of exactly that length. */
	struct snap_writer w = whole_file(1, 128, "{}");
	char err[ERR_LEN];
	for (size_t n = 0; n < w.len; n += 13) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, w.buf, n);
		assert_int_equal(vmm_snapshot_check(copy, n, err), -EINVAL);
		free(copy);
	}
	snapw_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crc32c_check_value), cmocka_unit_test(good_file),
		cmocka_unit_test(every_truncation),   cmocka_unit_test(every_flipped_byte),
		cmocka_unit_test(header_fields),      cmocka_unit_test(section_lengths),
		cmocka_unit_test(vcpu_sections),      cmocka_unit_test(vm_section),
		cmocka_unit_test(whole_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
