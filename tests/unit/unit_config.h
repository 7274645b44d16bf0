/* A fresh struct vm_config per test, and JSON from test text: shared by the tests of the
 * JSON handlers (config, drives, network interfaces). */
#ifndef EMBER_UNIT_CONFIG_H
#define EMBER_UNIT_CONFIG_H

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/vsock.h"
#include "vmm/config.h"
#include "vmm/device_table.h"
#include "unit_util.h"

static inline struct vm_config *cfg(void)
{
	static struct vm_config c;
	return &c;
}

/* A device kind's store in cfg(). */
static inline void *kind_store(const char *key)
{
	int k = device_kind_find(key);
	assert_true(k >= 0);
	return cfg()->devices[k];
}
#define drives() ((struct drive_set *)kind_store("drives"))
#define nets()	 ((struct net_set *)kind_store("network-interfaces"))
#define vsock()	 ((struct vsock_config *)kind_store("vsock"))

static inline int cfg_setup(void **state)
{
	(void)state;
	vm_config_init(cfg());
	return 0;
}

static inline int cfg_teardown(void **state)
{
	vm_config_free(cfg());
	return unit_teardown(state);
}

#define CFG_TEST(fn) cmocka_unit_test_setup_teardown(fn, cfg_setup, cfg_teardown)

/* Parses test JSON (NUL characters allowed, so that tests can send them; duplicate keys
 * refused); a typo in a test fails that test. */
static inline json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &e);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, e.text);
	return j;
}

/* A handler call failed with -EINVAL and its error names a and, when given, b. */
static inline void refused(int rc, const char *err, const char *a, const char *b)
{
	assert_int_equal(rc, -EINVAL);
	if (!strstr(err, a) || (b && !strstr(err, b)))
		fail_msg("error \"%s\" should name '%s'%s%s", err, a, b ? " and " : "", b ? b : "");
}

#endif
