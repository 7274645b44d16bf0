/* The JSON configuration handlers: boot-source, machine-config and --config-file. Every
 * refusal must name the key at fault. */
#include "unit_config.h"

#include "vmm/config.h"
#include "vmm/config_json.h"

static int boot_source(const char *text, char *err)
{
	json_t *j = parse(text);
	int rc = config_put_boot_source(cfg(), j, err);
	json_decref(j);
	return rc;
}

static int machine(const char *text, bool partial, char *err)
{
	json_t *j = parse(text);
	int rc = config_put_machine_config(cfg(), j, partial, err);
	json_decref(j);
	return rc;
}

/* ---- boot-source ---- */

static void boot_source_valid(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	assert_int_equal(
		boot_source("{\"kernel_image_path\": \"/dev/null\", \"initrd_path\": \"/dev/zero\","
			    " \"boot_args\": \"console=ttyS0\"}",
			    err),
		0);
	assert_string_equal(cfg()->boot.kernel_image_path, "/dev/null");
	assert_string_equal(cfg()->boot.initrd_path, "/dev/zero");
	assert_string_equal(cfg()->boot.boot_args, "console=ttyS0");
	/* A second PUT replaces the whole object: optional fields not given are cleared. */
	assert_int_equal(boot_source("{\"kernel_image_path\": \"/dev/zero\"}", err), 0);
	assert_string_equal(cfg()->boot.kernel_image_path, "/dev/zero");
	assert_null(cfg()->boot.initrd_path);
	assert_null(cfg()->boot.boot_args);
}

static void boot_source_refusals(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	refused(boot_source("{\"boot_args\": \"x\"}", err), err, "kernel_image_path", NULL);
	refused(boot_source("{\"kernel_image_path\": 7}", err), err, "kernel_image_path", NULL);
	refused(boot_source("{\"kernel_image_path\": \"/dev/null\", \"initrd_path\": false}", err),
		err, "initrd_path", NULL);
	refused(boot_source("{\"kernel_image_path\": \"/dev/null\", \"kernel_args\": \"x\"}", err),
		err, "kernel_args", NULL);
	refused(boot_source("{\"kernel_image_path\": \"\"}", err), err, "kernel_image_path", NULL);
	refused(boot_source("{\"kernel_image_path\": \"/k\\u0000x\"}", err), err,
		"kernel_image_path", NULL);
	refused(boot_source("[\"/dev/null\"]", err), err, "boot-source", NULL);
	assert_int_equal(config_put_boot_source(cfg(), NULL, err), -EINVAL);
}

static void boot_args_length(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	char *body = malloc(CMDLINE_MAX + 64);
	assert_non_null(body);
	char *args = malloc(CMDLINE_MAX + 1);
	assert_non_null(args);
	memset(args, 'a', CMDLINE_MAX);
	args[CMDLINE_MAX] = '\0';
	snprintf(body, CMDLINE_MAX + 64,
		 "{\"kernel_image_path\": \"/dev/null\", \"boot_args\": \"%s\"}", args);
	int rc = boot_source(body, err);
	char err_long[ERR_LEN];
	memcpy(err_long, err, sizeof(err_long));
	args[CMDLINE_MAX - 1] = '\0'; /* 2047 bytes: the longest Linux takes */
	snprintf(body, CMDLINE_MAX + 64,
		 "{\"kernel_image_path\": \"/dev/null\", \"boot_args\": \"%s\"}", args);
	int rc_max = boot_source(body, err);
	free(body);
	free(args);
	assert_int_equal(rc_max, 0);
	assert_int_equal(strlen(cfg()->boot.boot_args), CMDLINE_MAX - 1);
	refused(rc, err_long, "boot_args", NULL);
}

static void boot_source_refusal_keeps_previous(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	assert_int_equal(
		boot_source("{\"kernel_image_path\": \"/dev/full\", \"boot_args\": \"a=1\"}", err),
		0);
	/* Fails on its last check, after the other fields were read. */
	refused(boot_source("{\"kernel_image_path\": \"/new\", \"initrd_path\": \"/dev/zero\","
			    " \"boot_args\": 5}",
			    err),
		err, "boot_args", NULL);
	refused(boot_source("{\"kernel_image_path\": \"\", \"boot_args\": \"b=2\"}", err), err,
		"kernel_image_path", NULL);
	assert_string_equal(cfg()->boot.kernel_image_path, "/dev/full");
	assert_string_equal(cfg()->boot.boot_args, "a=1");
	assert_null(cfg()->boot.initrd_path);
}

