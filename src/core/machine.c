#include "core/machine.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

void machine_request_exit(struct machine *m, int code)
{
	bool expected = false;
	if (!atomic_compare_exchange_strong(&m->exiting, &expected, true))
		return;
	m->exit_code = code;
	eventfd_write(m->exit_event_fd, 1);
}

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t monotonic_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t process_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}
