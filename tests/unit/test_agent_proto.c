/* ember-run's agent protocol (run/agent_proto.c): frames through the push decoder, whole or
 * a byte at a time; the limits on each type's length; the request, file and exit payloads;
 * the order each side accepts. ember-run and the agent are programs of their own, not
 * part of libember: the protocol's source comes in here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "run/agent_proto.c"

static uint8_t buf[AGENT_HDR_SIZE + AGENT_FRAME_MAX];

struct seen {
	unsigned n;
	uint32_t type[16], len[16];
	uint8_t first[16];
};

static int record(void *ctx, uint32_t type, const uint8_t *p, uint32_t len)
{
	struct seen *s = ctx;
	if (s->n < 16) {
		s->type[s->n] = type, s->len[s->n] = len;
		s->first[s->n] = len ? p[0] : 0;
	}
	s->n++;
	return 0;
}

static struct agent_request sample(void)
{
	struct agent_request r = { 0 };
	r.workdir = "/tmp";
	r.argc = 3;
	r.argv[0] = "sh", r.argv[1] = "-c", r.argv[2] = "echo $A";
	r.envc = 2;
	r.envp[0] = "A=1", r.envp[1] = "PATH=/bin";
	r.realtime_sec = 1800000000, r.realtime_nsec = 5;
	for (int i = 0; i < AGENT_ENTROPY_SIZE; i++)
		r.entropy[i] = (uint8_t)i;
	return r;
}

static void request_round_trip(void **state)
{
	(void)state;
	struct agent_request in = sample(), out;
	char why[200];
	int n = agent_request_encode(buf, &in);
	assert_true(n > AGENT_HDR_SIZE + AGENT_REQ_FIXED);
	assert_int_equal(agent_frame_check(AGENT_SIDE_AGENT, AGENT_REQUEST,
					   (uint32_t)n - AGENT_HDR_SIZE, why, sizeof(why)),
			 0);
	assert_int_equal(agent_request_parse(buf + AGENT_HDR_SIZE, (uint32_t)n - AGENT_HDR_SIZE,
					     &out, why, sizeof(why)),
			 0);
	assert_int_equal(out.argc, 3);
	assert_string_equal(out.argv[2], "echo $A");
	assert_null(out.argv[3]);
	assert_int_equal(out.envc, 2);
	assert_string_equal(out.envp[1], "PATH=/bin");
	assert_null(out.envp[2]);
	assert_string_equal(out.workdir, "/tmp");
	assert_int_equal(out.realtime_sec, 1800000000);
	assert_int_equal(out.realtime_nsec, 5);
	assert_memory_equal(out.entropy, in.entropy, AGENT_ENTROPY_SIZE);
}

/* The same frames come out whether the bytes arrive at once or one by one. */
static void decoder_chunking(void **state)
{
	(void)state;
	static uint8_t stream[3 * (AGENT_HDR_SIZE + AGENT_FRAME_MAX)];
	size_t len = 0;
	struct agent_request r = sample();
	int n = agent_request_encode(stream, &r);
	len += (size_t)n;
	agent_hdr_put(stream + len, AGENT_START, 0);
	len += AGENT_HDR_SIZE;
	agent_hdr_put(stream + len, AGENT_STDIN, AGENT_FRAME_MAX);
	memset(stream + len + AGENT_HDR_SIZE, 'z', AGENT_FRAME_MAX);
	len += AGENT_HDR_SIZE + AGENT_FRAME_MAX;

	static struct agent_dec d;
	struct seen whole = { 0 }, bytes = { 0 };
	char why[200];
	agent_dec_init(&d, AGENT_SIDE_AGENT);
	assert_int_equal(agent_dec_feed(&d, stream, len, record, &whole, why, sizeof(why)), 0);
	assert_true(agent_dec_idle(&d));
	agent_dec_init(&d, AGENT_SIDE_AGENT);
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(
			agent_dec_feed(&d, stream + i, 1, record, &bytes, why, sizeof(why)), 0);
		if (i + 1 < len && i + 1 != (size_t)n && i + 1 != (size_t)n + AGENT_HDR_SIZE)
			assert_false(agent_dec_idle(&d));
	}
	assert_int_equal(whole.n, 3);
	assert_int_equal(bytes.n, 3);
	assert_memory_equal(whole.type, bytes.type, sizeof(whole.type));
	assert_memory_equal(whole.len, bytes.len, sizeof(whole.len));
	assert_int_equal(whole.type[2], AGENT_STDIN);
	assert_int_equal(whole.len[2], AGENT_FRAME_MAX);
	assert_int_equal(bytes.first[2], 'z');
}

