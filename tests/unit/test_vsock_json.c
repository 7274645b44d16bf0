/* Firecracker's vsock object: PUT /vsock and the config file's "vsock". Every refusal names
 * the key (and the path) at fault, and changes nothing; a second PUT replaces the first. */
#include "unit_config.h"

#include "vmm/config.h"
#include "vmm/config_json.h"
#include "virtio/vsock_json.h"

/* printf-style JSON with %s for paths. */
static int put(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(char *err, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_t *j = parse(text);
	err[0] = '\0';
	int rc = vsock_config_put(vsock(), NULL, j, err);
	json_decref(j);
	return rc;
}

static const char *tmp_dir(void)
{
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

static char *dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	assert_non_null(s);
	return s;
}

static void full_object(void **state)
{
	(void)state;
	char err[ERR_LEN];
	assert_int_equal(put(err,
			     "{\"vsock_id\":\"vsock0\",\"guest_cid\":3,\"uds_path\":\"%s/v.sock\"}",
			     tmp_dir()),
			 0);
	const struct vsock_config *v = vsock()->uds_path ? vsock() : NULL;
	assert_non_null(v);
	assert_int_equal(v->guest_cid, 3);
	assert_string_equal(v->vsock_id, "vsock0");
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/v.sock", tmp_dir());
	assert_string_equal(v->uds_path, want);

	char *s = dump(device_kinds[device_kind_find("vsock")]->to_json(vsock()));
	char json[PATH_MAX + 100];
	snprintf(json, sizeof(json),
		 "{\"guest_cid\":3,\"uds_path\":\"%s\",\"vsock_id\":\"vsock0\"}", want);
	assert_string_equal(s, json);
	free(s);
}

static void none_is_null(void **state)
{
	(void)state;
	char *s = dump(device_kinds[device_kind_find("vsock")]->to_json(vsock()));
	assert_string_equal(s, "null");
	free(s);
}

/* The largest CID, a path relative to the working directory and one in "/", no vsock_id. */
static void edges_accepted(void **state)
{
	(void)state;
	char err[ERR_LEN];
	assert_int_equal(put(err, "{\"guest_cid\":4294967295,\"uds_path\":\"v.sock\"}"), 0);
	assert_int_equal(vsock()->guest_cid, 4294967295u);
	assert_null(vsock()->vsock_id);
	char *s = dump(device_kinds[device_kind_find("vsock")]->to_json(vsock()));
	assert_string_equal(s, "{\"guest_cid\":4294967295,\"uds_path\":\"v.sock\"}");
	free(s);
	assert_int_equal(put(err, "{\"guest_cid\":3,\"uds_path\":\"/v.sock\"}"), 0);
	assert_string_equal(vsock()->uds_path, "/v.sock");
	/* The longest path that still fits "_4294967295" in sun_path. */
	char path[VSOCK_UDS_PATH_MAX + 1];
	memset(path, 'a', VSOCK_UDS_PATH_MAX);
	path[0] = '/';
	path[VSOCK_UDS_PATH_MAX] = '\0';
	assert_int_equal(put(err, "{\"guest_cid\":3,\"uds_path\":\"%s\"}", path), 0);
	assert_int_equal(strlen(vsock()->uds_path), 96);
}

/* Firecracker: a second PUT /vsock replaces the whole object. */
static void second_put_replaces(void **state)
{
	(void)state;
	char err[ERR_LEN];
	assert_int_equal(put(err, "{\"vsock_id\":\"a\",\"guest_cid\":7,\"uds_path\":\"%s/a.sock\"}",
			     tmp_dir()),
			 0);
	assert_int_equal(put(err, "{\"guest_cid\":9,\"uds_path\":\"%s/b.sock\"}", tmp_dir()), 0);
	assert_int_equal(vsock()->guest_cid, 9);
	assert_null(vsock()->vsock_id);
	assert_non_null(strstr(vsock()->uds_path, "/b.sock"));
}

static void bad_guest_cid(void **state)
{
	(void)state;
	char err[ERR_LEN];
	refused(put(err, "{\"uds_path\":\"v.sock\"}"), err, "vsock: missing field 'guest_cid'",
		NULL);
	refused(put(err, "{\"guest_cid\":\"3\",\"uds_path\":\"v.sock\"}"), err,
		"vsock: field 'guest_cid' must be an integer", NULL);
	refused(put(err, "{\"guest_cid\":3.0,\"uds_path\":\"v.sock\"}"), err,
		"field 'guest_cid' must be an integer", NULL);
	refused(put(err, "{\"guest_cid\":null,\"uds_path\":\"v.sock\"}"), err,
		"field 'guest_cid' must be an integer", NULL);
	const char *out_of_range[] = {
		"2", "0", "-1", "4294967296", "9223372036854775807", "-9223372036854775808"
	};
	for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
		refused(put(err, "{\"guest_cid\":%s,\"uds_path\":\"v.sock\"}", out_of_range[i]),
			err, "vsock: field 'guest_cid' is ", "must be between 3 and 4294967295");
		assert_non_null(strstr(err, out_of_range[i]));
	}
	assert_null(vsock()->uds_path);
}

