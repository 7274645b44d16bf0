/* The Firecracker-compatible HTTP API: ember's own HTTP/1.1 server on a Unix socket in its own
 * thread (server.c) hands each request to the VMM thread, which routes it (routes.c) and
 * hands the reply back. The API thread never touches VM state. */
#ifndef EMBER_API_H
#define EMBER_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/config.h"
#include "vmm/vm.h"

#define API_DEFAULT_SOCKET	"/run/ember.socket"
#define API_DEFAULT_MAX_PAYLOAD 51200

/* The VMM-side state the routes work on. */
struct api_ctx {
	struct vm *vm;
	struct vm_config *cfg;
	const char *instance_id;
	bool started;
	bool logger_configured;
	char *log_path;
	char *metrics_path;
	int metrics_timer_fd;
};

struct api_reply {
	unsigned status; /* HTTP status */
	char *body;	 /* JSON text (malloc'd) or NULL for no body */
};

/* Routes one request on the VMM thread. body may be NULL (no body). */
void api_dispatch(struct api_ctx *ctx, const char *method, const char *path, const char *body,
		  size_t body_len, struct api_reply *reply);
/* InstanceStart: validates the configuration, boots and starts the VM. 0 or -errno with a
 * message in err (the VM can then be configured again). */
int api_instance_start(struct api_ctx *ctx, char *err);
/* Registers the per-endpoint request metrics. */
void api_metrics_init(void);
/* The config file's "logger" and "metrics" (an api_config_key_fn; opaque is the ctx). */
int api_config_file_key(void *opaque, const char *key, json_t *val, char *err);
/* PUT /metrics and --metrics-path: opens path (file or FIFO) as the metrics sink, once. */
int api_open_metrics(struct api_ctx *ctx, const char *path, char *err);
/* Starts flushing metrics every 60 s from the VMM loop (after PUT /metrics). */
int api_metrics_timer_start(struct api_ctx *ctx);

struct api_server;
/* Binds path (replacing a stale socket file, refusing one that someone listens on),
 * starts the API thread, and wires request hand-off into vm->loop. NULL on failure with
 * a message in err. */
struct api_server *api_server_start(struct api_ctx *ctx, const char *path, size_t max_payload,
				    char *err);
void api_server_stop(struct api_server *srv);

#endif
