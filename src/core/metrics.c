#include "core/metrics.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

struct metric vcpu_metrics[VCPU_METRIC_COUNT] = {
	[VCPU_EXIT_IO_IN] = { .name = "exit_io_in" },
	[VCPU_EXIT_IO_OUT] = { .name = "exit_io_out" },
	[VCPU_EXIT_MMIO_READ] = { .name = "exit_mmio_read" },
	[VCPU_EXIT_MMIO_WRITE] = { .name = "exit_mmio_write" },
	[VCPU_EXIT_OTHER] = { .name = "exit_other" },
	[VCPU_FAILURES] = { .name = "failures" },
};

struct metric seccomp_metrics[SECCOMP_METRIC_COUNT] = {
	[SECCOMP_NUM_FAULTS] = { .name = "num_faults" },
};

static struct metric_group vcpu_group = { "vcpu", vcpu_metrics, VCPU_METRIC_COUNT, NULL };
static struct metric_group seccomp_group = { "seccomp", seccomp_metrics, SECCOMP_METRIC_COUNT,
					     &vcpu_group };

/* The registry: the one global this module keeps. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_group *groups = &seccomp_group;
static int metrics_fd = -1;

void metrics_register(struct metric_group *group)
{
	pthread_mutex_lock(&registry_lock);
	group->next = groups;
	groups = group;
	pthread_mutex_unlock(&registry_lock);
}

int metrics_open(const char *path)
{
	int fd = open_output_sink(path);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&registry_lock);
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = fd;
	pthread_mutex_unlock(&registry_lock);
	return 0;
}

bool metrics_configured(void)
{
	return metrics_fd >= 0;
}

int metrics_flush(void)
{
	pthread_mutex_lock(&registry_lock);
	int rc = 0;
	if (metrics_fd < 0) {
		rc = -ENOENT;
		goto out;
	}
	json_t *root = json_object();
	struct timeval tv;
	gettimeofday(&tv, NULL);
	json_object_set_new(root, "utc_timestamp_ms",
			    json_integer((json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000));
	for (struct metric_group *g = groups; g; g = g->next) {
		json_t *obj = json_object();
		for (unsigned i = 0; i < g->nr; i++) {
			struct metric *m = &g->metrics[i];
			unsigned long now = atomic_load_explicit(&m->value, memory_order_relaxed);
			json_object_set_new(obj, m->name,
					    json_integer((json_int_t)(now - m->reported)));
			m->reported = now;
		}
		json_object_set_new(root, g->name, obj);
	}
	char *line = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!line) {
		rc = -ENOMEM;
		goto out;
	}
	size_t len = strlen(line);
	line[len] = '\n'; /* replaces the NUL: written with an explicit length */
	if (write(metrics_fd, line, len + 1) != (ssize_t)(len + 1))
		rc = -EIO;
	free(line);
out:
	pthread_mutex_unlock(&registry_lock);
	return rc;
}
