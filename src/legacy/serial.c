#include "legacy/serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/irq.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rate_limiter.h"
#include "x86/layout.h"

/* Register offsets and bits from the 16550A data sheet. */
enum { REG_DATA = 0, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR, REG_MSR, REG_SCR };
#define IER_RX_DATA	 0x01
#define IER_THR_EMPTY	 0x02
#define IIR_NONE	 0x01
#define IIR_THR_EMPTY	 0x02
#define IIR_RX_DATA	 0x04
#define IIR_FIFO_ENABLED 0xc0
#define FCR_FIFO_ENABLE	 0x01
#define FCR_CLEAR_RX	 0x02
#define LCR_DLAB	 0x80
#define MCR_DTR		 0x01
#define MCR_RTS		 0x02
#define MCR_OUT1	 0x04
#define MCR_OUT2	 0x08
#define MCR_LOOP	 0x10
#define LSR_DATA_READY	 0x01
#define LSR_THR_EMPTY	 0x20
#define LSR_IDLE	 0x40
#define MSR_CTS		 0x10
#define MSR_DSR		 0x20
#define MSR_RI		 0x40
#define MSR_DCD		 0x80

#define RX_FIFO_SIZE 64

/* Firecracker's "uart" metrics: what went out, what the console refused, and what the rate
 * limiter dropped (issue 11: a guest may print without end, and the file grows with it). */
enum { UART_WRITE_COUNT, UART_MISSED_WRITE_COUNT, UART_RATE_LIMITER_DROPPED, UART_METRIC_COUNT };
static struct metric uart_metrics[UART_METRIC_COUNT] = {
	[UART_WRITE_COUNT] = { .name = "write_count" },
	[UART_MISSED_WRITE_COUNT] = { .name = "missed_write_count" },
	[UART_RATE_LIMITER_DROPPED] = { .name = "rate_limiter_dropped_bytes" },
};
static struct metric_group uart_group = { "uart", uart_metrics, UART_METRIC_COUNT, NULL };

struct serial {
	struct machine *machine;
	pthread_mutex_t lock; /* vCPU threads touch registers, the VMM thread feeds input */
	int out_fd;
	int in_fd;
	bool in_paused; /* stdin taken out of epoll while the FIFO is full */
	int resume_fd;	/* a vCPU that drained the FIFO wakes the VMM thread to resume */
	int irq_fd;
	struct token_bucket out_limit; /* size 0: no limit */

	uint8_t ier, lcr, mcr, scr, fcr;
	uint8_t dll, dlm;
	bool thr_empty_pending;
	uint8_t rx[RX_FIFO_SIZE];
	unsigned rx_head, rx_count;
};

/* Called with the lock held: raises IRQ 4 when an enabled condition is pending. */
static void update_irq(struct serial *s)
{
	bool rx = (s->ier & IER_RX_DATA) && s->rx_count > 0;
	bool tx = (s->ier & IER_THR_EMPTY) && s->thr_empty_pending;
	if ((rx || tx) && s->irq_fd >= 0)
		irq_line_raise(s->irq_fd);
}

static void push_rx(struct serial *s, uint8_t byte)
{
	if (s->rx_count == RX_FIFO_SIZE)
		return;
	s->rx[(s->rx_head + s->rx_count) % RX_FIFO_SIZE] = byte;
	s->rx_count++;
}

static void transmit(struct serial *s, uint8_t byte)
{
	if (s->mcr & MCR_LOOP) {
		push_rx(s, byte);
	} else if (s->out_fd >= 0) {
		/* Over the limit the byte is lost, as Firecracker drops it: holding the guest
		 * back instead would stall every printk behind a full bucket. */
		if (s->out_limit.size && !token_bucket_try_take(&s->out_limit, 1, monotonic_ns())) {
			metric_inc(&uart_metrics[UART_RATE_LIMITER_DROPPED]);
		} else if (write(s->out_fd, &byte, 1) == 1) {
			metric_inc(&uart_metrics[UART_WRITE_COUNT]);
		} else {
			/* A console whose reader went away must not take the VM down. */
			metric_inc(&uart_metrics[UART_MISSED_WRITE_COUNT]);
		}
	}
	s->thr_empty_pending = true;
}

