/* Field readers shared by the JSON handlers: each refuses what Firecracker refuses, with a
 * message that names the object and the key. */
#include "core/json_fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

json_t *cfg_get(json_t *obj, const char *key, bool required)
{
	json_t *v = json_object_get(obj, key);
	return v && json_is_null(v) && !required ? NULL : v;
}

int cfg_get_str(json_t *obj, const char *what, const char *key, bool required, const char **out,
		char *err)
{
	json_t *v = cfg_get(obj, key, required);
	*out = NULL;
	if (!v)
		return required ? cfg_fail(err, "%s: missing field '%s'", what, key) : 0;
	if (!json_is_string(v))
		return cfg_fail(err, "%s: field '%s' must be a string", what, key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return cfg_fail(err, "%s: field '%s' contains a NUL character", what, key);
	*out = json_string_value(v);
	return 0;
}

int cfg_get_uint(json_t *obj, const char *what, const char *key, bool required, long long min,
		 long long max, unsigned *out, char *err)
{
	json_t *v = cfg_get(obj, key, required);
	if (!v)
		return required ? cfg_fail(err, "%s: missing field '%s'", what, key) : 0;
	if (!json_is_integer(v))
		return cfg_fail(err, "%s: field '%s' must be an integer", what, key);
	json_int_t n = json_integer_value(v);
	if (n < min || n > max)
		return cfg_fail(err, "%s: field '%s' is %lld, must be between %lld and %lld", what,
				key, (long long)n, min, max);
	*out = (unsigned)n;
	return 0;
}

int cfg_get_bool(json_t *obj, const char *what, const char *key, bool required, bool *out,
		 char *err)
{
	json_t *v = cfg_get(obj, key, required);
	if (!v)
		return required ? cfg_fail(err, "%s: missing field '%s'", what, key) : 0;
	if (!json_is_boolean(v))
		return cfg_fail(err, "%s: field '%s' must be a boolean", what, key);
	*out = json_is_true(v);
	return 0;
}

int cfg_get_enum(json_t *obj, const char *what, const char *key, const char *const *names, int *out,
		 char *err)
{
	const char *s;
	if (cfg_get_str(obj, what, key, false, &s, err))
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
	json_t *b = cfg_get(obj, name, false);
	char where[200];
	snprintf(where, sizeof(where), "%s.%s", limiter_at, name);
	if (!json_is_object(b))
		return cfg_fail(err, "%s must be an object", where);
	if (cfg_check_keys(b, where, keys, err))
		return -EINVAL;
	struct token_bucket_config next = { 0 };
	uint64_t *fields[] = { &next.size, &next.one_time_burst, &next.refill_time_ms };
	for (int i = 0; keys[i]; i++) {
		json_t *v = cfg_get(b, keys[i], i != 1);
		if (!v) {
			if (i != 1) /* one_time_burst is the only optional one */
				return cfg_fail(err, "%s: missing field '%s'", where, keys[i]);
			continue;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return cfg_fail(err, "%s: field '%s' must be a non-negative integer", where,
					keys[i]);
		*fields[i] = (uint64_t)json_integer_value(v);
		if (i == 2 && next.refill_time_ms > UINT64_MAX / 1000000) /* as ns in a uint64_t */
			return cfg_fail(err, "%s: field 'refill_time' must be at most %llu", where,
					(unsigned long long)(UINT64_MAX / 1000000));
	}
	*out = next;
	return 0;
}

int cfg_get_rate_limiter(json_t *obj, const char *what, const char *key,
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
	if ((cfg_get(v, "bandwidth", false) &&
	     get_bucket(v, where, "bandwidth", &next.bandwidth, err)) ||
	    (cfg_get(v, "ops", false) && get_bucket(v, where, "ops", &next.ops, err)))
		return -EINVAL;
	*rl = next;
	return 0;
}

int cfg_get_token_bucket(json_t *obj, const char *what, const char *key,
			 struct token_bucket_config *out, char *err)
{
	return cfg_get(obj, key, false) ? get_bucket(obj, what, key, out, err) : 0;
}

static json_t *bucket_json(const struct token_bucket_config *b)
{
	if (b->size == 0 && b->refill_time_ms == 0 && b->one_time_burst == 0)
		return json_null();
	return json_pack("{s:I, s:o, s:I}", "size", (json_int_t)b->size, "one_time_burst",
			 b->one_time_burst ? json_integer((json_int_t)b->one_time_burst)
					   : json_null(),
			 "refill_time", (json_int_t)b->refill_time_ms);
}

json_t *cfg_rate_limiter_json(const struct rate_limiter_config *rl)
{
	json_t *bw = bucket_json(&rl->bandwidth), *ops = bucket_json(&rl->ops);
	if (json_is_null(bw) && json_is_null(ops))
		return json_null();
	return json_pack("{s:o, s:o}", "bandwidth", bw, "ops", ops);
}

/* The store's "T *", read as bytes: it is no void *. */
static char *list_items(const struct cfg_list *l, void *store)
{
	char *items;
	memcpy(&items, (char *)store + l->items, sizeof(items));
	return items;
}

static unsigned *list_nr(const struct cfg_list *l, void *store)
{
	return (unsigned *)((char *)store + l->nr);
}

void *cfg_list_find(const struct cfg_list *l, void *store, const char *id)
{
	char *item = list_items(l, store), *item_id;
	for (unsigned i = 0; i < *list_nr(l, store); i++, item += l->size) {
		memcpy(&item_id, item + l->id, sizeof(item_id));
		if (strcmp(item_id, id) == 0)
			return item;
	}
	return NULL;
}

int cfg_list_id(const struct cfg_list *l, json_t *body, const char *path_id, const char **id,
		char *what, char *err)
{
	if (!json_is_object(body))
		return cfg_fail(err, "%s%s%.64s: expected a JSON object", l->kind,
				path_id ? " " : "", path_id ? path_id : "");
	if (cfg_get_str(body, l->kind, l->id_key, true, id, err))
		return -EINVAL;
	snprintf(what, API_WHAT_LEN, "%s '%.64s'", l->kind, *id);
	size_t n = strlen(*id);
	if (n == 0 || n > l->id_max)
		return cfg_fail(err, "%s: field '%s' must be 1 to %zu characters", what, l->id_key,
				l->id_max);
	/* Ids land in log lines, metrics names and the kernel command line (GET_ID). */
	if (strspn(*id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != n)
		return cfg_fail(err, "%s: field '%s' may hold only letters, digits and '_'", what,
				l->id_key);
	if (path_id && strcmp(path_id, *id) != 0) {
		if (l->mismatch_names_ids)
			return cfg_fail(err,
					"The id from the path [%.64s] does not match the id from "
					"the body [%.64s]!",
					path_id, *id);
		return cfg_fail(err, "The id from the path does not match the id from the body!");
	}
	return 0;
}

int cfg_list_put(const struct cfg_list *l, void *store, const char *id, void *item, bool nomem,
		 const char *what, char *err)
{
	char *slot = cfg_list_find(l, store, id), *grown = NULL;
	unsigned *nr = list_nr(l, store);
	int rc = 0;
	if (!slot && *nr >= l->max)
		rc = cfg_fail(err, "%s: too many %ss (at most %u)", what, l->kind, l->max);
	else if (nomem || (!slot && !(grown = realloc(list_items(l, store), (*nr + 1) * l->size))))
		rc = cfg_fail(err, "%s: out of memory", what);
	if (rc) {
		l->free(item);
		return rc;
	}
	if (slot) {
		l->free(slot);
	} else {
		memcpy((char *)store + l->items, &grown, sizeof(grown));
		slot = grown + (size_t)(*nr)++ * l->size;
	}
	memcpy(slot, item, l->size);
	return 0;
}

void *cfg_list_patch_target(const struct cfg_list *l, void *store, const char *path_id,
			    json_t *body, const char *const *keys, const char *patchable,
			    char *what, char *err)
{
	const char *id;
	void *item;
	if (cfg_list_id(l, body, path_id, &id, what, err))
		return NULL;
	if (cfg_check_keys(body, what, keys, err)) {
		size_t n = strlen(err);
		snprintf(err + n, ERR_LEN - n, " (PATCH changes only %s)", patchable);
		return NULL;
	}
	if (!(item = cfg_list_find(l, store, id)))
		cfg_fail(err, "%s: no such %s", what, l->kind);
	return item;
}

int cfg_list_load(const struct cfg_list *l, void *store, json_t *array, char *err)
{
	size_t i;
	json_t *obj;
	if (!json_is_array(array))
		return cfg_fail(err, "%s: expected an array of %s objects", l->key, l->kind);
	json_array_foreach (array, i, obj) {
		/* The file lists each object once; PUT's replace-by-id would hide a typo. */
		json_t *id = json_is_object(obj) ? json_object_get(obj, l->id_key) : NULL;
		if (json_is_string(id) && cfg_list_find(l, store, json_string_value(id)))
			return cfg_fail(err, "%s '%.64s': field '%s' is used by two %s", l->kind,
					json_string_value(id), l->id_key, l->twins);
		char inner[ERR_LEN];
		if (l->put(store, NULL, obj, inner))
			return cfg_fail(err, "%s[%zu]: %.450s", l->key, i, inner);
	}
	return 0;
}

void cfg_list_free(const struct cfg_list *l, void *store)
{
	char *items = list_items(l, store);
	for (unsigned i = 0; i < *list_nr(l, store); i++)
		l->free(items + i * l->size);
	free(items);
}
