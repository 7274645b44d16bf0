/* ember-run's side of its protocol with the guest agent (run/agent_proto.c): the input is
 * what a guest agent sends on one connection, fed to the decoder in chunks (the first byte
 * picks their size), each frame through the order ember-run accepts (READY, STARTED or
 * ERROR, output, one EXIT, nothing after it). Checks that no frame passes beyond its
 * type's bound and that an accepted EXIT is an exit code 0-255 or a signal 1-64. */
#include "fuzz.h"
#include "run/agent_proto.c"
#include "fuzz_agent.h"

struct ctx {
	struct agent_out_order order;
	bool ended;
};

static int on_frame(void *opaque, uint32_t type, const uint8_t *p, uint32_t len)
{
	struct ctx *c = opaque;
	char why[256];
	struct agent_exit e;

	if (c->ended)
		abort(); /* ember-run stops reading at EXIT, as the callback asks below */
	if (agent_frame_check(AGENT_SIDE_HOST, type, len, NULL, 0))
		abort();
	if ((type == AGENT_STDOUT || type == AGENT_STDERR) && (len < 1 || len > AGENT_FRAME_MAX))
		abort();
	if (agent_out_step(&c->order, type, p, len, why, sizeof(why)))
		return -EPROTO;
	if (type == AGENT_EXIT) {
		if (agent_exit_parse(p, len, &e, why, sizeof(why)))
			abort();
		if (!(e.how == AGENT_EXIT_CODE && e.value <= 255) &&
		    !(e.how == AGENT_EXIT_SIGNAL && e.value >= 1 && e.value <= 64))
			abort();
		c->ended = true;
		return -ECANCELED;
	}
	if (type == AGENT_ERROR && (len < 1 || len > AGENT_ERROR_MAX))
		abort();
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = { 0 };

	fuzz_agent_feed(AGENT_SIDE_HOST, data, size, on_frame, &c);
	return 0;
}
