#include "core/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

int irq_line_create(struct machine *machine, unsigned gsi)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (machine->vm_fd < 0)
		return fd;
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi };
	if (ioctl(machine->vm_fd, KVM_IRQFD, &irqfd) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

void irq_line_raise(int fd)
{
	/* EAGAIN means the counter is already non-zero: the edge is pending anyway. */
	eventfd_write(fd, 1);
}
