/* Snapshot byte buffers; see snapbuf.h. */
#include "core/snapbuf.h"

#include <stdlib.h>
#include <string.h>

void snapw_bytes(struct snap_writer *w, const void *data, size_t n)
{
	/* n == 0: an empty blob, whose data may be NULL (memcpy's arguments must not be). */
	if (w->oom || n == 0)
		return;
	if (n > w->cap - w->len) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap - w->len < n) {
			if (cap > SIZE_MAX / 2) {
				w->oom = true;
				return;
			}
			cap *= 2;
		}
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->oom = true;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
}

void snapw_u8(struct snap_writer *w, uint8_t v)
{
	snapw_bytes(w, &v, 1);
}

void snapw_u16(struct snap_writer *w, uint16_t v)
{
	snapw_bytes(w, &v, 2);
}

void snapw_u32(struct snap_writer *w, uint32_t v)
{
	snapw_bytes(w, &v, 4);
}

void snapw_u64(struct snap_writer *w, uint64_t v)
{
	snapw_bytes(w, &v, 8);
}

void snapw_blob(struct snap_writer *w, const void *data, uint32_t n)
{
	snapw_u32(w, n);
	snapw_bytes(w, data, n);
}

size_t snapw_begin(struct snap_writer *w, uint32_t tag, uint32_t instance)
{
	snapw_u32(w, tag);
	snapw_u32(w, instance);
	size_t at = w->len;
	snapw_u64(w, 0);
	return at;
}

void snapw_end(struct snap_writer *w, size_t section)
{
	if (w->oom)
		return;
	uint64_t len = w->len - section - 8;
	memcpy(w->buf + section, &len, 8);
}

void snapw_free(struct snap_writer *w)
{
	free(w->buf);
	*w = (struct snap_writer){ 0 };
}

const void *snapr_take(struct snap_reader *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	const void *p = r->p + r->off;
	r->off += n;
	return p;
}

bool snapr_bytes(struct snap_reader *r, void *out, size_t n)
{
	const void *p = snapr_take(r, n);
	if (p)
		memcpy(out, p, n);
	else
		memset(out, 0, n);
	return p != NULL;
}

#define READER(name, type)                                                                         \
	type name(struct snap_reader *r)                                                           \
	{                                                                                          \
		type v;                                                                            \
		snapr_bytes(r, &v, sizeof(v));                                                     \
		return v;                                                                          \
	}
READER(snapr_u8, uint8_t)
READER(snapr_u16, uint16_t)
READER(snapr_u32, uint32_t)
READER(snapr_u64, uint64_t)

struct snap_reader snapr_blob(struct snap_reader *r)
{
	uint32_t n = snapr_u32(r);
	const void *p = snapr_take(r, n);
	struct snap_reader sub = snapr_init(p, p ? n : 0);
	sub.bad = !p;
	return sub;
}

bool snapr_blob_exact(struct snap_reader *r, void *out, size_t n)
{
	if (snapr_u32(r) != n)
		r->bad = true;
	return !r->bad && snapr_bytes(r, out, n);
}
