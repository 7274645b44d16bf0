/* The I/O bus (registration and dispatch) and the CPUID topology filter. */
#include "unit_util.h"

#include "core/bus.h"
#include "x86/cpuid.h"

/* ---- I/O bus ---- */

struct device_log {
	unsigned calls;
	void *opaque;
	uint64_t offset;
	unsigned len;
	bool is_write;
	uint8_t seen[8];
};

static struct device_log *dev_log(void)
{
	static struct device_log l;
	return &l;
}

/* Records the access; a read returns 0xd0 + i in byte i. */
static void record(void *opaque, uint64_t offset, uint8_t *data, unsigned len, bool is_write)
{
	struct device_log *l = dev_log();
	l->calls++;
	l->opaque = opaque;
	l->offset = offset;
	l->len = len;
	l->is_write = is_write;
	for (unsigned i = 0; i < len && i < sizeof(l->seen); i++) {
		l->seen[i] = data[i];
		if (!is_write)
			data[i] = (uint8_t)(0xd0 + i);
	}
}

static struct io_bus *bus(void)
{
	static struct io_bus b;
	return &b;
}

static int bus_teardown(void **state)
{
	io_bus_free(bus());
	memset(dev_log(), 0, sizeof(*dev_log()));
	return unit_teardown(state);
}

#define BUS_TEST(fn) cmocka_unit_test_teardown(fn, bus_teardown)

static int reg(uint64_t base, uint64_t len, void *opaque)
{
	return io_bus_register(bus(), base, len, record, opaque, "test");
}

static void bus_overlaps_rejected(void **state)
{
	(void)state;
	assert_int_equal(reg(0x100, 0x10, NULL), 0);
	assert_int_equal(reg(0xf8, 0x10, NULL), -EEXIST);  /* over the start */
	assert_int_equal(reg(0x10f, 0x10, NULL), -EEXIST); /* over the end */
	assert_int_equal(reg(0x100, 0x10, NULL), -EEXIST); /* the same */
	assert_int_equal(reg(0x104, 1, NULL), -EEXIST);	   /* inside */
	assert_int_equal(reg(0xf0, 0x40, NULL), -EEXIST);  /* around */
	assert_int_equal(bus()->nr, 1);
	/* Touching is not overlapping. */
	assert_int_equal(reg(0xf0, 0x10, NULL), 0);
	assert_int_equal(reg(0x110, 0x10, NULL), 0);
	assert_int_equal(bus()->nr, 3);
	/* Between two neighbours, overlapping only the right one. */
	assert_int_equal(reg(0x200, 0x10, NULL), 0);
	assert_int_equal(reg(0x1f8, 0x9, NULL), -EEXIST);
	assert_int_equal(reg(0x1f8, 0x8, NULL), 0);
}

static void bus_bad_ranges_rejected(void **state)
{
	(void)state;
	assert_int_equal(reg(0x100, 0, NULL), -EINVAL);
	assert_int_equal(reg(UINT64_MAX - 1, 4, NULL), -EINVAL);
	assert_int_equal(reg(0x1000, UINT64_MAX, NULL), -EINVAL);
	assert_int_equal(bus()->nr, 0);
}

static void bus_many_ranges_sorted(void **state)
{
	(void)state;
	static int tags[100];
	/* 37 is coprime with 100, so i*37 % 100 visits every slot in a scrambled order. */
	for (unsigned i = 0; i < 100; i++) {
		unsigned slot = (i * 37) % 100;
		assert_int_equal(reg(0x1000 + slot * 0x10, 8, &tags[slot]), 0);
	}
	assert_int_equal(bus()->nr, 100);
	for (unsigned i = 1; i < bus()->nr; i++)
		assert_true(bus()->ranges[i - 1].base + bus()->ranges[i - 1].len <=
			    bus()->ranges[i].base);
	for (unsigned slot = 0; slot < 100; slot++) {
		uint8_t b = 0;
		assert_true(io_bus_access(bus(), 0x1000 + slot * 0x10 + 5, &b, 1, false));
		assert_ptr_equal(dev_log()->opaque, &tags[slot]);
		assert_int_equal(dev_log()->offset, 5);
		/* The 8 bytes after each device are a hole. */
		assert_false(io_bus_access(bus(), 0x1000 + slot * 0x10 + 8, &b, 1, false));
	}
	assert_int_equal(dev_log()->calls, 100);
}

