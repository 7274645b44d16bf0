/* 8250/16550A UART at 0x3F8 on IRQ 4: the guest's console. */
#ifndef EMBER_SERIAL_H
#define EMBER_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/machine.h"
#include "core/rate_limiter.h"
#include "core/snapbuf.h"

/* out_fd receives everything the guest transmits, within out_limit (bytes; NULL or size 0: no
 * limit; what exceeds it is dropped and counted in the "uart" metrics); in_fd (or -1) feeds
 * its receiver from the VMM event loop. Registers itself on the port bus. */
struct serial *serial_create(struct machine *machine, int out_fd, int in_fd,
			     const struct token_bucket_config *out_limit);
void serial_destroy(struct serial *s);
/* Snapshots: the registers and the receive FIFO (the VM is paused). Restore checks every
 * value; 0 or -EINVAL with err. */
void serial_save(struct serial *s, struct snap_writer *w);
int serial_restore(struct serial *s, struct snap_reader *r, char *err);

#endif
