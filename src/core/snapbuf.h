/* Byte buffers for snapshot state: a growable writer, and a bounded reader over untrusted
 * bytes. Every value is little-endian (x86 only, as the host). A reader never reads past
 * its end: an overrun sets bad, returns zeros, and every later read fails too, so a parser
 * checks r->bad once at the end instead of after each field. */
#ifndef EMBER_SNAPBUF_H
#define EMBER_SNAPBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
	bool oom; /* a failed allocation: the caller reports it once, at the end */
};

struct snap_reader {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

void snapw_bytes(struct snap_writer *w, const void *data, size_t n);
void snapw_u8(struct snap_writer *w, uint8_t v);
void snapw_u16(struct snap_writer *w, uint16_t v);
void snapw_u32(struct snap_writer *w, uint32_t v);
void snapw_u64(struct snap_writer *w, uint64_t v);
/* A u32 length followed by the bytes. */
void snapw_blob(struct snap_writer *w, const void *data, uint32_t n);
/* Opens a section (tag, instance, u64 length filled in by snapw_end); returns its offset. */
size_t snapw_begin(struct snap_writer *w, uint32_t tag, uint32_t instance);
void snapw_end(struct snap_writer *w, size_t section);
void snapw_free(struct snap_writer *w);

static inline struct snap_reader snapr_init(const void *p, size_t len)
{
	return (struct snap_reader){ .p = p, .len = len };
}
/* The next n bytes in place, or NULL (and bad) when fewer are left. */
const void *snapr_take(struct snap_reader *r, size_t n);
bool snapr_bytes(struct snap_reader *r, void *out, size_t n);
uint8_t snapr_u8(struct snap_reader *r);
uint16_t snapr_u16(struct snap_reader *r);
uint32_t snapr_u32(struct snap_reader *r);
uint64_t snapr_u64(struct snap_reader *r);
/* A blob written by snapw_blob, as a reader of its own (bad, and empty, when it overruns). */
struct snap_reader snapr_blob(struct snap_reader *r);
/* A blob written by snapw_blob that must be exactly n bytes long, copied to out. */
bool snapr_blob_exact(struct snap_reader *r, void *out, size_t n);
/* True when every byte was read and nothing overran. */
static inline bool snapr_done(const struct snap_reader *r)
{
	return !r->bad && r->off == r->len;
}

#define SNAP_TAG(a, b, c, d)                                                                       \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

#endif