/* ---- machine-config ---- */

static void machine_config_bounds(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	refused(machine("{\"vcpu_count\": 0, \"mem_size_mib\": 128}", false, err), err,
		"vcpu_count", NULL);
	refused(machine("{\"vcpu_count\": 33, \"mem_size_mib\": 128}", false, err), err,
		"vcpu_count", NULL);
	refused(machine("{\"vcpu_count\": -1, \"mem_size_mib\": 128}", false, err), err,
		"vcpu_count", NULL);
	refused(machine("{\"vcpu_count\": 4294967297, \"mem_size_mib\": 128}", false, err), err,
		"vcpu_count", NULL);
	refused(machine("{\"vcpu_count\": 1, \"mem_size_mib\": 15}", false, err), err,
		"mem_size_mib", NULL);
	refused(machine("{\"vcpu_count\": 1.0, \"mem_size_mib\": 128}", false, err), err,
		"vcpu_count", NULL);
	refused(machine("{\"vcpu_count\": 1, \"mem_size_mib\": \"128\"}", false, err), err,
		"mem_size_mib", NULL);
	refused(machine("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": 1}", false, err), err,
		"smt", NULL);
	assert_int_equal(machine("{\"vcpu_count\": 1, \"mem_size_mib\": 16}", false, err), 0);
	assert_int_equal(cfg()->machine.vcpu_count, 1);
	assert_int_equal(cfg()->machine.mem_size_mib, 16);
	assert_int_equal(machine("{\"vcpu_count\": 32, \"mem_size_mib\": 1024}", false, err), 0);
	assert_int_equal(cfg()->machine.vcpu_count, 32);
	assert_int_equal(cfg()->machine.mem_size_mib, 1024);
}

static void machine_config_smt_and_templates(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	refused(machine("{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}", false, err),
		err, "smt", NULL);
	assert_int_equal(
		machine("{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": true}", false, err),
		0);
	assert_true(cfg()->machine.smt);
	assert_int_equal(machine("{\"vcpu_count\": 4, \"mem_size_mib\": 128, \"smt\": true,"
				 " \"cpu_template\": \"None\", \"huge_pages\": \"None\"}",
				 false, err),
			 0);
	refused(machine("{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"cpu_template\": \"C3\"}",
			false, err),
		err, "cpu_template", NULL);
	refused(machine("{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"huge_pages\": \"2M\"}", false,
			err),
		err, "huge_pages", NULL);
	refused(machine("{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"cpus\": 2}", false, err), err,
		"cpus", NULL);
	/* PATCH to an odd count with smt still on from the last PUT. */
	refused(machine("{\"vcpu_count\": 5}", true, err), err, "smt", NULL);
	assert_int_equal(cfg()->machine.vcpu_count, 4);
}

static void machine_config_put_and_patch(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	refused(machine("{\"vcpu_count\": 2}", false, err), err, "mem_size_mib", NULL);
	refused(machine("{\"mem_size_mib\": 256}", false, err), err, "vcpu_count", NULL);
	assert_int_equal(machine("{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": true,"
				 " \"track_dirty_pages\": true}",
				 false, err),
			 0);
	assert_int_equal(machine("{\"mem_size_mib\": 512}", true, err), 0);
	assert_int_equal(cfg()->machine.vcpu_count, 2);
	assert_int_equal(cfg()->machine.mem_size_mib, 512);
	assert_true(cfg()->machine.smt);
	assert_true(cfg()->machine.track_dirty_pages);
	/* Firecracker: a PATCH that sets nothing is "Empty PATCH request." (null is unset). */
	refused(machine("{}", true, err), err, "Empty PATCH request.", NULL);
	refused(machine("{\"smt\": null}", true, err), err, "Empty PATCH request.", NULL);
	assert_int_equal(machine("{\"smt\": null, \"track_dirty_pages\": true}", true, err), 0);
	assert_int_equal(cfg()->machine.mem_size_mib, 512);
	assert_true(cfg()->machine.smt);
	/* A refused PATCH changes nothing, not even the keys that were valid. */
	refused(machine("{\"mem_size_mib\": 64, \"vcpu_count\": 99}", true, err), err, "vcpu_count",
		NULL);
	assert_int_equal(cfg()->machine.mem_size_mib, 512);
	/* A PUT resets what it does not mention to the defaults. */
	assert_int_equal(machine("{\"vcpu_count\": 1, \"mem_size_mib\": 128}", false, err), 0);
	assert_false(cfg()->machine.smt);
	assert_false(cfg()->machine.track_dirty_pages);
}

