/* The agent protocol's framing, payload parsers and frame order (run/agent_proto.h). No
 * I/O here: both programs and the fuzz targets feed it bytes. */
#include "run/agent_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static void proto_why(char *why, size_t why_len,
							    const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
}
/* The message into why, and -EPROTO: a macro, so that the static analyzer sees the failure
 * (it does not follow a variadic function's return value). */
#define proto_fail(why, why_len, ...) (proto_why(why, why_len, __VA_ARGS__), -EPROTO)

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v, p[1] = v >> 8, p[2] = v >> 16, p[3] = v >> 24;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

const char *agent_type_name(uint32_t type)
{
	switch (type) {
	case AGENT_REQUEST:
		return "REQUEST";
	case AGENT_FILE:
		return "FILE";
	case AGENT_FILE_DATA:
		return "FILE_DATA";
	case AGENT_START:
		return "START";
	case AGENT_STDIN:
		return "STDIN";
	case AGENT_STDIN_EOF:
		return "STDIN_EOF";
	case AGENT_PING:
		return "PING";
	case AGENT_READY:
		return "READY";
	case AGENT_STARTED:
		return "STARTED";
	case AGENT_STDOUT:
		return "STDOUT";
	case AGENT_STDERR:
		return "STDERR";
	case AGENT_EXIT:
		return "EXIT";
	case AGENT_ERROR:
		return "ERROR";
	}
	return "unknown";
}

int agent_frame_check(enum agent_side side, uint32_t type, uint32_t len, char *why, size_t why_len)
{
	uint32_t min = 0, max = 0;
	bool host_type = type >= AGENT_REQUEST && type <= AGENT_PING;
	bool agent_type = type >= AGENT_READY && type <= AGENT_ERROR;

	if (side == AGENT_SIDE_AGENT ? !host_type : !agent_type)
		return proto_fail(why, why_len, "frame type 0x%x is not one the %s receives", type,
				  side == AGENT_SIDE_AGENT ? "agent" : "host");
	switch (type) {
	case AGENT_REQUEST:
		min = AGENT_REQ_FIXED + 3, max = AGENT_FRAME_MAX; /* workdir, argv[0], 1 char */
		break;
	case AGENT_FILE:
		min = AGENT_FILE_FIXED + 2, max = AGENT_FILE_FIXED + AGENT_STR_MAX;
		break;
	case AGENT_FILE_DATA:
	case AGENT_STDIN:
	case AGENT_STDOUT:
	case AGENT_STDERR:
		min = 1, max = AGENT_FRAME_MAX;
		break;
	case AGENT_START:
	case AGENT_STDIN_EOF:
	case AGENT_PING:
	case AGENT_READY:
	case AGENT_STARTED:
		break;
	case AGENT_EXIT:
		min = max = AGENT_EXIT_SIZE;
		break;
	case AGENT_ERROR:
		min = 1, max = AGENT_ERROR_MAX;
		break;
	}
	if (len < min || len > max)
		return proto_fail(why, why_len, "%s frame of %u bytes (allowed: %u to %u)",
				  agent_type_name(type), len, min, max);
	return 0;
}

void agent_dec_init(struct agent_dec *d, enum agent_side side)
{
	d->side = side;
	d->hdr_have = d->type = d->len = d->have = 0;
}

bool agent_dec_idle(const struct agent_dec *d)
{
	return d->hdr_have == 0;
}

