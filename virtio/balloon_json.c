/* The balloon object: strict validation into a scratch balloon_config, then one commit; the
 * running device's requests and views. Messages after Firecracker's (vmm_config/balloon.rs,
 * request/balloon.rs): "Balloon config error: ..." for what the device refuses; the hinting
 * endpoints, which came after v1.10, answer with the messages of the Firecracker that has
 * them ("Balloon update error: ..."). */
#include "virtio/balloon_json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/json_fields.h"
#include "core/snapbuf.h"

static const char what[] = "balloon";

#define FC_PREFIX      "Balloon config error: "
#define NO_DEVICE      FC_PREFIX "No balloon device found."
#define TOO_LARGE      FC_PREFIX "Amount of pages requested is too large."
#define INACTIVE       FC_PREFIX "Device is inactive, check if balloon driver is enabled in guest kernel."
#define STATS_SWITCH   FC_PREFIX "Cannot enable/disable the statistics after boot."
#define STATS_DISABLED FC_PREFIX "Statistics for the balloon device are not enabled"
#define HINT_PREFIX    "Balloon update error: "
#define HINT_NO_DEVICE HINT_PREFIX "Failed perform action on device: Device not found"
#define HINT_OFF       HINT_PREFIX "Balloon: Attempting to use hinting when not enabled"
#define HINT_INACTIVE  HINT_PREFIX "Balloon: Device not activated yet."

/* The path after /balloon (NULL for /balloon itself) is cut at its slashes: seg gets the
 * first segment, and the rest (NULL when there is none) is returned. */
static const char *first_segment(const char *path, char *seg, size_t len)
{
	const char *slash = path ? strchr(path, '/') : NULL;
	size_t n = path ? (slash ? (size_t)(slash - path) : strlen(path)) : 0;
	snprintf(seg, len, "%.*s", (int)n, path ? path : "");
	return slash && slash[1] ? slash + 1 : NULL;
}

int balloon_config_put(void *store, const char *path_id, json_t *body, char *err)
{
	static const char *const keys[] = {
		"amount_mib",	       "deflate_on_oom",    "stats_polling_interval_s",
		"free_page_reporting", "free_page_hinting", NULL
	};
	(void)path_id; /* Firecracker's PUT looks at /balloon only */
	if (!json_is_object(body))
		return cfg_fail(err, "%s: expected a JSON object", what);
	struct balloon_config next = { .configured = true };
	unsigned amount = 0;
	if (cfg_check_keys(body, what, keys, err) ||
	    cfg_get_uint(body, what, "amount_mib", true, 0, UINT32_MAX, &amount, err) ||
	    cfg_get_bool(body, what, "deflate_on_oom", true, &next.deflate_on_oom, err) ||
	    cfg_get_uint(body, what, "stats_polling_interval_s", false, 0,
			 BALLOON_STATS_INTERVAL_MAX, &next.stats_polling_interval_s, err) ||
	    cfg_get_bool(body, what, "free_page_reporting", false, &next.free_page_reporting,
			 err) ||
	    cfg_get_bool(body, what, "free_page_hinting", false, &next.free_page_hinting, err))
		return -EINVAL;
	/* The target in 4 KiB pages must fit the configuration space's u32. */
	if (amount > UINT32_MAX / BALLOON_PAGES_PER_MIB)
		return cfg_fail(err, TOO_LARGE);
	next.amount_mib = amount;
	*(struct balloon_config *)store = next;
	return 0;
}

/* The device table's hooks: the store is a struct balloon_config. */

static int kind_load(void *store, json_t *value, char *err)
{
	/* null, as GET /vm/config shows it, means no balloon. */
	return json_is_null(value) ? 0 : balloon_config_put(store, NULL, value, err);
}

/* Firecracker's Balloon object; free_page_hinting and free_page_reporting (from its API after
 * v1.10) only when on, so that a VM without them shows v1.10's shape. */
static json_t *config_json(uint32_t amount_mib, bool deflate_on_oom, unsigned interval,
			   bool hinting, bool reporting)
{
	json_t *obj =
		json_pack("{s:I, s:b, s:I}", "amount_mib", (json_int_t)amount_mib, "deflate_on_oom",
			  deflate_on_oom, "stats_polling_interval_s", (json_int_t)interval);
	if (obj && hinting)
		json_object_set_new(obj, "free_page_hinting", json_true());
	if (obj && reporting)
		json_object_set_new(obj, "free_page_reporting", json_true());
	return obj;
}

static json_t *kind_to_json(const void *store)
{
	const struct balloon_config *cfg = store;
	if (!cfg->configured)
		return json_null();
	return config_json(cfg->amount_mib, cfg->deflate_on_oom, cfg->stats_polling_interval_s,
			   cfg->free_page_hinting, cfg->free_page_reporting);
}

static void kind_free(void *store)
{
	(void)store; /* the store holds no pointers */
}

