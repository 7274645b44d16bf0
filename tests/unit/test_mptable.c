/* The MP table, decoded from guest memory by the spec's (MP 1.4) byte layout rather than
 * by the writer's structs. */
#include "unit_util.h"

#include "x86/layout.h"
#include "x86/mptable.h"

#define MP_LIMIT    0xa0000ULL
#define MPF_LEN	    16
#define MPC_HDR_LEN 44

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static void check_mptable(unsigned n)
{
	struct machine *vm = unit_vm_new(64 * MIB);
	/* Junk where the table goes: the writer must not rely on zeroed memory. */
	memset(unit_gpa(vm, EBDA_START, MP_LIMIT - EBDA_START), 0xa5, MP_LIMIT - EBDA_START);
	assert_int_equal(mptable_write(&vm->mem, EBDA_START, MP_LIMIT, n), 0);

	const uint8_t *mpf = unit_gpa(vm, EBDA_START, MPF_LEN);
	assert_memory_equal(mpf, "_MP_", 4);
	assert_int_equal(mpf[8], 1); /* length in 16-byte units */
	assert_int_equal(mpf[9], 4); /* spec 1.4 */
	assert_int_equal(sum8(mpf, MPF_LEN), 0);
	assert_int_equal(mpf[11], 0); /* feature byte 1: 0 = a table follows, no default config */

	uint32_t physptr = get32(mpf + 4);
	assert_true(physptr >= EBDA_START + MPF_LEN && physptr < MP_LIMIT);
	const uint8_t *t = unit_gpa(vm, physptr, MPC_HDR_LEN);
	assert_memory_equal(t, "PCMP", 4);
	uint16_t len = get16(t + 4);
	assert_true(physptr + len <= MP_LIMIT);
	t = unit_gpa(vm, physptr, len);
	assert_int_equal(t[6], 4);
	assert_int_equal(sum8(t, len), 0);
	assert_int_equal(get32(t + 36), LAPIC_ADDR);
	uint16_t count = get16(t + 34);
	assert_int_equal(count, n + 1 + 1 + MPTABLE_IOAPIC_PINS + 2);
	/* The whole structure is what mptable_size says. */
	assert_int_equal(physptr - EBDA_START + len, mptable_size(n));

	unsigned cpus = 0, buses = 0, ioapics = 0, intsrc = 0, lint = 0;
	uint8_t ioapic_id = 0;
	const uint8_t *p = t + MPC_HDR_LEN, *end = t + len;
	for (unsigned i = 0; i < count; i++) {
		assert_true(p < end);
		switch (p[0]) {
		case 0:						   /* processor, 20 bytes */
			assert_int_equal(p[1], cpus);		   /* apic id */
			assert_int_equal(p[3], cpus == 0 ? 3 : 1); /* enabled, BSP only on cpu 0 */
			assert_true(p[2] != 0);			   /* local APIC version */
			cpus++;
			p += 20;
			break;
		case 1: /* bus, 8 bytes */
			assert_memory_equal(p + 2, "ISA   ", 6);
			assert_int_equal(p[1], 0);
			buses++;
			p += 8;
			break;
		case 2: /* I/O APIC, 8 bytes */
			ioapic_id = p[1];
			assert_int_equal(p[3] & 1, 1); /* usable */
			assert_int_equal(get32(p + 4), IOAPIC_ADDR);
			ioapics++;
			p += 8;
			break;
		case 3:				   /* I/O interrupt: ISA irq i to IOAPIC pin i */
			assert_int_equal(p[1], 0); /* INT */
			assert_int_equal(p[4], 0); /* the ISA bus */
			assert_int_equal(p[5], intsrc);
			assert_int_equal(p[6], ioapic_id);
			assert_int_equal(p[7], intsrc);
			intsrc++;
			p += 8;
			break;
		case 4: /* local interrupt: ExtINT on LINT0, NMI on LINT1, all local APICs */
			assert_int_equal(p[1], lint == 0 ? 3 : 1);
			assert_int_equal(p[6], 0xff);
			assert_int_equal(p[7], lint);
			lint++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u at entry %u", p[0], i);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(cpus, n);
	assert_int_equal(buses, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(ioapic_id, n + 1);
	assert_int_equal(intsrc, MPTABLE_IOAPIC_PINS);
	assert_int_equal(lint, 2);
}

static void mptable_1_cpu(void **state)
{
	(void)state;
	check_mptable(1);
}

static void mptable_2_cpus(void **state)
{
	(void)state;
	check_mptable(2);
}

static void mptable_32_cpus(void **state)
{
	(void)state;
	check_mptable(32);
}

static void mptable_size_per_cpu(void **state)
{
	(void)state;
	assert_int_equal(mptable_size(1), MPF_LEN + MPC_HDR_LEN + 20 + 8 + 8 + 26 * 8);
	for (unsigned n = 1; n < 64; n++)
		assert_int_equal(mptable_size(n + 1) - mptable_size(n), 20);
}

static void mptable_too_many_cpus(void **state)
{
	(void)state;
	struct machine *vm = unit_vm_new(64 * MIB);
	/* The largest count that fits the 1 KiB below 0xa0000, and one more. */
	unsigned fit = 1;
	while (EBDA_START + mptable_size(fit + 1) <= MP_LIMIT)
		fit++;
	assert_true(fit >= 32);
	assert_int_equal(mptable_write(&vm->mem, EBDA_START, MP_LIMIT, fit), 0);
	uint8_t *after = unit_gpa(vm, EBDA_START + mptable_size(fit + 1) - 20, 20);
	memset(after, 0x77, 20);
	assert_int_equal(mptable_write(&vm->mem, EBDA_START, MP_LIMIT, fit + 1), -E2BIG);
	assert_int_equal(mptable_write(&vm->mem, EBDA_START, MP_LIMIT, 255), -E2BIG);
	assert_int_equal(mptable_write(&vm->mem, EBDA_START, MP_LIMIT, 0), -E2BIG);
	/* A refused write leaves memory alone. */
	assert_int_equal(after[19], 0x77);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT_TEST(mptable_1_cpu),	  UNIT_TEST(mptable_2_cpus),
		UNIT_TEST(mptable_32_cpus),	  UNIT_TEST(mptable_size_per_cpu),
		UNIT_TEST(mptable_too_many_cpus),
	};
	return cmocka_run_group_tests_name("mptable", tests, NULL, NULL);
}
