/* Shared by the libFuzzer targets: a reader over the fuzzer's input, and for the device
 * targets a KVM-less machine whose guest memory the input fills and a small driver script
 * that the input spells out (tests/fuzz/README.md describes the format). */
#ifndef EMBER_FUZZ_H
#define EMBER_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The input as a stream: reads past the end give zeros, so every input is a whole script. */
struct fin {
	const uint8_t *p;
	size_t n;
};

static inline bool fin_more(const struct fin *f)
{
	return f->n > 0;
}

static inline uint64_t fin_uint(struct fin *f, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes && f->n; i++, f->p++, f->n--)
		v |= (uint64_t)*f->p << (8 * i);
	return v;
}
#define fin8(f)	 ((uint8_t)fin_uint(f, 1))
#define fin16(f) ((uint16_t)fin_uint(f, 2))
#define fin32(f) ((uint32_t)fin_uint(f, 4))
#define fin64(f) fin_uint(f, 8)

/* Up to len bytes of input in place; *got says how many there were. */
static inline const uint8_t *fin_bytes(struct fin *f, size_t len, size_t *got)
{
	const uint8_t *p = f->p;
	*got = len < f->n ? len : f->n;
	f->p += *got;
	f->n -= *got;
	return p;
}

/* Splits off the first len bytes (fewer if the input is shorter) as a stream of their own. */
static inline struct fin fin_split(struct fin *f, size_t len)
{
	size_t got;
	const uint8_t *p = fin_bytes(f, len, &got);
	return (struct fin){ p, got };
}

/* Guest-provoked warnings are expected by the thousand: only errors are worth the time. */
static inline void fuzz_quiet(void)
{
	log_set_level_name("Error");
}

/* An input as a file ember opens by path: a memfd, named in path (at least 32 bytes) as
 * /proc/self/fd/N; fuzz_file_set gives it the next input's bytes. */
static inline int fuzz_file(const char *name, char *path, size_t path_len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		abort();
	snprintf(path, path_len, "/proc/self/fd/%d", fd);
	return fd;
}

static inline void fuzz_file_set(int fd, const uint8_t *data, size_t size)
{
	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)size) ||
	    pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
}

#endif