static int kind_create(struct machine *machine, const void *store, struct device_set *out,
		       char *err)
{
	const struct balloon_config *cfg = store;
	if (!cfg->configured)
		return 0;
	/* Firecracker checks this when the balloon is configured; ember's store does not see
	 * the machine configuration, so it is checked here, at InstanceStart. */
	if ((uint64_t)cfg->amount_mib << 20 > machine->mem.size)
		return cfg_fail(err, TOO_LARGE);
	struct virtio_dev *dev;
	int rc = balloon_create(machine, cfg, &dev, err);
	if (!rc && device_set_add(out, dev, NULL))
		rc = cfg_fail(err, "balloon: too many virtio devices (at most %d)", VIRTIO_DEV_MAX);
	return rc;
}

static int unrecognized(char *err, const char *method, const char *id)
{
	return cfg_fail(err, "Unrecognized %s request path `%.64s`.", method, id);
}

/* The device's answer to a hinting request, in Firecracker's words. */
static int hint_result(int rc, char *err)
{
	return rc == -EOPNOTSUPP ? cfg_fail(err, HINT_OFF) : rc ? cfg_fail(err, HINT_INACTIVE) : 0;
}

/* PATCH /balloon/hinting/start [{acknowledge_on_stop}] and /balloon/hinting/stop; rest is
 * what follows /hinting/. Neither needs a body; start reads only acknowledge_on_stop (true
 * when absent) and, as Firecracker, ignores other fields; stop ignores its body. */
static int hint_patch(struct virtio_dev *dev, const char *rest, json_t *body, char *err)
{
	char op[16];
	first_segment(rest, op, sizeof(op));
	bool start = strcmp(op, "start") == 0, ack = true;
	if (!start && strcmp(op, "stop") != 0)
		return cfg_fail(err, "Unrecognized PATCH request path `/hinting/%.64s`.",
				rest ? op : "");
	if (start && body && cfg_get_bool(body, what, "acknowledge_on_stop", false, &ack, err))
		return -EINVAL;
	if (!dev)
		return cfg_fail(err, HINT_NO_DEVICE);
	return hint_result(start ? balloon_hint_start(dev, ack) : balloon_hint_stop(dev), err);
}

/* PATCH /balloon {amount_mib} before start: the configured balloon's new target. The issue
 * and Firecracker's swagger say "before or after machine startup"; Firecracker's code
 * refuses it before (README's compatibility table). Statistics and hinting stay post-boot
 * operations (-EPERM: the controller's message). */
static int kind_patch(void *store, const char *id, json_t *body, char *err)
{
	static const char *const keys[] = { "amount_mib", NULL };
	struct balloon_config *cfg = store;
	unsigned v = 0;
	if (id)
		return -EPERM;
	if (!body)
		return cfg_fail(err, "Empty PATCH request.");
	if (cfg_check_keys(body, what, keys, err) ||
	    cfg_get_uint(body, what, "amount_mib", true, 0, UINT32_MAX, &v, err))
		return -EINVAL;
	if (!cfg->configured)
		return cfg_fail(err, NO_DEVICE);
	cfg->amount_mib = v;
	return 0;
}

/* PATCH /balloon {amount_mib}, PATCH /balloon/statistics {stats_polling_interval_s}, and the
 * hinting commands (whose body may be NULL: the kind's bodiless_patch). */
static int kind_update(void *store, struct virtio_dev *dev, const char *id, json_t *body, char *err)
{
	static const char *const target_keys[] = { "amount_mib", NULL };
	static const char *const stats_keys[] = { "stats_polling_interval_s", NULL };
	struct balloon_config *cfg = store;
	unsigned v = 0;
	char seg[80];
	const char *rest = first_segment(id, seg, sizeof(seg));
	bool stats = id && strcmp(seg, "statistics") == 0;
	if (id && strcmp(seg, "hinting") == 0)
		return hint_patch(dev, rest, body, err);
	if (id && !stats)
		return unrecognized(err, "PATCH", seg);
	if (!body)
		return cfg_fail(err, "Empty PATCH request.");
	if (stats ? cfg_check_keys(body, what, stats_keys, err) ||
			    cfg_get_uint(body, what, "stats_polling_interval_s", true, 0,
					 BALLOON_STATS_INTERVAL_MAX, &v, err)
		  : cfg_check_keys(body, what, target_keys, err) ||
			    cfg_get_uint(body, what, "amount_mib", true, 0, UINT32_MAX, &v, err))
		return -EINVAL;
	if (!dev)
		return cfg_fail(err, NO_DEVICE);
	if (stats) {
		if (balloon_set_stats_interval(dev, v))
			return cfg_fail(err, STATS_SWITCH);
		cfg->stats_polling_interval_s = v;
		return 0;
	}
	if ((uint64_t)v << 20 > dev->machine->mem.size)
		return cfg_fail(err, TOO_LARGE);
	if (balloon_set_target(dev, v * BALLOON_PAGES_PER_MIB))
		return cfg_fail(err, INACTIVE);
	cfg->amount_mib = v;
	return 0;
}

