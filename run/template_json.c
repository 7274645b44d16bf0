/* template.json, read back by every run (template_load). A template directory is input
 * anyone might hand us: every field is checked, and the files it names must be plain names
 * inside the directory. Apart from template.c so that its fuzz target (fuzz_template) links
 * nothing that starts VMs. */
#include "run/run.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int file_in(const char *dir, json_t *m, const char *key, char *out, char *err)
{
	const char *name = json_string_value(json_object_get(m, key));
	struct stat st;

	if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return fail(err, -EINVAL,
			    "%s/template.json: '%s' must be a file name in the "
			    "directory",
			    dir, key);
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
	/* lstat: a link could name any file of the host, bound into a jail as root. */
	if (lstat(out, &st) < 0 || !S_ISREG(st.st_mode))
		return fail(err, -ENOENT, "%s: not a regular file (template incomplete?)", out);
	return 0;
}

static int uint_in(const char *dir, json_t *m, const char *key, unsigned lo, unsigned hi,
		   unsigned *out, char *err)
{
	json_t *v = json_object_get(m, key);

	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return fail(err, -EINVAL, "%s/template.json: '%s' must be a number from %u to %u",
			    dir, key, lo, hi);
	*out = (unsigned)json_integer_value(v);
	return 0;
}

int template_load(const char *path, struct template *t, char *err)
{
	char dir[PATH_MAX], meta[PATH_MAX + 32];
	json_error_t je;
	unsigned format;
	int r;

	memset(t, 0, sizeof(*t));
	if (!realpath(path, dir))
		return fail(err, -errno, "template %s: %s", path, strerror(errno));
	snprintf(meta, sizeof(meta), "%s/template.json", dir);
	json_t *m = json_load_file(meta, JSON_REJECT_DUPLICATES, &je);
	if (!m)
		return fail(err, -EINVAL, "%s: %s (not a template made by --make-template?)", meta,
			    je.text);
	if (!json_is_object(m)) {
		json_decref(m);
		return fail(err, -EINVAL, "%s: not a JSON object", meta);
	}
	if ((r = uint_in(dir, m, "format", 1, 1000, &format, err)))
		goto out;
	if (format != TEMPLATE_FORMAT) {
		r = fail(err, -EINVAL, "%s: format %u (this ember-run reads %u)", meta, format,
			 TEMPLATE_FORMAT);
		goto out;
	}
	if ((r = file_in(dir, m, "snapshot", t->state, err)) ||
	    (r = file_in(dir, m, "memory", t->mem, err)) ||
	    (r = file_in(dir, m, "rootfs", t->rootfs, err)) ||
	    (r = uint_in(dir, m, "agent_port", 1, 0xfffffffe, &t->port, err)) ||
	    (r = uint_in(dir, m, "mem_mib", 1, 1 << 20, &t->mem_mib, err)) ||
	    (r = uint_in(dir, m, "vcpus", 1, 32, &t->cpus, err)))
		goto out;
	json_t *tap = json_object_get(m, "tap");
	if (tap) {
		const char *s = json_string_value(tap);
		if (!s || !*s || strlen(s) >= sizeof(t->tap)) {
			r = fail(err, -EINVAL, "%s: 'tap' must be an interface name", meta);
			goto out;
		}
		snprintf(t->tap, sizeof(t->tap), "%s", s);
	}
out:
	json_decref(m);
	return r;
}
