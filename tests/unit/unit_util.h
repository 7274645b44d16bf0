/* Helpers shared by the cmocka unit tests: a KVM-less guest memory, temporary files that
 * are removed even when an assertion aborts a test, and little-endian field access. */
#ifndef EMBER_UNIT_UTIL_H
#define EMBER_UNIT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/machine.h"

#define UNIT_MAX_TMP 16
#define MIB	     (1024ULL * 1024)
#define GIB	     (1024ULL * MIB)

/* State lives in a function-local static so that a file using only some helpers does not
 * trip -Wunused-variable. */
struct unit_state {
	struct machine vm;
	bool vm_live;
	char tmp[UNIT_MAX_TMP][PATH_MAX];
	unsigned nr_tmp;
};

static inline struct unit_state *unit_state(void)
{
	static struct unit_state s;
	return &s;
}

/* A zeroed vm with only guest memory: what loader, boot and mptable code needs. */
static inline struct machine *unit_vm_new(uint64_t bytes)
{
	struct unit_state *s = unit_state();
	if (s->vm_live)
		guest_mem_free(&s->vm.mem);
	memset(&s->vm, 0, sizeof(s->vm));
	s->vm.vm_fd = -1;
	s->vm.kvm_fd = -1;
	s->vm_live = false;
	assert_int_equal(guest_mem_init(&s->vm.mem, bytes), 0);
	s->vm_live = true;
	return &s->vm;
}

/* Writes len bytes to a fresh temporary file; the path stays valid until unit_teardown. */
static inline const char *unit_tmp_file(const void *data, size_t len)
{
	struct unit_state *s = unit_state();
	assert_true(s->nr_tmp < UNIT_MAX_TMP);
	const char *dir = getenv("TMPDIR");
	char *path = s->tmp[s->nr_tmp];
	snprintf(path, PATH_MAX, "%s/ember-unit-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	s->nr_tmp++;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)data + done, len - done);
		assert_true(n > 0);
		done += (size_t)n;
	}
	close(fd);
	return path;
}

static inline const char *unit_tmp_text(const char *text)
{
	return unit_tmp_file(text, strlen(text));
}

/* A path that certainly does not exist (a removed temporary file). */
static inline const char *unit_missing_path(void)
{
	const char *p = unit_tmp_file("", 0);
	assert_int_equal(unlink(p), 0);
	return p;
}

/* Per-test teardown: frees guest memory and removes the test's files. */
static inline int unit_teardown(void **state)
{
	(void)state;
	struct unit_state *s = unit_state();
	if (s->vm_live)
		guest_mem_free(&s->vm.mem);
	s->vm_live = false;
	for (unsigned i = 0; i < s->nr_tmp; i++)
		unlink(s->tmp[i]);
	s->nr_tmp = 0;
	return 0;
}

#define UNIT_TEST(fn) cmocka_unit_test_teardown(fn, unit_teardown)

/* Reads a whole file into a malloc'd buffer, NULL if it cannot be read. */
static inline uint8_t *unit_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			uint8_t *nb = realloc(buf, cap);
			assert_non_null(nb);
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Files the build puts next to the test binaries (build/tests/) are found from the binary's
 * own location, so the tests work from any directory. */
static inline void unit_build_path(char *out, size_t len, const char *rel)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	assert_non_null(slash);
	*slash = '\0';
	int w = snprintf(out, len, "%s/%s", exe, rel);
	assert_true(w > 0 && (size_t)w < len);
}

static inline uint16_t get16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t get32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t get64(const void *p)
{
	return get32(p) | (uint64_t)get32((const uint8_t *)p + 4) << 32;
}

static inline void put16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void put32(void *p, uint32_t v)
{
	uint8_t *b = p;
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* Guest memory at gpa, failing the test if the accessor refuses it. */
static inline uint8_t *unit_gpa(struct machine *vm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&vm->mem, gpa, len);
	assert_non_null(p);
	return p;
}

#endif