int agent_dec_feed(struct agent_dec *d, const void *data, size_t n, agent_frame_fn fn, void *ctx,
		   char *why, size_t why_len)
{
	const uint8_t *p = data;

	while (n) {
		if (d->hdr_have < AGENT_HDR_SIZE) {
			size_t take = AGENT_HDR_SIZE - d->hdr_have;

			if (take > n)
				take = n;
			memcpy(d->hdr + d->hdr_have, p, take);
			d->hdr_have += take, p += take, n -= take;
			if (d->hdr_have < AGENT_HDR_SIZE)
				return 0;
			d->type = get32(d->hdr), d->len = get32(d->hdr + 4), d->have = 0;
			int r = agent_frame_check(d->side, d->type, d->len, why, why_len);
			if (r)
				return r;
		}
		/* The check above bounds len by AGENT_FRAME_MAX, the buffer's size. */
		size_t take = d->len - d->have;
		if (take > n)
			take = n;
		memcpy(d->buf + d->have, p, take);
		d->have += take, p += take, n -= take;
		if (d->have < d->len)
			return 0;
		d->hdr_have = 0;
		int r = fn(ctx, d->type, d->buf, d->len);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The next NUL-terminated string of at most AGENT_STR_MAX bytes at *pos, or NULL. */
static const char *next_str(const uint8_t *p, uint32_t len, uint32_t *pos)
{
	if (*pos >= len)
		return NULL;
	const uint8_t *s = p + *pos;
	uint32_t room = len - *pos;
	const uint8_t *nul = memchr(s, 0, room < AGENT_STR_MAX + 1 ? room : AGENT_STR_MAX + 1);
	if (!nul)
		return NULL;
	*pos += (uint32_t)(nul - s) + 1;
	return (const char *)s;
}

int agent_request_parse(const uint8_t *p, uint32_t len, struct agent_request *r, char *why,
			size_t why_len)
{
	if (len < AGENT_REQ_FIXED || len > AGENT_FRAME_MAX)
		return proto_fail(why, why_len, "REQUEST of %u bytes", len);
	r->version = get32(p);
	r->argc = get32(p + 4);
	r->envc = get32(p + 8);
	r->flags = get32(p + 12);
	r->realtime_sec = (int64_t)get64(p + 16);
	r->realtime_nsec = get32(p + 24);
	/* p + 28: four bytes reserved, zero */
	memcpy(r->entropy, p + 32, AGENT_ENTROPY_SIZE);
	if (r->version != AGENT_PROTO_VERSION)
		return proto_fail(why, why_len, "protocol version %u (this side speaks %u)",
				  r->version, AGENT_PROTO_VERSION);
	if (r->flags || get32(p + 28))
		return proto_fail(why, why_len, "unknown flags 0x%x in the request", r->flags);
	if (r->argc < 1 || r->argc > AGENT_ARGC_MAX)
		return proto_fail(why, why_len, "argc %u (allowed: 1 to %u)", r->argc,
				  AGENT_ARGC_MAX);
	if (r->envc > AGENT_ENVC_MAX)
		return proto_fail(why, why_len, "envc %u (allowed: up to %u)", r->envc,
				  AGENT_ENVC_MAX);
	if (r->realtime_sec < 0 || r->realtime_nsec >= 1000000000)
		return proto_fail(why, why_len, "a wall-clock time of %lld s %u ns",
				  (long long)r->realtime_sec, r->realtime_nsec);
	uint32_t pos = AGENT_REQ_FIXED;
	r->workdir = next_str(p, len, &pos);
	if (!r->workdir || (r->workdir[0] && r->workdir[0] != '/'))
		return proto_fail(why, why_len, "the workdir is missing, too long or not absolute");
	for (uint32_t i = 0; i < r->argc; i++) {
		r->argv[i] = next_str(p, len, &pos);
		if (!r->argv[i])
			return proto_fail(why, why_len,
					  "argv[%u] is missing or longer than %u bytes", i,
					  AGENT_STR_MAX);
	}
	r->argv[r->argc] = NULL;
	if (!r->argv[0][0])
		return proto_fail(why, why_len, "argv[0] is empty");
	for (uint32_t i = 0; i < r->envc; i++) {
		const char *e = next_str(p, len, &pos);
		if (!e)
			return proto_fail(why, why_len,
					  "env[%u] is missing or longer than %u bytes", i,
					  AGENT_STR_MAX);
		const char *eq = strchr(e, '=');
		if (!eq || eq == e)
			return proto_fail(why, why_len, "env[%u] is not KEY=VALUE", i);
		r->envp[i] = e;
	}
	r->envp[r->envc] = NULL;
	if (pos != len)
		return proto_fail(why, why_len, "%u bytes after the last string", len - pos);
	return 0;
}

int agent_file_parse(const uint8_t *p, uint32_t len, struct agent_file *f, char *why,
		     size_t why_len)
{
	if (len < AGENT_FILE_FIXED)
		return proto_fail(why, why_len, "FILE of %u bytes", len);
	f->size = get64(p);
	f->mode = get32(p + 8);
	uint32_t plen = get32(p + 12);
	if (f->size > AGENT_FILE_SIZE_MAX)
		return proto_fail(why, why_len, "a file of %llu bytes (at most %llu)",
				  (unsigned long long)f->size,
				  (unsigned long long)AGENT_FILE_SIZE_MAX);
	if (f->mode & ~07777u)
		return proto_fail(why, why_len, "file mode 0%o", f->mode);
	if (plen < 2 || plen > AGENT_STR_MAX || plen != len - AGENT_FILE_FIXED)
		return proto_fail(why, why_len, "a path of %u bytes in a FILE of %u", plen, len);
	memcpy(f->path, p + AGENT_FILE_FIXED, plen);
	f->path[plen] = 0;
	if (f->path[0] != '/' || memchr(f->path, 0, plen) || f->path[plen - 1] == '/')
		return proto_fail(why, why_len, "the path is not an absolute file name");
	return 0;
}

int agent_exit_parse(const uint8_t *p, uint32_t len, struct agent_exit *e, char *why,
		     size_t why_len)
{
	if (len != AGENT_EXIT_SIZE)
		return proto_fail(why, why_len, "EXIT of %u bytes", len);
	e->how = get32(p), e->value = get32(p + 4);
	if (e->how == AGENT_EXIT_CODE && e->value <= 255)
		return 0;
	if (e->how == AGENT_EXIT_SIGNAL && e->value >= 1 && e->value <= 64)
		return 0;
	return proto_fail(why, why_len, "exit status kind %u value %u", e->how, e->value);
}

void agent_hdr_put(uint8_t *out, uint32_t type, uint32_t len)
{
	put32(out, type);
	put32(out + 4, len);
}

static int put_str(uint8_t *p, uint32_t *pos, const char *s)
{
	size_t n = strlen(s);

	if (n > AGENT_STR_MAX || *pos + n + 1 > AGENT_FRAME_MAX)
		return -E2BIG;
	memcpy(p + *pos, s, n + 1);
	*pos += (uint32_t)n + 1;
	return 0;
}

int agent_request_encode(uint8_t *out, const struct agent_request *r)
{
	uint8_t *p = out + AGENT_HDR_SIZE;
	const char *wd = r->workdir ? r->workdir : "";

	if (r->argc < 1 || r->argc > AGENT_ARGC_MAX || r->envc > AGENT_ENVC_MAX || !r->argv[0][0])
		return -EINVAL;
	if (wd[0] && wd[0] != '/')
		return -EINVAL;
	memset(p, 0, AGENT_REQ_FIXED);
	put32(p, AGENT_PROTO_VERSION);
	put32(p + 4, r->argc);
	put32(p + 8, r->envc);
	put32(p + 12, 0);
	put64(p + 16, (uint64_t)r->realtime_sec);
	put32(p + 24, r->realtime_nsec);
	memcpy(p + 32, r->entropy, AGENT_ENTROPY_SIZE);
	uint32_t pos = AGENT_REQ_FIXED;
	if (put_str(p, &pos, wd))
		return -E2BIG;
	for (uint32_t i = 0; i < r->argc; i++)
		if (put_str(p, &pos, r->argv[i]))
			return -E2BIG;
	for (uint32_t i = 0; i < r->envc; i++) {
		const char *eq = strchr(r->envp[i], '=');
		if (!eq || eq == r->envp[i])
			return -EINVAL;
		if (put_str(p, &pos, r->envp[i]))
			return -E2BIG;
	}
	agent_hdr_put(out, AGENT_REQUEST, pos);
	return AGENT_HDR_SIZE + (int)pos;
}

int agent_file_encode(uint8_t *out, uint64_t size, uint32_t mode, const char *path)
{
	size_t n = strlen(path);

	if (n < 2 || n > AGENT_STR_MAX || path[0] != '/' || path[n - 1] == '/')
		return -EINVAL;
	if (size > AGENT_FILE_SIZE_MAX || (mode & ~07777u))
		return -E2BIG;
	uint8_t *p = out + AGENT_HDR_SIZE;
	put64(p, size);
	put32(p + 8, mode);
	put32(p + 12, (uint32_t)n);
	memcpy(p + AGENT_FILE_FIXED, path, n);
	agent_hdr_put(out, AGENT_FILE, AGENT_FILE_FIXED + (uint32_t)n);
	return AGENT_HDR_SIZE + AGENT_FILE_FIXED + (int)n;
}

int agent_exit_encode(uint8_t *out, uint32_t how, uint32_t value)
{
	agent_hdr_put(out, AGENT_EXIT, AGENT_EXIT_SIZE);
	put32(out + AGENT_HDR_SIZE, how);
	put32(out + AGENT_HDR_SIZE + 4, value);
	return AGENT_HDR_SIZE + AGENT_EXIT_SIZE;
}

int agent_in_step(struct agent_in_order *o, uint32_t type, const uint8_t *p, uint32_t len,
		  char *why, size_t why_len)
{
	struct agent_file f;
	int r;

	switch (type) {
	case AGENT_PING:
		return 0;
	case AGENT_REQUEST:
		if (o->phase != 0)
			break;
		o->phase = 1;
		return 0;
	case AGENT_FILE:
		if (o->phase != 1 || o->file_left)
			break;
		if (++o->files > AGENT_FILES_MAX)
			return proto_fail(why, why_len, "more than %u files", AGENT_FILES_MAX);
		r = agent_file_parse(p, len, &f, why, why_len);
		if (r)
			return r;
		o->file_left = f.size;
		return 0;
	case AGENT_FILE_DATA:
		if (o->phase != 1 || len > o->file_left)
			break;
		o->file_left -= len;
		return 0;
	case AGENT_START:
		if (o->phase != 1 || o->file_left)
			break;
		o->phase = 2;
		return 0;
	case AGENT_STDIN:
		if (o->phase != 2)
			break;
		return 0;
	case AGENT_STDIN_EOF:
		if (o->phase != 2)
			break;
		o->phase = 3;
		return 0;
	}
	return proto_fail(why, why_len, "%s frame out of order (phase %d, %llu file bytes due)",
			  agent_type_name(type), o->phase, (unsigned long long)o->file_left);
}

int agent_out_step(struct agent_out_order *o, uint32_t type, const uint8_t *p, uint32_t len,
		   char *why, size_t why_len)
{
	struct agent_exit e;
	static const char *const phases[] = { "before READY", "before STARTED", "while running",
					      "after the end" };

	switch (type) {
	case AGENT_READY:
		if (o->phase != 0)
			break;
		o->phase = 1;
		return 0;
	case AGENT_STARTED:
		if (o->phase != 1)
			break;
		o->phase = 2;
		return 0;
	case AGENT_ERROR:
		if (o->phase != 1)
			break;
		o->phase = 3;
		return 0;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		if (o->phase != 2)
			break;
		return 0;
	case AGENT_EXIT:
		if (o->phase != 2)
			break;
		if (agent_exit_parse(p, len, &e, why, why_len))
			return -EPROTO;
		o->phase = 3;
		return 0;
	}
	return proto_fail(why, why_len, "%s frame out of order (%s)", agent_type_name(type),
			  phases[o->phase >= 0 && o->phase <= 3 ? o->phase : 3]);
}
