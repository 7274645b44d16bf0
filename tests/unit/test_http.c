/* The API's HTTP/1.1 request-head parser (api/http.c). */
#include "unit_util.h"

#include "api/http.h"

/* Parses text (copied: the parser writes into its buffer). */
static int parse(const char *text, struct http_request *req, const char **why)
{
	static char buf[HTTP_HEAD_MAX + 64];
	size_t n = strlen(text);
	assert_true(n < sizeof(buf));
	memcpy(buf, text, n + 1);
	return http_parse_head(buf, n, req, why);
}

static void complete_heads(void **state)
{
	(void)state;
	struct http_request r;
	const char *why;
	const char *get = "GET /vm/config?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n";
	assert_int_equal(parse(get, &r, &why), 1);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.path, "/vm/config");
	assert_int_equal(r.head_len, strlen(get));
	assert_false(r.has_length);
	assert_false(r.close);

	/* Bare LF line ends, a body length, Expect, and what follows the head left alone. */
	const char *put =
		"PUT /drives/root HTTP/1.1\ncontent-length:  12 \nExpect: 100-continue\n\n"
		"{\"a\": 1}";
	assert_int_equal(parse(put, &r, &why), 1);
	assert_string_equal(r.method, "PUT");
	assert_true(r.has_length);
	assert_int_equal(r.content_length, 12);
	assert_true(r.expect_continue);
	assert_int_equal(r.head_len, strlen(put) - strlen("{\"a\": 1}"));

	assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r, &why), 1);
	assert_true(r.close);
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &r, &why), 1);
	assert_true(r.close);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, &why), 1);
	assert_false(r.close);
	/* Blank lines before the request line are skipped. */
	assert_int_equal(parse("\r\nGET / HTTP/1.1\r\n\r\n", &r, &why), 1);
	assert_string_equal(r.path, "/");
	/* Repeated equal Content-Length headers are one. */
	assert_int_equal(
		parse("PUT / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", &r, &why),
		1);
	assert_int_equal(r.content_length, 3);
}

static void incomplete_heads(void **state)
{
	(void)state;
	struct http_request r;
	const char *why;
	assert_int_equal(parse("", &r, &why), 0);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n", &r, &why), 0);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n\r", &r, &why), 0);
}

/* The call fails with -status and a reason. */
static void refused_with(const char *text, int status)
{
	struct http_request r;
	const char *why = NULL;
	int rc = parse(text, &r, &why);
	if (rc != -status)
		fail_msg("\"%s\": %d, expected %d", text, rc, -status);
	assert_non_null(why);
}

static void bad_heads(void **state)
{
	(void)state;
	refused_with("THIS IS NOT HTTP\r\n\r\n", 400);
	refused_with("GET /\r\n\r\n", 400);
	refused_with("get / HTTP/1.1\r\n\r\n", 400);
	refused_with("GET noslash HTTP/1.1\r\n\r\n", 400);
	refused_with("GET / HTTP/1.1 extra\r\n\r\n", 400);
	refused_with("GET / FTP/1.1\r\n\r\n", 400);
	refused_with("GET / HTTP/2.0\r\n\r\n", 505);
	refused_with("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
	refused_with("GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400);
	refused_with("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
	refused_with("GET / HTTP/1.1\r\n continued: x\r\n\r\n", 400);
	refused_with("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
	refused_with("PUT / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400);
	refused_with("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
	refused_with("PUT / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400);
	refused_with("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
	refused_with("PUT / HTTP/1.1\r\nExpect: something\r\n\r\n", 400);
}

static void head_too_large(void **state)
{
	(void)state;
	static char big[HTTP_HEAD_MAX + 32];
	strcpy(big, "GET / HTTP/1.1\r\nX-Big: ");
	size_t n = strlen(big);
	memset(big + n, 'x', HTTP_HEAD_MAX - n);
	big[HTTP_HEAD_MAX] = '\0';
	refused_with(big, 431);
	/* Just under the limit, complete: served. */
	memcpy(big + HTTP_HEAD_MAX - 8, "\r\n\r\n", 5);
	struct http_request r;
	const char *why;
	assert_int_equal(parse(big, &r, &why), 1);
}

static void reasons(void **state)
{
	(void)state;
	assert_string_equal(http_reason(204), "No Content");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(299), "Unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(complete_heads), cmocka_unit_test(incomplete_heads),
		cmocka_unit_test(bad_heads),	  cmocka_unit_test(head_too_large),
		cmocka_unit_test(reasons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
