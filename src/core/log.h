/* Logging: one line per message, to stderr or the file/FIFO given by --log-path. */
#ifndef EMBER_LOG_H
#define EMBER_LOG_H

#include <stdbool.h>

/* Room for one error message: every "char *err" in ember has this many bytes. */
#define ERR_LEN 512
/* One log line at most, longer messages are cut (a request body in the API's log line). */
#define LOG_LINE_MAX 4096

/* Formats a message into err (ERR_LEN bytes) and returns code, so that a failure is reported
 * and returned in one statement. */
void errf_msg(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A macro rather than a function, so that the static analyzer sees what it returns (a
 * caller's negative code, and no success); code is evaluated first, before the message's
 * arguments can change errno. */
#define errf(err, code, ...)                                                                       \
	({                                                                                         \
		int errf_code_ = (code);                                                           \
		errf_msg(err, __VA_ARGS__);                                                        \
		errf_code_;                                                                        \
	})

enum log_level { LOG_ERROR = 0, LOG_WARNING, LOG_INFO, LOG_DEBUG };

int log_set_level_name(const char *name); /* "Error", "Warning", "Info", "Debug"; -EINVAL else */
int log_open(const char *path);
/* Opens a file (appending, created 0600) or a FIFO for the log or the metrics; a FIFO without
 * a reader yet works (its writes are non-blocking). Returns the fd or -errno. */
int open_output_sink(const char *path); /* -errno on failure */
void log_set_id(const char *id);
/* What each line shows besides the message: [Level] (default on) and [file:line]. */
void log_set_format(bool show_level, bool show_origin);
/* Whether a message at level would be written: callers skip costly formatting otherwise. */
bool log_level_enabled(enum log_level level);
void log_msg_at(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define log_msg(level, ...) log_msg_at(level, __FILE__, __LINE__, __VA_ARGS__)
/* Prints "ember: <message>" to stderr (and the log) and exits with status 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A warning that a guest or client can trigger at will: *count of them are logged, up to max;
 * the last one says that the rest are not. */
void log_warn_limited(unsigned *count, unsigned max, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...)   log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
