#include "legacy/boot_timer.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "x86/layout.h"
#include "core/log.h"

struct boot_timer {
	struct machine *machine;
	atomic_ulong writes; /* magic writes so far; any vCPU may make one */
};

static void boot_timer_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len, bool is_write)
{
	struct boot_timer *t = opaque;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (offset != 0 || len != 1 || data[0] != BOOT_TIMER_MAGIC)
		return;
	unsigned long n = atomic_fetch_add(&t->writes, 1);
	if (n == 1)
		log_msg(LOG_INFO, "Guest wrote the boot timer again: this and later writes are "
				  "not logged");
	if (n)
		return;
	uint64_t wall_us = (monotonic_ns() - t->machine->start_ns) / 1000;
	uint64_t cpu_us = (process_cpu_ns() - t->machine->start_cpu_ns) / 1000;
	/* Firecracker's wording, so existing tooling that greps for it keeps working. */
	log_msg(LOG_INFO, "Guest-boot-time = %6llu us %llu ms, %6llu CPU us %llu CPU ms",
		(unsigned long long)wall_us, (unsigned long long)(wall_us / 1000),
		(unsigned long long)cpu_us, (unsigned long long)(cpu_us / 1000));
}

struct boot_timer *boot_timer_create(struct machine *machine)
{
	struct boot_timer *t = calloc(1, sizeof(*t));
	if (!t)
		die("out of memory");
	t->machine = machine;
	int rc = io_bus_register(&machine->mmio_bus, BOOT_TIMER_ADDR, BOOT_TIMER_SIZE,
				 boot_timer_io, t, "boot-timer");
	if (rc)
		die("boot timer: cannot register at 0x%llx", (unsigned long long)BOOT_TIMER_ADDR);
	return t;
}

void boot_timer_destroy(struct boot_timer *t)
{
	free(t);
}
