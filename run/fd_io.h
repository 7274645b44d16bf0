/* Writing a whole buffer to a descriptor, for ember-run and the guest tools
 * (rootfs/ember-agent.c, rootfs/ember-vsock.c), which share no library. */
#ifndef EMBER_RUN_FD_IO_H
#define EMBER_RUN_FD_IO_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

/* Writes all len bytes, going on after EINTR and short writes: 0, or -errno (-EPIPE when
 * a write took nothing). */
static inline int write_all(int fd, const void *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p = (const char *)p + n;
		len -= (size_t)n;
	}
	return 0;
}

#endif
