/* A tiny freestanding guest for fast tests on any KVM, PVM included: prints a line on the
 * UART, writes the boot-timer byte, then resets through the i8042 (or, with the word
 * "halt" on its command line, stays halted so that tests have a running VM; with "spin"
 * it busy-loops and prints a tick line now and then, for pause/resume tests; with "count"
 * it counts in memory and prints the count, for snapshot tests; with "uart-echo" it prints
 * back a line it reads from the UART; with "triple-fault" it triple-faults; with "exec-mmio"
 * it runs code where no memory is). "smp" and "high-mem" test the CPUs and memory (cpu.c);
 * words that start with "blk-" or "net-" exercise the virtio-blk or virtio-net devices by
 * polling (virtio.c), "vsock-" words the virtio-vsock device (vsock.c), "rng-" words the
 * virtio-rng device (rng.c), "balloon-" words the virtio-balloon device (balloon.c).
 * "trap-report" first loads an IDT in which every vector prints itself (cpu.c) instead of
 * a silent triple fault, and "ud2" then raises #UD (vector 6) to show it.
 * "uart-flood" prints 16 KiB of lines before it goes on, for the
 * console's rate limiter; "boot-timer-repeat" writes the boot-timer byte 1000 times more.
 * "dirty-pages" (or "dirty-pages=N") counts like "count" and writes a known set of pages
 * (Diff snapshots); "dev-count" counts through virtio-net and virtio-vsock (snap.c),
 * "count-clock" with the kvmclock's time (clock.c). */
#include <stdbool.h>
#include <stdint.h>

#include "guest.h"

#define UART		0x3f8
#define UART_LSR	5
#define UART_LSR_THRE	0x20
#define UART_LSR_DR	0x01
#define I8042_CMD	0x64
#define I8042_RESET	0xfe
#define BOOT_TIMER	((volatile uint8_t *)0xc0000000UL)
#define BP_CMD_LINE_PTR 0x228

static void putc_uart(char c)
{
	while (!(inb(UART + UART_LSR) & UART_LSR_THRE))
		;
	outb(UART, (uint8_t)c);
}

void puts_uart(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			putc_uart('\r');
		putc_uart(*s);
	}
}

/* uart-echo: one line from the UART's receiver (ember's stdin), printed back; polled, with
 * a bound so that a silent host does not hang the guest. */
static void uart_echo(void)
{
	char line[80];
	unsigned n = 0;
	for (unsigned long polls = 0; polls < 200000UL && n < sizeof(line) - 1; polls++) {
		if (!(inb(UART + UART_LSR) & UART_LSR_DR))
			continue;
		char c = (char)inb(UART);
		if (c == '\n' || c == '\r')
			break;
		line[n++] = c;
	}
	line[n] = '\0';
	puts_uart("ember test guest: uart got '");
	puts_uart(line);
	puts_uart("'\n");
}

/* True when word appears as a whole word in the command line. */
/* The first virtio_mmio.device=4K@0x... on the command line (ember announces every device
 * there) whose registers say virtio-mmio version 2 with this DeviceID; 0 when none. */
uintptr_t virtio_find_device(const char *cmdline, uint32_t device_id)
{
	static const char key[] = "virtio_mmio.device=4K@0x";
	for (const char *p = cmdline; *p; p++) {
		const char *k = key, *q = p;
		while (*k && *q == *k) {
			k++;
			q++;
		}
		if (*k)
			continue;
		uintptr_t a = 0;
		for (;; q++) {
			if (*q >= '0' && *q <= '9')
				a = a * 16 + (uintptr_t)(*q - '0');
			else if (*q >= 'a' && *q <= 'f')
				a = a * 16 + (uintptr_t)(*q - 'a' + 10);
			else
				break;
		}
		if (a < MMIO_BASE || a >= MMIO_BASE + 32 * MMIO_SIZE)
			continue;
		volatile uint32_t *regs = (volatile uint32_t *)a;
		if (regs[R_MAGIC / 4] == 0x74726976 && regs[R_VERSION / 4] == 2 &&
		    regs[R_DEVICE_ID / 4] == device_id)
			return a;
	}
	return 0;
}