/* A length beyond the type's bound stops the decoder at the header, before any payload. */
static void decoder_refuses_lies(void **state)
{
	(void)state;
	static struct agent_dec d;
	struct seen s = { 0 };
	char why[200] = "";
	uint8_t hdr[AGENT_HDR_SIZE];

	agent_dec_init(&d, AGENT_SIDE_HOST);
	agent_hdr_put(hdr, AGENT_STDOUT, AGENT_FRAME_MAX + 1);
	assert_int_equal(agent_dec_feed(&d, hdr, sizeof(hdr), record, &s, why, sizeof(why)),
			 -EPROTO);
	assert_non_null(strstr(why, "STDOUT frame of 65537 bytes"));
	assert_int_equal(s.n, 0);

	agent_dec_init(&d, AGENT_SIDE_HOST);
	agent_hdr_put(hdr, AGENT_EXIT, 9);
	assert_int_equal(agent_dec_feed(&d, hdr, sizeof(hdr), record, &s, why, sizeof(why)),
			 -EPROTO);
	agent_hdr_put(hdr, AGENT_STARTED, 1);
	agent_dec_init(&d, AGENT_SIDE_HOST);
	assert_int_equal(agent_dec_feed(&d, hdr, sizeof(hdr), record, &s, why, sizeof(why)),
			 -EPROTO);
	/* Each side takes only the other side's types. */
	agent_dec_init(&d, AGENT_SIDE_HOST);
	agent_hdr_put(hdr, AGENT_STDIN, 1);
	assert_int_equal(agent_dec_feed(&d, hdr, sizeof(hdr), record, &s, why, sizeof(why)),
			 -EPROTO);
	assert_non_null(strstr(why, "not one the host receives"));
	agent_dec_init(&d, AGENT_SIDE_AGENT);
	agent_hdr_put(hdr, AGENT_STDOUT, 1);
	assert_int_equal(agent_dec_feed(&d, hdr, sizeof(hdr), record, &s, why, sizeof(why)),
			 -EPROTO);
	agent_hdr_put(hdr, 0x4242, 0);
	agent_dec_init(&d, AGENT_SIDE_AGENT);
	assert_int_equal(agent_dec_feed(&d, hdr, sizeof(hdr), record, &s, why, sizeof(why)),
			 -EPROTO);
	assert_int_equal(s.n, 0);
}

/* Encodes sample() with one change made by fix on the payload, then parses it. */
static int parse_with(void (*fix)(uint8_t *p, uint32_t *len))
{
	struct agent_request r = sample(), out;
	char why[200];
	int n = agent_request_encode(buf, &r);
	uint32_t len = (uint32_t)n - AGENT_HDR_SIZE;
	fix(buf + AGENT_HDR_SIZE, &len);
	return agent_request_parse(buf + AGENT_HDR_SIZE, len, &out, why, sizeof(why));
}

static void fix_none(uint8_t *p, uint32_t *len)
{
	(void)p, (void)len;
}
static void fix_argc0(uint8_t *p, uint32_t *len)
{
	(void)len;
	p[4] = 0;
}
static void fix_argc_big(uint8_t *p, uint32_t *len)
{
	(void)len;
	p[5] = 2; /* 515 */
}
static void fix_envc_more(uint8_t *p, uint32_t *len)
{
	(void)len;
	p[8] = 3; /* one more string than there is */
}
static void fix_trailing(uint8_t *p, uint32_t *len)
{
	p[(*len)++] = 'x';
}
static void fix_unterminated(uint8_t *p, uint32_t *len)
{
	p[*len - 1] = 'x';
}
static void fix_env_no_eq(uint8_t *p, uint32_t *len)
{
	p[*len - 6] = 'X'; /* "PATH=/bin": the '=' */
}
static void fix_relative_wd(uint8_t *p, uint32_t *len)
{
	(void)len;
	p[AGENT_REQ_FIXED] = 't';
}
static void fix_version(uint8_t *p, uint32_t *len)
{
	(void)len;
	p[0] = 9;
}
static void fix_nsec(uint8_t *p, uint32_t *len)
{
	(void)len;
	p[27] = 0xff;
}
static void fix_short(uint8_t *p, uint32_t *len)
{
	(void)p;
	*len = AGENT_REQ_FIXED - 1;
}

