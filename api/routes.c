/* Request routing and the endpoint handlers, run on the VMM thread. Paths, bodies, status
 * codes and messages follow Firecracker's API. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/http.h"
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

/* Firecracker routes on the path's first segment ("drives" of /drives/rootfs); the second is
 * an id, or for GET /vm/config a fixed word. Segments after those are not looked at, and a
 * trailing slash changes nothing. */
struct endpoint_row {
	const char *name;   /* the first segment, "" for / */
	const char *need;   /* a second segment it needs ("config"), or NULL */
	bool takes_id;	    /* /name/{id} */
	bool sub;	    /* a device kind with parts: the second segment goes to it */
	const char *metric; /* Firecracker's name in the *_api_requests metrics groups */
	unsigned methods;
};

#define ENDPOINTS_MAX 32
static struct endpoint_row endpoints[ENDPOINTS_MAX] = {
	[EP_ROOT] = { "", NULL, false, false, "instance_info", M_GET },
	[EP_VERSION] = { "version", NULL, false, false, "vmm_version", M_GET },
	[EP_MACHINE_CONFIG] = { "machine-config", NULL, false, false, "machine_cfg",
				M_GET | M_PUT | M_PATCH },
	[EP_ACTIONS] = { "actions", NULL, false, false, "actions", M_PUT },
	[EP_VM] = { "vm", NULL, false, false, "vm", M_PATCH },
	[EP_VM_CONFIG] = { "vm", "config", false, false, "vm_config", M_GET },
	[EP_SNAPSHOT_CREATE] = { "snapshot", "create", false, false, "snapshot_create", M_PUT },
	[EP_SNAPSHOT_LOAD] = { "snapshot", "load", false, false, "snapshot_load", M_PUT },
	{ "boot-source", NULL, false, false, "boot_source", M_PUT },
	{ "logger", NULL, false, false, "logger", M_PUT },
	{ "metrics", NULL, false, false, "metrics", M_PUT },
	{ "serial", NULL, false, false, "serial", M_PUT },
};
static unsigned nr_endpoints;

/* Per method and endpoint: requests and failures, Firecracker's *_api_requests groups. */
static struct metric request_metrics[3][ENDPOINTS_MAX * 2];
static struct metric_group request_groups[3];

