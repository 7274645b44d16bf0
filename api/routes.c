/* Request routing and the endpoint handlers, run on the VMM thread. Paths, bodies, status
 * codes and messages follow Firecracker's API. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "api/api.h"
#include "core/json_fields.h"
#include "virtio/blk.h"
#include "vmm/config_json.h"
#include "virtio/blk_json.h"
#include "virtio/net.h"
#include "virtio/net_json.h"
#include "virtio/vsock_json.h"
#include "legacy/i8042.h"
#include "core/log.h"
#include "core/version.h"
#include "core/metrics.h"

#define METRICS_PERIOD_S 60

enum method { M_GET = 1, M_PUT = 2, M_PATCH = 4 };

enum endpoint {
	EP_ROOT,
	EP_VERSION,
	EP_MACHINE_CONFIG,
	EP_BOOT_SOURCE,
	EP_DRIVES,
	EP_NETWORK_INTERFACES,
	EP_VSOCK,
	EP_LOGGER,
	EP_METRICS,
	EP_ACTIONS,
	EP_VM,
	EP_VM_CONFIG,
	EP_SERIAL,
	EP_COUNT
};

static const struct {
	const char *path;
	bool takes_id; /* /path/{id} */
	const char *metric;
	unsigned methods;
} endpoints[EP_COUNT] = {
	[EP_ROOT] = { "/", false, "instance_info", M_GET },
	[EP_VERSION] = { "/version", false, "vmm_version", M_GET },
	[EP_MACHINE_CONFIG] = { "/machine-config", false, "machine_cfg", M_GET | M_PUT | M_PATCH },
	[EP_BOOT_SOURCE] = { "/boot-source", false, "boot_source", M_PUT },
	[EP_DRIVES] = { "/drives", true, "drive", M_PUT | M_PATCH },
	[EP_NETWORK_INTERFACES] = { "/network-interfaces", true, "network", M_PUT | M_PATCH },
	[EP_VSOCK] = { "/vsock", false, "vsock", M_PUT },
	[EP_LOGGER] = { "/logger", false, "logger", M_PUT },
	[EP_METRICS] = { "/metrics", false, "metrics", M_PUT },
	[EP_ACTIONS] = { "/actions", false, "actions", M_PUT },
	[EP_VM] = { "/vm", false, "vm", M_PATCH },
	[EP_VM_CONFIG] = { "/vm/config", false, "vm_config", M_GET },
	[EP_SERIAL] = { "/serial", false, "serial", M_PUT },
};

/* Per method and endpoint: requests and failures, Firecracker's *_api_requests groups. */
static struct metric request_metrics[3][EP_COUNT * 2];
static struct metric_group request_groups[3];

void api_metrics_init(void)
{
	static const char *const group_names[3] = { "get_api_requests", "put_api_requests",
						    "patch_api_requests" };
	for (unsigned m = 0; m < 3; m++) {
		unsigned n = 0;
		for (unsigned e = 0; e < EP_COUNT; e++) {
			if (!(endpoints[e].methods & (1u << m)))
				continue;
			char *count = NULL, *fails = NULL;
			if (asprintf(&count, "%s_count", endpoints[e].metric) < 0 ||
			    asprintf(&fails, "%s_fails", endpoints[e].metric) < 0)
				die("out of memory");
			request_metrics[m][n++].name = count; /* lives as long as the process */
			request_metrics[m][n++].name = fails;
		}
		request_groups[m] =
			(struct metric_group){ group_names[m], request_metrics[m], n, NULL };
		metrics_register(&request_groups[m]);
	}
}

static struct metric *request_metric(unsigned method_bit, enum endpoint ep, bool fail)
{
	unsigned m = method_bit == M_GET ? 0 : method_bit == M_PUT ? 1 : 2;
	unsigned n = 0;
	for (unsigned e = 0; e < (unsigned)ep; e++)
		if (endpoints[e].methods & method_bit)
			n += 2;
	return &request_metrics[m][n + (fail ? 1 : 0)];
}

static char *json_text(json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	return s;
}

static unsigned fault(struct api_reply *reply, unsigned status, const char *msg)
{
	reply->status = status;
	reply->body = json_text(json_pack("{s:s}", "fault_message", msg));
	return status;
}

static const char *state_name(const struct api_ctx *ctx)
{
	if (!ctx->started)
		return "Not started";
	return ctx->vm->paused ? "Paused" : "Running";
}

