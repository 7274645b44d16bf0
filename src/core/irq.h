/* Interrupt lines into the in-kernel irqchip, through irqfd. */
#ifndef EMBER_IRQ_H
#define EMBER_IRQ_H

#include "core/machine.h"

/* An eventfd bound to gsi with KVM_IRQFD: each write is one edge on that line. Returns
 * the fd or -errno. Without a VM (unit tests, vm_fd < 0) a plain eventfd. */
int irq_line_create(struct machine *machine, unsigned gsi);
void irq_line_raise(int fd);

#endif
