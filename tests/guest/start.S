/* Entry from ember's 64-bit boot: long mode, paging on, RSI = boot_params. */
	.section .text.start, "ax"
	.globl _start
	.code64
_start:
	cli
	lea stack_top(%rip), %rsp
	mov %rsi, %rdi          /* guest_main(boot_params) */
	call guest_main
1:	hlt
	jmp 1b

	.section .bss
	.align 16
	.space 16384
	.globl stack_top        /* the dirty-pages word prints where the stack is */
stack_top:
	.section .note.GNU-stack, "", @progbits
