#include "core/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler_fn fn, void *opaque,
		    const char *name)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	unsigned pos = 0;
	while (pos < bus->nr && bus->ranges[pos].base < base)
		pos++;
	/* Overlap is only possible with the neighbours on either side of pos. */
	const struct io_range *prev = pos > 0 ? &bus->ranges[pos - 1] : NULL;
	if ((prev && prev->base + prev->len > base) ||
	    (pos < bus->nr && base + len > bus->ranges[pos].base))
		return -EEXIST;
	if (bus->nr == bus->cap) {
		unsigned cap = bus->cap ? bus->cap * 2 : 8;
		struct io_range *r = realloc(bus->ranges, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		bus->ranges = r;
		bus->cap = cap;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->nr - pos) * sizeof(*bus->ranges));
	bus->ranges[pos] = (struct io_range){ base, len, fn, opaque, name };
	bus->nr++;
	return 0;
}

bool io_bus_access(const struct io_bus *bus, uint64_t addr, uint8_t *data, unsigned len,
		   bool is_write)
{
	unsigned lo = 0, hi = bus->nr;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const struct io_range *r = &bus->ranges[mid];
		if (addr < r->base) {
			hi = mid;
		} else if (addr - r->base >= r->len) {
			lo = mid + 1;
		} else {
			if (len > r->len - (addr - r->base))
				return false; /* straddles the end of the device */
			r->fn(r->opaque, addr - r->base, data, len, is_write);
			return true;
		}
	}
	return false;
}

void io_bus_free(struct io_bus *bus)
{
	free(bus->ranges);
	memset(bus, 0, sizeof(*bus));
}
