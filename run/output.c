/* --json: the run as one JSON object on stdout. Output that is valid UTF-8 is a string
 * ("stdout"), anything else is base64 ("stdout_base64"), so binary output survives. */
#include "run/run.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *base64(const char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)p[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)p[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = 0;
	return out;
}

static void put_output(json_t *obj, const char *key, const char *p, size_t n)
{
	char key64[32];
	if (!p) /* nothing was captured */
		p = "", n = 0;
	json_t *s = json_stringn(p, n);

	if (s) {
		json_object_set_new(obj, key, s);
		return;
	}
	snprintf(key64, sizeof(key64), "%s_base64", key);
	char *b = base64(p, n);
	json_object_set_new(obj, key64, json_string(b ? b : ""));
	free(b);
}

static json_t *ms(double s)
{
	return json_real((double)(long long)(s * 1e6) / 1e3);
}

void output_json(const struct run_result *res)
{
	json_t *o = json_object();

	json_object_set_new(o, "exit_code", json_integer(res->exit_code));
	if (res->signal)
		json_object_set_new(o, "signal", json_integer(res->signal));
	json_object_set_new(o, "timed_out", json_boolean(res->timed_out));
	put_output(o, "stdout", res->out, res->out_len);
	put_output(o, "stderr", res->errout, res->err_len);
	if (res->error[0])
		json_object_set_new(o, "error", json_string(res->error));
	json_object_set_new(o, "connections", json_integer(run_connects));
	json_object_set_new(o, "timings_ms",
			    json_pack("{s:o, s:o, s:o, s:o, s:o}", "restore", ms(res->t_restore),
				      "connect", ms(res->t_connect), "command", ms(res->t_command),
				      "teardown", ms(res->t_teardown), "total", ms(res->t_total)));
	json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10));
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(o);
}