static void bad_uds_path(void **state)
{
	(void)state;
	char err[ERR_LEN];
	refused(put(err, "{\"guest_cid\":3}"), err, "vsock: missing field 'uds_path'", NULL);
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":5}"), err,
		"vsock: field 'uds_path' must be a string", NULL);
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":\"\"}"), err,
		"vsock: field 'uds_path' is empty", NULL);
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":\"v\\u0000.sock\"}"), err,
		"field 'uds_path' contains a NUL character", NULL);
	/* One byte over: "_4294967295" would no longer fit sun_path. */
	char path[VSOCK_UDS_PATH_MAX + 2];
	memset(path, 'a', VSOCK_UDS_PATH_MAX + 1);
	path[0] = '/';
	path[VSOCK_UDS_PATH_MAX + 1] = '\0';
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":\"%s\"}", path), err,
		"vsock: field 'uds_path' is 97 bytes, at most 96 fit a Unix socket address", NULL);

	const char *missing = unit_missing_path();
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":\"%s/v.sock\"}", missing), err,
		"vsock: uds_path ", "does not exist");
	char want[PATH_MAX + 32];
	snprintf(want, sizeof(want), "directory %s does not exist", missing);
	refused(-EINVAL, err, want, "/v.sock");

	const char *file = unit_tmp_text("");
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":\"%s/v.sock\"}", file), err, file,
		"is not a directory");
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":\"%s/\"}", tmp_dir()), err,
		"vsock: uds_path ", "names a directory, not a socket file");
	assert_null(vsock()->uds_path);
}

static void bad_vsock_id_and_keys(void **state)
{
	(void)state;
	char err[ERR_LEN];
	refused(put(err, "{\"guest_cid\":3,\"uds_path\":\"v.sock\",\"cid\":3}"), err,
		"vsock: unknown field 'cid'", NULL);
	refused(put(err, "{\"vsock_id\":1,\"guest_cid\":3,\"uds_path\":\"v.sock\"}"), err,
		"vsock: field 'vsock_id' must be a string", NULL);
	refused(put(err, "{\"vsock_id\":\"\",\"guest_cid\":3,\"uds_path\":\"v.sock\"}"), err,
		"vsock: field 'vsock_id' must be 1 to 64 characters", NULL);
	char id[VSOCK_ID_MAX + 2];
	memset(id, 'x', VSOCK_ID_MAX + 1);
	id[VSOCK_ID_MAX + 1] = '\0';
	refused(put(err, "{\"vsock_id\":\"%s\",\"guest_cid\":3,\"uds_path\":\"v.sock\"}", id), err,
		"field 'vsock_id' must be 1 to 64 characters", NULL);
	refused(put(err, "{\"vsock_id\":\"a\\nb\",\"guest_cid\":3,\"uds_path\":\"v.sock\"}"), err,
		"vsock: field 'vsock_id' contains a control character", NULL);
	json_t *arr = parse("[]");
	refused(vsock_config_put(vsock(), NULL, arr, err), err, "vsock: expected a JSON object",
		NULL);
	json_decref(arr);
	assert_null(vsock()->uds_path);
}

/* A refused PUT leaves the configured device as it was. */
static void refusal_keeps_previous(void **state)
{
	(void)state;
	char err[ERR_LEN];
	assert_int_equal(put(err, "{\"vsock_id\":\"v\",\"guest_cid\":5,\"uds_path\":\"v.sock\"}"),
			 0);
	refused(put(err, "{\"guest_cid\":2,\"uds_path\":\"w.sock\"}"), err, "guest_cid", NULL);
	refused(put(err, "{\"guest_cid\":6,\"uds_path\":\"/nonexistent-ember-dir/w.sock\"}"), err,
		"directory /nonexistent-ember-dir does not exist", NULL);
	assert_int_equal(vsock()->guest_cid, 5);
	assert_string_equal(vsock()->uds_path, "v.sock");
	assert_string_equal(vsock()->vsock_id, "v");
}

static void config_file(void **state)
{
	(void)state;
	char err[ERR_LEN];
	const char *file = unit_tmp_text("{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},"
					 "\"vsock\":{\"guest_cid\":42,\"uds_path\":\"v.sock\"}}");
	assert_int_equal(config_load_file(file, cfg(), NULL, NULL, err), 0);
	assert_non_null(vsock()->uds_path);
	assert_int_equal(vsock()->guest_cid, 42);

	/* null, as GET /vm/config shows "no device", is accepted. */
	vm_config_free(cfg());
	vm_config_init(cfg());
	file = unit_tmp_text(
		"{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},\"vsock\":null}");
	assert_int_equal(config_load_file(file, cfg(), NULL, NULL, err), 0);
	assert_null(vsock()->uds_path);

	file = unit_tmp_text("{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},"
			     "\"vsock\":{\"guest_cid\":1,\"uds_path\":\"v.sock\"}}");
	refused(config_load_file(file, cfg(), NULL, NULL, err), err, "config file ",
		"vsock: field 'guest_cid' is 1, must be between 3 and 4294967295");
	file = unit_tmp_text("{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},"
			     "\"vsock\":{\"guest_cid\":3,\"uds_path\":\"v.sock\",\"port\":1}}");
	refused(config_load_file(file, cfg(), NULL, NULL, err), err, "vsock: unknown field 'port'",
		NULL);
	file = unit_tmp_text(
		"{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},\"vsock\":[]}");
	refused(config_load_file(file, cfg(), NULL, NULL, err), err,
		"vsock: expected a JSON object", NULL);
	assert_null(vsock()->uds_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CFG_TEST(full_object),		 CFG_TEST(none_is_null),
		CFG_TEST(edges_accepted),	 CFG_TEST(second_put_replaces),
		CFG_TEST(bad_guest_cid),	 CFG_TEST(bad_uds_path),
		CFG_TEST(bad_vsock_id_and_keys), CFG_TEST(refusal_keeps_previous),
		CFG_TEST(config_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