static json_t *machine_config_json(const struct vm_config *cfg)
{
	return json_pack("{s:i, s:i, s:b, s:b}", "vcpu_count", (json_int_t)cfg->machine.vcpu_count,
			 "mem_size_mib", (json_int_t)cfg->machine.mem_size_mib, "smt",
			 cfg->machine.smt, "track_dirty_pages", cfg->machine.track_dirty_pages);
}

static json_t *vm_config_json(const struct api_ctx *ctx)
{
	const struct vm_config *cfg = ctx->cfg;
	json_t *boot = json_object();
	if (cfg->boot.kernel_image_path)
		json_object_set_new(boot, "kernel_image_path",
				    json_string(cfg->boot.kernel_image_path));
	if (cfg->boot.initrd_path)
		json_object_set_new(boot, "initrd_path", json_string(cfg->boot.initrd_path));
	if (cfg->boot.boot_args)
		json_object_set_new(boot, "boot_args", json_string(cfg->boot.boot_args));
	json_t *drives = json_array();
	for (unsigned i = 0; i < cfg->nr_drives; i++) {
		const struct drive_config *d = &cfg->drives[i];
		json_t *obj = json_pack(
			"{s:s, s:s, s:b, s:b, s:s, s:s}", "drive_id", d->drive_id, "path_on_host",
			d->path_on_host, "is_root_device", d->is_root_device, "is_read_only",
			d->is_read_only, "cache_type",
			d->cache_type == DRIVE_CACHE_WRITEBACK ? "Writeback" : "Unsafe",
			"io_engine", d->io_engine == DRIVE_ENGINE_ASYNC ? "Async" : "Sync");
		if (d->partuuid)
			json_object_set_new(obj, "partuuid", json_string(d->partuuid));
		json_array_append_new(drives, obj);
	}
	json_t *root = json_pack("{s:o, s:o, s:o, s:o, s:o}", "boot-source", boot, "machine-config",
				 machine_config_json(cfg), "drives", drives, "network-interfaces",
				 api_nets_json(cfg), "vsock", api_vsock_json(cfg));
	if (ctx->log_path)
		json_object_set_new(root, "logger", json_pack("{s:s}", "log_path", ctx->log_path));
	if (ctx->metrics_path)
		json_object_set_new(root, "metrics",
				    json_pack("{s:s}", "metrics_path", ctx->metrics_path));
	return root;
}

static void on_metrics_timer(void *opaque, uint32_t events)
{
	struct api_ctx *ctx = opaque;
	(void)events;
	uint64_t expirations;
	if (read(ctx->metrics_timer_fd, &expirations, sizeof(expirations)) > 0)
		metrics_flush();
}

int api_metrics_timer_start(struct api_ctx *ctx)
{
	ctx->metrics_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ctx->metrics_timer_fd < 0)
		return -errno;
	struct itimerspec period = { { METRICS_PERIOD_S, 0 }, { METRICS_PERIOD_S, 0 } };
	timerfd_settime(ctx->metrics_timer_fd, 0, &period, NULL);
	return evloop_add(&ctx->vm->loop, ctx->metrics_timer_fd, EPOLLIN, on_metrics_timer, ctx);
}

int api_instance_start(struct api_ctx *ctx, char *err)
{
	int rc = api_validate_for_start(ctx->cfg, err);
	if (rc)
		return rc;
	rc = vm_boot(ctx->vm, ctx->cfg, err);
	if (rc)
		return rc;
	/* Logged before the vCPUs run, so the line never splits the guest's first output. */
	log_info("VM started");
	rc = vm_start(ctx->vm);
	if (rc) {
		snprintf(err, API_ERR_LEN, "cannot start the vCPUs: %s", strerror(-rc));
		return rc;
	}
	ctx->started = true;
	return 0;
}