/* The fixed endpoints, then one per device kind (/drives/{id}, /vsock, ...). */
static void add_device_endpoints(void)
{
	while (endpoints[nr_endpoints].name)
		nr_endpoints++;
	for (unsigned k = 0; device_kinds[k] && nr_endpoints < ENDPOINTS_MAX; k++) {
		const struct device_kind *kind = device_kinds[k];
		/* PATCH goes to the running device: the kinds with an update hook have it. */
		endpoints[nr_endpoints++] = (struct endpoint_row){
			kind->key,    NULL,
			kind->per_id, kind->subpaths,
			kind->metric, M_PUT | (kind->update ? M_PATCH : 0) | (kind->get ? M_GET : 0)
		};
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
	char clean[ERR_LEN * 2];
	api_utf8_clean(msg, clean, sizeof(clean));
	reply->status = status;
	reply->body = json_text(json_pack("{s:s}", "fault_message", clean));
	api_log_outcome(status, http_reason(status), clean);
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
	/* Firecracker reads the body before it looks at the VM's state. Pausing a paused VM
	 * and resuming a running one succeed (test_pause_resume.py). */
	if (strcmp(s, "Paused") == 0)
		return vmm_pause(ctx->vm, err);
	if (strcmp(s, "Resumed") == 0)
		return vmm_resume(ctx->vm, err);
	return errf(err, -EINVAL, "vm: 'state' must be \"Paused\" or \"Resumed\"");
}

/* Firecracker answers a request that names a deprecated field with "Deprecation: true" and
 * logs why (parsed_request.rs, request/machine_configuration.rs, request/vsock.rs); a
 * device kind names its deprecated field in its row. The message lives until the next
 * request (one API thread). */
static const char *deprecated_use(unsigned ep, unsigned method, json_t *body)
{
	const char *key = endpoints[ep].name;
	json_t *v;
	if (ep == EP_MACHINE_CONFIG && (v = json_object_get(body, "cpu_template")) &&
	    !json_is_null(v))
		return method == M_PUT ? "PUT /machine-config: cpu_template field is deprecated."
				       : "PATCH /machine-config: cpu_template field is deprecated.";
	int k = device_kind_find(key);
	const char *field = k >= 0 ? device_kinds[k]->deprecated_field : NULL;
	static char why[128];
	if (field && (v = json_object_get(body, field)) && !json_is_null(v)) {
		snprintf(why, sizeof(why), "PUT /%s: %s field is deprecated.", key, field);
		return why;
	}
	return NULL;
}

/* Handles a request whose body parsed (or is absent for GET): maps it to the controller. */
static unsigned handle(struct api_ctx *ctx, unsigned ep, unsigned method, const char *id,
		       json_t *body, struct api_reply *reply)
{
	char err[ERR_LEN] = "";
	int rc = 0;
	switch (ep) {
	case EP_ROOT:
		/* ember's own version here; /version has the Firecracker API it implements. */
		reply->body = json_text(json_pack("{s:s, s:s, s:s, s:s}", "id", ctx->instance_id,
						  "state", vmm_state_name(ctx->vm), "vmm_version",
						  EMBER_VERSION, "app_name", "ember"));
		break;
	case EP_VERSION:
		reply->body =
			json_text(json_pack("{s:s}", "firecracker_version", EMBER_FC_API_VERSION));
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
		if (method == M_GET) { /* a device kind's object */
			json_t *obj;
			if (!(rc = vmm_device_get(ctx->vm, endpoints[ep].name, id, &obj, err)))
				reply->body = json_text(obj);
			break;
		}
		rc = vmm_configure(ctx->vm, endpoints[ep].name, id, body, method == M_PATCH, err);
		break;
	}
	const char *why = method != M_GET ? deprecated_use(ep, method, body) : NULL;
	if (why) {
		log_warn("%s", why);
		reply->deprecated = true;
	}
	if (rc)
		return fault(reply, 400, err);
	reply->status = method == M_GET ? 200 : 204;
	api_log_outcome(reply->status, http_reason(reply->status), NULL);
	return reply->status;
}

/* Splits path into Firecracker's segments: leading slashes go, then '/' separates, and a
 * trailing one ends the last segment without starting another. The first two are copied
 * into a and b (NUL-terminated, cut at their size); *has_b says whether there is a second. */
static void segments(const char *path, char *a, size_t a_len, char *b, size_t b_len, bool *has_b)
{
	while (*path == '/')
		path++;
	const char *slash = strchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : strlen(path);
	snprintf(a, a_len, "%.*s", (int)n, path);
	*has_b = false;
	b[0] = '\0';
	if (slash && slash[1]) {
		const char *second = slash + 1, *end = strchr(second, '/');
		n = end ? (size_t)(end - second) : strlen(second);
		snprintf(b, b_len, "%.*s", (int)n, second);
		*has_b = true;
	}
}

/* What follows the path's first segment and its slash, without a trailing slash
 * ("hinting/start" of /balloon/hinting/start/), cut at len: a device kind with parts gets
 * it whole. */
static void after_first(const char *path, char *out, size_t len)
{
	while (*path == '/')
		path++;
	const char *slash = strchr(path, '/');
	const char *rest = slash ? slash + 1 : "";
	size_t n = strlen(rest);
	if (n && rest[n - 1] == '/')
		n--;
	snprintf(out, len, "%.*s", (int)n, rest);
}

/* Whether a PATCH of row ep may come without a body: the kind names the part (rest's first
 * segment) that takes none. */
static bool bodiless_patch(int ep, const char *rest)
{
	if (ep < 0 || !endpoints[ep].sub)
		return false;
	int k = device_kind_find(endpoints[ep].name);
	const char *part = k >= 0 ? device_kinds[k]->bodiless_patch : NULL;
	size_t n = part ? strlen(part) : 0;
	return part && strncmp(rest, part, n) == 0 && (rest[n] == '\0' || rest[n] == '/');
}

/* The row for method on segment a (and b), or -1. */
static int route(unsigned method, const char *a, const char *b, bool has_b)
{
	for (unsigned e = 0; e < nr_endpoints; e++) {
		const struct endpoint_row *r = &endpoints[e];
		if (!(r->methods & method) || strcmp(a, r->name) != 0)
			continue;
		if (r->need && !(has_b && strcmp(b, r->need) == 0))
			continue;
		return (int)e;
	}
	return -1;
}

/* Firecracker's checked_id(): the {id} of /drives/{id}; NULL when it is fine. */
static const char *id_problem(const char *id, bool has_id)
{
	if (!has_id || id[0] == '\0')
		return "The ID cannot be empty.";
	for (const char *c = id; *c; c++)
		if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9')))
			return "API Resource IDs can only contain alphanumeric characters and "
			       "underscores.";
	return NULL;
}

#define SEGMENT_MAX 256

/* The checks Firecracker makes before any endpoint sees the request (parsed_request.rs),
 * in its order: a GET with a body, a PUT or PATCH without one, then the method and path.
 * 0, or the status of the reply it made. */
static unsigned check_request(const char *method, unsigned m, const char *a, bool has_body, int ep,
			      struct api_reply *reply)
{
	if (m == M_GET && has_body)
		return fault(reply, 400, "GET request cannot have a body.");
	if (m == M_PUT && !has_body)
		return fault(reply, 400, "Empty PUT request.");
	if (m == M_PATCH && !has_body)
		return fault(reply, 400, "Empty PATCH request.");
	if (ep < 0) {
		char msg[SEGMENT_MAX + 80];
		snprintf(msg, sizeof(msg), "Invalid request method and/or path: %.16s %s.", method,
			 a);
		return fault(reply, 400, msg);
	}
	return 0;
}

/* The body as a JSON object, or NULL with the fault in reply. */
static json_t *parse_body(const char *body, size_t body_len, struct api_reply *reply)
{
	json_error_t jerr;
	json_t *json = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &jerr);
	char msg[ERR_LEN];
	const char *what = "An error occurred when deserializing the json body of a request";
	if (!json)
		snprintf(msg, sizeof(msg), "%s: invalid JSON at line %d column %d: %s.", what,
			 jerr.line, jerr.column, jerr.text);
	else if (!json_is_object(json))
		snprintf(msg, sizeof(msg), "%s: the request body must be a JSON object.", what);
	else
		return json;
	json_decref(json);
	fault(reply, 400, msg);
	return NULL;
}

