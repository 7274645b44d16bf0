#include "legacy/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/irq.h"
#include "x86/layout.h"
#include "core/log.h"

#define STATUS_OUT_FULL 0x01
#define STATUS_SYSTEM	0x04
#define STATUS_CMD	0x08 /* last write went to the command port */
#define STATUS_UNLOCKED 0x10 /* keyboard not inhibited by the key lock */
#define CTR_KBD_INT	0x01
#define CTR_SYSTEM	0x04

enum {
	CMD_READ_CTR = 0x20,
	CMD_WRITE_CTR = 0x60,
	CMD_TEST_AUX = 0xa9,
	CMD_SELF_TEST = 0xaa,
	CMD_TEST_KBD = 0xab,
	CMD_READ_INPUT = 0xc0,
	CMD_READ_OUTPUT = 0xd0,
	CMD_WRITE_OUTPUT = 0xd1,
	CMD_PULSE_RESET = 0xfe,
};

#define BUF_SIZE 16

struct i8042 {
	struct machine *machine;
	pthread_mutex_t lock;
	int irq_fd;
	uint8_t status;
	uint8_t ctr;
	uint8_t pending_cmd; /* a command waiting for its data byte on port 0x60 */
	uint8_t buf[BUF_SIZE];
	unsigned head, count;
};

static void push(struct i8042 *d, uint8_t byte, bool raise)
{
	if (d->count == BUF_SIZE)
		return;
	d->buf[(d->head + d->count) % BUF_SIZE] = byte;
	d->count++;
	d->status |= STATUS_OUT_FULL;
	if (raise && (d->ctr & CTR_KBD_INT) && d->irq_fd >= 0)
		irq_line_raise(d->irq_fd);
}

static uint8_t pop(struct i8042 *d)
{
	if (d->count == 0)
		return 0;
	uint8_t byte = d->buf[d->head];
	d->head = (d->head + 1) % BUF_SIZE;
	if (--d->count == 0)
		d->status &= (uint8_t)~STATUS_OUT_FULL;
	else if ((d->ctr & CTR_KBD_INT) && d->irq_fd >= 0)
		irq_line_raise(d->irq_fd); /* more keys waiting */
	return byte;
}

static void command(struct i8042 *d, uint8_t cmd)
{
	d->status |= STATUS_CMD;
	switch (cmd) {
	case CMD_READ_CTR:
		push(d, d->ctr, false);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPUT:
		d->pending_cmd = cmd;
		break;
	case CMD_SELF_TEST:
		push(d, 0x55, false);
		break;
	case CMD_TEST_KBD:
	case CMD_TEST_AUX:
	case CMD_READ_INPUT:
		push(d, 0x00, false); /* tests pass; no input line is asserted */
		break;
	case CMD_READ_OUTPUT:
		push(d, 0x01, false); /* the reset line is not asserted */
		break;
	case CMD_PULSE_RESET:
		log_info("guest requested a reset through the i8042");
		machine_request_exit(d->machine, 0);
		break;
	default:
		break; /* enable/disable and unknown commands have nothing to emulate */
	}
}

static void data_write(struct i8042 *d, uint8_t val)
{
	d->status &= (uint8_t)~STATUS_CMD;
	switch (d->pending_cmd) {
	case CMD_WRITE_CTR:
		d->ctr = val;
		if (val & CTR_SYSTEM)
			d->status |= STATUS_SYSTEM;
		break;
	case CMD_WRITE_OUTPUT:
		if (!(val & 1)) { /* bit 0 low is the CPU reset line */
			log_info("guest requested a reset through the i8042 output port");
			machine_request_exit(d->machine, 0);
		}
		break;
	default:
		/* A byte for the keyboard itself: acknowledge it as a real keyboard would. */
		push(d, 0xfa, true);
		break;
	}
	d->pending_cmd = 0;
}

static void i8042_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len, bool is_write)
{
	struct i8042 *d = opaque;
	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&d->lock);
	/* The bus hands us offsets from 0x60: 0 is the data port, 4 the command port. */
	if (offset == 0) {
		if (is_write)
			data_write(d, data[0]);
		else
			data[0] = pop(d);
	} else if (offset == 4) {
		if (is_write)
			command(d, data[0]);
		else
			data[0] = d->status;
	} else if (!is_write) {
		data[0] = 0xff;
	}
	pthread_mutex_unlock(&d->lock);
}

int i8042_send_ctrl_alt_del(struct i8042 *d)
{
	/* Scan code set 2 (the controller does not translate: CTR bit 6 is clear): press
	 * Ctrl, Alt, Del, then release them (0xf0 prefixes a release). */
	static const uint8_t seq[] = { 0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
				       0x71, 0xf0, 0x11, 0xf0, 0x14 };
	pthread_mutex_lock(&d->lock);
	int rc = -EBUSY;
	if (d->count + sizeof(seq) <= BUF_SIZE) {
		for (unsigned i = 0; i < sizeof(seq); i++)
			push(d, seq[i], i == 0);
		rc = 0;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

struct i8042 *i8042_create(struct machine *machine)
{
	struct i8042 *d = calloc(1, sizeof(*d));
	if (!d)
		die("out of memory");
	pthread_mutex_init(&d->lock, NULL);
	d->machine = machine;
	d->status = STATUS_SYSTEM | STATUS_UNLOCKED;
	d->ctr = CTR_KBD_INT | CTR_SYSTEM;
	d->irq_fd = irq_line_create(machine, I8042_IRQ);
	if (d->irq_fd < 0)
		die("i8042: cannot wire IRQ %d: %s", I8042_IRQ, strerror(-d->irq_fd));
	/* One range over 0x60-0x64; 0x61-0x63 (the PC speaker and friends) read as 0xff. */
	int rc = io_bus_register(&machine->pio_bus, I8042_DATA_PORT, 5, i8042_io, d, "i8042");
	if (rc)
		die("i8042: cannot register ports: %s", strerror(-rc));
	return d;
}

void i8042_destroy(struct i8042 *d)
{
	if (!d)
		return;
	if (d->irq_fd >= 0)
		close(d->irq_fd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void i8042_save(struct i8042 *d, struct snap_writer *w)
{
	pthread_mutex_lock(&d->lock);
	snapw_u8(w, d->status);
	snapw_u8(w, d->ctr);
	snapw_u8(w, d->pending_cmd);
	snapw_u8(w, (uint8_t)d->count);
	for (unsigned i = 0; i < d->count; i++)
		snapw_u8(w, d->buf[(d->head + i) % BUF_SIZE]);
	pthread_mutex_unlock(&d->lock);
}

int i8042_restore(struct i8042 *d, struct snap_reader *r, char *err)
{
	uint8_t status = snapr_u8(r), ctr = snapr_u8(r), pending = snapr_u8(r);
	unsigned count = snapr_u8(r);
	uint8_t buf[BUF_SIZE];
	if (count > BUF_SIZE)
		return errf(err, -EINVAL, "i8042: %u bytes in a %u-byte buffer", count, BUF_SIZE);
	snapr_bytes(r, buf, count);
	if (!snapr_done(r))
		return errf(err, -EINVAL, "i8042: truncated state or trailing bytes");
	if (pending != 0 && pending != CMD_WRITE_CTR && pending != CMD_WRITE_OUTPUT)
		return errf(err, -EINVAL, "i8042: no command 0x%x waits for data", pending);
	pthread_mutex_lock(&d->lock);
	d->status = status;
	d->ctr = ctr;
	d->pending_cmd = pending;
	memcpy(d->buf, buf, count);
	d->head = 0;
	d->count = count;
	pthread_mutex_unlock(&d->lock);
	return 0;
}