static uint8_t modem_status(const struct serial *s)
{
	if (!(s->mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS; /* a cable with someone at the other end */
	/* Loopback: each modem control output comes back on its status input. */
	return (uint8_t)((s->mcr & MCR_RTS ? MSR_CTS : 0) | (s->mcr & MCR_DTR ? MSR_DSR : 0) |
			 (s->mcr & MCR_OUT1 ? MSR_RI : 0) | (s->mcr & MCR_OUT2 ? MSR_DCD : 0));
}

/* vCPU thread: only the VMM thread touches the event loop (and the vCPU filter traps it). */
static void resume_input(struct serial *s)
{
	if (s->in_paused && s->rx_count < RX_FIFO_SIZE)
		eventfd_write(s->resume_fd, 1);
}

static uint8_t reg_read(struct serial *s, unsigned reg)
{
	switch (reg) {
	case REG_DATA:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_count == 0)
			return 0;
		uint8_t byte = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % RX_FIFO_SIZE;
		s->rx_count--;
		resume_input(s);
		update_irq(s);
		return byte;
	case REG_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case REG_IIR_FCR: {
		uint8_t fifo = (s->fcr & FCR_FIFO_ENABLE) ? IIR_FIFO_ENABLED : 0;
		if ((s->ier & IER_RX_DATA) && s->rx_count > 0)
			return fifo | IIR_RX_DATA;
		if ((s->ier & IER_THR_EMPTY) && s->thr_empty_pending) {
			s->thr_empty_pending = false; /* reading IIR acknowledges THRE */
			return fifo | IIR_THR_EMPTY;
		}
		return fifo | IIR_NONE;
	}
	case REG_LCR:
		return s->lcr;
	case REG_MCR:
		return s->mcr;
	case REG_LSR:
		return LSR_THR_EMPTY | LSR_IDLE | (s->rx_count ? LSR_DATA_READY : 0);
	case REG_MSR:
		return modem_status(s);
	default:
		return s->scr;
	}
}

static void reg_write(struct serial *s, unsigned reg, uint8_t val)
{
	switch (reg) {
	case REG_DATA:
		if (s->lcr & LCR_DLAB)
			s->dll = val;
		else
			transmit(s, val);
		break;
	case REG_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = val;
			break;
		}
		/* Enabling the THRE interrupt with an empty THR fires it at once: the 8250
		 * driver relies on that to start transmitting. */
		if ((val & IER_THR_EMPTY) && !(s->ier & IER_THR_EMPTY))
			s->thr_empty_pending = true;
		s->ier = val & 0x0f;
		break;
	case REG_IIR_FCR:
		s->fcr = val & (FCR_FIFO_ENABLE | 0xc0);
		if (val & FCR_CLEAR_RX) {
			s->rx_count = 0;
			resume_input(s);
		}
		break;
	case REG_LCR:
		s->lcr = val;
		break;
	case REG_MCR:
		s->mcr = val & 0x1f;
		break;
	case REG_LSR:
	case REG_MSR:
		break; /* read-only */
	default:
		s->scr = val;
		break;
	}
	update_irq(s);
}

static void serial_io(void *opaque, uint64_t offset, uint8_t *data, unsigned len, bool is_write)
{
	struct serial *s = opaque;
	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (is_write)
		reg_write(s, (unsigned)offset, data[0]);
	else
		data[0] = reg_read(s, (unsigned)offset);
	pthread_mutex_unlock(&s->lock);
}

static void on_input(void *opaque, uint32_t events)
{
	struct serial *s = opaque;
	uint8_t buf[RX_FIFO_SIZE];
	pthread_mutex_lock(&s->lock);
	size_t room = RX_FIFO_SIZE - s->rx_count;
	/* Leave the bytes in the host's buffer until the guest drains its FIFO; out of epoll
	 * altogether, which reports a hang-up even for no events. */
	if (room == 0) {
		s->in_paused = true;
		evloop_remove(&s->machine->loop, s->in_fd);
	}
	pthread_mutex_unlock(&s->lock);
	if (room == 0)
		return;
	ssize_t n = read(s->in_fd, buf, room);
	if (n > 0) {
		pthread_mutex_lock(&s->lock);
		for (ssize_t i = 0; i < n && s->rx_count < RX_FIFO_SIZE; i++)
			push_rx(s, buf[i]);
		update_irq(s);
		pthread_mutex_unlock(&s->lock);
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR) || (events & EPOLLHUP)) {
		/* End of input: the guest simply gets no more console input. */
		evloop_remove(&s->machine->loop, s->in_fd);
	}
}

