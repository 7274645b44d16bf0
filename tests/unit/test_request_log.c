/* The API's log lines (api/request_log.c): Firecracker's words, with path and body quoted as
 * Rust's Debug quotes a string (parsed_request.rs describe()), so that no request can put a
 * raw control byte into the log; and fault messages kept UTF-8. */
#include "unit_util.h"

#include "api/api.h"
#include "core/log.h"

/* The log file's text after fn ran with the log at Info. */
static char *logged(void (*fn)(void))
{
	const char *path = unit_tmp_file("", 0);
	assert_int_equal(log_open(path), 0);
	assert_int_equal(log_set_level_name("Info"), 0);
	fn();
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char text[16384];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	unlink(path);
	return text;
}

static void contains(const char *text, const char *want)
{
	if (strstr(text, want))
		return;
	/* fputs, not a %s: GCC's format checker under ASan takes the strings for NULL. */
	fputs("log\n", stderr);
	fputs(text, stderr);
	fputs("\nlacks\n", stderr);
	fputs(want, stderr);
	fail();
}

static void put_with_body(void)
{
	const char body[] = "{\"a\": \"x\\\\y\"}";
	api_log_request("PUT", "/machine-config", body, sizeof(body) - 1);
}

static void firecracker_words(void **state)
{
	(void)state;
	contains(logged(put_with_body),
		 "The API server received a Put request on \"/machine-config\" with body "
		 "\"{\\\"a\\\": \\\"x\\\\\\\\y\\\"}\".\n");
}

static void get_without_body(void)
{
	api_log_request("GET", "/", NULL, 0);
	api_log_request("PATCH", "/vm", "", 0);
}

static void no_body(void **state)
{
	(void)state;
	char *text = logged(get_without_body);
	contains(text, "The API server received a Get request on \"/\".\n");
	contains(text, "The API server received a Patch request on \"/vm\".\n");
}

static void control_bytes(void)
{
	const char body[] = "a\nb\r\t\x1b[31m\x01\x7f\0z\xc2\x85\xc3\xa9";
	api_log_request("PUT", "/x\x1b\x07y\x80", body, sizeof(body) - 1);
}

/* Rust's escapes: \n \r \t \0 and \u{..} for the other controls (C1 ones too); valid UTF-8
 * stays; a path byte that is not UTF-8 becomes \x80. */
static void escapes_control_bytes(void **state)
{
	(void)state;
	char *text = logged(control_bytes);
	contains(text, "on \"/x\\u{1b}\\u{7}y\\x80\" with body "
		       "\"a\\nb\\r\\t\\u{1b}[31m\\u{1}\\u{7f}\\0z\\u{85}\xc3\xa9\".\n");
	for (const char *c = text; *c; c++)
		if (*c != '\n' && (unsigned char)*c < 0x20)
			fail_msg("raw control byte 0x%02x in the log", (unsigned char)*c);
	assert_int_equal(strchr(text, '\n')[1], '\0'); /* one line */
}

static void not_utf8(void)
{
	api_log_request("PUT", "/drives/a", "{\"x\": \"\xff\"}", 10);
}

static void body_not_utf8(void **state)
{
	(void)state;
	contains(logged(not_utf8), "with body \"inconvertible to UTF-8\".\n");
}

static void long_body(void)
{
	static char body[60000];
	memset(body, 'q', sizeof(body));
	api_log_request("PUT", "/mmds", body, sizeof(body));
}

static void long_body_is_cut(void **state)
{
	(void)state;
	char *text = logged(long_body);
	contains(text, "qqq...\".\n");
	assert_true(strlen(text) < LOG_LINE_MAX);
}

static void outcomes(void)
{
	api_log_outcome(204, "No Content", NULL);
	api_log_outcome(400, "Bad Request", "Invalid request method and/or path: GET a\x1b.");
}

static void outcome_lines(void **state)
{
	(void)state;
	char *text = logged(outcomes);
	contains(text, "The request was executed successfully. Status code: 204 No Content.\n");
	contains(text, "Received Error. Status code: 400 Bad Request. Message: Invalid request "
		       "method and/or path: GET a\\u{1b}.\n");
}

static void utf8_clean(void **state)
{
	(void)state;
	char out[64];
	api_utf8_clean("a\xc3\xa9 \x80 \xe2\x82 z", out, sizeof(out));
	assert_string_equal(out, "a\xc3\xa9 \\x80 \\xe2\\x82 z");
	api_utf8_clean("\xed\xa0\x80", out, sizeof(out)); /* a surrogate is not UTF-8 */
	assert_string_equal(out, "\\xed\\xa0\\x80");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(firecracker_words),
		cmocka_unit_test(no_body),
		cmocka_unit_test(escapes_control_bytes),
		cmocka_unit_test(body_not_utf8),
		cmocka_unit_test(long_body_is_cut),
		cmocka_unit_test(outcome_lines),
		cmocka_unit_test(utf8_clean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
