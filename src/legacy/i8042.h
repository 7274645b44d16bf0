/* The i8042 keyboard controller, as much of it as Linux needs: self-tests, the command
 * byte, CPU reset (how the guest reboots with reboot=k) and Ctrl+Alt+Del. */
#ifndef EMBER_I8042_H
#define EMBER_I8042_H

#include "core/machine.h"
#include "core/snapbuf.h"

struct i8042 *i8042_create(struct machine *machine);
void i8042_destroy(struct i8042 *dev);
/* Queues the Ctrl+Alt+Del key sequence for the guest. -EBUSY if the buffer is full. */
int i8042_send_ctrl_alt_del(struct i8042 *dev);
/* Snapshots: status, command byte and output buffer; restore checks them (0 or -EINVAL). */
void i8042_save(struct i8042 *dev, struct snap_writer *w);
int i8042_restore(struct i8042 *dev, struct snap_reader *r, char *err);

#endif
