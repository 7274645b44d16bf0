/* The --config-file reader (src/vmm/config_json.c and every device kind's JSON hooks): the
 * input is the file. One that loads is checked for start and freed. "logger" and "metrics"
 * are the controller's keys and open files: they are left to fuzz_router, which runs in a
 * scratch root. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/config_json.h"
#include "fuzz.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	fd = fuzz_file("fuzz-config", path, sizeof(path));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_file_set(fd, data, size);
	struct vm_config cfg;
	char err[ERR_LEN];
	vm_config_init(&cfg);
	if (config_load_file(path, &cfg, NULL, NULL, err) == 0)
		config_validate_for_start(&cfg, err);
	vm_config_free(&cfg);
	return 0;
}
