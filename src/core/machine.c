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
	/* A pause waiting on the VMM thread for every vCPU to park gives up on seeing exiting:
	 * a vCPU that ends instead of parking would otherwise leave it waiting for good, and
	 * the VMM thread with it (no caller holds pause_lock). */
	pthread_mutex_lock(&m->pause_lock);
	pthread_cond_broadcast(&m->pause_cond);
	pthread_mutex_unlock(&m->pause_lock);
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
