#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_WARNING;
static int log_fd = STDERR_FILENO;
static char instance_id[65] = "anonymous-instance";
static bool show_level = true;
static bool show_origin;

void log_set_format(bool level, bool origin)
{
	show_level = level;
	show_origin = origin;
}

static const char *const level_names[] = { "Error", "Warning", "Info", "Debug" };

int log_set_level_name(const char *name)
{
	int level = -2; /* no such name: -1 is "Off" */
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			level = (int)i;
	/* Firecracker also accepts "Trace", "Warn" and "Off", in any case (logger.rs). */
	if (strcasecmp(name, "Trace") == 0)
		level = LOG_DEBUG;
	else if (strcasecmp(name, "Warn") == 0)
		level = LOG_WARNING;
	else if (strcasecmp(name, "Off") == 0)
		level = -1;
	if (level == -2)
		return -EINVAL;
	current_level = (enum log_level)level;
	return 0;
}

int open_output_sink(const char *path)
{
	/* A FIFO is opened for reading too, as Firecracker opens it: that neither waits for a
	 * reader nor fails without one (firecracker-go-sdk makes the FIFOs and only then starts
	 * reading them). Its writes stay non-blocking, so a reader that stops costs lines, not
	 * a stuck VMM thread. */
	struct stat st;
	if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
		int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	/* O_NONBLOCK so that a FIFO made between the stat and here cannot hang start-up.
	 * Writes to a file then block. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
	if (fd < 0)
		return -errno;
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	return fd;
}

int log_open(const char *path)
{
	int fd = open_output_sink(path);
	if (fd < 0)
		return fd;
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	return 0;
}

void log_set_id(const char *id)
{
	snprintf(instance_id, sizeof(instance_id), "%s", id);
}

static void vlog(enum log_level level, const char *file, int line_no, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ [%s] ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec, instance_id);
	if (n < 0)
		return;
	if (show_level)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "[%s] ", level_names[level]);
	if (show_origin && file)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "[%s:%d] ", file, line_no);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* One write per line keeps lines whole when several threads log at once. */
	ssize_t r = write(log_fd, line, len);
	(void)r;
}

bool log_level_enabled(enum log_level level)
{
	return (int)level <= (int)current_level;
}

void log_msg_at(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	if ((int)level > (int)current_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, file, line, fmt, ap);
	va_end(ap);
}

void errf_msg(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, ERR_LEN, fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ember: %s\n", msg);
	if (log_fd != STDERR_FILENO)
		log_msg(LOG_ERROR, "%s", msg);
	exit(1);
}

void log_warn_limited(unsigned *count, unsigned max, const char *fmt, ...)
{
	if (*count >= max)
		return;
	char msg[ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	++*count;
	log_warn("%s%s", msg, *count == max ? " (further warnings like this are not logged)" : "");
}
