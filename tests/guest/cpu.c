/* CPU-level tests of the test guest, each run by a command-line word:
 *   smp       starts every other vCPU (INIT, SIPI, SIPI through the local APIC) and waits
 *             until each of those the MP table announces runs 64-bit code:
 *             "smp: mptable=N cpus=N apic_ids=0,1,...", then one "cpuid: apic=N ..." line
 *             per CPU with what its CPUID says about the topology
 *   high-mem  finds the RAM above 4 GiB in the e820 map, maps it, writes a pattern over
 *             it and reads it back: "high-mem: e820 ... ok=1"
 * and the interrupt set-up that virtio.c's blk-irq uses: an IDT, the local APIC and an
 * IOAPIC redirection entry, so that a device's line reaches the CPU as a vector. */
#include "guest.h"

#define LAPIC		 0xfee00000UL
#define LAPIC_ID	 0x020
#define LAPIC_EOI	 0x0b0
#define LAPIC_SVR	 0x0f0
#define LAPIC_ICR_LO	 0x300
#define LAPIC_ICR_HI	 0x310
#define LAPIC_LVT_TIMER	 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV	 0x3e0
#define TIMER_VEC	 0x40
#define IOAPIC		 0xfec00000UL
#define SPURIOUS_VEC	 0xff
#define AP_TRAMPOLINE	 0x8000UL
#define MAX_CPUS	 32
#define BP_E820_ENTRIES	 0x1e8
#define BP_E820_TABLE	 0x2d0

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static volatile uint32_t device_irqs, device_vector_seen;
static volatile uint32_t ap_count, ap_mask;
/* Page directories for RAM from 4 GiB up to 64 GiB, 2 MiB pages. */
static uint64_t high_pd[60][512] __attribute__((aligned(4096)));

extern char isr_device[], isr_spurious[], isr_other[], trap_stubs[];
extern char ap_trampoline[], ap_trampoline_end[], ap_cr3[];

static uint32_t lapic_rd(unsigned off)
{
	return *(volatile uint32_t *)(LAPIC + off);
}

static void lapic_wr(unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC + off) = v;
}

static void ioapic_wr(unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)IOAPIC = reg;
	*(volatile uint32_t *)(IOAPIC + 0x10) = v;
}

static void put_hex(uint64_t v)
{
	char b[20];
	int i = 19;
	b[i] = '\0';
	do
		b[--i] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) && i > 2);
	b[--i] = 'x';
	b[--i] = '0';
	puts_uart(b + i);
}

static void set_gate(unsigned vec, const void *fn)
{
	uint64_t a = (uint64_t)(uintptr_t)fn;
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	idt[vec] = (struct idt_entry){ .off0 = (uint16_t)a,
				       .sel = cs,
				       .type = 0x8e,
				       .off1 = (uint16_t)(a >> 16),
				       .off2 = (uint32_t)(a >> 32) };
}

static void load_idt(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(idtr));
}

void cpu_unexpected(void)
{
	puts_uart("cpu: unexpected interrupt or exception\n");
}

/* Called by every trap-report entry with the stack it left: the vector, then what the CPU
 * pushed (an error code for some exceptions, then RIP, CS, RFLAGS, RSP, SS). */
void cpu_trap_report(const uint64_t *frame)
{
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	puts_uart("\ncpu: trap vector=");
	put_dec(frame[0]);
	puts_uart(" cr2=");
	put_hex(cr2);
	puts_uart(" frame=");
	for (int i = 1; i <= 6; i++) {
		put_hex(frame[i]);
		puts_uart(i < 6 ? "," : "\n");
	}
}

/* trap-report: an IDT in which every vector reports itself (cpu_trap_report) instead of
 * the empty one that turns any exception or stray interrupt into a silent triple fault. */
void cpu_trap_report_setup(void)
{
	for (unsigned v = 0; v < 256; v++)
		set_gate(v, trap_stubs + 16 * v);
	load_idt();
}

void cpu_device_irq(void)
{
	device_irqs++;
	lapic_wr(LAPIC_EOI, 0);
}

uint32_t cpu_device_irqs(void)
{
	return device_irqs;
}

void cpu_irq_setup(unsigned irq, unsigned vector)
{
	for (unsigned v = 0; v < 256; v++)
		set_gate(v, isr_other);
	set_gate(vector, isr_device);
	set_gate(SPURIOUS_VEC, isr_spurious);
	load_idt();
	/* The 8259s masked: the line must arrive through the IOAPIC, nowhere else. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	lapic_wr(LAPIC_SVR, 0x100 | SPURIOUS_VEC);
	/* Edge-triggered, active high, fixed delivery to APIC ID 0, unmasked. */
	ioapic_wr(0x10 + 2 * irq + 1, 0);
	ioapic_wr(0x10 + 2 * irq, vector);
}

