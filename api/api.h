/* The Firecracker-compatible HTTP API: ember's own HTTP/1.1 server on a Unix socket in its own
 * thread (server.c) hands each request to the VMM thread, which routes it (routes.c) and
 * hands the reply back. The API thread never touches VM state. */
#ifndef EMBER_API_H
#define EMBER_API_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/vm.h"

#define API_DEFAULT_SOCKET	"/run/ember.socket"
#define API_DEFAULT_MAX_PAYLOAD 51200

/* What the routes work on: the VM, through the controller. */
struct api_ctx {
	struct vm *vm;
	const char *instance_id;
};

struct api_reply {
	unsigned status; /* HTTP status */
	char *body;	 /* JSON text (malloc'd) or NULL for no body */
	bool deprecated; /* the request used a deprecated field: "Deprecation: true" */
};

/* Routes one request on the VMM thread. body may be NULL (no body). */
void api_dispatch(struct api_ctx *ctx, const char *method, const char *path, const char *body,
		  size_t body_len, struct api_reply *reply);
/* request_log.c: Firecracker's log lines for a request as it arrives (path and body
 * escaped), and for its outcome. */
void api_log_request(const char *method, const char *path, const char *body, size_t body_len);
void api_log_outcome(unsigned status, const char *reason, const char *fault);
/* in (NUL-terminated) into out (cap bytes) with each byte that is not UTF-8 as "\xNN": a
 * fault message may quote a path, and JSON strings hold only UTF-8. */
void api_utf8_clean(const char *in, char *out, size_t cap);
/* Registers the per-endpoint request metrics. */
void api_metrics_init(void);

struct api_server;
/* Binds path (replacing a stale socket file, refusing one that someone listens on),
 * starts the API thread, and wires request hand-off into vm->loop. NULL on failure with
 * a message in err. */
struct api_server *api_server_start(struct api_ctx *ctx, const char *path, size_t max_payload,
				    char *err);
void api_server_stop(struct api_server *srv);

#endif
