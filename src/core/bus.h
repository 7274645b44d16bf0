/* The I/O bus: port and MMIO ranges dispatched from vCPU exits. Ranges are registered
 * before the vCPUs start and never change afterwards, so lookups take no lock. */
#ifndef EMBER_BUS_H
#define EMBER_BUS_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*io_handler_fn)(void *opaque, uint64_t offset, uint8_t *data, unsigned len,
			      bool is_write);

struct io_range {
	uint64_t base;
	uint64_t len;
	io_handler_fn fn;
	void *opaque;
	const char *name;
};

struct io_bus {
	struct io_range *ranges; /* sorted by base, never overlapping */
	unsigned nr;
	unsigned cap;
};

/* -EINVAL for an empty or wrapping range, -EEXIST when it overlaps a registered one. */
int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler_fn fn, void *opaque,
		    const char *name);
/* Dispatches an access; false when no device claims all of [addr, addr+len). */
bool io_bus_access(const struct io_bus *bus, uint64_t addr, uint8_t *data, unsigned len,
		   bool is_write);
void io_bus_free(struct io_bus *bus);

#endif