static void request_refusals(void **state)
{
	(void)state;
	assert_int_equal(parse_with(fix_none), 0);
	assert_int_equal(parse_with(fix_argc0), -EPROTO);
	assert_int_equal(parse_with(fix_argc_big), -EPROTO);
	assert_int_equal(parse_with(fix_envc_more), -EPROTO);
	assert_int_equal(parse_with(fix_trailing), -EPROTO);
	assert_int_equal(parse_with(fix_unterminated), -EPROTO);
	assert_int_equal(parse_with(fix_env_no_eq), -EPROTO);
	assert_int_equal(parse_with(fix_relative_wd), -EPROTO);
	assert_int_equal(parse_with(fix_version), -EPROTO);
	assert_int_equal(parse_with(fix_nsec), -EPROTO);
	assert_int_equal(parse_with(fix_short), -EPROTO);

	/* A string longer than the limit is refused by the encoder and by the parser. */
	struct agent_request r = sample();
	char *longarg = malloc(AGENT_STR_MAX + 2);
	memset(longarg, 'a', AGENT_STR_MAX + 1);
	longarg[AGENT_STR_MAX + 1] = 0;
	r.argv[1] = longarg;
	assert_int_equal(agent_request_encode(buf, &r), -E2BIG);
	longarg[AGENT_STR_MAX] = 0;
	assert_true(agent_request_encode(buf, &r) > 0);
	free(longarg);
	r = sample();
	r.argc = AGENT_ARGC_MAX + 1;
	assert_int_equal(agent_request_encode(buf, &r), -EINVAL);
}

static void file_and_exit(void **state)
{
	(void)state;
	struct agent_file f;
	struct agent_exit e;
	char why[200];
	int n = agent_file_encode(buf, 5, 0755, "/data/x");
	assert_int_equal(n, AGENT_HDR_SIZE + AGENT_FILE_FIXED + 7);
	assert_int_equal(agent_file_parse(buf + AGENT_HDR_SIZE, (uint32_t)n - AGENT_HDR_SIZE, &f,
					  why, sizeof(why)),
			 0);
	assert_string_equal(f.path, "/data/x");
	assert_int_equal(f.size, 5);
	assert_int_equal(f.mode, 0755);
	assert_int_equal(agent_file_encode(buf, 5, 0755, "data/x"), -EINVAL);
	assert_int_equal(agent_file_encode(buf, 5, 0755, "/data/"), -EINVAL);
	assert_int_equal(agent_file_encode(buf, AGENT_FILE_SIZE_MAX + 1, 0644, "/x1"), -E2BIG);
	/* A path length that disagrees with the frame's, a NUL inside, mode bits beyond 07777. */
	agent_file_encode(buf, 5, 0644, "/abc");
	uint8_t *p = buf + AGENT_HDR_SIZE;
	p[12] = 3;
	assert_int_equal(agent_file_parse(p, AGENT_FILE_FIXED + 4, &f, why, sizeof(why)), -EPROTO);
	p[12] = 4, p[AGENT_FILE_FIXED + 2] = 0;
	assert_int_equal(agent_file_parse(p, AGENT_FILE_FIXED + 4, &f, why, sizeof(why)), -EPROTO);
	p[AGENT_FILE_FIXED + 2] = 'b', p[9] = 0x10;
	assert_int_equal(agent_file_parse(p, AGENT_FILE_FIXED + 4, &f, why, sizeof(why)), -EPROTO);

	agent_exit_encode(buf, AGENT_EXIT_CODE, 255);
	assert_int_equal(agent_exit_parse(buf + AGENT_HDR_SIZE, 8, &e, why, sizeof(why)), 0);
	agent_exit_encode(buf, AGENT_EXIT_CODE, 256);
	assert_int_equal(agent_exit_parse(buf + AGENT_HDR_SIZE, 8, &e, why, sizeof(why)), -EPROTO);
	agent_exit_encode(buf, AGENT_EXIT_SIGNAL, 9);
	assert_int_equal(agent_exit_parse(buf + AGENT_HDR_SIZE, 8, &e, why, sizeof(why)), 0);
	assert_int_equal(e.value, 9);
	agent_exit_encode(buf, AGENT_EXIT_SIGNAL, 0);
	assert_int_equal(agent_exit_parse(buf + AGENT_HDR_SIZE, 8, &e, why, sizeof(why)), -EPROTO);
	agent_exit_encode(buf, 2, 0);
	assert_int_equal(agent_exit_parse(buf + AGENT_HDR_SIZE, 8, &e, why, sizeof(why)), -EPROTO);
}

