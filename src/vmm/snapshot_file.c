/* The snapshot state file's framing; see snapshot_file.h. */
#include "vmm/snapshot_file.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"

#define OFF_MAJOR    8
#define OFF_MINOR    10
#define OFF_HDR_LEN  12
#define OFF_FILE_LEN 16
#define OFF_CRC	     24
#define OFF_NR	     28

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), a byte at a time: the file is
 * small (KiB per vCPU), so a table is all the speed it needs. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c >> 1) ^ (0x82f63b78u & -(c & 1));
			table[i] = c;
		}
	const uint8_t *p = data;
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

void snapshot_file_start(struct snap_writer *w)
{
	uint8_t zero[SNAP_HEADER_LEN] = { 0 };
	snapw_bytes(w, zero, sizeof(zero));
}

void snapshot_file_seal(struct snap_writer *w, unsigned nr)
{
	if (w->oom || w->len < SNAP_HEADER_LEN)
		return;
	uint8_t *h = w->buf;
	uint16_t major = SNAP_MAJOR, minor = SNAP_MINOR;
	uint32_t hdr_len = SNAP_HEADER_LEN, crc = 0, n = nr;
	uint64_t len = w->len;
	memcpy(h, SNAP_MAGIC, 8);
	memcpy(h + OFF_MAJOR, &major, 2);
	memcpy(h + OFF_MINOR, &minor, 2);
	memcpy(h + OFF_HDR_LEN, &hdr_len, 4);
	memcpy(h + OFF_FILE_LEN, &len, 8);
	memcpy(h + OFF_CRC, &crc, 4);
	memcpy(h + OFF_NR, &n, 4);
	crc = crc32c(0, w->buf, w->len);
	memcpy(h + OFF_CRC, &crc, 4);
}

int snapshot_file_parse(const uint8_t *buf, size_t len, struct snap_file *f, char *err)
{
	f->nr = 0;
	if (len < SNAP_HEADER_LEN)
		return errf(err, -EINVAL, "snapshot truncated: %zu bytes, less than its header",
			    len);
	if (memcmp(buf, SNAP_MAGIC, 8) != 0)
		return errf(err, -EINVAL, "not an ember snapshot: bad magic");
	f->major = get16(buf + OFF_MAJOR);
	f->minor = get16(buf + OFF_MINOR);
	if (f->major != SNAP_MAJOR)
		return errf(err, -EINVAL,
			    "snapshot format version %u.%u: this ember reads version %u.x only",
			    f->major, f->minor, SNAP_MAJOR);
	if (get32(buf + OFF_HDR_LEN) != SNAP_HEADER_LEN)
		return errf(err, -EINVAL, "snapshot header length %u, expected %u",
			    get32(buf + OFF_HDR_LEN), SNAP_HEADER_LEN);
	uint64_t file_len = get64(buf + OFF_FILE_LEN);
	if (file_len > len)
		return errf(err, -EINVAL, "snapshot truncated: %zu of its %llu bytes", len,
			    (unsigned long long)file_len);
	if (file_len < len)
		return errf(err, -EINVAL, "snapshot has %llu bytes after its end",
			    (unsigned long long)(len - file_len));
	/* The checksum as if its own field were zero. */
	static const uint8_t zero[4];
	uint32_t crc = crc32c(0, buf, OFF_CRC);
	crc = crc32c(crc, zero, 4);
	crc = crc32c(crc, buf + OFF_CRC + 4, len - OFF_CRC - 4);
	if (crc != get32(buf + OFF_CRC))
		return errf(err, -EINVAL, "snapshot checksum mismatch: the file is corrupt");
	uint32_t nr = get32(buf + OFF_NR);
	if (nr > SNAP_SECTIONS_MAX)
		return errf(err, -EINVAL, "snapshot has %u sections, at most %u", nr,
			    SNAP_SECTIONS_MAX);
	size_t off = SNAP_HEADER_LEN;
	for (unsigned i = 0; i < nr; i++) {
		if (len - off < 16)
			return errf(err, -EINVAL, "snapshot section %u: header truncated", i);
		struct snap_section *s = &f->sec[i];
		s->tag = get32(buf + off);
		s->instance = get32(buf + off + 4);
		s->len = get64(buf + off + 8);
		off += 16;
		if (s->len > len - off)
			return errf(err, -EINVAL, "snapshot section %u: %llu bytes, %zu left", i,
				    (unsigned long long)s->len, len - off);
		s->data = buf + off;
		off += s->len;
		if (snapshot_file_find(f, s->tag, s->instance))
			return errf(err, -EINVAL, "snapshot section %u repeats tag 0x%08x/%u", i,
				    s->tag, s->instance);
		f->nr = i + 1;
	}
	if (off != len)
		return errf(err, -EINVAL, "snapshot has %zu bytes after its %u sections", len - off,
			    nr);
	return 0;
}

const struct snap_section *snapshot_file_find(const struct snap_file *f, uint32_t tag,
					      uint32_t instance)
{
	for (unsigned i = 0; i < f->nr; i++)
		if (f->sec[i].tag == tag && f->sec[i].instance == instance)
			return &f->sec[i];
	return NULL;
}
