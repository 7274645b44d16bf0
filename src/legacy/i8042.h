/* The i8042 keyboard controller, as much of it as Linux needs: self-tests, the command
 * byte, CPU reset (how the guest reboots with reboot=k) and Ctrl+Alt+Del. */
#ifndef EMBER_I8042_H
#define EMBER_I8042_H

#include "core/machine.h"

struct i8042 *i8042_create(struct machine *machine);
void i8042_destroy(struct i8042 *dev);
/* Queues the Ctrl+Alt+Del key sequence for the guest. -EBUSY if the buffer is full. */
int i8042_send_ctrl_alt_del(struct i8042 *dev);

#endif
