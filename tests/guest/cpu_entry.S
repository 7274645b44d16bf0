/* Interrupt entry points and the application processors' start-up code (cpu.c). */
	.code64
	.text

/* The blk interrupt (cpu.c's IRQ_VECTOR): count it, EOI, back to the interrupted code. */
	.globl isr_device
isr_device:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	call cpu_device_irq
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	iretq

/* The LAPIC's spurious vector needs no EOI. */
	.globl isr_spurious
isr_spurious:
	iretq

/* Any other vector: an exception or a stray interrupt. Say which entry and stop. */
	.globl isr_other
isr_other:
	call cpu_unexpected
1:	cli
	hlt
	jmp 1b

/* trap-report (cpu.c): one entry per vector that pushes its number, then a common part
 * that hands the frame to cpu_trap_report and stops. The CPU pushed an error code below
 * the vector for some exceptions; the report prints the words either way. */
	.globl trap_stubs
	.align 16
trap_stubs:
	.set vec, 0
	.rept 256
	.align 16
	push $vec
	jmp trap_common
	.set vec, vec + 1
	.endr
trap_common:
	mov %rsp, %rdi
	call cpu_trap_report
3:	cli
	hlt
	jmp 3b

/* Copied to AP_TRAMPOLINE (0x8000, page 8: the SIPI vector) and run by each AP from
 * real mode: a GDT of its own, protected mode, then long mode on the page tables the
 * BSP runs on (their address is patched in at ap_cr3), a stack per APIC ID, ap_main(). */
#define T(sym) (0x8000 + (sym) - ap_trampoline)
	.globl ap_trampoline, ap_trampoline_end, ap_cr3
	.code16
ap_trampoline:
	cli
	xor %ax, %ax
	mov %ax, %ds
	lgdtl T(ap_gdt_ptr)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $0x08, $T(ap_prot)
	.code32
ap_prot:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %cr4, %eax
	or $0x20, %eax /* PAE */
	mov %eax, %cr4
	mov T(ap_cr3), %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx /* EFER */
	rdmsr
	or $0x100, %eax /* LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000000, %eax /* PG */
	mov %eax, %cr0
	ljmp $0x18, $T(ap_long)
	.code64
ap_long:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $0xfee00020, %ebx /* LAPIC ID register */
	mov (%rbx), %eax
	shr $24, %eax
	and $31, %eax
	mov %eax, %edi
	inc %eax
	shl $12, %eax
	mov $ap_stacks, %esp
	add %eax, %esp
	mov $ap_main, %eax
	call *%rax
2:	cli
	hlt
	jmp 2b
	.align 8
ap_gdt:
	.quad 0
	.quad 0x00cf9a000000ffff /* 0x08: 32-bit code */
	.quad 0x00cf92000000ffff /* 0x10: data */
	.quad 0x00af9a000000ffff /* 0x18: 64-bit code */
ap_gdt_ptr:
	.word 31
	.long T(ap_gdt)
ap_cr3:
	.long 0
ap_trampoline_end:

	.section .bss
	.align 4096
	.globl ap_stacks
ap_stacks:
	.space 4096 * 33
	.section .note.GNU-stack, "", @progbits