static void bus_dispatch(void **state)
{
	(void)state;
	int uart, kbd;
	assert_int_equal(reg(0x3f8, 8, &uart), 0);
	assert_int_equal(reg(0x60, 1, &kbd), 0);
	assert_int_equal(reg(0x64, 1, &kbd), 0);

	uint8_t data[4] = { 0x11, 0x22, 0x33, 0x44 };
	assert_true(io_bus_access(bus(), 0x3fb, data, 1, true));
	assert_ptr_equal(dev_log()->opaque, &uart);
	assert_int_equal(dev_log()->offset, 3);
	assert_int_equal(dev_log()->len, 1);
	assert_true(dev_log()->is_write);
	assert_int_equal(dev_log()->seen[0], 0x11);

	assert_true(io_bus_access(bus(), 0x3fc, data, 4, false)); /* ends exactly at 0x400 */
	assert_int_equal(dev_log()->offset, 4);
	assert_int_equal(dev_log()->len, 4);
	assert_false(dev_log()->is_write);
	assert_int_equal(data[0], 0xd0);
	assert_int_equal(data[3], 0xd3);

	assert_true(io_bus_access(bus(), 0x64, data, 1, false));
	assert_ptr_equal(dev_log()->opaque, &kbd);
	assert_int_equal(dev_log()->offset, 0);
	assert_int_equal(dev_log()->calls, 3);
}

static void bus_misses(void **state)
{
	(void)state;
	uint8_t data[8] = { 0 };
	assert_false(io_bus_access(bus(), 0x3f8, data, 1, false)); /* empty bus */
	assert_int_equal(reg(0x3f8, 8, NULL), 0);
	assert_int_equal(reg(0x60, 1, NULL), 0);
	assert_false(io_bus_access(bus(), 0x3f7, data, 1, false));
	assert_false(io_bus_access(bus(), 0x400, data, 1, false));
	assert_false(io_bus_access(bus(), 0x61, data, 1, false));
	assert_false(io_bus_access(bus(), 0, data, 1, false));
	assert_false(io_bus_access(bus(), UINT64_MAX, data, 1, false));
	/* Straddling a device's end, or running from a device into a hole. */
	assert_false(io_bus_access(bus(), 0x3fe, data, 4, true));
	assert_false(io_bus_access(bus(), 0x3f8, data, 8 + 1, false));
	assert_false(io_bus_access(bus(), 0x60, data, 2, false));
	/* Starting in a hole and running into a device does not reach it either. */
	assert_false(io_bus_access(bus(), 0x3f6, data, 4, false));
	assert_int_equal(dev_log()->calls, 0);
}

/* ---- CPUID ---- */

enum { L0, L1, L4_L1D, L4_L3, L4_END, LB0, LB1, LB2, L1F0, L1F1, L88, L8E, NR_LEAVES };

static void host_cpuid(struct kvm_cpuid_entry2 *e)
{
	memset(e, 0, NR_LEAVES * sizeof(*e));
	e[L0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0x1f, .ebx = 0x756e6547 };
	/* Host values the filter must replace (apic id 0x3a, count 0x40) or keep (low ebx). */
	e[L1] = (struct kvm_cpuid_entry2){ .function = 1,
					   .eax = 0x806c1,
					   .ebx = 0x3a401234,
					   .ecx = 0x7ffafbff,
					   .edx = 0xbfebfbff };
	e[L4_L1D] = (struct kvm_cpuid_entry2){ .function = 4, .index = 0, .eax = 0xfc004121 };
	e[L4_L3] = (struct kvm_cpuid_entry2){ .function = 4, .index = 3, .eax = 0xfc03c163 };
	e[L4_END] = (struct kvm_cpuid_entry2){ .function = 4, .index = 4, .eax = 0 };
	for (unsigned i = 0; i < 3; i++) {
		e[LB0 + i] = (struct kvm_cpuid_entry2){
			.function = 0xb, .index = i, .eax = 7, .ebx = 99, .ecx = 0x1234, .edx = 77
		};
		if (i < 2)
			e[L1F0 + i] = (struct kvm_cpuid_entry2){
				.function = 0x1f, .index = i, .eax = 7, .edx = 77
			};
	}
	e[L88] = (struct kvm_cpuid_entry2){ .function = 0x80000008,
					    .eax = 0x3030,
					    .ecx = 0xabcd7007 };
	e[L8E] = (struct kvm_cpuid_entry2){
		.function = 0x8000001e, .eax = 55, .ebx = 0x1234, .ecx = 0x303
	};
}

