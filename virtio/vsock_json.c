/* The Vsock object: strict validation into a scratch vsock_config, then one commit. */
#include "virtio/vsock_json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json_fields.h"
#include "virtio/vsock_internal.h"

static const char what[] = "vsock";

/* Optional and deprecated in Firecracker, kept only to be shown back: any short string
 * without control characters (it may land in log lines). */
static int get_id(json_t *body, const char **id, char *err)
{
	if (cfg_get_str(body, what, "vsock_id", false, id, err))
		return -EINVAL;
	if (!*id)
		return 0;
	size_t n = strlen(*id);
	if (n == 0 || n > VSOCK_ID_MAX)
		return cfg_fail(err, "%s: field 'vsock_id' must be 1 to %d characters", what,
				VSOCK_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)(*id)[i] < 0x20 || (*id)[i] == 0x7f)
			return cfg_fail(err, "%s: field 'vsock_id' contains a control character",
					what);
	return 0;
}

/* Checked before the socket is bound, for messages that say what is wrong with the path:
 * an empty or too long one, a directory that is not there. */
static int check_uds_path(const char *path, char *err)
{
	size_t n = strlen(path);
	if (n == 0)
		return cfg_fail(err, "%s: field 'uds_path' is empty", what);
	if (n > VSOCK_UDS_PATH_MAX)
		return cfg_fail(err,
				"%s: field 'uds_path' is %zu bytes, at most %d fit a Unix socket "
				"address with the '_PORT' suffix of guest connections",
				what, n, VSOCK_UDS_PATH_MAX);
	if (path[n - 1] == '/')
		return cfg_fail(err, "%s: uds_path %s names a directory, not a socket file", what,
				path);
	char dir[VSOCK_UDS_PATH_MAX + 1];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	struct stat st;
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			return cfg_fail(err, "%s: uds_path %s: directory %s does not exist", what,
					path, dir);
		return cfg_fail(err, "%s: uds_path %s: directory %s: %s", what, path, dir,
				strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return cfg_fail(err, "%s: uds_path %s: %s is not a directory", what, path, dir);
	return 0;
}

int vsock_config_put(void *store, const char *path_id, json_t *body, char *err)
{
	struct vsock_config *cfg = store;
	(void)path_id;
	static const char *const keys[] = { "vsock_id", "guest_cid", "uds_path", NULL };
	if (!json_is_object(body))
		return cfg_fail(err, "%s: expected a JSON object", what);
	if (cfg_check_keys(body, what, keys, err))
		return -EINVAL;
	const char *id, *path;
	unsigned cid = 0;
	if (cfg_get_uint(body, what, "guest_cid", true, VSOCK_CID_MIN, UINT32_MAX, &cid, err) ||
	    cfg_get_str(body, what, "uds_path", true, &path, err) || check_uds_path(path, err) ||
	    get_id(body, &id, err))
		return -EINVAL;
	struct vsock_config next = { .guest_cid = cid, .uds_path = strdup(path) };
	next.vsock_id = id ? strdup(id) : NULL;
	if (!next.uds_path || (id && !next.vsock_id)) {
		vsock_config_free(&next);
		return cfg_fail(err, "%s: out of memory", what);
	}
	/* Firecracker binds uds_path here, so that a path it cannot use fails this request
	 * (vmm_config/vsock.rs). The same path again keeps its socket. */
	if (cfg->bound && strcmp(cfg->uds_path, path) == 0) {
		next.listen_fd = cfg->listen_fd;
		cfg->bound = false;
	} else if ((next.listen_fd = vsock_host_bind(path, err)) < 0) {
		vsock_config_free(&next);
		return -EINVAL;
	}
	next.bound = true;
	vsock_config_free(cfg);
	*cfg = next;
	return 0;
}

/* The device table's hooks: the store is a struct vsock_config, configured once uds_path is
 * set. */

static int kind_load(void *store, json_t *value, char *err)
{
	/* null, as GET /vm/config shows it, means no vsock device. */
	return json_is_null(value) ? 0 : vsock_config_put(store, NULL, value, err);
}

static json_t *kind_to_json(const void *store)
{
	const struct vsock_config *v = store;
	if (!v->uds_path)
		return json_null();
	json_t *obj = json_pack("{s:I, s:s}", "guest_cid", (json_int_t)v->guest_cid, "uds_path",
				v->uds_path);
	if (obj && v->vsock_id)
		json_object_set_new(obj, "vsock_id", json_string(v->vsock_id));
	return obj;
}

void vsock_config_free(struct vsock_config *v)
{
	if (v->bound) {
		close(v->listen_fd);
		unlink(v->uds_path);
	}
	free(v->vsock_id);
	free(v->uds_path);
	memset(v, 0, sizeof(*v));
}

static void kind_free(void *store)
{
	vsock_config_free(store);
}

static int kind_create(struct machine *machine, const void *store, struct device_set *out,
		       char *err)
{
	const struct vsock_config *v = store;
	if (!v->uds_path)
		return 0;
	struct virtio_dev *dev;
	int rc = vsock_create(machine, v, &dev, err);
	if (!rc && device_set_add(out, dev, NULL))
		rc = cfg_fail(err, "vsock: too many virtio devices (at most %d)", VIRTIO_DEV_MAX);
	return rc;
}

/* vsock_override: {uds_path} in place of the saved one; load then binds it as a PUT would. */
static int kind_override(json_t *saved, json_t *value, char *err)
{
	static const char *const keys[] = { "uds_path", NULL };
	const char *path;
	if (!json_is_object(value))
		return cfg_fail(err, "vsock_override: expected an object");
	if (cfg_check_keys(value, "vsock_override", keys, err) ||
	    cfg_get_str(value, "vsock_override", "uds_path", true, &path, err))
		return -EINVAL;
	/* Firecracker's words for it: "Unknown Vsock Device." */
	if (!json_is_object(saved))
		return cfg_fail(err, "vsock_override: Unknown Vsock Device: the snapshot has no "
				     "vsock device");
	json_object_set_new(saved, "uds_path", json_string(path));
	return 0;
}

const struct device_kind vsock_kind = {
	.key = "vsock",
	.metric = "vsock",
	.deprecated_field = "vsock_id",
	.store_size = sizeof(struct vsock_config),
	.put = vsock_config_put,
	.load = kind_load,
	.to_json = kind_to_json,
	.free = kind_free,
	.create = kind_create,
	.save = vsock_save,
	.restore = vsock_restore,
	.override_key = "vsock_override",
	.override = kind_override,
};
