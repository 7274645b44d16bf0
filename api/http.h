/* The HTTP/1.1 the API needs, and no more: requests with a Content-Length body (no chunked
 * transfer coding), keep-alive, "Expect: 100-continue", and replies with a JSON body. The
 * parser works on one connection's receive buffer and never allocates. */
#ifndef EMBER_HTTP_H
#define EMBER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_HEAD_MAX (32 * 1024) /* request line and headers; more is a 431 */

struct http_request {
	const char *method; /* NUL-terminated, inside the parsed buffer */
	const char *path;   /* the target without its query string */
	size_t head_len;    /* bytes up to and including the blank line */
	bool has_length;
	size_t content_length;
	bool expect_continue;
	bool close; /* Connection: close, or HTTP/1.0 without keep-alive */
};

/* Parses the request head at the start of buf (len bytes; buf is modified: NULs end the
 * method and path). 1: complete, req filled; 0: more bytes needed; or -status for a
 * request that cannot be served (400 malformed, 431 head too large, 501 a transfer coding,
 * 505 not HTTP/1.x), in which case *why says what. */
int http_parse_head(char *buf, size_t len, struct http_request *req, const char **why);

/* The status line's reason phrase. */
const char *http_reason(unsigned status);

#endif
