/* The snapshot state file as PUT /snapshot/load reads it before it builds anything
 * (vmm_snapshot_check in src/vmm/snapshot.c: the framing, the machine, memory record, KVM VM
 * and vCPU sections, and the devices' configuration through their kinds), and what
 * ember-snap inspect describes of a file that passes: the input is the file.
 *
 * A mutated file would almost always stop at the checksum, so the target seals its copy the
 * way a writer does (the header's file length and CRC-32C) before the check; the checksum
 * and length refusals themselves are unit-tested (tests/unit/test_snapshot_file.c). The
 * seed is a real state file of the counting test guest (tests/fuzz/README.md). */
#include <stdio.h>

#include "vmm/snapshot.h"
#include "vmm/snapshot_file.h"
#include "fuzz.h"

#define OFF_FILE_LEN 16
#define OFF_CRC	     24

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A buffer of its own, exactly the input's size, so that ASan sees any overrun. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	if (size >= SNAP_HEADER_LEN) {
		uint64_t len = size;
		uint32_t crc = 0;
		memcpy(buf + OFF_FILE_LEN, &len, sizeof(len));
		memcpy(buf + OFF_CRC, &crc, sizeof(crc));
		crc = crc32c(0, buf, size);
		memcpy(buf + OFF_CRC, &crc, sizeof(crc));
	}
	char err[ERR_LEN];
	/* inspect: the check, and on success what ember-snap prints from it. */
	static struct snapshot_info info;
	vmm_snapshot_inspect(buf, size, &info, err);
	free(buf);
	return 0;
}
