#include "vmm/config_json.h"
#include "core/json_fields.h"
#include "vmm/device_table.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_object(json_t *body, const char *what, char *err)
{
	if (!body || !json_is_object(body))
		return cfg_fail(err, "%s: expected a JSON object", what);
	return 0;
}

/* A string field: when present, a copy replaces *out. */
static int get_string(json_t *obj, const char *what, const char *key, bool required, char **out,
		      char *err)
{
	const char *s;
	char *copy = NULL;
	if (cfg_get_str(obj, what, key, required, &s, err))
		return -EINVAL;
	if (s && !(copy = strdup(s)))
		return cfg_fail(err, "%s: out of memory", what);
	if (s) {
		free(*out);
		*out = copy;
	}
	return 0;
}

/* Opens path for reading, as Firecracker's File::open; the message is prefix and the error in
 * Rust's words ("No such file or directory (os error 2)"), then the path. */
static int check_readable(const char *path, const char *prefix, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) /* ember names the file too (DESIGN.md): after Firecracker's words */
		return cfg_fail(err, "%s%s (os error %d) [%.300s]", prefix, strerror(errno), errno,
				path);
	close(fd);
	return 0;
}

int config_put_boot_source(struct vm_config *cfg, json_t *body, char *err)
{
	static const char *const keys[] = { "kernel_image_path", "initrd_path", "boot_args", NULL };
	const char *what = "boot-source";
	if (check_object(body, what, err) || cfg_check_keys(body, what, keys, err))
		return -EINVAL;

	/* Validate into a scratch copy so a rejected request changes nothing. */
	struct boot_source_config next = { 0 };
	int rc = get_string(body, what, "kernel_image_path", true, &next.kernel_image_path, err);
	if (!rc)
		rc = get_string(body, what, "initrd_path", false, &next.initrd_path, err);
	if (!rc)
		rc = get_string(body, what, "boot_args", false, &next.boot_args, err);
	if (!rc && next.boot_args && strlen(next.boot_args) >= CMDLINE_MAX)
		rc = cfg_fail(err, "%s: field 'boot_args' is longer than %d bytes", what,
			      CMDLINE_MAX - 1);
	if (!rc && next.kernel_image_path[0] == '\0')
		rc = cfg_fail(err, "%s: field 'kernel_image_path' is empty", what);
	/* Firecracker opens both files here, so that a wrong path fails this request rather
	 * than InstanceStart (which checks again: the files may go in between). */
	if (!rc)
		rc = check_readable(next.kernel_image_path,
				    "Boot source error: The kernel file cannot be opened: ", err);
	if (!rc && next.initrd_path)
		rc = check_readable(next.initrd_path,
				    "Boot source error: The initrd file cannot be opened due to "
				    "invalid path or invalid permissions. ",
				    err);
	if (rc) {
		free(next.kernel_image_path);
		free(next.initrd_path);
		free(next.boot_args);
		return rc;
	}
	free(cfg->boot.kernel_image_path);
	free(cfg->boot.initrd_path);
	free(cfg->boot.boot_args);
	cfg->boot = next;
	return 0;
}

int config_put_machine_config(struct vm_config *cfg, json_t *body, bool partial, char *err)
{
	static const char *const keys[] = {
		"vcpu_count",	"mem_size_mib", "smt", "track_dirty_pages",
		"cpu_template", "huge_pages",	NULL
	};
	const char *what = "machine-config";
	if (check_object(body, what, err) || cfg_check_keys(body, what, keys, err))
		return -EINVAL;

	/* Firecracker answers a PATCH that sets nothing as it answers one without a body
	 * (request/machine_configuration.rs); null is "not given". */
	if (partial) {
		const char *key;
		json_t *val;
		bool any = false;
		json_object_foreach (body, key, val)
			any |= !json_is_null(val);
		if (!any)
			return cfg_fail(err, "Empty PATCH request.");
	}
	struct machine_config next = cfg->machine;
	if (!partial)
		next.smt = next.track_dirty_pages = false;
	if (cfg_get_uint(body, what, "vcpu_count", !partial, 1, VCPU_MAX, &next.vcpu_count, err) ||
	    cfg_get_uint(body, what, "mem_size_mib", !partial, MEM_MIB_MIN, MEM_MIB_MAX,
			 &next.mem_size_mib, err) ||
	    cfg_get_bool(body, what, "smt", false, &next.smt, err) ||
	    cfg_get_bool(body, what, "track_dirty_pages", false, &next.track_dirty_pages, err))
		return -EINVAL;

	/* Only the values that mean "nothing special" are accepted: ember has no CPU
	 * templates and no huge-page backing. */
	json_t *tmpl = cfg_get(body, "cpu_template", false);
	if (tmpl && !(json_is_string(tmpl) && strcmp(json_string_value(tmpl), "None") == 0))
		return cfg_fail(
			err,
			"%s: field 'cpu_template' must be \"None\" (ember has no CPU templates)",
			what);
	json_t *huge = cfg_get(body, "huge_pages", false);
	if (huge && !(json_is_string(huge) && strcmp(json_string_value(huge), "None") == 0))
		return cfg_fail(err, "%s: field 'huge_pages' must be \"None\"", what);

	if (next.smt && next.vcpu_count > 1 && next.vcpu_count % 2)
		return cfg_fail(err,
				"%s: with 'smt' enabled, 'vcpu_count' must be 1 or even (got %u)",
				what, next.vcpu_count);
	cfg->machine = next;
	return 0;
}

