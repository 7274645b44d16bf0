/* A snapshot load's device configuration with the load body's overrides
 * (snapshot_config_apply in src/vmm/snapshot.c): network_overrides and vsock_override applied
 * to the configuration the state file saved, then each kind's value loaded through its
 * checks. fuzz_snapshot reaches the saved configuration but never a load body, and
 * fuzz_router never gets past the state file it cannot find.
 *
 * Input: JSON text, an object with "saved" (the SNAP_CONFIG section's object: device kind
 * keys as in GET /vm/config) and "load" (a PUT /snapshot/load body). Kinds check what they
 * load as a PUT would (a TAP must exist, a vsock socket's directory too), so the target runs
 * in the scratch root of fuzz_sandbox.h. */
#include <stdio.h>

#include "vmm/config.h"
#include "vmm/config_json.h"
#include "vmm/snapshot.h"
#include "fuzz.h"
#include "fuzz_sandbox.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	enter_scratch_root(*argc, *argv);
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	json_t *saved = json_object_get(in, "saved"), *load = json_object_get(in, "load");
	if (json_is_object(saved)) {
		struct vm_config cfg;
		char err[ERR_LEN] = "";
		vm_config_init(&cfg);
		int rc = snapshot_config_apply(&cfg, saved, load, err);
		/* A refusal always says why. */
		if (rc && !err[0])
			abort();
		if (!rc)
			config_validate_for_start(&cfg, err);
		vm_config_free(&cfg);
	}
	json_decref(in);
	empty_scratch_root(NULL);
	return 0;
}
