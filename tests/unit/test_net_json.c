/* Firecracker's network interface objects: PUT, PATCH and the config file's
 * "network-interfaces" array, and the TAP backend's refusals. Every refusal names the
 * interface and the key (or TAP) at fault, and changes nothing. "lo" stands in for a TAP
 * where only the name has to exist. */
#include "unit_config.h"

#include "vmm/config.h"
#include "vmm/config_json.h"
#include "virtio/net.h"
#include "virtio/net_json.h"
#include "virtio/tap.h"

/* Stands in for virtio/tap_probe.c (left out of the link): "lo" is no TAP, and PUT's TAP
 * check is tests/net_api.bats' to make on real ones. */
int tap_probe(const char *iface_id, const char *name, char *err)
{
	(void)iface_id, (void)name, (void)err;
	return 0;
}

static int put(const char *path_id, const char *text, char *err)
{
	json_t *j = parse(text);
	int rc = net_config_put(nets(), path_id, j, err);
	json_decref(j);
	return rc;
}

static int patch(const char *path_id, const char *text, char *err)
{
	json_t *j = parse(text);
	int rc = net_config_patch(nets(), path_id, j, err);
	json_decref(j);
	return rc;
}

static void full_interface(void **state)
{
	(void)state;
	char err[ERR_LEN];
	int rc = put("eth0",
		     "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
		     "\"guest_mac\":\"06:00:AC:10:00:02\",\"mtu\":9000,"
		     "\"rx_rate_limiter\":{\"bandwidth\":{\"size\":1000,\"refill_time\":100}},"
		     "\"tx_rate_limiter\":{\"ops\":{\"size\":10,\"one_time_burst\":5,"
		     "\"refill_time\":1000}}}",
		     err);
	assert_int_equal(rc, 0);
	assert_int_equal(nets()->nr_nets, 1);
	const struct net_config *n = &nets()->nets[0];
	assert_string_equal(n->iface_id, "eth0");
	assert_string_equal(n->host_dev_name, "lo");
	assert_true(n->has_mac);
	const uint8_t mac[6] = { 0x06, 0x00, 0xac, 0x10, 0x00, 0x02 };
	assert_memory_equal(n->guest_mac, mac, 6);
	assert_int_equal(n->mtu, 9000);
	assert_int_equal(n->rx_rate_limiter.bandwidth.size, 1000);
	assert_int_equal(n->rx_rate_limiter.bandwidth.refill_time_ms, 100);
	assert_int_equal(n->tx_rate_limiter.ops.size, 10);
	assert_int_equal(n->tx_rate_limiter.ops.one_time_burst, 5);
	assert_int_equal(n->tx_rate_limiter.bandwidth.size, 0);
}

static void minimal_and_replace(void **state)
{
	(void)state;
	char err[ERR_LEN];
	assert_int_equal(
		put(NULL, "{\"iface_id\":\"a\",\"host_dev_name\":\"lo\",\"mtu\":1400}", err), 0);
	assert_false(nets()->nets[0].has_mac);
	/* PUT with the same id replaces the whole object. */
	assert_int_equal(put("a", "{\"iface_id\":\"a\",\"host_dev_name\":\"lo\"}", err), 0);
	assert_int_equal(nets()->nr_nets, 1);
	assert_int_equal(nets()->nets[0].mtu, 0);
}

static void bad_fields(void **state)
{
	(void)state;
	char err[ERR_LEN];
	refused(put(NULL, "{\"host_dev_name\":\"lo\"}", err), err, "missing field 'iface_id'",
		NULL);
	refused(put(NULL, "{\"iface_id\":\"eth0\"}", err), err, "'eth0'",
		"missing field 'host_dev_name'");
	refused(put("eth1", "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\"}", err), err,
		"does not match", "eth1");
	refused(put(NULL, "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\",\"speed\":1}", err), err,
		"'eth0'", "unknown field 'speed'");
	refused(put(NULL, "{\"iface_id\":\"e-0\",\"host_dev_name\":\"lo\"}", err), err, "iface_id",
		"letters");
	refused(put(NULL, "{\"iface_id\":\"eth0\",\"host_dev_name\":\"averyveryverylongname\"}",
		    err),
		err, "'eth0'", "host_dev_name");
	refused(put(NULL, "{\"iface_id\":\"eth0\",\"host_dev_name\":7}", err), err, "'eth0'",
		"host_dev_name");
	refused(put(NULL, "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\",\"mtu\":20}", err), err,
		"'eth0'", "'mtu'");
	refused(put(NULL, "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\",\"mtu\":\"1500\"}", err),
		err, "'eth0'", "'mtu'");
	refused(put(NULL,
		    "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\",\"guest_mac\":\"06:00:ac\"}",
		    err),
		err, "'eth0'", "guest_mac");
	refused(put(NULL,
		    "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
		    "\"guest_mac\":\"06:00:ac:10:00:zz\"}",
		    err),
		err, "'eth0'", "guest_mac");
	refused(put(NULL,
		    "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
		    "\"guest_mac\":\"01:00:5e:00:00:01\"}",
		    err),
		err, "'eth0'", "multicast");
	refused(put(NULL,
		    "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
		    "\"tx_rate_limiter\":{\"bandwidth\":{\"size\":1}}}",
		    err),
		err, "tx_rate_limiter.bandwidth", "refill_time");
	refused(put(NULL,
		    "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
		    "\"rx_rate_limiter\":{\"bandwidth\":{\"size\":-1,\"refill_time\":1}}}",
		    err),
		err, "rx_rate_limiter.bandwidth", "non-negative");
	refused(put(NULL,
		    "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
		    "\"rx_rate_limiter\":{\"burst\":{}}}",
		    err),
		err, "rx_rate_limiter", "unknown field 'burst'");
	assert_int_equal(nets()->nr_nets, 0);
}