static void on_resume(void *opaque, uint32_t events)
{
	struct serial *s = opaque;
	eventfd_t n;
	(void)events;
	eventfd_read(s->resume_fd, &n);
	pthread_mutex_lock(&s->lock);
	if (s->in_paused && s->rx_count < RX_FIFO_SIZE) {
		s->in_paused = false;
		evloop_add(&s->machine->loop, s->in_fd, EPOLLIN, on_input, s);
	}
	pthread_mutex_unlock(&s->lock);
}

struct serial *serial_create(struct machine *machine, int out_fd, int in_fd,
			     const struct token_bucket_config *out_limit)
{
	struct serial *s = calloc(1, sizeof(*s));
	if (!s)
		die("out of memory");
	static bool registered; /* one group for the one console */
	if (!registered) {
		metrics_register(&uart_group);
		registered = true;
	}
	if (out_limit)
		token_bucket_init(&s->out_limit, out_limit, monotonic_ns());
	pthread_mutex_init(&s->lock, NULL);
	s->machine = machine;
	s->out_fd = out_fd;
	s->in_fd = -1;
	s->mcr = MCR_OUT2;
	s->irq_fd = irq_line_create(machine, SERIAL_IRQ);
	if (s->irq_fd < 0)
		die("serial: cannot wire IRQ %d: %s", SERIAL_IRQ, strerror(-s->irq_fd));
	int rc = io_bus_register(&machine->pio_bus, SERIAL_PORT, 8, serial_io, s, "serial");
	if (rc)
		die("serial: cannot register ports 0x%x: %s", SERIAL_PORT, strerror(-rc));
	s->resume_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->resume_fd < 0 || evloop_add(&machine->loop, s->resume_fd, EPOLLIN, on_resume, s))
		die("serial: cannot create its eventfd: %s", strerror(errno));
	if (in_fd >= 0 && evloop_add(&machine->loop, in_fd, EPOLLIN, on_input, s) == 0)
		s->in_fd = in_fd;
	return s;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	if (s->in_fd >= 0)
		evloop_remove(&s->machine->loop, s->in_fd);
	evloop_remove(&s->machine->loop, s->resume_fd);
	close(s->resume_fd);
	if (s->irq_fd >= 0)
		close(s->irq_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void serial_save(struct serial *s, struct snap_writer *w)
{
	pthread_mutex_lock(&s->lock);
	uint8_t regs[] = { s->ier, s->lcr, s->mcr, s->scr,
			   s->fcr, s->dll, s->dlm, s->thr_empty_pending };
	snapw_bytes(w, regs, sizeof(regs));
	snapw_u8(w, (uint8_t)s->rx_count);
	for (unsigned i = 0; i < s->rx_count; i++)
		snapw_u8(w, s->rx[(s->rx_head + i) % RX_FIFO_SIZE]);
	pthread_mutex_unlock(&s->lock);
}

int serial_restore(struct serial *s, struct snap_reader *r, char *err)
{
	uint8_t regs[8], rx[RX_FIFO_SIZE];
	snapr_bytes(r, regs, sizeof(regs));
	unsigned count = snapr_u8(r);
	if (count > RX_FIFO_SIZE)
		return errf(err, -EINVAL, "serial: %u bytes in a %u-byte FIFO", count,
			    RX_FIFO_SIZE);
	snapr_bytes(r, rx, count);
	if (!snapr_done(r))
		return errf(err, -EINVAL, "serial: truncated state or trailing bytes");
	pthread_mutex_lock(&s->lock);
	/* The masks the register writes apply, so a file cannot set what a guest cannot. */
	s->ier = regs[0] & 0x0f;
	s->lcr = regs[1];
	s->mcr = regs[2] & 0x1f;
	s->scr = regs[3];
	s->fcr = regs[4] & (FCR_FIFO_ENABLE | 0xc0);
	s->dll = regs[5];
	s->dlm = regs[6];
	s->thr_empty_pending = regs[7] != 0;
	memcpy(s->rx, rx, count);
	s->rx_head = 0;
	s->rx_count = count;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