static void frame_order(void **state)
{
	(void)state;
	char why[200];
	uint8_t exitp[AGENT_HDR_SIZE + AGENT_EXIT_SIZE];
	agent_exit_encode(exitp, AGENT_EXIT_CODE, 0);
	const uint8_t *ep = exitp + AGENT_HDR_SIZE;

	/* The host's side. */
	struct agent_out_order o = { 0 };
	assert_int_equal(agent_out_step(&o, AGENT_STARTED, NULL, 0, why, sizeof(why)), -EPROTO);
	assert_int_equal(agent_out_step(&o, AGENT_READY, NULL, 0, why, sizeof(why)), 0);
	assert_int_equal(
		agent_out_step(&o, AGENT_STDOUT, (const uint8_t *)"x", 1, why, sizeof(why)),
		-EPROTO);
	assert_int_equal(agent_out_step(&o, AGENT_STARTED, NULL, 0, why, sizeof(why)), 0);
	assert_int_equal(agent_out_step(&o, AGENT_STARTED, NULL, 0, why, sizeof(why)), -EPROTO);
	assert_int_equal(
		agent_out_step(&o, AGENT_STDERR, (const uint8_t *)"x", 1, why, sizeof(why)), 0);
	assert_int_equal(agent_out_step(&o, AGENT_EXIT, ep, AGENT_EXIT_SIZE, why, sizeof(why)), 0);
	assert_int_equal(
		agent_out_step(&o, AGENT_STDOUT, (const uint8_t *)"x", 1, why, sizeof(why)),
		-EPROTO);
	assert_non_null(strstr(why, "after the end"));
	o.phase = 1;
	assert_int_equal(agent_out_step(&o, AGENT_EXIT, ep, AGENT_EXIT_SIZE, why, sizeof(why)),
			 -EPROTO);

	/* The agent's side: files take exactly their size, START only between files. */
	struct agent_in_order in = { 0 };
	int n = agent_file_encode(buf, 3, 0644, "/f");
	const uint8_t *fp = buf + AGENT_HDR_SIZE;
	uint32_t flen = (uint32_t)n - AGENT_HDR_SIZE;
	assert_int_equal(agent_in_step(&in, AGENT_FILE, fp, flen, why, sizeof(why)), -EPROTO);
	assert_int_equal(agent_in_step(&in, AGENT_REQUEST, NULL, 0, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&in, AGENT_STDIN, NULL, 1, why, sizeof(why)), -EPROTO);
	assert_int_equal(agent_in_step(&in, AGENT_FILE, fp, flen, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&in, AGENT_FILE_DATA, NULL, 4, why, sizeof(why)), -EPROTO);
	assert_int_equal(agent_in_step(&in, AGENT_FILE_DATA, NULL, 2, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&in, AGENT_START, NULL, 0, why, sizeof(why)), -EPROTO);
	assert_int_equal(agent_in_step(&in, AGENT_FILE, fp, flen, why, sizeof(why)), -EPROTO);
	assert_int_equal(agent_in_step(&in, AGENT_FILE_DATA, NULL, 1, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&in, AGENT_START, NULL, 0, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&in, AGENT_FILE, fp, flen, why, sizeof(why)), -EPROTO);
	assert_int_equal(agent_in_step(&in, AGENT_STDIN, NULL, 1, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&in, AGENT_STDIN_EOF, NULL, 0, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&in, AGENT_STDIN, NULL, 1, why, sizeof(why)), -EPROTO);
	/* At most AGENT_FILES_MAX files. */
	struct agent_in_order many = { .phase = 1 };
	assert_int_equal(agent_file_encode(buf, 0, 0644, "/f"), n); /* size 0: none pending */
	for (int i = 0; i < AGENT_FILES_MAX; i++)
		assert_int_equal(agent_in_step(&many, AGENT_FILE, fp, flen, why, sizeof(why)), 0);
	assert_int_equal(agent_in_step(&many, AGENT_FILE, fp, flen, why, sizeof(why)), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_round_trip),	cmocka_unit_test(decoder_chunking),
		cmocka_unit_test(decoder_refuses_lies), cmocka_unit_test(request_refusals),
		cmocka_unit_test(file_and_exit),	cmocka_unit_test(frame_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
