/* count-clock: the count word's loop, each line with the guest's kvmclock in ms
 * ("clock: count=N ms=M"), for clock_realtime in tests/snapshot_devices.bats. The vCPU's
 * pvclock page is registered through MSR_KVM_SYSTEM_TIME_NEW and read as a Linux guest
 * reads it: system_time plus the scaled TSC ticks since tsc_timestamp. A line "clock:
 * guest-stopped" says the host flagged a pause (PVCLOCK_GUEST_STOPPED). */
#include "guest.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define PVCLOCK_GUEST_STOPPED	(1 << 1)

struct pvclock {
	uint32_t version, pad0;
	uint64_t tsc_timestamp, system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags, pad[2];
};

static volatile struct pvclock pvti __attribute__((aligned(64)));

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static uint64_t kvmclock_ns(void)
{
	uint32_t v;
	uint64_t ns;
	do {
		v = pvti.version;
		mb(); /* the version before the fields it covers */
		uint64_t delta = rdtsc() - pvti.tsc_timestamp;
		int8_t shift = pvti.tsc_shift;
		delta = shift < 0 ? delta >> -shift : delta << shift;
		ns = pvti.system_time +
		     (uint64_t)(((unsigned __int128)delta * pvti.tsc_to_system_mul) >> 32);
		mb(); /* the fields before the version read again */
	} while ((v & 1) || v != pvti.version);
	return ns;
}

void clock_run(const char *cmdline)
{
	if (!has_word(cmdline, "count-clock"))
		return;
	uint64_t gpa = (uint64_t)(uintptr_t)&pvti | 1; /* bit 0: enabled */
	__asm__ volatile("wrmsr"
			 :
			 : "c"(MSR_KVM_SYSTEM_TIME_NEW), "a"((uint32_t)gpa),
			   "d"((uint32_t)(gpa >> 32)));
	/* The count lives in memory: a restored guest goes on from it. */
	static volatile uint64_t count;
	for (;;) {
		/* KVM_KVMCLOCK_CTRL before a resume: said once, then cleared as Linux does. */
		if (pvti.flags & PVCLOCK_GUEST_STOPPED) {
			pvti.flags &= (uint8_t)~PVCLOCK_GUEST_STOPPED;
			puts_uart("clock: guest-stopped\n");
		}
		for (volatile unsigned long i = 0; i < 2000; i++)
			;
		count++;
		puts_uart("clock: count=");
		put_dec(count);
		kv("ms", kvmclock_ns() / 1000000);
		puts_uart("\n");
	}
}
