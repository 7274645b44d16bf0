/* The wire format between ember-run (host) and ember-agent (guest), over one vsock
 * connection per request. Shared by both programs; each side checks every frame it
 * receives against the limits below before it uses a byte of it.
 *
 * A frame is an 8-byte header, then its payload:
 *     u32 type, u32 length (little-endian), length bytes.
 * On accept the agent sends READY; the host waits for it before it sends anything else.
 * The host sends REQUEST, then FILE (each followed by FILE_DATA frames that add up to the
 * file's size exactly), then START, then STDIN frames and one STDIN_EOF. The agent answers
 * STARTED (the command runs) or ERROR (it could not set it up), then STDOUT and STDERR
 * frames, then one EXIT; then it closes. Anything out of this order, a type unknown in its
 * direction, or a length beyond its type's bound ends the connection.
 *
 * A restored guest's vsock driver resets the connections it has when it handles the
 * restore's TRANSPORT_RESET event, and tells the host nothing (it answers the next packet
 * for such a connection with a reset, though). ember holds a restored guest's connections
 * until the driver took the event, for a second at most; for a guest slower than that (or
 * another VMM) the host sends PING (ignored by the agent, in any phase) while it waits,
 * learns of a reset connection as its end, and starts over on a new one while nothing has
 * run (before STARTED; it reads its own stdin only after STARTED). */
#ifndef EMBER_RUN_AGENT_PROTO_H
#define EMBER_RUN_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_VERSION 1
#define AGENT_DEFAULT_PORT  52

#define AGENT_HDR_SIZE	    8
#define AGENT_FRAME_MAX	    (64 * 1024) /* the largest payload of any frame */
#define AGENT_ARGC_MAX	    256
#define AGENT_ENVC_MAX	    256
#define AGENT_STR_MAX	    4096 /* one argv or env string, the workdir, a path (no NUL) */
#define AGENT_FILES_MAX	    64
#define AGENT_FILE_SIZE_MAX (1ULL << 30)
#define AGENT_ERROR_MAX	    1024
#define AGENT_ENTROPY_SIZE  64

/* REQUEST: this fixed part, then NUL-terminated strings: the workdir (empty: "/"),
 * argc argv strings, envc "KEY=VALUE" strings, and nothing after them. */
#define AGENT_REQ_FIXED 96
/* FILE: u64 size, u32 mode (permission bits only), u32 path length, then the absolute
 * path (no NUL). */
#define AGENT_FILE_FIXED 16
/* EXIT: u32 how (AGENT_EXIT_CODE or AGENT_EXIT_SIGNAL), u32 value. */
#define AGENT_EXIT_SIZE 8

enum agent_type {
	/* host -> agent */
	AGENT_REQUEST = 1,
	AGENT_FILE = 2,
	AGENT_FILE_DATA = 3,
	AGENT_START = 4,
	AGENT_STDIN = 5,
	AGENT_STDIN_EOF = 6,
	AGENT_PING = 7,
	/* agent -> host */
	AGENT_READY = 0x80,
	AGENT_STARTED = 0x81,
	AGENT_STDOUT = 0x82,
	AGENT_STDERR = 0x83,
	AGENT_EXIT = 0x84,
	AGENT_ERROR = 0x85,
};

enum { AGENT_EXIT_CODE = 0, AGENT_EXIT_SIGNAL = 1 };

/* Which side receives: the agent takes host frames, the host takes agent frames. */
enum agent_side { AGENT_SIDE_AGENT, AGENT_SIDE_HOST };

struct agent_request {
	uint32_t version, flags;
	int64_t realtime_sec; /* the host's wall-clock time when it sent the request */
	uint32_t realtime_nsec;
	uint8_t entropy[AGENT_ENTROPY_SIZE];
	const char *workdir; /* these point into the parsed payload */
	uint32_t argc, envc;
	const char *argv[AGENT_ARGC_MAX + 1]; /* NULL-terminated */
	const char *envp[AGENT_ENVC_MAX + 1];
};

struct agent_file {
	uint64_t size;
	uint32_t mode;
	char path[AGENT_STR_MAX + 1];
};

struct agent_exit {
	uint32_t how, value;
};

/* The push decoder: bytes in as they arrive, whole checked frames out. */
struct agent_dec {
	enum agent_side side;
	uint32_t hdr_have, type, len, have;
	uint8_t hdr[AGENT_HDR_SIZE];
	uint8_t buf[AGENT_FRAME_MAX];
};

/* Called once per whole frame; the payload is valid only during the call. A negative
 * return stops the decoder and is returned by agent_dec_feed. */
typedef int (*agent_frame_fn)(void *ctx, uint32_t type, const uint8_t *p, uint32_t len);

void agent_dec_init(struct agent_dec *d, enum agent_side side);
/* 0 once every byte is taken, -EPROTO (why says what) for a bad header, or the callback's
 * negative return. */
int agent_dec_feed(struct agent_dec *d, const void *data, size_t n, agent_frame_fn fn, void *ctx,
		   char *why, size_t why_len);
/* True between frames: an end of stream here is not a truncated frame. */
bool agent_dec_idle(const struct agent_dec *d);
/* 0, or -EPROTO: is this a type the side receives, with a length its type allows? */
int agent_frame_check(enum agent_side side, uint32_t type, uint32_t len, char *why, size_t why_len);
const char *agent_type_name(uint32_t type);

/* Payload parsers: 0, or -EPROTO with why set. */
int agent_request_parse(const uint8_t *p, uint32_t len, struct agent_request *r, char *why,
			size_t why_len);
int agent_file_parse(const uint8_t *p, uint32_t len, struct agent_file *f, char *why,
		     size_t why_len);
int agent_exit_parse(const uint8_t *p, uint32_t len, struct agent_exit *e, char *why,
		     size_t why_len);

/* Encoders: the frame's total size (header included), or -E2BIG / -EINVAL when the
 * content breaks a limit; out must hold AGENT_HDR_SIZE + AGENT_FRAME_MAX bytes. */
void agent_hdr_put(uint8_t *out, uint32_t type, uint32_t len);
int agent_request_encode(uint8_t *out, const struct agent_request *r);
int agent_file_encode(uint8_t *out, uint64_t size, uint32_t mode, const char *path);
int agent_exit_encode(uint8_t *out, uint32_t how, uint32_t value);

/* The order of frames each side receives. Steps return 0 or -EPROTO with why set;
 * frames that pass the decoder but break the order end the conversation. */
struct agent_in_order { /* what the agent receives */
	int phase;	/* 0 want REQUEST, 1 files, 2 running (stdin open), 3 stdin closed */
	unsigned files;
	uint64_t file_left;
};
struct agent_out_order { /* what the host receives */
	int phase;	 /* 0 want READY, 1 want STARTED or ERROR, 2 running, 3 ended */
};
int agent_in_step(struct agent_in_order *o, uint32_t type, const uint8_t *p, uint32_t len,
		  char *why, size_t why_len);
int agent_out_step(struct agent_out_order *o, uint32_t type, const uint8_t *p, uint32_t len,
		   char *why, size_t why_len);

#endif
