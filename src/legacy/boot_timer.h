/* The boot-timer device at 0xC0000000: the guest writes 123 to offset 0 when it reaches
 * /init, and ember logs how long that took. */
#ifndef EMBER_BOOT_TIMER_H
#define EMBER_BOOT_TIMER_H

#include "core/machine.h"

#define BOOT_TIMER_MAGIC 123

/* Registers the device on the MMIO bus. Only the guest's first write is logged, and one line
 * says when it writes again: a guest that writes in a loop cannot grow the log. */
struct boot_timer *boot_timer_create(struct machine *machine);
void boot_timer_destroy(struct boot_timer *t);

#endif