/* ---- --config-file ---- */

static int load_text(const char *text, char *err, const char **path_out)
{
	const char *path = unit_tmp_text(text);
	if (path_out)
		*path_out = path;
	return config_load_file(path, cfg(), NULL, NULL, err);
}

#define BOOT "\"boot-source\": {\"kernel_image_path\": \"/dev/null\"}"

static void config_file_valid(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	int rc = load_text("{" BOOT
			   ", \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256},"
			   " \"serial\": {\"serial_out_path\": \"/tmp/console\", \"rate_limiter\":"
			   " {\"size\": 1000, \"one_time_burst\": 5, \"refill_time\": 100}},"
			   " \"drives\": [], \"network-interfaces\": []}",
			   err, NULL);
	if (rc)
		fail_msg("valid config refused: %s", err);
	assert_string_equal(cfg()->boot.kernel_image_path, "/dev/null");
	assert_int_equal(cfg()->machine.vcpu_count, 2);
	assert_int_equal(cfg()->machine.mem_size_mib, 256);
	assert_string_equal(cfg()->serial_out_path, "/tmp/console");
	assert_int_equal(cfg()->serial_rate_limiter.size, 1000);
	assert_int_equal(cfg()->serial_rate_limiter.one_time_burst, 5);
	assert_int_equal(cfg()->serial_rate_limiter.refill_time_ms, 100);
	assert_int_equal(config_validate_for_start(cfg(), err), 0);
}

static void config_file_invalid_json(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	const char *path;
	/* The stray comma is on line 3, column 1 onwards. */
	int rc = load_text("{\n  \"boot-source\": {\"kernel_image_path\": \"/dev/null\"}\n,}\n",
			   err, &path);
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(err, path));
	if (!strstr(err, "line 3"))
		fail_msg("error \"%s\" does not give line 3", err);
	assert_non_null(strstr(err, "column"));
}

static void config_file_refusals(void **state)
{
	(void)state;
	struct {
		const char *text, *key;
	} cases[] = {
		{ "[1, 2]", "object" },
		{ "{" BOOT ", \"logger\": {}}", "logger" },
		{ "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128}}",
		  "boot-source" },
		{ "{" BOOT ", \"drives\": [{\"drive_id\": \"rootfs\"}]}", "drives" },
		{ "{" BOOT ", \"network-interfaces\": {}}", "network-interfaces" },
		{ "{" BOOT ", \"machine-config\": {\"vcpu_count\": 64, \"mem_size_mib\": 128}}",
		  "vcpu_count" },
		{ "{\"boot-source\": {\"kernel_image_path\": \"/dev/null\", \"x\": 1}}", "'x'" },
		{ "{" BOOT ", \"serial\": {\"serial_out_path\": 1}}", "serial_out_path" },
		{ "{" BOOT ", \"serial\": {\"rate_limiter\": {\"size\": 1}}}",
		  "serial.rate_limiter: missing field 'refill_time'" },
		{ "{" BOOT ", \"serial\": {\"rate_limiter\": {\"ops\": {}}}}", "'ops'" },
		{ "{" BOOT ", " BOOT "}", "boot-source" },
		{ "{\"boot-source\": {\"kernel_image_path\": \"/a\", \"kernel_image_path\": "
		  "\"/b\"}}",
		  "kernel_image_path" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[ERR_LEN] = "";
		const char *path;
		int rc = load_text(cases[i].text, err, &path);
		if (rc != -EINVAL || !strstr(err, path) || !strstr(err, cases[i].key))
			fail_msg("config %s: rc %d, error \"%s\" should name %s and %s",
				 cases[i].text, rc, err, path, cases[i].key);
		unit_teardown(NULL); /* the file count is bounded */
	}
}

static void config_file_missing(void **state)
{
	(void)state;
	char err[ERR_LEN] = "";
	const char *path = unit_missing_path();
	assert_int_equal(config_load_file(path, cfg(), NULL, NULL, err), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_null(cfg()->boot.kernel_image_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CFG_TEST(boot_source_valid),
		CFG_TEST(boot_source_refusals),
		CFG_TEST(boot_args_length),
		CFG_TEST(boot_source_refusal_keeps_previous),
		CFG_TEST(machine_config_bounds),
		CFG_TEST(machine_config_smt_and_templates),
		CFG_TEST(machine_config_put_and_patch),
		CFG_TEST(config_file_valid),
		CFG_TEST(config_file_invalid_json),
		CFG_TEST(config_file_refusals),
		CFG_TEST(config_file_missing),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
