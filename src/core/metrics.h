/* Metrics: named counters in groups, flushed as one JSON object per line to the metrics
 * file or FIFO, every 60 s and on FlushMetrics. As in Firecracker, each flush reports
 * what happened since the previous one. Counters are relaxed atomics: any thread may
 * bump them, only the VMM thread flushes. */
#ifndef EMBER_METRICS_H
#define EMBER_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>

struct metric {
	const char *name;
	atomic_ulong value;
	unsigned long reported; /* value at the previous flush; VMM thread only */
};

struct metric_group {
	const char *name;
	struct metric *metrics;
	unsigned nr;
	struct metric_group *next;
};

static inline void metric_inc(struct metric *m)
{
	atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

static inline void metric_add(struct metric *m, unsigned long n)
{
	atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

/* Adds a group to the registry (devices register theirs when created). */
void metrics_register(struct metric_group *group);
/* Opens path (file, appended; or FIFO) as the metrics sink. -errno on failure. */
int metrics_open(const char *path);
bool metrics_configured(void);
/* Writes one line with every group's counts since the last flush. -errno on failure. */
int metrics_flush(void);

/* The VMM's own groups. */
enum vcpu_metric {
	VCPU_EXIT_IO_IN,
	VCPU_EXIT_IO_OUT,
	VCPU_EXIT_MMIO_READ,
	VCPU_EXIT_MMIO_WRITE,
	VCPU_EXIT_OTHER,
	VCPU_FAILURES,
	VCPU_METRIC_COUNT
};
extern struct metric vcpu_metrics[VCPU_METRIC_COUNT];

enum seccomp_metric { SECCOMP_NUM_FAULTS, SECCOMP_METRIC_COUNT };
extern struct metric seccomp_metrics[SECCOMP_METRIC_COUNT];

#endif
