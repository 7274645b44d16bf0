/* HTTP/1.1 request heads (RFC 9112), parsed in place. Lines may end in CRLF or a bare LF. */
#include "api/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The end of the head: the index just past the blank line, or 0 when it is not there yet. */
static size_t head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* The next line from *p (before end), without its line ending, NUL-terminated in place. */
static char *next_line(char **p, char *end)
{
	char *start = *p;
	char *nl = memchr(start, '\n', (size_t)(end - start));
	if (!nl)
		return NULL;
	*nl = '\0';
	if (nl > start && nl[-1] == '\r')
		nl[-1] = '\0';
	*p = nl + 1;
	return start;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static int fail(const char **why, const char *what, int status)
{
	*why = what;
	return -status;
}

/* "METHOD /path HTTP/1.x" */
static int parse_request_line(char *line, struct http_request *req, bool *http10, const char **why)
{
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' '))
		return fail(why, "malformed request line", 400);
	*sp1 = *sp2 = '\0';
	for (char *m = line; *m; m++)
		if (!isupper((unsigned char)*m))
			return fail(why, "malformed request method", 400);
	char *target = sp1 + 1, *version = sp2 + 1;
	if (line[0] == '\0' || target[0] != '/' || strncmp(version, "HTTP/", 5) != 0)
		return fail(why, "malformed request line", 400);
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0)
		return fail(why, "only HTTP/1.0 and HTTP/1.1 are served", 505);
	*http10 = strcmp(version, "HTTP/1.0") == 0;
	char *query = strchr(target, '?');
	if (query)
		*query = '\0';
	req->method = line;
	req->path = target;
	return 0;
}

static int header(char *line, struct http_request *req, bool *keep_alive, const char **why)
{
	char *colon = strchr(line, ':');
	if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
		return fail(why, "malformed header line", 400);
	*colon = '\0';
	for (char *n = line; *n; n++)
		if (*n == ' ' || *n == '\t')
			return fail(why, "malformed header name", 400);
	char *value = trim(colon + 1);
	if (strcasecmp(line, "Content-Length") == 0) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(value, &end, 10);
		/* A leading digit: strtoull would take a sign or spaces. */
		if (!isdigit((unsigned char)value[0]) || *end || errno)
			return fail(why, "invalid Content-Length", 400);
		if (req->has_length && req->content_length != n)
			return fail(why, "conflicting Content-Length headers", 400);
		req->has_length = true;
		req->content_length = (size_t)n;
	} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
		return fail(why, "transfer codings (chunked bodies) are not supported", 501);
	} else if (strcasecmp(line, "Expect") == 0) {
		if (strcasecmp(value, "100-continue") != 0)
			return fail(why, "unsupported Expect header", 400);
		req->expect_continue = true;
	} else if (strcasecmp(line, "Connection") == 0) {
		if (strcasecmp(value, "close") == 0)
			req->close = true;
		else if (strcasecmp(value, "keep-alive") == 0)
			*keep_alive = true;
	}
	return 0;
}

int http_parse_head(char *buf, size_t len, struct http_request *req, const char **why)
{
	*req = (struct http_request){ 0 };
	*why = NULL;
	size_t end = head_end(buf, len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX);
	if (!end)
		return len >= HTTP_HEAD_MAX ? fail(why, "request headers too large", 431) : 0;
	char *p = buf, *stop = buf + end;
	/* Blank lines before the request line are allowed (RFC 9112, 2.2). */
	char *line;
	while ((line = next_line(&p, stop)) && line[0] == '\0')
		;
	if (!line)
		return fail(why, "no request line", 400);
	bool http10 = false, keep_alive = false;
	int rc = parse_request_line(line, req, &http10, why);
	while (!rc && (line = next_line(&p, stop)) && line[0] != '\0')
		rc = header(line, req, &keep_alive, why);
	if (rc)
		return rc;
	if (http10 && !keep_alive)
		req->close = true;
	req->head_len = end;
	return 1;
}

const char *http_reason(unsigned status)
{
	static const struct {
		unsigned status;
		const char *reason;
	} reasons[] = { { 100, "Continue" },
			{ 200, "OK" },
			{ 204, "No Content" },
			{ 400, "Bad Request" },
			{ 404, "Not Found" },
			{ 405, "Method Not Allowed" },
			{ 431, "Request Header Fields Too Large" },
			{ 500, "Internal Server Error" },
			{ 501, "Not Implemented" },
			{ 503, "Service Unavailable" },
			{ 505, "HTTP Version Not Supported" } };
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}
