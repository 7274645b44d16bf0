/* The entropy object: strict validation into a scratch entropy_config, then one commit. */
#include "virtio/rng_json.h"

#include "core/json_fields.h"

static const char what[] = "entropy";

int rng_config_put(void *store, const char *path_id, json_t *body, char *err)
{
	static const char *const keys[] = { "rate_limiter", NULL };
	(void)path_id;
	if (!json_is_object(body))
		return cfg_fail(err, "%s: expected a JSON object", what);
	struct entropy_config next = { .configured = true };
	if (cfg_check_keys(body, what, keys, err) ||
	    cfg_get_rate_limiter(body, what, "rate_limiter", &next.rate_limiter, err))
		return -EINVAL;
	*(struct entropy_config *)store = next;
	return 0;
}

/* The device table's hooks: the store is a struct entropy_config. */

static int kind_load(void *store, json_t *value, char *err)
{
	/* null, as GET /vm/config shows it, means no entropy device. */
	return json_is_null(value) ? 0 : rng_config_put(store, NULL, value, err);
}

/* A bucket that limits, as Firecracker's TokenBucket shows it; NULL for one that does not
 * (size or refill_time 0). */
static json_t *bucket_json(const struct token_bucket_config *b)
{
	if (!b->size || !b->refill_time_ms)
		return NULL;
	json_t *obj = json_pack("{s:I, s:I}", "size", (json_int_t)b->size, "refill_time",
				(json_int_t)b->refill_time_ms);
	if (obj && b->one_time_burst)
		json_object_set_new(obj, "one_time_burst",
				    json_integer((json_int_t)b->one_time_burst));
	return obj;
}

static json_t *kind_to_json(const void *store)
{
	const struct entropy_config *cfg = store;
	if (!cfg->configured)
		return json_null();
	json_t *obj = json_object(), *rl = json_object(), *b;
	if ((b = bucket_json(&cfg->rate_limiter.bandwidth)))
		json_object_set_new(rl, "bandwidth", b);
	if ((b = bucket_json(&cfg->rate_limiter.ops)))
		json_object_set_new(rl, "ops", b);
	if (json_object_size(rl))
		json_object_set_new(obj, "rate_limiter", rl);
	else
		json_decref(rl);
	return obj;
}

static void kind_free(void *store)
{
	(void)store; /* the store holds no pointers */
}

static int kind_create(struct machine *machine, const void *store, struct device_set *out,
		       char *err)
{
	const struct entropy_config *cfg = store;
	if (!cfg->configured)
		return 0;
	struct virtio_dev *dev;
	int rc = rng_create(machine, cfg, &dev, err);
	if (!rc && device_set_add(out, dev, NULL))
		rc = cfg_fail(err, "entropy: too many virtio devices (at most %d)", VIRTIO_DEV_MAX);
	return rc;
}

const struct device_kind rng_kind = {
	.key = "entropy",
	.metric = "entropy",
	.store_size = sizeof(struct entropy_config),
	.put = rng_config_put,
	.load = kind_load,
	.to_json = kind_to_json,
	.free = kind_free,
	.create = kind_create,
};