/* count-timer: the LAPIC timer, periodic at about 100 Hz, interrupts a halted CPU; every
 * tenth interrupt prints the count, which lives in memory (device_irqs). What goes on
 * after a snapshot load shows the LAPIC, its timer, the IDT and the halted state restored. */
void cpu_count_timer(void)
{
	cpu_irq_setup(15, TIMER_VEC);			   /* an IOAPIC pin no device uses */
	lapic_wr(LAPIC_TIMER_DIV, 0xb);			   /* divide by 1 */
	lapic_wr(LAPIC_LVT_TIMER, (1u << 17) | TIMER_VEC); /* periodic */
	lapic_wr(LAPIC_TIMER_INIT, 10000000);
	for (uint32_t printed = 0;;) {
		__asm__ volatile("sti; hlt; cli");
		uint32_t n = device_irqs;
		if (n / 10 != printed / 10) {
			printed = n;
			puts_uart("ember test guest: ticks=");
			put_dec(n);
			puts_uart("\n");
		}
	}
}

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

/* What each CPU's CPUID says about where it sits, by APIC ID: leaf 1's initial APIC ID,
 * leaf 0xb's threads per core and logical CPUs per package, leaf 0x8000001e's core id and
 * threads per core (AMD). */
static struct {
	uint32_t leaf1_apic, b_threads, b_cpus, b_x2apic, e_core, e_threads;
	bool seen;
} topo[MAX_CPUS];

static void record_topology(uint32_t apic_id)
{
	uint32_t r[4];
	cpuid(1, 0, r);
	topo[apic_id].leaf1_apic = r[1] >> 24;
	cpuid(0xb, 0, r);
	topo[apic_id].b_threads = r[1] & 0xffff;
	topo[apic_id].b_x2apic = r[3];
	cpuid(0xb, 1, r);
	topo[apic_id].b_cpus = r[1] & 0xffff;
	cpuid(0x80000000, 0, r);
	if (r[0] >= 0x8000001e) {
		cpuid(0x8000001e, 0, r);
		topo[apic_id].e_core = r[1] & 0xff;
		topo[apic_id].e_threads = ((r[1] >> 8) & 0xff) + 1;
	}
	topo[apic_id].seen = true;
}

void ap_main(uint32_t apic_id)
{
	record_topology(apic_id);
	__atomic_fetch_or(&ap_mask, 1u << apic_id, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&ap_count, 1, __ATOMIC_SEQ_CST);
}

static void spin(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		__asm__ volatile("" : "+r"(i));
}

/* The processors ember's MP table announces (enabled processor entries), or 0. */
static unsigned mptable_cpus(void)
{
	static const uintptr_t areas[][2] = { { 0x9fc00, 0xa0000 }, { 0xf0000, 0x100000 } };
	for (unsigned a = 0; a < 2; a++)
		for (uintptr_t p = areas[a][0]; p < areas[a][1]; p += 16) {
			const volatile uint8_t *f = (const volatile uint8_t *)p;
			if (f[0] != '_' || f[1] != 'M' || f[2] != 'P' || f[3] != '_')
				continue;
			const uint8_t *c =
				(const uint8_t *)(uintptr_t) * (const volatile uint32_t *)(f + 4);
			if (!c || c[0] != 'P' || c[1] != 'C' || c[2] != 'M' || c[3] != 'P')
				return 0;
			unsigned entries = *(const uint16_t *)(c + 0x22), cpus = 0;
			const uint8_t *e = c + 0x2c;
			for (unsigned i = 0; i < entries; i++) {
				if (e[0] == 0) {
					cpus += e[3] & 1;
					e += 20;
				} else {
					e += 8;
				}
			}
			return cpus;
		}
	return 0;
}

