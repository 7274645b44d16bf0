/* Field readers shared by the JSON handlers (src/vmm/config_json.c, virtio/blk_json.c and the
 * other device files). Each returns 0, or -EINVAL with a message in err (ERR_LEN) naming
 * `what` (the object) and the key. An absent field that is not required leaves *out as it
 * was (NULL for strings); so does one given as null. */
#ifndef EMBER_JSON_FIELDS_H
#define EMBER_JSON_FIELDS_H

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>

#include "core/log.h"
#include "core/rate_limiter.h"

/* Formats the message into err and returns -EINVAL. */
#define cfg_fail(err, ...) errf(err, -EINVAL, __VA_ARGS__)
/* obj's value for key; an optional field given as null is absent (NULL), as serde reads an
 * Option in Firecracker. */
json_t *cfg_get(json_t *obj, const char *key, bool required);
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
/* Firecracker's RateLimiter under key ("rate_limiter", "rx_rate_limiter"): the buckets present
 * replace those in *rl, absent ones stay. */
int cfg_get_rate_limiter(json_t *obj, const char *what, const char *key,
			 struct rate_limiter_config *rl, char *err);
/* Firecracker's TokenBucket alone under key (the serial console's "rate_limiter"): *out is
 * replaced when the key is present and valid, left alone when it is absent or null. */
int cfg_get_token_bucket(json_t *obj, const char *what, const char *key,
			 struct token_bucket_config *out, char *err);

/* GET /vm/config's view of a RateLimiter: null when it limits nothing, else both buckets,
 * each null or {size, one_time_burst (null when 0), refill_time}, as Firecracker shows them. */
json_t *cfg_rate_limiter_json(const struct rate_limiter_config *rl);

/* A per-id kind's objects (drives, network interfaces): its store holds a "T *" and an
 * unsigned count at the offsets items and nr, each T size bytes with its "char *" id at
 * offset id. Messages call one object kind ("drive": "no such drive", "too many drives"). */
struct cfg_list {
	const char *key, *kind; /* key: the config file's array, "drives" */
	const char *twins;	/* "field 'drive_id' is used by two drives" */
	const char *id_key;	/* "drive_id" */
	/* Firecracker's message for a body whose id is not the path's: drives say only that,
	 * network interfaces name both ids (request/drive.rs, request/net.rs). */
	bool mismatch_names_ids;
	size_t id_max, items, nr, size, id;
	unsigned max;
	void (*free)(void *item); /* what one T points to */
	int (*put)(void *store, const char *path_id, json_t *body, char *err);
};
#define API_WHAT_LEN 96 /* room for what: "drive 'rootfs'" */

void *cfg_list_find(const struct cfg_list *l, void *store, const char *id);
/* The id of a PUT/PATCH body: present, 1 to id_max letters, digits or '_', and equal to the
 * path's {id} when there is one. what becomes "<kind> 'ID'" for later messages. */
int cfg_list_id(const struct cfg_list *l, json_t *body, const char *path_id, const char **id,
		char *what, char *err);
/* Commits item, a T whose strings came from strdup (nomem: one of them failed), under id:
 * it replaces the object with that id or goes at the end. A refused item is freed. */
int cfg_list_put(const struct cfg_list *l, void *store, const char *id, void *item, bool nomem,
		 const char *what, char *err);
/* The object a PATCH body is for, once its keys are among keys (patchable names the ones
 * that may change); NULL when refused. */
void *cfg_list_patch_target(const struct cfg_list *l, void *store, const char *path_id,
			    json_t *body, const char *const *keys, const char *patchable,
			    char *what, char *err);
/* The config file's array: l->put for each object; the ids must be distinct. */
int cfg_list_load(const struct cfg_list *l, void *store, json_t *array, char *err);
void cfg_list_free(const struct cfg_list *l, void *store);

#endif
