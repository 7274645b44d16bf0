/* ember's snapshot state file: a header, then tagged, length-prefixed sections.
 *
 *   header (32 bytes, little-endian): magic "EMBERSNP", u16 major, u16 minor,
 *     u32 header length (32), u64 file length, u32 CRC-32C of the whole file with this
 *     field zero, u32 number of sections
 *   section: u32 tag, u32 instance (vCPU index, device slot, else 0), u64 length, bytes
 *
 * A reader refuses another major version; a newer minor only adds sections, which an
 * older reader skips. The file is untrusted: snapshot_file_parse is a pure function over a
 * byte buffer (the fuzz and unit tests call it) that checks every length before use. */
#ifndef EMBER_SNAPSHOT_FILE_H
#define EMBER_SNAPSHOT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/snapbuf.h"

#define SNAP_MAGIC "EMBERSNP"
#define SNAP_MAJOR 1
#define SNAP_MINOR                                                                                 \
	4 /* 1.1: MEMF, the memory file's record (vmm/snapshot_mem.h); 1.2: WALL;                  \
	   * 1.3: each VCPU section ends with the TSC frequency; 1.4: a drive's state ends with    \
	   * its rate limiter's buckets */
#define SNAP_HEADER_LEN	  32
#define SNAP_SECTIONS_MAX 256
#define SNAP_FILE_MAX	  (64u << 20) /* far beyond 32 vCPUs and every device */

#define SNAP_MACHINE SNAP_TAG('M', 'A', 'C', 'H') /* vCPUs, memory layout, devices */
#define SNAP_CONFIG  SNAP_TAG('C', 'O', 'N', 'F') /* the devices' configuration (JSON) */
#define SNAP_KVM_VM  SNAP_TAG('K', 'V', 'M', 'V') /* kvmclock, PIT, irqchips */
#define SNAP_VCPU    SNAP_TAG('V', 'C', 'P', 'U') /* instance: vCPU index */
#define SNAP_SERIAL  SNAP_TAG('S', 'E', 'R', 'L')
#define SNAP_I8042   SNAP_TAG('I', '8', '4', '2')
#define SNAP_VIRTIO  SNAP_TAG('V', 'D', 'E', 'V') /* instance: virtio-mmio slot */
/* Since 1.2: CLOCK_REALTIME, in ns, when the kvmclock of SNAP_KVM_VM was read (load's
 * clock_realtime advances the clock by the time since). */
#define SNAP_WALL_CLOCK SNAP_TAG('W', 'A', 'L', 'L')

struct snap_section {
	uint32_t tag, instance;
	const uint8_t *data;
	uint64_t len;
};

struct snap_file {
	uint16_t major, minor;
	unsigned nr;
	struct snap_section sec[SNAP_SECTIONS_MAX];
};

uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* A writer for a new file: the header's room reserved. */
void snapshot_file_start(struct snap_writer *w);
/* Fills in the header of what snapshot_file_start began, with nr sections. */
void snapshot_file_seal(struct snap_writer *w, unsigned nr);

/* Checks buf as a whole (header, version, length, checksum, section framing) and points
 * f's sections into it. 0, or -EINVAL with err naming the cause. */
int snapshot_file_parse(const uint8_t *buf, size_t len, struct snap_file *f, char *err);
/* The section with tag and instance, or NULL. */
const struct snap_section *snapshot_file_find(const struct snap_file *f, uint32_t tag,
					      uint32_t instance);

#endif
