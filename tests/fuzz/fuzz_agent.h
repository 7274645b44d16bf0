/* What fuzz_agent_host and fuzz_agent_guest share: the input fed to one side's decoder
 * (run/agent_proto.c, included by the target) as a connection delivers it, in chunks whose
 * size the first byte picks, each chunk in a buffer of exactly its size (ASan sees any
 * overrun), until the input ends or the frame callback stops the decoder. */
#ifndef EMBER_FUZZ_AGENT_H
#define EMBER_FUZZ_AGENT_H

#include <stdlib.h>
#include <string.h>

static inline void fuzz_agent_feed(enum agent_side side, const uint8_t *data, size_t size,
				   agent_frame_fn on_frame, void *ctx)
{
	static struct agent_dec d;
	char why[256];

	if (size < 1)
		return;
	size_t chunk = (size_t)data[0] * 7 + 1;
	data++, size--;
	agent_dec_init(&d, side);
	while (size) {
		size_t n = size < chunk ? size : chunk;
		uint8_t *copy = malloc(n);
		if (!copy)
			abort();
		memcpy(copy, data, n);
		int r = agent_dec_feed(&d, copy, n, on_frame, ctx, why, sizeof(why));
		free(copy);
		if (r)
			break;
		data += n, size -= n;
	}
}

#endif