static void set_u64(json_t *obj, const char *key, uint64_t v)
{
	json_object_set_new(obj, key, json_integer((json_int_t)v));
}

json_t *balloon_stats_json(const struct balloon_state *st)
{
	/* Firecracker's BalloonStats: the optional fields only where the driver sent them. */
	static const char *const names[BALLOON_S_NR] = {
		[BALLOON_S_SWAP_IN] = "swap_in",
		[BALLOON_S_SWAP_OUT] = "swap_out",
		[BALLOON_S_MAJFLT] = "major_faults",
		[BALLOON_S_MINFLT] = "minor_faults",
		[BALLOON_S_MEMFREE] = "free_memory",
		[BALLOON_S_MEMTOT] = "total_memory",
		[BALLOON_S_AVAIL] = "available_memory",
		[BALLOON_S_CACHES] = "disk_caches",
		[BALLOON_S_HTLB_PGALLOC] = "hugetlb_allocations",
		[BALLOON_S_HTLB_PGFAIL] = "hugetlb_failures",
	};
	json_t *obj = json_object();
	set_u64(obj, "target_pages", st->target_pages);
	set_u64(obj, "actual_pages", st->actual_pages);
	set_u64(obj, "target_mib", st->target_pages / BALLOON_PAGES_PER_MIB);
	set_u64(obj, "actual_mib", st->actual_pages / BALLOON_PAGES_PER_MIB);
	for (unsigned i = 0; i < BALLOON_S_NR; i++)
		if (st->have & (1u << i))
			set_u64(obj, names[i], st->stats[i]);
	return obj;
}

/* GET /balloon/hinting/status: Firecracker's HintingStatus, guest_cmd once the driver sent
 * one. */
static int hint_status(struct virtio_dev *dev, bool started, const char *rest, json_t **out,
		       char *err)
{
	char op[16];
	first_segment(rest, op, sizeof(op));
	if (strcmp(op, "status") != 0)
		return cfg_fail(err, "Unrecognized GET request path `/hinting/%.64s`.",
				rest ? op : "");
	if (!started)
		return -EPERM;
	if (!dev)
		return cfg_fail(err, HINT_NO_DEVICE);
	struct balloon_state st;
	balloon_get_state(dev, &st);
	if (!st.free_page_hinting)
		return cfg_fail(err, HINT_OFF);
	*out = json_pack("{s:I}", "host_cmd", (json_int_t)st.hint_host_cmd);
	if (st.hint_has_guest_cmd)
		set_u64(*out, "guest_cmd", st.hint_guest_cmd);
	return 0;
}

static int kind_get(const void *store, struct virtio_dev *dev, bool started, const char *id,
		    json_t **out, char *err)
{
	const struct balloon_config *cfg = store;
	char seg[80];
	const char *rest = first_segment(id, seg, sizeof(seg));
	bool stats = id && strcmp(seg, "statistics") == 0;
	if (id && strcmp(seg, "hinting") == 0)
		return hint_status(dev, started, rest, out, err);
	if (id && !stats)
		return unrecognized(err, "GET", seg);
	if (!started) {
		if (stats) /* Firecracker: not an operation before boot */
			return -EPERM;
		if (!cfg->configured)
			return cfg_fail(err, NO_DEVICE);
		*out = kind_to_json(store);
		return 0;
	}
	if (!dev)
		return cfg_fail(err, NO_DEVICE);
	struct balloon_state st;
	balloon_get_state(dev, &st);
	if (!stats) {
		*out = config_json(st.target_pages / BALLOON_PAGES_PER_MIB, st.deflate_on_oom,
				   st.stats_polling_interval_s, st.free_page_hinting,
				   st.free_page_reporting);
		return 0;
	}
	if (!st.stats_polling_interval_s)
		return cfg_fail(err, STATS_DISABLED);
	*out = balloon_stats_json(&st);
	return 0;
}

static int kind_save(struct virtio_dev *dev, struct snap_writer *w, char *err)
{
	(void)err;
	balloon_save(dev, w);
	return 0;
}

static int kind_restore(struct virtio_dev *dev, struct snap_reader *r, char *err)
{
	return balloon_restore(dev, r, err);
}

const struct device_kind balloon_kind = {
	.key = "balloon",
	.metric = "balloon",
	.subpaths = true,
	.bodiless_patch = "hinting",
	.store_size = sizeof(struct balloon_config),
	.put = balloon_config_put,
	.load = kind_load,
	.to_json = kind_to_json,
	.free = kind_free,
	.create = kind_create,
	.patch = kind_patch,
	.update = kind_update,
	.get = kind_get,
	.save = kind_save,
	.restore = kind_restore,
};