static int put_logger(struct api_ctx *ctx, json_t *body, char *err)
{
	static const char *const keys[] = { "log_path",	       "level",	 "show_level",
					    "show_log_origin", "module", NULL };
	const char *key;
	json_t *val;
	json_object_foreach (body, key, val) {
		bool known = false;
		for (const char *const *k = keys; *k; k++)
			known |= strcmp(*k, key) == 0;
		if (!known) {
			snprintf(err, API_ERR_LEN, "logger: unknown field '%s'", key);
			return -EINVAL;
		}
	}
	json_t *path = json_object_get(body, "log_path"), *level = json_object_get(body, "level");
	json_t *show_level = json_object_get(body, "show_level");
	json_t *show_origin = json_object_get(body, "show_log_origin");
	if ((path && !json_is_string(path)) || (level && !json_is_string(level)) ||
	    (show_level && !json_is_boolean(show_level)) ||
	    (show_origin && !json_is_boolean(show_origin))) {
		snprintf(err, API_ERR_LEN,
			 "logger: log_path and level must be strings, "
			 "show_level and show_log_origin booleans");
		return -EINVAL;
	}
	if (level && log_set_level_name(json_string_value(level))) {
		snprintf(err, API_ERR_LEN, "logger: invalid level '%s'", json_string_value(level));
		return -EINVAL;
	}
	if (path) {
		int rc = log_open(json_string_value(path));
		if (rc) {
			snprintf(err, API_ERR_LEN, "logger: cannot open %s: %s",
				 json_string_value(path), strerror(-rc));
			return rc;
		}
		free(ctx->log_path);
		ctx->log_path = strdup(json_string_value(path));
	}
	log_set_format(show_level ? json_is_true(show_level) : true,
		       show_origin ? json_is_true(show_origin) : false);
	ctx->logger_configured = true;
	return 0;
}

static int put_metrics(struct api_ctx *ctx, json_t *body, char *err)
{
	json_t *path = json_object_get(body, "metrics_path");
	if (json_object_size(body) != 1 || !path || !json_is_string(path)) {
		snprintf(err, API_ERR_LEN,
			 "metrics: expected exactly one string field 'metrics_path'");
		return -EINVAL;
	}
	return api_open_metrics(ctx, json_string_value(path), err);
}

int api_config_file_key(void *opaque, const char *key, json_t *val, char *err)
{
	struct api_ctx *ctx = opaque;
	if (!json_is_object(val))
		return api_fail(err, "%s: expected a JSON object", key);
	return strcmp(key, "logger") == 0 ? put_logger(ctx, val, err) : put_metrics(ctx, val, err);
}

