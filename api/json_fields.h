/* Field readers shared by the JSON handlers (config_json.c, drives_json.c, ...). Each returns
 * 0, or -EINVAL with a message in err (API_ERR_LEN) naming `what` (the object) and the key. */
#ifndef EMBER_JSON_FIELDS_H
#define EMBER_JSON_FIELDS_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "config_json.h"

/* Formats the message into err and returns -EINVAL. */
int api_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Refuses any key of obj that is not in allowed (NULL-terminated). */
int api_check_keys(json_t *obj, const char *what, const char *const *allowed, char *err);
/* A string field without NUL bytes, borrowed from obj; NULL when absent. */
int api_get_str(json_t *obj, const char *what, const char *key, const char **out, char *err);
int api_get_bool(json_t *obj, const char *what, const char *key, bool required, bool *out,
		 char *err);
/* One of names[] (NULL-terminated, at least two); its index goes to *out. */
int api_get_enum(json_t *obj, const char *what, const char *key, const char *const *names, int *out,
		 char *err);
/* Firecracker's RateLimiter under "rate_limiter": the buckets present replace those in *rl,
 * absent ones stay. */
int api_get_rate_limiter(json_t *obj, const char *what, struct rate_limiter_config *rl, char *err);
/* The same under another key (a network interface's rx_rate_limiter, tx_rate_limiter). */
int api_get_rate_limiter_at(json_t *obj, const char *what, const char *key,
			    struct rate_limiter_config *rl, char *err);

#endif
