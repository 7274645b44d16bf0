/* The log lines Firecracker writes for each API request, in its words, since tools grep for
 * them: "The API server received a Put request on \"/machine-config\" with body \"...\"."
 * Path and body are quoted and escaped the way Rust's Debug prints a string, so that a
 * request cannot put a raw control byte (a forged line break) into the log. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "core/log.h"

/* Room for one quoted field: the log line holds at most LOG_LINE_MAX bytes anyway. */
#define QUOTED_MAX 3072

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0; *cp gets its code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
	size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (s[0] > 0xf4 || len == 0 || len > n)
		return 0;
	unsigned v = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

static bool valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned cp;
	for (size_t i = 0; i < n;) {
		size_t len = p[i] < 0x80 ? 1 : utf8_seq(p + i, n - i, &cp);
		if (!len)
			return false;
		i += len;
	}
	return true;
}

/* s (n bytes) in double quotes with Rust's string escapes into out (cap bytes, cap > 16); a
 * string too long ends in "..." inside the quotes. Bytes that are not UTF-8 (the caller
 * checked the body; a path may hold any) become \xNN. */
static void quote(const char *s, size_t n, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0, stop = cap - 6; /* room for "...", the quote and the NUL */
	out[o++] = '"';
	while (i < n) {
		char esc[16];
		size_t len = 1;
		unsigned cp = p[i];
		if (cp >= 0x80 && !(len = utf8_seq(p + i, n - i, &cp))) {
			snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
			len = 1;
		} else if (cp == '"' || cp == '\\') {
			snprintf(esc, sizeof(esc), "\\%c", (char)cp);
		} else if (cp == '\n' || cp == '\r' || cp == '\t' || cp == 0) {
			snprintf(esc, sizeof(esc), "\\%c",
				 cp == '\n'   ? 'n'
				 : cp == '\r' ? 'r'
				 : cp == '\t' ? 't'
					      : '0');
		} else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			snprintf(esc, sizeof(esc), "\\u{%x}", cp);
		} else {
			memcpy(esc, s + i, len);
			esc[len] = '\0';
		}
		size_t e = strlen(esc);
		if (o + e > stop)
			break;
		memcpy(out + o, esc, e);
		o += e;
		i += len;
	}
	if (i < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
}

void api_utf8_clean(const char *in, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t n = strlen(in), o = 0;
	unsigned cp;
	for (size_t i = 0; i < n && o + 5 < cap;) {
		size_t len = p[i] < 0x80 ? 1 : utf8_seq(p + i, n - i, &cp);
		if (!len) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", p[i]);
			i++;
			continue;
		}
		memcpy(out + o, in + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
}

/* Firecracker prints the method with Rust's Debug: "Get", "Put", "Patch". */
static void method_name(const char *method, char *out, size_t cap)
{
	size_t i = 0;
	for (; method[i] && i + 1 < cap; i++) {
		char c = method[i];
		if (i > 0 && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		out[i] = (unsigned char)c < 0x20 || (unsigned char)c >= 0x7f ? '?' : c;
	}
	out[i] = '\0';
}

void api_log_request(const char *method, const char *path, const char *body, size_t body_len)
{
	if (!log_level_enabled(LOG_INFO))
		return; /* no quoting of a 50 KiB body for nothing */
	char m[16], qpath[QUOTED_MAX / 4], qbody[QUOTED_MAX];
	method_name(method, m, sizeof(m));
	quote(path, strlen(path), qpath, sizeof(qpath));
	if (!body || body_len == 0) {
		log_info("The API server received a %s request on %s.", m, qpath);
		return;
	}
	if (valid_utf8(body, body_len))
		quote(body, body_len, qbody, sizeof(qbody));
	else
		snprintf(qbody, sizeof(qbody), "\"inconvertible to UTF-8\"");
	log_info("The API server received a %s request on %s with body %s.", m, qpath, qbody);
}

void api_log_outcome(unsigned status, const char *reason, const char *fault)
{
	if (status < 400) {
		log_info("The request was executed successfully. Status code: %u %s.", status,
			 reason);
		return;
	}
	/* A message may quote the path: its control bytes are escaped, not its quotes. */
	char msg[ERR_LEN * 2];
	size_t o = 0;
	for (const unsigned char *c = (const unsigned char *)(fault ? fault : "");
	     *c && o + 8 < sizeof(msg); c++) {
		if (*c < 0x20 || *c == 0x7f)
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, "\\u{%x}", *c);
		else
			msg[o++] = (char)*c;
	}
	msg[o] = '\0';
	log_err("Received Error. Status code: %u %s. Message: %s", status, reason, msg);
}
