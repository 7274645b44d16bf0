/* The guest-physical memory map, Firecracker-compatible: RAM from 0 with a gap from 3 to 4 GiB
 * for the boot timer, the virtio-mmio devices, the IOAPIC and the LAPIC. */
#ifndef EMBER_LAYOUT_H
#define EMBER_LAYOUT_H

#define GDT_ADDR       0x500ULL
#define IDT_ADDR       0x530ULL /* after the five GDT entries at 0x500-0x527 */
#define ZERO_PAGE_ADDR 0x7000ULL
#define BOOT_STACK_TOP 0x8ff0ULL
#define PML4_ADDR      0x9000ULL
#define PDPT_ADDR      0xa000ULL
#define PD_ADDR	       0xb000ULL /* four page directories, 0xb000-0xefff: 4 GiB in 2 MiB pages */
#define CMDLINE_ADDR   0x20000ULL
#define EBDA_START     0x9fc00ULL /* the MP table lives here, outside e820 RAM */
#define HIMEM_START    0x100000ULL

#define MMIO_GAP_START	 0xc0000000ULL /* RAM stops at 3 GiB and continues at 4 GiB */
#define MMIO_GAP_END	 0x100000000ULL
#define BOOT_TIMER_ADDR	 0xc0000000ULL
#define BOOT_TIMER_SIZE	 0x1000ULL
#define VIRTIO_MMIO_BASE 0xc0001000ULL
#define VIRTIO_MMIO_SIZE 0x1000ULL
#define VIRTIO_IRQ_BASE	 5

#define IOAPIC_ADDR	      0xfec00000ULL
#define LAPIC_ADDR	      0xfee00000ULL
#define KVM_TSS_ADDR	      0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

#define SERIAL_PORT	0x3f8
#define SERIAL_IRQ	4
#define I8042_DATA_PORT 0x60
#define I8042_IRQ	1

#endif
