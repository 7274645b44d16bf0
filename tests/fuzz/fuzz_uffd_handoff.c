/* The hand-off ember-uffd-handler receives over its socket (snap/uffd_handoff.c): the input
 * is the JSON as sent, checked against a memory file of 128 MiB. Every region the parser
 * accepts must be whole pages inside the file, with no wrap-around and no overlap.
 * The handler is its own program, not part of libember: its parser's source comes in here. */
#include "fuzz.h"
#include "snap/uffd_handoff.c"

#define FILE_SIZE (128ULL << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A buffer of its own, exactly the input's size, so that ASan sees any overrun. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	struct uffd_region reg[HANDOFF_REGIONS_MAX];
	char why[256];
	int n = handoff_parse(buf, size, FILE_SIZE, reg, why, sizeof(why));
	if (n > HANDOFF_REGIONS_MAX)
		abort();
	for (int i = 0; i < n; i++) {
		const struct uffd_region *r = &reg[i];
		if (!r->size || (r->base | r->size | r->offset) % HANDOFF_PAGE_SIZE ||
		    r->base + r->size < r->base || r->offset > FILE_SIZE ||
		    r->size > FILE_SIZE - r->offset)
			abort();
		for (int j = 0; j < i; j++)
			if (r->base < reg[j].base + reg[j].size && reg[j].base < r->base + r->size)
				abort();
	}
	free(buf);
	return 0;
}
