/* Request routing and the endpoint handlers, run on the VMM thread. Paths, bodies, status
 * codes and messages follow Firecracker's API. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/version.h"
#include "vmm/controller.h"
#include "vmm/device_table.h"
#include "vmm/snapshot.h"

enum method { M_GET = 1, M_PUT = 2, M_PATCH = 4 };

/* The endpoints the routes treat themselves; every other one configures an object. */
enum endpoint {
	EP_ROOT,
	EP_VERSION,
	EP_MACHINE_CONFIG,
	EP_ACTIONS,
	EP_VM,
	EP_VM_CONFIG,
	EP_SNAPSHOT_CREATE,
	EP_SNAPSHOT_LOAD
};

struct endpoint_row {
	const char *path;
	bool takes_id;	    /* /path/{id} */
	const char *metric; /* Firecracker's name in the *_api_requests metrics groups */
	unsigned methods;
};

#define ENDPOINTS_MAX 32
static struct endpoint_row endpoints[ENDPOINTS_MAX] = {
	[EP_ROOT] = { "/", false, "instance_info", M_GET },
	[EP_VERSION] = { "/version", false, "vmm_version", M_GET },
	[EP_MACHINE_CONFIG] = { "/machine-config", false, "machine_cfg", M_GET | M_PUT | M_PATCH },
	[EP_ACTIONS] = { "/actions", false, "actions", M_PUT },
	[EP_VM] = { "/vm", false, "vm", M_PATCH },
	[EP_VM_CONFIG] = { "/vm/config", false, "vm_config", M_GET },
	[EP_SNAPSHOT_CREATE] = { "/snapshot/create", false, "snapshot_create", M_PUT },
	[EP_SNAPSHOT_LOAD] = { "/snapshot/load", false, "snapshot_load", M_PUT },
	{ "/boot-source", false, "boot_source", M_PUT },
	{ "/logger", false, "logger", M_PUT },
	{ "/metrics", false, "metrics", M_PUT },
	{ "/serial", false, "serial", M_PUT },
};
static unsigned nr_endpoints;

/* Per method and endpoint: requests and failures, Firecracker's *_api_requests groups. */
static struct metric request_metrics[3][ENDPOINTS_MAX * 2];
static struct metric_group request_groups[3];

/* The fixed endpoints, then one per device kind (/drives/{id}, /vsock, ...). */
static void add_device_endpoints(void)
{
	while (endpoints[nr_endpoints].path)
		nr_endpoints++;
	for (unsigned k = 0; device_kinds[k] && nr_endpoints < ENDPOINTS_MAX; k++) {
		const struct device_kind *kind = device_kinds[k];
		char *path = NULL;
		if (asprintf(&path, "/%s", kind->key) < 0)
			die("out of memory");
		endpoints[nr_endpoints++] =
			(struct endpoint_row){ path, kind->per_id, kind->metric,
					       M_PUT | (kind->patch ? M_PATCH : 0) };
	}
}

