#include "x86/mptable.h"

#include <errno.h>
#include <string.h>

#include "x86/layout.h"

struct mpf_intel {
	char signature[4];
	uint32_t physptr;
	uint8_t length;
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
} __attribute__((packed));

struct mpc_table {
	char signature[4];
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

enum { MP_PROCESSOR = 0, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_IRQ_INT = 0, MP_IRQ_NMI = 1, MP_IRQ_EXTINT = 3 };
#define CPU_ENABLED	  1
#define CPU_BOOTPROCESSOR 2
#define APIC_VERSION	  0x14
#define IOAPIC_VERSION	  0x11
/* Family 6 signature with the FPU and APIC feature bits: what Linux expects to see. */
#define CPU_SIGNATURE ((6 << 8) | (1 << 4) | 1)
#define CPU_FEATURES  ((1 << 0) | (1 << 9))

size_t mptable_size(unsigned nr_cpus)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
	       nr_cpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
	       sizeof(struct mpc_ioapic) + (MPTABLE_IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc);
}

static uint8_t checksum(const void *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + ((const uint8_t *)p)[i]);
	return (uint8_t)(0 - sum);
}

/* Appends one entry, a compound literal of type, at p (a local of the caller). */
#define PUT(type, ...)                                                                             \
	do {                                                                                       \
		*(type *)p = (type){ __VA_ARGS__ };                                                \
		p += sizeof(type);                                                                 \
	} while (0)

int mptable_write(const struct guest_mem *mem, uint64_t gpa, uint64_t limit, unsigned nr_cpus)
{
	size_t size = mptable_size(nr_cpus);
	if (nr_cpus == 0 || nr_cpus > 254 || gpa + size > limit)
		return -E2BIG;
	uint8_t *base = guest_mem_ptr_w(mem, gpa, size);
	if (!base)
		return -ENOMEM;
	memset(base, 0, size);

	struct mpf_intel *mpf = (struct mpf_intel *)base;
	struct mpc_table *table = (struct mpc_table *)(mpf + 1);
	uint8_t *p = (uint8_t *)(table + 1);
	for (unsigned i = 0; i < nr_cpus; i++)
		PUT(struct mpc_cpu, .type = MP_PROCESSOR, .apicid = (uint8_t)i,
		    .apicver = APIC_VERSION,
		    .cpuflag = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0),
		    .cpufeature = CPU_SIGNATURE, .featureflag = CPU_FEATURES);
	PUT(struct mpc_bus, .type = MP_BUS, .busid = 0, .bustype = "ISA   ");
	/* The IOAPIC's id follows the CPUs' so the two never clash. */
	uint8_t ioapic_id = (uint8_t)(nr_cpus + 1);
	PUT(struct mpc_ioapic, .type = MP_IOAPIC, .apicid = ioapic_id, .apicver = IOAPIC_VERSION,
	    .flags = 1, .apicaddr = (uint32_t)IOAPIC_ADDR);
	/* KVM's default routing sends GSI n to IOAPIC pin n, so say exactly that. */
	for (unsigned pin = 0; pin < MPTABLE_IOAPIC_PINS; pin++)
		PUT(struct mpc_intsrc, MP_INTSRC, MP_IRQ_INT, 0, 0, (uint8_t)pin, ioapic_id,
		    (uint8_t)pin);
	/* LINT0 takes the PIC's ExtINT, LINT1 the NMI, on every local APIC. */
	PUT(struct mpc_intsrc, MP_LINTSRC, MP_IRQ_EXTINT, 0, 0, 0, 0xff, 0);
	PUT(struct mpc_intsrc, MP_LINTSRC, MP_IRQ_NMI, 0, 0, 0, 0xff, 1);

	memcpy(table->signature, "PCMP", 4);
	table->length = (uint16_t)(p - (uint8_t *)table);
	table->spec = 4;
	memcpy(table->oem, "EMBER   ", 8);
	memcpy(table->productid, "MICROVM     ", 12);
	table->oemcount = (uint16_t)(nr_cpus + MPTABLE_IOAPIC_PINS + 4); /* bus, IOAPIC, LINTs */
	table->lapic = (uint32_t)LAPIC_ADDR;
	table->checksum = checksum(table, table->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(gpa + sizeof(*mpf));
	mpf->length = 1; /* in 16-byte units */
	mpf->specification = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
	return 0;
}
