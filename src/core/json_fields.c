/* Field readers shared by the JSON handlers: each refuses what Firecracker refuses, with a
 * message that names the object and the key. */
#include "core/json_fields.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cfg_fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, ERR_LEN, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int cfg_check_keys(json_t *obj, const char *what, const char *const *allowed, char *err)
{
	const char *key;
	json_t *val;
	json_object_foreach (obj, key, val) {
		bool known = false;
		for (const char *const *a = allowed; *a && !known; a++)
			known = strcmp(key, *a) == 0;
		if (!known)
			return cfg_fail(err, "%s: unknown field '%s'", what, key);
	}
	return 0;
}

/* A string field without NUL bytes; NULL (and 0) when absent. */
int cfg_get_str(json_t *obj, const char *what, const char *key, const char **out, char *err)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return cfg_fail(err, "%s: field '%s' must be a string", what, key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return cfg_fail(err, "%s: field '%s' contains a NUL character", what, key);
	*out = json_string_value(v);
	return 0;
}

int cfg_get_bool(json_t *obj, const char *what, const char *key, bool required, bool *out,
		 char *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return required ? cfg_fail(err, "%s: missing field '%s'", what, key) : 0;
	if (!json_is_boolean(v))
		return cfg_fail(err, "%s: field '%s' must be a boolean", what, key);
	*out = json_is_true(v);
	return 0;
}

/* One of names[] (NULL-terminated); its index goes to *out. */
int cfg_get_enum(json_t *obj, const char *what, const char *key, const char *const *names, int *out,
		 char *err)
{
	const char *s;
	if (cfg_get_str(obj, what, key, &s, err))
		return -EINVAL;
	if (!s)
		return 0;
	for (int i = 0; names[i]; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return cfg_fail(err, "%s: field '%s' must be \"%s\" or \"%s\", not \"%.64s\"", what, key,
			names[0], names[1], s);
}

/* limiter_at is "<object>: <limiter key>", for messages. */
static int get_bucket(json_t *obj, const char *limiter_at, const char *name,
		      struct token_bucket_config *out, char *err)
{
	static const char *const keys[] = { "size", "one_time_burst", "refill_time", NULL };
	json_t *b = json_object_get(obj, name);
	char where[200];
	snprintf(where, sizeof(where), "%s.%s", limiter_at, name);
	if (!json_is_object(b))
		return cfg_fail(err, "%s must be an object", where);
	if (cfg_check_keys(b, where, keys, err))
		return -EINVAL;
	struct token_bucket_config next = { 0 };
	uint64_t *fields[] = { &next.size, &next.one_time_burst, &next.refill_time_ms };
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(b, keys[i]);
		if (!v) {
			if (i != 1) /* one_time_burst is the only optional one */
				return cfg_fail(err, "%s: missing field '%s'", where, keys[i]);
			continue;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return cfg_fail(err, "%s: field '%s' must be a non-negative integer", where,
					keys[i]);
		*fields[i] = (uint64_t)json_integer_value(v);
	}
	*out = next;
	return 0;
}

int cfg_get_rate_limiter_at(json_t *obj, const char *what, const char *key,
			    struct rate_limiter_config *rl, char *err)
{
	static const char *const keys[] = { "bandwidth", "ops", NULL };
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return 0;
	char where[160];
	snprintf(where, sizeof(where), "%s: %s", what, key);
	if (!json_is_object(v))
		return cfg_fail(err, "%s must be an object", where);
	if (cfg_check_keys(v, where, keys, err))
		return -EINVAL;
	struct rate_limiter_config next = *rl;
	if ((json_object_get(v, "bandwidth") &&
	     get_bucket(v, where, "bandwidth", &next.bandwidth, err)) ||
	    (json_object_get(v, "ops") && get_bucket(v, where, "ops", &next.ops, err)))
		return -EINVAL;
	*rl = next;
	return 0;
}

int cfg_get_rate_limiter(json_t *obj, const char *what, struct rate_limiter_config *rl, char *err)
{
	return cfg_get_rate_limiter_at(obj, what, "rate_limiter", rl, err);
}

int cfg_get_object_id(json_t *body, const char *kind, const char *id_key, size_t max_len,
		      const char *path_id, const char **id, char *what, char *err)
{
	if (!json_is_object(body))
		return cfg_fail(err, "%s%s%.64s: expected a JSON object", kind, path_id ? " " : "",
				path_id ? path_id : "");
	if (cfg_get_str(body, kind, id_key, id, err))
		return -EINVAL;
	if (!*id)
		return cfg_fail(err, "%s: missing field '%s'", kind, id_key);
	snprintf(what, API_WHAT_LEN, "%s '%.64s'", kind, *id);
	size_t n = strlen(*id);
	if (n == 0 || n > max_len)
		return cfg_fail(err, "%s: field '%s' must be 1 to %zu characters", what, id_key,
				max_len);
	/* Ids land in log lines, metrics names and the kernel command line (GET_ID). */
	if (strspn(*id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != n)
		return cfg_fail(err, "%s: field '%s' may hold only letters, digits and '_'", what,
				id_key);
	if (path_id && strcmp(path_id, *id) != 0)
		return cfg_fail(err, "%s: field '%s' does not match the id in the path ('%.64s')",
				what, id_key, path_id);
	return 0;
}

void *cfg_array_append(void *array_ptr, unsigned *nr, size_t size)
{
	/* array_ptr points at a "T *": read and write it as bytes, not through a void **. */
	void *array;
	memcpy(&array, array_ptr, sizeof(array));
	char *grown = realloc(array, (*nr + 1) * size);
	if (!grown)
		return NULL;
	memcpy(array_ptr, &grown, sizeof(grown));
	return grown + (size_t)(*nr)++ * size;
}
