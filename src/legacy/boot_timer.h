/* The boot-timer device at 0xC0000000: the guest writes 123 to offset 0 when it reaches
 * /init, and ember logs how long that took. */
#ifndef EMBER_BOOT_TIMER_H
#define EMBER_BOOT_TIMER_H

#include "core/machine.h"

#define BOOT_TIMER_MAGIC 123

void boot_timer_register(struct machine *machine);

#endif
