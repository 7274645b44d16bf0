/* Shared by the test guest's files: console output and command-line words. */
#ifndef EMBER_TEST_GUEST_H
#define EMBER_TEST_GUEST_H

#include <stdbool.h>
#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* virtio-mmio (version 2) registers, device status bits, features and descriptor flags:
 * the blk/net driver (virtio.c) and the vsock one (vsock.c) share them. */
#define MMIO_BASE 0xc0001000UL
#define MMIO_SIZE 0x1000UL

#define R_MAGIC		   0x000
#define R_VERSION	   0x004
#define R_DEVICE_ID	   0x008
#define R_DEV_FEATURES	   0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES	   0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL	   0x030
#define R_QUEUE_NUM_MAX	   0x034
#define R_QUEUE_NUM	   0x038
#define R_QUEUE_READY	   0x044
#define R_QUEUE_NOTIFY	   0x050
#define R_ISR		   0x060
#define R_ISR_ACK	   0x064
#define R_STATUS	   0x070
#define R_DESC_LO	   0x080
#define R_DESC_HI	   0x084
#define R_AVAIL_LO	   0x090
#define R_AVAIL_HI	   0x094
#define R_USED_LO	   0x0a0
#define R_USED_HI	   0x0a4
#define R_CONFIG	   0x100

#define S_ACK	      1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED      0x80

#define F_RO	    (1ULL << 5)
#define F_INDIRECT  (1ULL << 28)
#define F_EVENT_IDX (1ULL << 29)
#define F_VERSION_1 (1ULL << 32)

#define D_NEXT	   1
#define D_WRITE	   2
#define D_INDIRECT 4

/* Guest RAM that does not exist (16 GiB): a buffer address the device must refuse. */
#define NO_RAM ((void *)0x400000000UL)

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* There is no libc: virtio.c has these (the compiler may emit calls to them too). */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

void puts_uart(const char *s);
void put_dec(uint64_t v);
/* " key=value" */
void kv(const char *key, uint64_t v);
/* A full barrier: orders ring writes against the index and the notification. */
void mb(void);
/* True when word appears as a whole word in the command line. */
bool has_word(const char *cmdline, const char *word);
uintptr_t virtio_find_device(const char *cmdline, uint32_t device_id);
/* Drives the virtio-blk devices as the blk-* words on the command line ask (virtio.c). */
void virtio_run(const char *cmdline);
/* Sends the virtio-vsock device hostile packets as the vsock-* words ask (vsock.c). */
void vsock_run(const char *cmdline);
/* Reads the virtio-rng device and sends it broken chains as the rng-* words ask (rng.c). */
void rng_run(const char *cmdline);
/* The dev-count word: counts through virtio-net and virtio-vsock for ever (snap.c). */
void snap_run(const char *cmdline);
/* The count-clock word: counts for ever with the kvmclock's time (clock.c). */
void clock_run(const char *cmdline);
/* virtio.c's transmit-only virtio-net driver for snap.c. */
bool net_count_init(void);
int net_count_send(uint64_t n);
/* Drives the virtio-balloon device as the balloon-* words ask (balloon.c). */
void balloon_run(const char *cmdline);
/* The smp and high-mem words (cpu.c). */
void cpu_run(const char *cmdline, const uint8_t *boot_params);
/* Routes the IOAPIC's pin irq to vector on this CPU, through an IDT whose handler counts
 * (cpu_device_irqs) and EOIs; the 8259s are masked. Interrupts stay off (cli). */
void cpu_irq_setup(unsigned irq, unsigned vector);
uint32_t cpu_device_irqs(void);
/* The trap-report word: every vector reports itself on the UART (cpu.c). */
void cpu_trap_report_setup(void);
/* The count-timer word: counts LAPIC timer interrupts forever (cpu.c). */
void cpu_count_timer(void) __attribute__((noreturn));

#endif