int api_open_metrics(struct api_ctx *ctx, const char *path, char *err)
{
	if (ctx->metrics_path) {
		snprintf(err, API_ERR_LEN, "metrics: reinitialization of metrics is not allowed");
		return -EINVAL;
	}
	int rc = metrics_open(path);
	if (rc) {
		snprintf(err, API_ERR_LEN, "metrics: cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	ctx->metrics_path = strdup(path);
	rc = api_metrics_timer_start(ctx);
	if (rc)
		snprintf(err, API_ERR_LEN, "metrics: flush timer: %s", strerror(-rc));
	return rc;
}

#define PRE_BOOT_ONLY  "The requested operation is not supported after starting the microVM."
#define POST_BOOT_ONLY "The requested operation is not supported before starting the microVM."

static unsigned put_actions(struct api_ctx *ctx, json_t *body, struct api_reply *reply)
{
	json_t *type = json_object_get(body, "action_type");
	if (json_object_size(body) != 1 || !type || !json_is_string(type))
		return fault(reply, 400,
			     "actions: expected exactly one string field 'action_type'");
	const char *action = json_string_value(type);
	char err[API_ERR_LEN] = "";
	if (strcmp(action, "InstanceStart") == 0) {
		if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		/* The boot timer measures from InstanceStart when the API starts the VM. */
		ctx->vm->start_ns = monotonic_ns();
		if (api_instance_start(ctx, err))
			return fault(reply, 400, err);
	} else if (strcmp(action, "SendCtrlAltDel") == 0) {
		if (!ctx->started)
			return fault(reply, 400, POST_BOOT_ONLY);
		if (i8042_send_ctrl_alt_del(ctx->vm->i8042))
			return fault(reply, 400, "the i8042 buffer is full, try again");
	} else if (strcmp(action, "FlushMetrics") == 0) {
		if (!metrics_configured())
			return fault(reply, 400, "metrics are not configured (PUT /metrics first)");
		int rc = metrics_flush();
		if (rc) {
			snprintf(err, sizeof(err), "cannot write metrics: %s", strerror(-rc));
			return fault(reply, 400, err);
		}
	} else {
		snprintf(err, sizeof(err),
			 "actions: unknown action_type '%.100s' (InstanceStart, SendCtrlAltDel, "
			 "FlushMetrics)",
			 action);
		return fault(reply, 400, err);
	}
	reply->status = 204;
	return 204;
}

static unsigned patch_vm(struct api_ctx *ctx, json_t *body, struct api_reply *reply)
{
	json_t *state = json_object_get(body, "state");
	if (json_object_size(body) != 1 || !state || !json_is_string(state))
		return fault(reply, 400, "vm: expected exactly one string field 'state'");
	if (!ctx->started)
		return fault(reply, 400, POST_BOOT_ONLY);
	const char *s = json_string_value(state);
	if (strcmp(s, "Paused") == 0) {
		if (vm_pause(ctx->vm))
			return fault(reply, 400, "the VM is already paused");
		log_info("VM paused");
	} else if (strcmp(s, "Resumed") == 0) {
		if (vm_resume(ctx->vm))
			return fault(reply, 400, "the VM is not paused");
		log_info("VM resumed");
	} else {
		return fault(reply, 400, "vm: 'state' must be \"Paused\" or \"Resumed\"");
	}
	reply->status = 204;
	return 204;
}

/* PATCH /network-interfaces/{id} on a running VM: new rate limiters for the live device;
 * the configuration keeps the old ones if the device refused them. */
static int patch_running_net(struct api_ctx *ctx, const char *id, json_t *body, char *err)
{
	struct net_config *c = NULL;
	for (unsigned i = 0; i < ctx->cfg->nr_nets && !c; i++)
		if (strcmp(ctx->cfg->nets[i].iface_id, id) == 0)
			c = &ctx->cfg->nets[i];
	if (!c) {
		snprintf(err, API_ERR_LEN, "network interface '%.64s' does not exist", id);
		return -ENOENT;
	}
	struct rate_limiter_config rx = c->rx_rate_limiter, tx = c->tx_rate_limiter;
	int rc = api_patch_net(ctx->cfg, id, body, err);
	if (!rc && (rc = net_update(ctx->vm, c, err, API_ERR_LEN))) {
		c->rx_rate_limiter = rx;
		c->tx_rate_limiter = tx;
	}
	return rc;
}

static struct drive_config *find_drive(struct vm_config *cfg, const char *id)
{
	for (unsigned i = 0; i < cfg->nr_drives; i++)
		if (strcmp(cfg->drives[i].drive_id, id) == 0)
			return &cfg->drives[i];
	return NULL;
}

/* PATCH /drives/{id} on a running VM: a new image or rate limiter for the live device.
 * The configuration changes only if the device took the change. */
static int patch_running_drive(struct api_ctx *ctx, const char *id, json_t *body, char *err)
{
	struct drive_config *d = find_drive(ctx->cfg, id);
	if (!d) {
		snprintf(err, API_ERR_LEN, "drive '%.64s' does not exist", id);
		return -ENOENT;
	}
	char *old_path = strdup(d->path_on_host);
	struct rate_limiter_config old_limits = d->rate_limiter;
	int rc = api_patch_drive(ctx->cfg, id, body, err);
	if (!rc) {
		d = find_drive(ctx->cfg, id);
		rc = blk_update(ctx->vm, d, err, API_ERR_LEN);
		if (rc) {
			free(d->path_on_host);
			d->path_on_host = old_path;
			d->rate_limiter = old_limits;
			old_path = NULL;
		}
	}
	free(old_path);
	return rc;
}

/* Handles a request whose body parsed (or is absent for GET). */
static unsigned handle(struct api_ctx *ctx, enum endpoint ep, unsigned method, const char *id,
		       json_t *body, struct api_reply *reply)
{
	char err[API_ERR_LEN] = "";
	int rc = 0;
	switch (ep) {
	case EP_ROOT:
		reply->body = json_text(json_pack("{s:s, s:s, s:s, s:s}", "id", ctx->instance_id,
						  "state", state_name(ctx), "vmm_version",
						  EMBER_VERSION, "app_name", "ember"));
		break;
	case EP_VERSION:
		reply->body = json_text(json_pack("{s:s, s:s}", "firecracker_version",
						  EMBER_VERSION, "ember_version", EMBER_VERSION));
		break;
	case EP_VM_CONFIG:
		reply->body = json_text(vm_config_json(ctx));
		break;
	case EP_MACHINE_CONFIG:
		if (method == M_GET) {
			reply->body = json_text(machine_config_json(ctx->cfg));
			break;
		}
		if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		rc = api_put_machine_config(ctx->cfg, body, method == M_PATCH, err);
		break;
	case EP_BOOT_SOURCE:
		if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		rc = api_put_boot_source(ctx->cfg, body, err);
		break;
	case EP_SERIAL:
		if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		rc = api_put_serial(ctx->cfg, body, err);
		break;
	case EP_LOGGER:
		if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		rc = put_logger(ctx, body, err);
		break;
	case EP_METRICS:
		if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		rc = put_metrics(ctx, body, err);
		break;
	case EP_ACTIONS:
		return put_actions(ctx, body, reply);
	case EP_VM:
		return patch_vm(ctx, body, reply);
	case EP_DRIVES:
		if (method == M_PATCH && ctx->started)
			rc = patch_running_drive(ctx, id, body, err);
		else if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		else if (method == M_PATCH)
			rc = api_patch_drive(ctx->cfg, id, body, err);
		else
			rc = api_put_drive(ctx->cfg, id, body, err);
		break;
	case EP_NETWORK_INTERFACES:
		if (method == M_PATCH && ctx->started)
			rc = patch_running_net(ctx, id, body, err);
		else if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		else if (method == M_PATCH)
			rc = api_patch_net(ctx->cfg, id, body, err);
		else
			rc = api_put_net(ctx->cfg, id, body, err);
		break;
	case EP_VSOCK:
		if (ctx->started)
			return fault(reply, 400, PRE_BOOT_ONLY);
		rc = api_put_vsock(ctx->cfg, body, err);
		break;
	case EP_COUNT:
		break;
	}
	if (rc)
		return fault(reply, 400, err);
	reply->status = method == M_GET ? 200 : 204;
	return reply->status;
}

/* Finds the endpoint for path; *id points into path for /drives/{id} style paths. */
static int route(const char *path, const char **id)
{
	*id = NULL;
	for (unsigned e = 0; e < EP_COUNT; e++) {
		size_t n = strlen(endpoints[e].path);
		if (strncmp(path, endpoints[e].path, n) != 0)
			continue;
		if (path[n] == '\0' && !endpoints[e].takes_id)
			return (int)e;
		if (endpoints[e].takes_id && path[n] == '/' && path[n + 1] &&
		    !strchr(path + n + 1, '/')) {
			*id = path + n + 1;
			return (int)e;
		}
	}
	return -1;
}

void api_dispatch(struct api_ctx *ctx, const char *method, const char *path, const char *body,
		  size_t body_len, struct api_reply *reply)
{
	*reply = (struct api_reply){ 0, NULL };
	const char *id;
	int ep = route(path, &id);
	if (ep < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "Invalid request path: %.200s", path);
		fault(reply, 404, msg);
		return;
	}
	unsigned m = strcmp(method, "GET") == 0	    ? M_GET
		     : strcmp(method, "PUT") == 0   ? M_PUT
		     : strcmp(method, "PATCH") == 0 ? M_PATCH
						    : 0;
	if (!(endpoints[ep].methods & m)) {
		char msg[256];
		snprintf(msg, sizeof(msg), "Method %.16s is not allowed on %.200s", method, path);
		fault(reply, 405, msg);
		return;
	}
	metric_inc(request_metric(m, (enum endpoint)ep, false));
	json_t *json = NULL;
	if (m != M_GET) {
		if (!body || body_len == 0) {
			fault(reply, 400, "Empty request body: this request needs a JSON body");
		} else {
			json_error_t jerr;
			json = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
			if (!json) {
				char msg[API_ERR_LEN];
				snprintf(msg, sizeof(msg), "Invalid JSON at line %d column %d: %s",
					 jerr.line, jerr.column, jerr.text);
				fault(reply, 400, msg);
			} else if (!json_is_object(json)) {
				fault(reply, 400, "The request body must be a JSON object");
			}
		}
		if (reply->status) {
			json_decref(json);
			metric_inc(request_metric(m, (enum endpoint)ep, true));
			return;
		}
	}
	unsigned status = handle(ctx, (enum endpoint)ep, m, id, json, reply);
	json_decref(json);
	if (status >= 400)
		metric_inc(request_metric(m, (enum endpoint)ep, true));
	if (status >= 400)
		log_warn("API %s %s: %d", method, path, status);
}