bool has_word(const char *cmdline, const char *word)
{
	const char *p = cmdline;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *w = word;
		const char *q = p;
		while (*w && *q == *w) {
			q++;
			w++;
		}
		if (!*w && (*q == ' ' || *q == '\0'))
			return true;
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

/* The number after "key" (which ends in '=') in a word of the command line, or dflt. */
static unsigned long word_value(const char *cmdline, const char *key, unsigned long dflt)
{
	for (const char *p = cmdline; *p; p++) {
		if (p != cmdline && p[-1] != ' ')
			continue;
		const char *k = key, *q = p;
		while (*k && *q == *k) {
			k++;
			q++;
		}
		if (*k)
			continue;
		unsigned long v = 0;
		while (*q >= '0' && *q <= '9')
			v = v * 10 + (unsigned long)(*q++ - '0');
		return v;
	}
	return dflt;
}

/* dirty-pages: counts like "count", and at each count writes it into every one of npages
 * pages (37, or N with dirty-pages=N, at most 32768) from DIRTY_BASE. Between two snapshots
 * a second apart these pages, the count's and the stack's are all that the guest dirties
 * (tests/snapshot_diff.bats, bench/snapshot-create.sh); its first line says where they
 * are, in decimal. */
#define DIRTY_BASE 0x2000000UL /* 32 MiB */
static void __attribute__((noreturn)) dirty_pages(unsigned long npages)
{
	extern char stack_top[];
	static volatile uint64_t count;
	if (npages > 32768)
		npages = 32768;
	puts_uart("dirty: base=");
	put_dec(DIRTY_BASE);
	puts_uart(" pages=");
	put_dec(npages);
	puts_uart(" count_at=");
	put_dec((uintptr_t)&count);
	puts_uart(" stack=");
	put_dec((uintptr_t)stack_top - 16384);
	puts_uart("-");
	put_dec((uintptr_t)stack_top);
	puts_uart("\n");
	for (;;) {
		for (volatile unsigned long i = 0; i < 20000; i++)
			;
		count++;
		for (unsigned long p = 0; p < npages; p++)
			*(volatile uint64_t *)(DIRTY_BASE + p * 4096UL + 8 * (count % 512)) = count;
		puts_uart("ember test guest: count=");
		put_dec(count);
		puts_uart("\n");
	}
}

void guest_main(const uint8_t *boot_params)
{
	uint32_t cmd_ptr = *(const volatile uint32_t *)(boot_params + BP_CMD_LINE_PTR);
	const char *cmdline = cmd_ptr ? (const char *)(uintptr_t)cmd_ptr : "";

	/* The boot timer first: it marks that the guest runs, and bench/api.py times ember's
	 * path to here. The greeting after it costs ~80 port exits (2 ms on PVM). */
	*BOOT_TIMER = 123;
	puts_uart("ember test guest: hello from the guest\n");
	if (has_word(cmdline, "trap-report"))
		cpu_trap_report_setup();
	/* smp and high-mem (cpu.c). */
	cpu_run(cmdline, boot_params);
	/* Words like blk-rw or blk-loop drive the virtio-blk devices (virtio.c). */
	virtio_run(cmdline);
	/* Words like vsock-hostile send the virtio-vsock device malformed packets (vsock.c). */
	vsock_run(cmdline);
	/* rng-* words read the virtio-rng device and break its queue (rng.c). */
	rng_run(cmdline);
	/* dev-count counts through virtio-net and virtio-vsock, for snapshots (snap.c). */
	snap_run(cmdline);
	/* balloon-* words follow the balloon's target (balloon.c); balloon-driver never ends. */
	balloon_run(cmdline);

	if (has_word(cmdline, "boot-timer-repeat"))
		for (unsigned i = 0; i < 1000; i++)
			*BOOT_TIMER = 123;
	if (has_word(cmdline, "uart-flood")) {
		/* 256 lines of 63 bytes and CR LF: 16640 bytes, counted by tests/serial.bats. */
		for (unsigned line = 0; line < 256; line++)
			puts_uart("ember test guest: flood "
				  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
	}
	if (has_word(cmdline, "uart-echo-late"))
		/* Lets ember fill the 64-byte receive FIFO first, so that it stops reading its
		 * stdin and the guest's reads must make it resume. */
		for (unsigned i = 0; i < 20000; i++) /* port reads: exits, a few ms each thousand */
			inb(UART + UART_LSR);
	if (has_word(cmdline, "uart-echo") || has_word(cmdline, "uart-echo-late"))
		uart_echo();
	if (has_word(cmdline, "triple-fault")) {
		/* An empty IDT: the #UD cannot be delivered, nor the #DF that follows. */
		puts_uart("ember test guest: triple fault next\n");
		struct {
			uint16_t limit;
			uint64_t base;
		} __attribute__((packed)) idtr = { 0, 0 };
		__asm__ volatile("lidt %0; ud2" : : "m"(idtr));
	}
	if (has_word(cmdline, "ud2")) {
		puts_uart("ember test guest: ud2 next\n");
		__asm__ volatile("ud2");
	}
	if (has_word(cmdline, "exec-mmio")) {
		/* Code fetched from the gap below 4 GiB, where no RAM and no device is: KVM
		 * cannot run or emulate it. */
		puts_uart("ember test guest: jumping into the MMIO gap\n");
		((void (*)(void))0xd0000000UL)();
	}
	clock_run(cmdline); /* count-clock (clock.c) */
	if (has_word(cmdline, "dirty-pages") || word_value(cmdline, "dirty-pages=", 0))
		dirty_pages(word_value(cmdline, "dirty-pages=", 37));
	if (has_word(cmdline, "count-timer"))
		cpu_count_timer();
	if (has_word(cmdline, "count")) {
		/* The count lives in guest memory, not in a register: a snapshot restored in
		 * another process carries on from it. */
		static volatile uint64_t count;
		for (;;) {
			for (volatile unsigned long i = 0; i < 20000; i++)
				;
			count++;
			puts_uart("ember test guest: count=");
			put_dec(count);
			puts_uart("\n");
		}
	}
	if (has_word(cmdline, "spin")) {
		/* Keeps the vCPU busy and the console moving: pause/resume tests watch it. */
		for (unsigned long tick = 0;; tick++) {
			for (volatile unsigned long i = 0; i < 20000; i++)
				;
			puts_uart("ember test guest: tick\n");
		}
	}
	if (has_word(cmdline, "halt")) {
		puts_uart("ember test guest: halting\n");
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	outb(I8042_CMD, I8042_RESET);
	for (;;)
		__asm__ volatile("hlt");
}
