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

void puts_uart(const char *s);
/* True when word appears as a whole word in the command line. */
bool has_word(const char *cmdline, const char *word);
/* Drives the virtio-blk devices as the blk-* words on the command line ask (virtio.c). */
void virtio_run(const char *cmdline);

#endif