static void filtered(struct kvm_cpuid_entry2 *e, unsigned cpu, unsigned n, bool smt)
{
	host_cpuid(e);
	cpuid_filter(e, NR_LEAVES, cpu, n, smt);
}

static void cpuid_leaf1(void **state)
{
	(void)state;
	struct kvm_cpuid_entry2 e[NR_LEAVES];
	filtered(e, 2, 4, false);
	assert_int_equal(e[L1].ecx >> 31, 1);	    /* hypervisor */
	assert_int_equal((e[L1].ecx >> 24) & 1, 1); /* TSC-deadline timer */
	assert_int_equal(e[L1].ebx >> 24, 2);
	assert_int_equal((e[L1].ebx >> 16) & 0xff, 4);
	assert_int_equal(e[L1].ebx & 0xffff, 0x1234);
	assert_int_equal((e[L1].edx >> 28) & 1, 1); /* HTT */
	assert_int_equal(e[L1].eax, 0x806c1);
	assert_int_equal(e[L0].eax, 0x1f); /* leaves it does not know are left alone */
	assert_int_equal(e[L0].ebx, 0x756e6547);

	/* KVM does not report the TSC-deadline timer; ember sets it. */
	host_cpuid(e);
	e[L1].ecx &= ~(1u << 24);
	cpuid_filter(e, NR_LEAVES, 0, 1, false);
	assert_int_equal((e[L1].ecx >> 24) & 1, 1);

	filtered(e, 0, 1, false);
	assert_int_equal(e[L1].ebx >> 24, 0);
	assert_int_equal((e[L1].ebx >> 16) & 0xff, 1);
	assert_int_equal((e[L1].edx >> 28) & 1, 0);
	assert_int_equal(e[L1].ecx >> 31, 1);
}

static void check_topology_leaf(const struct kvm_cpuid_entry2 *e, unsigned cpu, unsigned smt_shift,
				unsigned threads, unsigned pkg_shift, unsigned n)
{
	assert_int_equal(e[0].edx, cpu); /* x2APIC id on every subleaf */
	assert_int_equal(e[1].edx, cpu);
	assert_int_equal(e[0].eax & 0x1f, smt_shift);
	assert_int_equal(e[0].ebx & 0xffff, threads);
	assert_int_equal(e[0].ecx, (1u << 8) | 0); /* SMT level, subleaf 0 */
	assert_int_equal(e[1].eax & 0x1f, pkg_shift);
	assert_int_equal(e[1].ebx & 0xffff, n);
	assert_int_equal(e[1].ecx, (2u << 8) | 1); /* core level, subleaf 1 */
}

static void cpuid_leaf_b(void **state)
{
	(void)state;
	struct kvm_cpuid_entry2 e[NR_LEAVES];
	filtered(e, 3, 4, false);
	check_topology_leaf(&e[LB0], 3, 0, 1, 2, 4);
	check_topology_leaf(&e[L1F0], 3, 0, 1, 2, 4);
	/* Past the last level: type 0, the subleaf echoed, no processors. */
	assert_int_equal(e[LB2].ecx, 2);
	assert_int_equal(e[LB2].eax, 0);
	assert_int_equal(e[LB2].ebx, 0);
	assert_int_equal(e[LB2].edx, 3);

	filtered(e, 5, 6, true);
	check_topology_leaf(&e[LB0], 5, 1, 2, 3, 6);
	filtered(e, 0, 1, true); /* smt on a single vCPU: nothing to share a core with */
	check_topology_leaf(&e[LB0], 0, 0, 1, 0, 1);
	filtered(e, 1, 2, true);
	check_topology_leaf(&e[LB0], 1, 1, 2, 1, 2);
}

