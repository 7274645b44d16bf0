/* The API's HTTP/1.1 request-head parser (api/http.c), as a connection feeds it: the input
 * is a byte stream that arrives in chunks (the first byte sets their size), each arrival is
 * parsed from the start of what is buffered, as the API thread's conn_serve does, and a
 * complete request is consumed with its body before the next one (pipelining). Every
 * answer is checked for what the server relies on: a head inside the bytes parsed, method
 * and path NUL-terminated inside it, a known status for a refusal, and the same answer for
 * a longer buffer once a head was complete. */
#include <stdio.h>

#include "api/http.h"
#include "fuzz.h"

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char head[HTTP_HEAD_MAX + 1];

/* Parses like conn_serve: a NUL-terminated copy of at most HTTP_HEAD_MAX bytes. */
static int parse(const uint8_t *in, size_t len, struct http_request *req, const char **why)
{
	size_t look = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	memcpy(head, in, look);
	head[look] = '\0';
	*req = (struct http_request){ 0 };
	*why = NULL;
	int rc = http_parse_head(head, look, req, why);
	if (rc == 1) {
		check(req->head_len > 0 && req->head_len <= look);
		check(req->method >= head && req->method < head + req->head_len);
		check(req->path >= head && req->path < head + req->head_len);
		check(memchr(req->method, '\0', (size_t)(head + req->head_len - req->method)));
		check(memchr(req->path, '\0', (size_t)(head + req->head_len - req->path)));
		check(req->has_length || req->content_length == 0);
	} else if (rc < 0) {
		check(*why && **why);
		check(strcmp(http_reason((unsigned)-rc), "Unknown") != 0);
	} else {
		check(rc == 0 && look < HTTP_HEAD_MAX);
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	size_t chunk = fin8(&f) + 1;
	const uint8_t *stream = f.p;
	size_t total = f.n, start = 0, have = 0;
	while (start < total) {
		have = have + chunk < total ? have + chunk : total;
		struct http_request req;
		const char *why;
		int rc = parse(stream + start, have - start, &req, &why);
		if (rc < 0)
			return 0; /* the server replies and closes */
		if (rc == 0) {
			if (have == total)
				return 0;
			continue;
		}
		/* The whole stream from here parses to the same head. */
		struct http_request again;
		size_t head_len = req.head_len, body = req.content_length;
		check(parse(stream + start, total - start, &again, &why) == 1);
		check(again.head_len == head_len && again.content_length == body);
		if (body > total - start - head_len)
			return 0; /* the body never comes */
		start += head_len + body;
		if (have < start)
			have = start;
	}
	return 0;
}
