/* Firecracker's drive objects: PUT, PATCH and the config file's "drives" array. Every
 * refusal names the drive and the key, and changes nothing. */
#include "unit_config.h"
#include "vmm/config_json.h"

#include <sys/stat.h>

#include "virtio/blk.h"
#include "vmm/config.h"
#include "virtio/blk_json.h"

/* printf-style JSON with %s for paths. */
static int put(const char *path_id, char *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int put(const char *path_id, char *err, const char *fmt, ...)
{
	char text[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_t *j = parse(text);
	int rc = blk_config_put(drives(), path_id, j, err);
	json_decref(j);
	return rc;
}

static int patch(const char *path_id, const char *text, char *err)
{
	json_t *j = parse(text);
	int rc = blk_config_patch(drives(), path_id, j, err);
	json_decref(j);
	return rc;
}

static void full_drive(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	const char *img = unit_tmp_text("image");
	int rc =
		put("rootfs", err,
		    "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_root_device\": true,"
		    " \"is_read_only\": true, \"partuuid\": \"0eaa91a0-01\","
		    " \"cache_type\": \"Writeback\", \"io_engine\": \"Sync\","
		    " \"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100,"
		    " \"one_time_burst\": 5000}, \"ops\": {\"size\": 10, \"refill_time\": 1000}}}",
		    img);
	if (rc)
		fail_msg("refused: %s", err);
	assert_int_equal(drives()->nr_drives, 1);
	struct drive_config *d = &drives()->drives[0];
	assert_string_equal(d->drive_id, "rootfs");
	assert_string_equal(d->path_on_host, img);
	assert_string_equal(d->partuuid, "0eaa91a0-01");
	assert_true(d->is_root_device);
	assert_true(d->is_read_only);
	assert_int_equal(d->cache_type, DRIVE_CACHE_WRITEBACK);
	assert_int_equal(d->io_engine, DRIVE_ENGINE_SYNC);
	assert_int_equal(d->rate_limiter.bandwidth.size, 1000);
	assert_int_equal(d->rate_limiter.bandwidth.refill_time_ms, 100);
	assert_int_equal(d->rate_limiter.bandwidth.one_time_burst, 5000);
	assert_int_equal(d->rate_limiter.ops.size, 10);
	assert_int_equal(d->rate_limiter.ops.one_time_burst, 0);
}

static void defaults_and_replace(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	const char *a = unit_tmp_text("a"), *b = unit_tmp_text("b");
	assert_int_equal(put(NULL, err,
			     "{\"drive_id\": \"d1\", \"path_on_host\": \"%s\","
			     " \"is_root_device\": false}",
			     a),
			 0);
	struct drive_config *d = &drives()->drives[0];
	assert_false(d->is_read_only);
	assert_null(d->partuuid);
	assert_int_equal(d->cache_type, DRIVE_CACHE_UNSAFE);
	assert_int_equal(d->io_engine, DRIVE_ENGINE_SYNC);
	assert_int_equal(d->rate_limiter.bandwidth.size, 0);
	/* PUT with the same id replaces the drive, in place. */
	assert_int_equal(put(NULL, err,
			     "{\"drive_id\": \"d2\", \"path_on_host\": \"%s\","
			     " \"is_root_device\": false}",
			     a),
			 0);
	assert_int_equal(put("d1", err,
			     "{\"drive_id\": \"d1\", \"path_on_host\": \"%s\","
			     " \"is_root_device\": true}",
			     b),
			 0);
	assert_int_equal(drives()->nr_drives, 2);
	assert_string_equal(drives()->drives[0].path_on_host, b);
	assert_true(drives()->drives[0].is_root_device);
	assert_string_equal(drives()->drives[1].drive_id, "d2");
}

static void bad_fields(void **state)
{
	(void)state;
	const char *img = unit_tmp_text("x");
	struct {
		const char *json, *key;
	} cases[] = {
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"speed\": 1}",
		  "'speed'" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\"}", "is_root_device" },
		{ "{\"drive_id\": \"bad\", \"is_root_device\": false, \"x\": \"%s\"}", "'x'" },
		{ "{\"drive_id\": \"bad\", \"is_root_device\": false, \"partuuid\": \"%s\"}",
		  "path_on_host" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": \"yes\"}",
		  "is_root_device" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"is_read_only\": 1}",
		  "is_read_only" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"cache_type\": \"Fast\"}",
		  "cache_type" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"io_engine\": \"Turbo\"}",
		  "io_engine" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": true, "
		  "\"partuuid\": \"1 init=/bin/sh\"}",
		  "partuuid" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"rate_limiter\": 5}",
		  "rate_limiter" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"rate_limiter\": {\"iops\": {}}}",
		  "'iops'" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"rate_limiter\": {\"ops\": {\"size\": 1}}}",
		  "refill_time" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"rate_limiter\": {\"bandwidth\": {\"size\": -1, \"refill_time\": 1}}}",
		  "'size'" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"rate_limiter\": {\"bandwidth\": {\"size\": 1, \"refill_time\": 1, \"burst\": "
		  "2}}}",
		  "'burst'" },
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"socket\": \"/s\"}",
		  "socket" },
		/* 2^58 ms: in nanoseconds it wrapped to 0, a division by zero at the first request.
		 */
		{ "{\"drive_id\": \"bad\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		  "\"rate_limiter\": {\"ops\": {\"size\": 1, \"refill_time\": "
		  "288230376151711744}}}",
		  "'refill_time' must be at most 18446744073709" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[ERR_LEN] = "";
		int rc = put(NULL, err, cases[i].json, img);
		if (rc != -EINVAL || !strstr(err, "drive 'bad'") || !strstr(err, cases[i].key))
			fail_msg("case %zu: rc %d, error \"%s\" should name drive 'bad' and %s", i,
				 rc, err, cases[i].key);
	}
	assert_int_equal(drives()->nr_drives, 0);
}

static void bad_ids(void **state)
{
	(void)state;
	const char *img = unit_tmp_text("x");
	char err[ERR_LEN];
	refused(put(NULL, err, "{\"path_on_host\": \"%s\", \"is_root_device\": false}", img), err,
		"drive_id", NULL);
	refused(put(NULL, err,
		    "{\"drive_id\": \"\", \"path_on_host\": \"%s\", \"is_root_device\": false}",
		    img),
		err, "drive_id", NULL);
	refused(put(NULL, err,
		    "{\"drive_id\": \"a b\", \"path_on_host\": \"%s\", \"is_root_device\": false}",
		    img),
		err, "drive_id", NULL);
	refused(put(NULL, err,
		    "{\"drive_id\": 7, \"path_on_host\": \"%s\", \"is_root_device\": false}", img),
		err, "drive_id", NULL);
	refused(put("other", err,
		    "{\"drive_id\": \"mine\", \"path_on_host\": \"%s\", \"is_root_device\": false}",
		    img),
		err, "The id from the path does not match the id from the body!", NULL);
	json_t *j = parse("[1]");
	refused(blk_config_put(drives(), "x", j, err), err, "object", NULL);
	json_decref(j);
	assert_int_equal(drives()->nr_drives, 0);
}

static void files_must_be_usable(void **state)
{
	(void)state;
	char err[ERR_LEN];
	const char *missing = unit_missing_path();
	refused(put(NULL, err,
		    "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", \"is_root_device\": false}",
		    missing),
		err, "drive 'data'", missing);
	refused(put(NULL, err,
		    "{\"drive_id\": \"data\", \"path_on_host\": \"/\", \"is_root_device\": false}"),
		err, "drive 'data'", "not a file");
	refused(put(NULL, err,
		    "{\"drive_id\": \"data\", \"path_on_host\": \"\", \"is_root_device\": false}"),
		err, "drive 'data'", "path_on_host");
	if (geteuid() != 0) { /* root can write anything: the mode would not stop it */
		const char *ro = unit_tmp_text("ro");
		chmod(ro, 0444);
		refused(put(NULL, err,
			    "{\"drive_id\": \"data\", \"path_on_host\": \"%s\", "
			    "\"is_root_device\": false}",
			    ro),
			err, "drive 'data'", "writable");
		assert_int_equal(put(NULL, err,
				     "{\"drive_id\": \"data\", \"path_on_host\": \"%s\","
				     " \"is_root_device\": false, \"is_read_only\": true}",
				     ro),
				 0);
	}
}

static void one_root_only(void **state)
{
	(void)state;
	char err[ERR_LEN];
	const char *img = unit_tmp_text("x");
	assert_int_equal(
		put(NULL, err,
		    "{\"drive_id\": \"r1\", \"path_on_host\": \"%s\", \"is_root_device\": true}",
		    img),
		0);
	refused(put(NULL, err,
		    "{\"drive_id\": \"r2\", \"path_on_host\": \"%s\", \"is_root_device\": true}",
		    img),
		err, "drive 'r2'", "'r1' is already the root device");
	/* Re-putting the root itself is fine. */
	assert_int_equal(
		put(NULL, err,
		    "{\"drive_id\": \"r1\", \"path_on_host\": \"%s\", \"is_root_device\": true}",
		    img),
		0);
	assert_int_equal(drives()->nr_drives, 1);
}

static void async_engine_needs_io_uring(void **state)
{
	(void)state;
	char err[ERR_LEN], why[200];
	const char *img = unit_tmp_text("x");
	int rc = put(NULL, err,
		     "{\"drive_id\": \"fast\", \"path_on_host\": \"%s\", \"is_root_device\": false,"
		     " \"io_engine\": \"Async\"}",
		     img);
	if (blk_uring_probe(why) == 0) {
		assert_int_equal(rc, 0);
		assert_int_equal(drives()->drives[0].io_engine, DRIVE_ENGINE_ASYNC);
	} else {
		refused(rc, err, "drive 'fast'", "io_uring");
	}
}

static void patch_semantics(void **state)
{
	(void)state;
	char err[ERR_LEN];
	const char *a = unit_tmp_text("a"), *b = unit_tmp_text("b");
	assert_int_equal(
		put(NULL, err,
		    "{\"drive_id\": \"d\", \"path_on_host\": \"%s\", \"is_root_device\": false,"
		    " \"rate_limiter\": {\"bandwidth\": {\"size\": 100, \"refill_time\": 10},"
		    " \"ops\": {\"size\": 5, \"refill_time\": 20}}}",
		    a),
		0);
	assert_int_equal(patch("d",
			       "{\"drive_id\": \"d\", \"rate_limiter\": {\"ops\": {\"size\": 7, "
			       "\"refill_time\": 30}}}",
			       err),
			 0);
	struct drive_config *d = &drives()->drives[0];
	assert_int_equal(d->rate_limiter.bandwidth.size, 100); /* untouched */
	assert_int_equal(d->rate_limiter.ops.size, 7);
	assert_int_equal(d->rate_limiter.ops.refill_time_ms, 30);
	char text[512];
	snprintf(text, sizeof(text), "{\"drive_id\": \"d\", \"path_on_host\": \"%s\"}", b);
	assert_int_equal(patch("d", text, err), 0);
	assert_string_equal(d->path_on_host, b);

	refused(patch("d", "{\"drive_id\": \"d\", \"is_read_only\": true}", err), err,
		"is_read_only", "PATCH changes only");
	refused(patch("e", "{\"drive_id\": \"e\"}", err), err, "drive 'e'", "no such drive");
	refused(patch("d", "{\"drive_id\": \"x\"}", err), err,
		"The id from the path does not match", NULL);
	refused(patch("d", "{\"drive_id\": \"d\", \"path_on_host\": \"/nonexistent/img\"}", err),
		err, "drive 'd'", "/nonexistent/img");
	refused(patch("d",
		      "{\"drive_id\": \"d\", \"rate_limiter\": {\"ops\": {\"size\": \"many\", "
		      "\"refill_time\": 1}}}",
		      err),
		err, "drive 'd'", "'size'");
	assert_string_equal(d->path_on_host, b);
	assert_int_equal(d->rate_limiter.ops.size, 7);
}

static void config_file_array(void **state)
{
	(void)state;
	char err[ERR_LEN];
	const char *img = unit_tmp_text("x");
	char text[1024];
	snprintf(text, sizeof(text),
		 "[{\"drive_id\": \"a\", \"path_on_host\": \"%s\", \"is_root_device\": false},"
		 " {\"drive_id\": \"b\", \"path_on_host\": \"%s\", \"is_root_device\": true}]",
		 img, img);
	json_t *j = parse(text);
	assert_int_equal(blk_config_load(drives(), j, err), 0);
	json_decref(j);
	assert_int_equal(drives()->nr_drives, 2);
	vm_config_free(cfg());
	vm_config_init(cfg());

	snprintf(text, sizeof(text),
		 "[{\"drive_id\": \"a\", \"path_on_host\": \"%s\", \"is_root_device\": false},"
		 " {\"drive_id\": \"a\", \"path_on_host\": \"%s\", \"is_root_device\": false}]",
		 img, img);
	j = parse(text);
	refused(blk_config_load(drives(), j, err), err, "drive 'a'", "two drives");
	json_decref(j);
	vm_config_free(cfg());
	vm_config_init(cfg());

	snprintf(text, sizeof(text),
		 "[{\"drive_id\": \"a\", \"path_on_host\": \"%s\", \"is_root_device\": true},"
		 " {\"drive_id\": \"b\", \"path_on_host\": \"%s\", \"is_root_device\": true}]",
		 img, img);
	j = parse(text);
	refused(blk_config_load(drives(), j, err), err, "drives[1]", "drive 'b'");
	json_decref(j);
	j = parse("{\"drive_id\": \"a\"}");
	refused(blk_config_load(drives(), j, err), err, "drives", "array");
	json_decref(j);

	/* Through the whole config file loader. */
	vm_config_free(cfg());
	vm_config_init(cfg());
	snprintf(text, sizeof(text),
		 "{\"boot-source\": {\"kernel_image_path\": \"/dev/null\"}, \"drives\": "
		 "[{\"drive_id\": "
		 "\"root\","
		 " \"path_on_host\": \"%s\", \"is_root_device\": true, \"cache_type\": "
		 "\"Writeback\"}]}",
		 img);
	const char *file = unit_tmp_text(text);
	assert_int_equal(config_load_file(file, cfg(), NULL, NULL, err), 0);
	assert_int_equal(drives()->nr_drives, 1);
	assert_int_equal(drives()->drives[0].cache_type, DRIVE_CACHE_WRITEBACK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CFG_TEST(full_drive),
		CFG_TEST(defaults_and_replace),
		CFG_TEST(bad_fields),
		CFG_TEST(bad_ids),
		CFG_TEST(files_must_be_usable),
		CFG_TEST(one_root_only),
		CFG_TEST(async_engine_needs_io_uring),
		CFG_TEST(patch_semantics),
		CFG_TEST(config_file_array),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
