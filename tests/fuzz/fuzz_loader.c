/* The kernel loader (src/x86/loader.c): the input is the kernel file, a vmlinux (ELF64) or a
 * bzImage, loaded into 16 MiB of guest memory; a kernel that loads is then used as the
 * initrd's kernel, with the input as the initrd too. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "x86/loader.h"
#include "fuzz.h"

static struct guest_mem mem;
static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	if (guest_mem_init(&mem, 16 << 20))
		abort();
	fd = fuzz_file("fuzz-kernel", path, sizeof(path));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_file_set(fd, data, size);
	struct kernel_image k;
	char err[ERR_LEN];
	if (loader_load_kernel(&mem, path, &k, err) == 0) {
		uint64_t gpa, len;
		loader_load_initrd(&mem, path, &k, &gpa, &len, err);
	}
	return 0;
}