static void smp(void)
{
	unsigned announced = mptable_cpus();
	unsigned long cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	memcpy((void *)AP_TRAMPOLINE, ap_trampoline,
	       (unsigned long)(ap_trampoline_end - ap_trampoline));
	*(volatile uint32_t *)(AP_TRAMPOLINE + (unsigned long)(ap_cr3 - ap_trampoline)) =
		(uint32_t)cr3;
	mb();
	lapic_wr(LAPIC_SVR, 0x100 | SPURIOUS_VEC);
	uint32_t self = lapic_rd(LAPIC_ID) >> 24;
	ap_mask = 1u << self;
	/* INIT, then two SIPIs with vector 8 (start at 0x8000), to all but ourselves. Guest
	 * code can run slowly (PVM): short delays, then wait for the count to arrive. */
	lapic_wr(LAPIC_ICR_HI, 0);
	lapic_wr(LAPIC_ICR_LO, 0x000c4500);
	spin(10000);
	for (int i = 0; i < 2; i++) {
		lapic_wr(LAPIC_ICR_LO, 0x000c4600 | (AP_TRAMPOLINE >> 12));
		spin(10000);
	}
	for (unsigned long i = 0; i < 2000000 && ap_count + 1 < announced; i++)
		__asm__ volatile("pause");
	spin(20000); /* any AP that the MP table did not announce */
	puts_uart("smp: mptable=");
	put_dec(announced);
	puts_uart(" cpus=");
	put_dec(ap_count + 1);
	puts_uart(" apic_ids=");
	bool first = true;
	for (unsigned i = 0; i < MAX_CPUS; i++) {
		if (!(ap_mask & (1u << i)))
			continue;
		if (!first)
			puts_uart(",");
		put_dec(i);
		first = false;
	}
	puts_uart("\n");
	record_topology(self);
	for (unsigned i = 0; i < MAX_CPUS; i++) {
		if (!topo[i].seen)
			continue;
		puts_uart("cpuid: apic=");
		put_dec(i);
		kv("leaf1_apic", topo[i].leaf1_apic);
		kv("x2apic", topo[i].b_x2apic);
		kv("threads_per_core", topo[i].b_threads);
		kv("cpus", topo[i].b_cpus);
		kv("amd_core", topo[i].e_core);
		kv("amd_threads", topo[i].e_threads);
		puts_uart("\n");
	}
}

struct e820 {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

/* Each RAM range at or above 4 GiB: mapped through high_pd, a distinct value written to
 * every 2 MiB and at the last 8 bytes, then all read back. */
static void high_mem(const uint8_t *boot_params)
{
	unsigned n = boot_params[BP_E820_ENTRIES];
	const struct e820 *e = (const struct e820 *)(boot_params + BP_E820_TABLE);
	uint64_t lo = 0, hi = 0;
	puts_uart("high-mem: e820");
	for (unsigned i = 0; i < n; i++) {
		puts_uart(" ");
		put_hex(e[i].addr);
		puts_uart("-");
		put_hex(e[i].addr + e[i].size);
		puts_uart(e[i].type == 1 ? ":ram" : ":reserved");
		if (e[i].type == 1 && e[i].addr >= (1ULL << 32)) {
			lo = e[i].addr;
			hi = e[i].addr + e[i].size;
		}
	}
	if (!hi || hi > (64ULL << 30)) {
		puts_uart(" no-high-ram ok=0\n");
		return;
	}
	/* The boot page tables map 4 GiB: add PDPT entries 4.. for the rest. */
	unsigned long cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	uint64_t *pml4 = (uint64_t *)(cr3 & ~0xfffUL);
	uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & ~0xfffULL);
	for (unsigned g = 4; g < 64; g++) {
		for (unsigned j = 0; j < 512; j++)
			high_pd[g - 4][j] = ((uint64_t)g << 30) + ((uint64_t)j << 21) + 0x83;
		pdpt[g] = (uint64_t)(uintptr_t)high_pd[g - 4] | 3;
	}
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	bool ok = true;
	for (uint64_t a = lo; a < hi; a += 2ULL << 20)
		*(volatile uint64_t *)a = a ^ 0x5a5a5a5a5a5a5a5aULL;
	*(volatile uint64_t *)(hi - 8) = 0x0123456789abcdefULL;
	for (uint64_t a = lo; a < hi; a += 2ULL << 20)
		if (*(volatile uint64_t *)a != (a ^ 0x5a5a5a5a5a5a5a5aULL))
			ok = false;
	if (*(volatile uint64_t *)(hi - 8) != 0x0123456789abcdefULL)
		ok = false;
	puts_uart(" checked=");
	put_hex(lo);
	puts_uart("-");
	put_hex(hi);
	kv("ok", ok);
	puts_uart("\n");
}

void cpu_run(const char *cmdline, const uint8_t *boot_params)
{
	if (has_word(cmdline, "smp"))
		smp();
	if (has_word(cmdline, "high-mem"))
		high_mem(boot_params);
}
