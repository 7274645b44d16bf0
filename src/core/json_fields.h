/* Field readers shared by the JSON handlers (src/vmm/config_json.c, virtio/blk_json.c and the
 * other device files). Each returns 0, or -EINVAL with a message in err (ERR_LEN) naming
 * `what` (the object) and the key. An absent field that is not required leaves *out as it
 * was (NULL for strings). */
#ifndef EMBER_JSON_FIELDS_H
#define EMBER_JSON_FIELDS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/log.h"
#include "core/rate_limiter.h"

/* Formats the message into err and returns -EINVAL. */
int cfg_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Refuses any key of obj that is not in allowed (NULL-terminated). */
int cfg_check_keys(json_t *obj, const char *what, const char *const *allowed, char *err);
/* A string field without NUL bytes, borrowed from obj. */
int cfg_get_str(json_t *obj, const char *what, const char *key, bool required, const char **out,
		char *err);
int cfg_get_uint(json_t *obj, const char *what, const char *key, bool required, long long min,
		 long long max, unsigned *out, char *err);
int cfg_get_bool(json_t *obj, const char *what, const char *key, bool required, bool *out,
		 char *err);
/* One of names[] (NULL-terminated, at least two); its index goes to *out. */
int cfg_get_enum(json_t *obj, const char *what, const char *key, const char *const *names, int *out,
		 char *err);
/* Firecracker's RateLimiter under "rate_limiter": the buckets present replace those in *rl,
 * absent ones stay. */
int cfg_get_rate_limiter(json_t *obj, const char *what, struct rate_limiter_config *rl, char *err);
/* The same under another key (a network interface's rx_rate_limiter, tx_rate_limiter). */
int cfg_get_rate_limiter_at(json_t *obj, const char *what, const char *key,
			    struct rate_limiter_config *rl, char *err);

/* Room for the name of the object being checked ("drive 'rootfs'"). */
#define API_WHAT_LEN 96

/* The id field id_key of a PUT/PATCH body for kind ("drive", "network interface"): present,
 * 1 to max_len letters, digits or '_', and equal to the path's {id} when there is one. what
 * (API_WHAT_LEN bytes) becomes "<kind> 'ID'" for later messages. */
int cfg_get_object_id(json_t *body, const char *kind, const char *id_key, size_t max_len,
		      const char *path_id, const char **id, char *what, char *err);

/* array_ptr is the address of a "T *" holding *nr elements of size bytes: grows it by one
 * and returns the new, uninitialised element, or NULL when out of memory (then unchanged). */
void *cfg_array_append(void *array_ptr, unsigned *nr, size_t size);

/* A per-id kind's objects (drives, network interfaces) in its store: a "T *" and an
 * unsigned count at the offsets items and nr, each T size bytes with its "char *" id at
 * offset id. PUT replaces the object with the same id or adds one at the end. */
struct cfg_list {
	const char *key;    /* the config file's array: "drives" */
	const char *kind;   /* one object, "drive": "too many drives", "no such drive" */
	const char *twins;  /* "field 'drive_id' is used by two drives" */
	const char *id_key; /* "drive_id" */
	size_t id_max, items, nr, size, id;
	unsigned max;
	void (*free)(void *item); /* what one T points to */
	int (*put)(void *store, const char *path_id, json_t *body, char *err);
};
void *cfg_list_find(const struct cfg_list *l, void *store, const char *id);
/* cfg_get_object_id for l's objects. */
int cfg_list_id(const struct cfg_list *l, json_t *body, const char *path_id, const char **id,
		char *what, char *err);
/* Commits item, a T whose strings came from strdup (nomem: one of them failed), under id:
 * it replaces the object with that id or goes at the end. On failure item is freed. */
int cfg_list_put(const struct cfg_list *l, void *store, const char *id, void *item, bool nomem,
		 const char *what, char *err);
/* The object a PATCH body is for, once its keys are among keys (patchable names those
 * that may change); NULL with the message in err when refused. */
void *cfg_list_patch_target(const struct cfg_list *l, void *store, const char *path_id,
			    json_t *body, const char *const *keys, const char *patchable,
			    char *what, char *err);
/* The config file's array: l->put for each object, whose ids must be distinct. */
int cfg_list_load(const struct cfg_list *l, void *store, json_t *array, char *err);
void cfg_list_free(const struct cfg_list *l, void *store);

#endif
