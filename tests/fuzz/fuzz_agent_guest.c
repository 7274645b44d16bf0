/* The guest agent's side of ember-run's protocol (run/agent_proto.c): the input is what a
 * host sends on one connection, fed to the decoder in chunks (the first byte picks their
 * size), each frame through the order the agent accepts and, as the agent does, the
 * REQUEST and FILE parsers. Every request accepted must hold argc and envc strings within
 * their limits, inside the payload, with env strings of the KEY=VALUE shape. */
#include "fuzz.h"
#include "run/agent_proto.c"
#include "fuzz_agent.h"

struct ctx {
	struct agent_in_order order;
};

static int on_frame(void *opaque, uint32_t type, const uint8_t *p, uint32_t len)
{
	struct ctx *c = opaque;
	char why[256];
	struct agent_request r;
	struct agent_file f;

	if (len > AGENT_FRAME_MAX || agent_frame_check(AGENT_SIDE_AGENT, type, len, NULL, 0))
		abort(); /* the decoder let through a frame its check refuses */
	if (agent_in_step(&c->order, type, p, len, why, sizeof(why)))
		return -EPROTO;
	if (type == AGENT_REQUEST) {
		if (agent_request_parse(p, len, &r, why, sizeof(why)))
			return -EPROTO;
		if (r.argc < 1 || r.argc > AGENT_ARGC_MAX || r.envc > AGENT_ENVC_MAX ||
		    r.argv[r.argc] || r.envp[r.envc])
			abort();
		for (uint32_t i = 0; i < r.argc + r.envc + 1; i++) {
			const char *s = i == 0	      ? r.workdir
					: i <= r.argc ? r.argv[i - 1]
						      : r.envp[i - 1 - r.argc];
			if (s < (const char *)p || s >= (const char *)p + len)
				abort();
			size_t n = strnlen(s, (size_t)((const char *)p + len - s));
			if (n > AGENT_STR_MAX || s + n >= (const char *)p + len)
				abort();
			if (i > r.argc && (!strchr(s, '=') || s[0] == '='))
				abort();
		}
	} else if (type == AGENT_FILE) {
		if (agent_file_parse(p, len, &f, why, sizeof(why)))
			abort(); /* agent_in_step parsed it already */
		if (f.path[0] != '/' || strlen(f.path) > AGENT_STR_MAX ||
		    f.size > AGENT_FILE_SIZE_MAX)
			abort();
	}
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

	fuzz_agent_feed(AGENT_SIDE_AGENT, data, size, on_frame, &c);
	return 0;
}