void api_dispatch(struct api_ctx *ctx, const char *method, const char *path, const char *body,
		  size_t body_len, struct api_reply *reply)
{
	*reply = (struct api_reply){ 0, NULL, false };
	api_log_request(method, path, body, body_len);
	unsigned m = strcmp(method, "GET") == 0	    ? M_GET
		     : strcmp(method, "PUT") == 0   ? M_PUT
		     : strcmp(method, "PATCH") == 0 ? M_PATCH
						    : 0;
	char a[SEGMENT_MAX], id[SEGMENT_MAX], rest[SEGMENT_MAX];
	bool has_id;
	segments(path, a, sizeof(a), id, sizeof(id), &has_id);
	after_first(path, rest, sizeof(rest));
	bool has_body = body && body_len > 0;
	int ep = m ? route(m, a, id, has_id) : -1;
	bool bodiless = m == M_PATCH && !has_body && bodiless_patch(ep, rest);
	json_t *json = NULL;
	const char *bad_id;
	if (!check_request(method, m, a, has_body || bodiless, ep, reply)) {
		metric_inc(request_metric(m, (unsigned)ep, false));
		if (endpoints[ep].takes_id && (bad_id = id_problem(id, has_id)))
			fault(reply, 400, bad_id);
		else if (m == M_GET || bodiless || (json = parse_body(body, body_len, reply)))
			handle(ctx, (unsigned)ep, m,
			       endpoints[ep].takes_id	     ? id
			       : endpoints[ep].sub && has_id ? rest
							     : NULL,
			       json, reply);
		if (reply->status >= 400)
			metric_inc(request_metric(m, (unsigned)ep, true));
	}
	json_decref(json);
}