void api_metrics_init(void)
{
	static const char *const group_names[3] = { "get_api_requests", "put_api_requests",
						    "patch_api_requests" };
	add_device_endpoints();
	for (unsigned m = 0; m < 3; m++) {
		unsigned n = 0;
		for (unsigned e = 0; e < nr_endpoints; e++) {
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

static struct metric *request_metric(unsigned method_bit, unsigned ep, bool fail)
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

/* The one string field of a PUT /actions or PATCH /vm body, or NULL with err set. */
static const char *only_string(json_t *body, const char *what, const char *key, char *err)
{
	json_t *v = json_object_get(body, key);
	if (json_object_size(body) == 1 && json_is_string(v))
		return json_string_value(v);
	snprintf(err, ERR_LEN, "%s: expected exactly one string field '%s'", what, key);
	return NULL;
}

static int put_actions(struct api_ctx *ctx, json_t *body, char *err)
{
	const char *action = only_string(body, "actions", "action_type", err);
	if (!action)
		return -EINVAL;
	if (strcmp(action, "InstanceStart") == 0) {
		/* The boot timer measures from InstanceStart when the API starts the VM. */
		if (ctx->vm->state == VM_CONFIGURING)
			ctx->vm->m.start_ns = monotonic_ns();
		return vmm_start(ctx->vm, err);
	}
	if (strcmp(action, "SendCtrlAltDel") == 0)
		return vmm_send_ctrl_alt_del(ctx->vm, err);
	if (strcmp(action, "FlushMetrics") == 0)
		return vmm_flush_metrics(ctx->vm, err);
	return errf(err, -EINVAL,
		    "actions: unknown action_type '%.100s' (InstanceStart, SendCtrlAltDel, "
		    "FlushMetrics)",
		    action);
}

static int patch_vm(struct api_ctx *ctx, json_t *body, char *err)
{
	const char *s = only_string(body, "vm", "state", err);
	if (!s)
		return -EINVAL;
	if (strcmp(s, "Paused") == 0)
		return vmm_pause(ctx->vm, err);
	if (strcmp(s, "Resumed") == 0 || ctx->vm->state == VM_CONFIGURING)
		return vmm_resume(ctx->vm, err); /* before start: the phase error */
	return errf(err, -EINVAL, "vm: 'state' must be \"Paused\" or \"Resumed\"");
}

/* Handles a request whose body parsed (or is absent for GET): maps it to the controller. */
static unsigned handle(struct api_ctx *ctx, unsigned ep, unsigned method, const char *id,
		       json_t *body, struct api_reply *reply)
{
	char err[ERR_LEN] = "";
	int rc = 0;
	switch (ep) {
	case EP_ROOT:
		reply->body = json_text(json_pack("{s:s, s:s, s:s, s:s}", "id", ctx->instance_id,
						  "state", vmm_state_name(ctx->vm), "vmm_version",
						  EMBER_VERSION, "app_name", "ember"));
		break;
	case EP_VERSION:
		reply->body = json_text(json_pack("{s:s, s:s}", "firecracker_version",
						  EMBER_VERSION, "ember_version", EMBER_VERSION));
		break;
	case EP_VM_CONFIG:
		reply->body = json_text(vmm_config_json(ctx->vm));
		break;
	case EP_ACTIONS:
		rc = put_actions(ctx, body, err);
		break;
	case EP_VM:
		rc = patch_vm(ctx, body, err);
		break;
	case EP_SNAPSHOT_CREATE:
		rc = vmm_snapshot_create(ctx->vm, body, err);
		break;
	case EP_SNAPSHOT_LOAD:
		rc = vmm_snapshot_load(ctx->vm, body, err);
		break;
	case EP_MACHINE_CONFIG:
		if (method == M_GET) {
			reply->body = json_text(vmm_machine_config_json(ctx->vm));
			break;
		}
		/* PUT and PATCH configure it as every other object: */
		/* fall through */
	default:
		rc = vmm_configure(ctx->vm, endpoints[ep].path + 1, id, body, method == M_PATCH,
				   err);
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
	for (unsigned e = 0; e < nr_endpoints; e++) {
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
	metric_inc(request_metric(m, (unsigned)ep, false));
	json_t *json = NULL;
	if (m != M_GET) {
		if (!body || body_len == 0) {
			fault(reply, 400, "Empty request body: this request needs a JSON body");
		} else {
			json_error_t jerr;
			json = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
			if (!json) {
				char msg[ERR_LEN];
				snprintf(msg, sizeof(msg), "Invalid JSON at line %d column %d: %s",
					 jerr.line, jerr.column, jerr.text);
				fault(reply, 400, msg);
			} else if (!json_is_object(json)) {
				fault(reply, 400, "The request body must be a JSON object");
			}
		}
		if (reply->status) {
			json_decref(json);
			metric_inc(request_metric(m, (unsigned)ep, true));
			return;
		}
	}
	unsigned status = handle(ctx, (unsigned)ep, m, id, json, reply);
	json_decref(json);
	if (status >= 400)
		metric_inc(request_metric(m, (unsigned)ep, true));
	if (status >= 400)
		log_warn("API %s %s: %d", method, path, status);
}