/* A TAP that does not exist is named in the error, with the interface. */
static void missing_tap(void **state)
{
	(void)state;
	char err[ERR_LEN];
	refused(put(NULL, "{\"iface_id\":\"eth0\",\"host_dev_name\":\"nosuchtap9\"}", err), err,
		"'eth0'", "TAP device nosuchtap9 does not exist");
	/* The backend says the same at InstanceStart (the TAP may vanish in between). */
	int rc = tap_open("eth0", "nosuchtap9", NET_HDR_LEN, err);
	assert_int_equal(rc, -ENODEV);
	assert_non_null(strstr(err, "eth0"));
	assert_non_null(strstr(err, "nosuchtap9 does not exist"));
	/* An interface that is not a TAP (or a host without /dev/net/tun access) is refused
	 * too, naming both. */
	rc = tap_open("eth0", "lo", NET_HDR_LEN, err);
	assert_true(rc < 0);
	assert_non_null(strstr(err, "eth0"));
}

static void one_tap_one_mac_each(void **state)
{
	(void)state;
	char err[ERR_LEN];
	assert_int_equal(put(NULL,
			     "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
			     "\"guest_mac\":\"06:00:00:00:00:01\"}",
			     err),
			 0);
	refused(put(NULL, "{\"iface_id\":\"eth1\",\"host_dev_name\":\"lo\"}", err), err, "'eth1'",
		"already used by network interface 'eth0'");
	assert_int_equal(nets()->nr_nets, 1);
}

static void patch_semantics(void **state)
{
	(void)state;
	char err[ERR_LEN];
	refused(patch("eth0", "{\"iface_id\":\"eth0\"}", err), err, "'eth0'",
		"no such network interface");
	assert_int_equal(put(NULL,
			     "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\","
			     "\"rx_rate_limiter\":{\"ops\":{\"size\":5,\"refill_time\":10}}}",
			     err),
			 0);
	/* Buckets not given keep their values. */
	assert_int_equal(
		patch("eth0",
		      "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"bandwidth\":{\"size\":100,"
		      "\"refill_time\":10}},\"tx_rate_limiter\":{\"ops\":{\"size\":1,"
		      "\"refill_time\":1}}}",
		      err),
		0);
	const struct net_config *n = &nets()->nets[0];
	assert_int_equal(n->rx_rate_limiter.ops.size, 5);
	assert_int_equal(n->rx_rate_limiter.bandwidth.size, 100);
	assert_int_equal(n->tx_rate_limiter.ops.size, 1);
	refused(patch("eth0", "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\"}", err), err,
		"unknown field 'host_dev_name'", "PATCH changes only");
	/* A half-bad PATCH changes nothing. */
	refused(patch("eth0",
		      "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":9,"
		      "\"refill_time\":1}},\"tx_rate_limiter\":{\"ops\":{\"size\":-1,"
		      "\"refill_time\":1}}}",
		      err),
		err, "tx_rate_limiter.ops", NULL);
	assert_int_equal(n->rx_rate_limiter.ops.size, 5);
}

static void config_file_array(void **state)
{
	(void)state;
	char err[ERR_LEN];
	json_t *j = parse("[{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\"},"
			  "{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\"}]");
	refused(net_config_load(nets(), j, err), err, "'eth0'", "used by two interfaces");
	json_decref(j);
	vm_config_free(cfg());
	vm_config_init(cfg());

	const char *file = unit_tmp_text(
		"{\"network-interfaces\":[{\"iface_id\":\"eth0\",\"host_dev_name\":\"lo\"}],"
		"\"boot-source\":{\"kernel_image_path\":\"/nonexistent\"}}");
	int rc = config_load_file(file, cfg(), NULL, NULL, err);
	/* The kernel path is checked too; the interface must have parsed before it. */
	(void)rc;
	assert_int_equal(nets()->nr_nets, 1);
	assert_string_equal(nets()->nets[0].host_dev_name, "lo");

	vm_config_free(cfg());
	vm_config_init(cfg());
	file = unit_tmp_text("{\"boot-source\":{\"kernel_image_path\":\"/dev/null\"},"
			     "\"network-interfaces\":[{\"iface_id\":\"eth0\"}]}");
	refused(config_load_file(file, cfg(), NULL, NULL, err), err, "network-interfaces[0]",
		"host_dev_name");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		CFG_TEST(full_interface),	CFG_TEST(minimal_and_replace),
		CFG_TEST(bad_fields),		CFG_TEST(missing_tap),
		CFG_TEST(one_tap_one_mac_each), CFG_TEST(patch_semantics),
		CFG_TEST(config_file_array),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