/* A host that lists only subleaf 0 of 0xb (and no 0x1f): subleaves 1 and 2 are added, so the
 * guest reads its core level instead of zeros; nothing is added for an absent leaf, nor
 * twice, nor past the room given. */
static void cpuid_missing_subleaves_are_added(void **state)
{
	(void)state;
	struct kvm_cpuid_entry2 e[6] = {
		{ .function = 1 },
		{ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
	};
	unsigned n = cpuid_complete_topology(e, 2, 6);
	assert_int_equal(n, 4);
	assert_int_equal(e[2].function, 0xb);
	assert_int_equal(e[2].index, 1);
	assert_int_equal(e[2].flags, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	assert_int_equal(e[3].index, 2);
	cpuid_filter(e, n, 3, 4, true);
	check_topology_leaf(&e[1], 3, 1, 2, 2, 4);
	assert_int_equal(cpuid_complete_topology(e, n, 6), n);
	assert_int_equal(cpuid_complete_topology(e, 2, 3), 3);
}

static void cpuid_leaf_8000001e(void **state)
{
	(void)state;
	struct kvm_cpuid_entry2 e[NR_LEAVES];
	filtered(e, 3, 4, true);
	assert_int_equal(e[L8E].eax, 3);
	assert_int_equal((e[L8E].ebx >> 8) & 0xff, 1); /* threads per core - 1 */
	assert_int_equal(e[L8E].ebx & 0xff, 1); /* core id: cpu 3 is core 1's second thread */
	assert_int_equal(e[L8E].ecx, 0);
	filtered(e, 3, 4, false);
	assert_int_equal(e[L8E].eax, 3);
	assert_int_equal((e[L8E].ebx >> 8) & 0xff, 0);
	assert_int_equal(e[L8E].ebx & 0xff, 3);
}

static void cpuid_cache_and_amd_counts(void **state)
{
	(void)state;
	struct kvm_cpuid_entry2 e[NR_LEAVES];
	filtered(e, 0, 8, true);
	/* 4 cores of 2 threads; L1 shared by a core's threads, L3 by all 8. */
	assert_int_equal(e[L4_L1D].eax >> 26, 3);
	assert_int_equal((e[L4_L1D].eax >> 14) & 0xfff, 1);
	assert_int_equal(e[L4_L1D].eax & 0x3fff, 0x0121);
	assert_int_equal(e[L4_L3].eax >> 26, 3);
	assert_int_equal((e[L4_L3].eax >> 14) & 0xfff, 7);
	assert_int_equal(e[L4_END].eax, 0);
	assert_int_equal(e[L88].ecx & 0xff, 7);
	assert_int_equal((e[L88].ecx >> 12) & 0xf, 3);
	assert_int_equal(e[L88].ecx & 0xffff0000u, 0xabcd0000u); /* the rest kept */
	assert_int_equal(e[L88].eax, 0x3030);

	filtered(e, 0, 8, false);
	assert_int_equal(e[L4_L1D].eax >> 26, 7);
	assert_int_equal((e[L4_L1D].eax >> 14) & 0xfff, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BUS_TEST(bus_overlaps_rejected),
		BUS_TEST(bus_bad_ranges_rejected),
		BUS_TEST(bus_many_ranges_sorted),
		BUS_TEST(bus_dispatch),
		BUS_TEST(bus_misses),
		UNIT_TEST(cpuid_leaf1),
		UNIT_TEST(cpuid_leaf_b),
		UNIT_TEST(cpuid_missing_subleaves_are_added),
		UNIT_TEST(cpuid_leaf_8000001e),
		UNIT_TEST(cpuid_cache_and_amd_counts),
	};
	return cmocka_run_group_tests_name("bus_cpuid", tests, NULL, NULL);
}