int config_put_serial(struct vm_config *cfg, json_t *body, char *err)
{
	static const char *const keys[] = { "serial_out_path", "rate_limiter", NULL };
	if (check_object(body, "serial", err) || cfg_check_keys(body, "serial", keys, err))
		return -EINVAL;
	/* A PUT replaces the whole object, as Firecracker's: what it leaves out is unset. */
	char *path = NULL;
	struct token_bucket_config limit = { 0 };
	if (get_string(body, "serial", "serial_out_path", false, &path, err) ||
	    cfg_get_token_bucket(body, "serial", "rate_limiter", &limit, err)) {
		free(path);
		return -EINVAL;
	}
	free(cfg->serial_out_path);
	cfg->serial_out_path = path;
	cfg->serial_rate_limiter = limit;
	return 0;
}

int config_validate_for_start(const struct vm_config *cfg, char *err)
{
	if (!cfg->boot.kernel_image_path)
		return cfg_fail(err, "no boot source: 'kernel_image_path' is not configured");
	return 0;
}

/* Objects a config file may give as null, as GET /vm/config shows them when unset. */
static bool null_is_absent(const char *key)
{
	static const char *const keys[] = { "logger",	   "metrics", "balloon", "cpu-config",
					    "mmds-config", "entropy", NULL };
	for (int i = 0; keys[i]; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

int config_load_file(const char *path, struct vm_config *cfg, config_key_fn own_key, void *opaque,
		     char *err)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (jerr.line <= 0)
			return cfg_fail(err, "config file %s: %s", path, jerr.text);
		return cfg_fail(err, "config file %s: invalid JSON at line %d column %d: %s", path,
				jerr.line, jerr.column, jerr.text);
	}
	char inner[ERR_LEN];
	int rc = 0;
	if (!json_is_object(root)) {
		rc = cfg_fail(inner, "the top level must be a JSON object");
		goto out;
	}
	const char *key;
	json_t *val;
	int kind;
	const char *vm_key = NULL; /* a key that configures the VM itself */
	json_object_foreach (root, key, val) {
		bool own = strcmp(key, "logger") == 0 || strcmp(key, "metrics") == 0 ||
			   strcmp(key, SNAPSHOT_LOAD_KEY) == 0;
		if (!own && !(json_is_null(val) && null_is_absent(key)))
			vm_key = key;
		if (strcmp(key, "boot-source") == 0)
			rc = config_put_boot_source(cfg, val, inner);
		else if (strcmp(key, "machine-config") == 0)
			rc = config_put_machine_config(cfg, val, false, inner);
		else if (strcmp(key, "serial") == 0)
			rc = config_put_serial(cfg, val, inner);
		else if ((kind = device_kind_find(key)) >= 0)
			rc = device_kinds[kind]->load(cfg->devices[kind], val, inner);
		else if (json_is_null(val) && null_is_absent(key))
			rc = 0; /* what GET /vm/config shows for an unconfigured object */
		else if (own_key && own)
			rc = own_key(opaque, key, val, inner);
		else
			rc = cfg_fail(inner, "unknown key '%s'", key);
		if (rc)
			goto out;
	}
	if (json_object_get(root, SNAPSHOT_LOAD_KEY) && vm_key)
		rc = cfg_fail(inner,
			      "'%s' and '%.64s' exclude each other: the snapshot brings the VM's "
			      "configuration (only 'logger' and 'metrics' may come with it)",
			      SNAPSHOT_LOAD_KEY, vm_key);
	else if (!json_object_get(root, SNAPSHOT_LOAD_KEY) && !json_object_get(root, "boot-source"))
		rc = cfg_fail(inner, "missing 'boot-source'");
out:
	if (rc)
		snprintf(err, ERR_LEN, "config file %s: %.400s", path, inner);
	json_decref(root);
	return rc;
}
