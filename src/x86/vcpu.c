#include "x86/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "x86/boot.h"
#include "x86/cpuid.h"
#include "x86/layout.h"
#include "core/log.h"
#include "core/seccomp.h"
#include "core/metrics.h"

#define VCPU_KICK_SIGNAL SIGRTMIN

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define APIC_LVT_LINT0	 0x350
#define APIC_LVT_LINT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

#define BOOT_MSRS 11

static void set_msrs(struct vcpu *vcpu)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[BOOT_MSRS];
	} msrs = { .hdr.nmsrs = BOOT_MSRS,
		   .entries = {
			   { .index = MSR_IA32_SYSENTER_CS },
			   { .index = MSR_IA32_SYSENTER_ESP },
			   { .index = MSR_IA32_SYSENTER_EIP },
			   { .index = MSR_STAR },
			   { .index = MSR_CSTAR },
			   { .index = MSR_KERNEL_GS_BASE },
			   { .index = MSR_SYSCALL_MASK },
			   { .index = MSR_LSTAR },
			   { .index = MSR_IA32_TSC },
			   /* fast strings, as firmware leaves it */
			   { .index = MSR_IA32_MISC_ENABLE, .data = 1 },
			   /* MTRRs on, write-back by default */
			   { .index = MSR_MTRR_DEF_TYPE, .data = (1u << 11) | 6 },
		   } };
	int set = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
	if (set < 0)
		die("vCPU %u: KVM_SET_MSRS: %s", vcpu->index, strerror(errno));
	/* KVM stops at the first MSR it refuses; the rest of the boot still works, so say
	 * which one and carry on. */
	if (set < BOOT_MSRS)
		log_warn("vCPU %u: KVM refused MSR 0x%x; continuing without it", vcpu->index,
			 msrs.entries[set].index);
}

static void set_lapic(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		die("vCPU %u: KVM_GET_LAPIC: %s", vcpu->index, strerror(errno));
	uint32_t lint0, lint1;
	memcpy(&lint0, &lapic.regs[APIC_LVT_LINT0], 4);
	memcpy(&lint1, &lapic.regs[APIC_LVT_LINT1], 4);
	/* What the BIOS leaves: the PIC's output on LINT0 as ExtINT, NMIs on LINT1. */
	lint0 = (lint0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	lint1 = (lint1 & ~0x700u) | (APIC_MODE_NMI << 8);
	memcpy(&lapic.regs[APIC_LVT_LINT0], &lint0, 4);
	memcpy(&lapic.regs[APIC_LVT_LINT1], &lint1, 4);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		die("vCPU %u: KVM_SET_LAPIC: %s", vcpu->index, strerror(errno));
}

void vcpu_create(struct machine *machine, struct vcpu *vcpu, unsigned index,
		 const struct kvm_cpuid2 *supported, bool smt)
{
	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->machine = machine;
	vcpu->index = index;
	vcpu->fd = ioctl(machine->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0)
		die("vCPU %u: KVM_CREATE_VCPU: %s", index, strerror(errno));
	vcpu->run = mmap(NULL, (size_t)machine->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED)
		die("vCPU %u: cannot map kvm_run: %s", index, strerror(errno));

	/* Room for the topology subleaves the host may not list. */
	size_t cpuid_size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *cpuid = malloc(cpuid_size + 4 * sizeof(supported->entries[0]));
	if (!cpuid)
		die("out of memory");
	memcpy(cpuid, supported, cpuid_size);
	cpuid->nent = cpuid_complete_topology(cpuid->entries, cpuid->nent, cpuid->nent + 4);
	cpuid_filter(cpuid->entries, cpuid->nent, index, machine->nr_vcpus, smt);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		die("vCPU %u: KVM_SET_CPUID2: %s", index, strerror(errno));
	free(cpuid);

	set_msrs(vcpu);
	set_lapic(vcpu);

	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		die("vCPU %u: KVM_SET_FPU: %s", index, strerror(errno));
}

static void set_segment(struct kvm_segment *seg, uint16_t selector, uint8_t type, bool code)
{
	*seg = (struct kvm_segment){
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.db = !code,
		.s = 1,
		.l = code,
		.g = 1,
	};
}

void vcpu_setup_long_mode(struct vcpu *vcpu, uint64_t entry)
{
	struct kvm_sregs sregs;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		die("vCPU %u: KVM_GET_SREGS: %s", vcpu->index, strerror(errno));
	set_segment(&sregs.cs, BOOT_CS_SELECTOR, 0xb, true);
	set_segment(&sregs.ds, BOOT_DS_SELECTOR, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){
		.limit = 0xfffff, .selector = BOOT_TSS_SELECTOR, .type = 0xb, .present = 1
	};
	sregs.gdt.base = GDT_ADDR;
	sregs.gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
	sregs.idt.base = IDT_ADDR;
	sregs.idt.limit = 7;
	sregs.cr3 = PML4_ADDR;
	sregs.cr4 |= 1u << 5;		      /* PAE */
	sregs.cr0 |= (1u << 0) | (1u << 31);  /* PE, PG */
	sregs.efer |= (1u << 8) | (1u << 10); /* LME, LMA */
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		die("vCPU %u: KVM_SET_SREGS: %s", vcpu->index, strerror(errno));

	struct kvm_regs regs = {
		.rflags = 0x2, /* bit 1 is reserved and always set */
		.rip = entry,
		.rsp = BOOT_STACK_TOP,
		.rbp = BOOT_STACK_TOP,
		.rsi = ZERO_PAGE_ADDR,
	};
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		die("vCPU %u: KVM_SET_REGS: %s", vcpu->index, strerror(errno));
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	metric_inc(&vcpu_metrics[is_write ? VCPU_EXIT_IO_OUT : VCPU_EXIT_IO_IN]);
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (!io_bus_access(&vcpu->machine->pio_bus, run->io.port, data, run->io.size,
				   is_write) &&
		    !is_write)
			memset(data, 0xff, run->io.size); /* an empty ISA port floats high */
	}
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	unsigned len = run->mmio.len <= 8 ? run->mmio.len : 8;
	metric_inc(&vcpu_metrics[run->mmio.is_write ? VCPU_EXIT_MMIO_WRITE : VCPU_EXIT_MMIO_READ]);
	if (!io_bus_access(&vcpu->machine->mmio_bus, run->mmio.phys_addr, run->mmio.data, len,
			   run->mmio.is_write)) {
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0, len);
		log_debug("vCPU %u: unhandled MMIO %s at 0x%llx", vcpu->index,
			  run->mmio.is_write ? "write" : "read",
			  (unsigned long long)run->mmio.phys_addr);
	}
}

static void report_internal_error(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct kvm_regs regs;
	unsigned long long rip = 0;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) == 0)
		rip = regs.rip;
	log_err("vCPU %u: KVM internal error, suberror %u, at rip 0x%llx", vcpu->index,
		run->internal.suberror, rip);
	if (vcpu->machine->pvm_host)
		log_err("this host's /dev/kvm is PVM (kvm_pvm), which only runs kernels built as "
			"PVM guests; a standard kernel fails like this in early boot. Run it in "
			"the emulated KVM host (tests/vmhost/run) or on a host with VMX/SVM");
}

/* Where a guest that triple-faulted was: a crashed guest's last state, for its symbols
 * (reboot=t ends here too, harmlessly). */
static void report_shutdown(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0)
		return;
	log_info("vCPU %u: at the triple fault rip 0x%llx rsp 0x%llx rflags 0x%llx cr0 0x%llx "
		 "cr2 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx idt 0x%llx gdt 0x%llx tr 0x%llx",
		 vcpu->index, (unsigned long long)r.rip, (unsigned long long)r.rsp,
		 (unsigned long long)r.rflags, (unsigned long long)s.cr0, (unsigned long long)s.cr2,
		 (unsigned long long)s.cr3, (unsigned long long)s.cr4, (unsigned long long)s.efer,
		 (unsigned long long)s.idt.base, (unsigned long long)s.gdt.base,
		 (unsigned long long)s.tr.base);
	if (r.rip == 0xfff0 && !(s.cr0 & 1))
		log_info("vCPU %u: that is the reset state: KVM on AMD (SVM) resets a vCPU at a "
			 "shutdown and keeps nothing of where the guest was",
			 vcpu->index);
}

/* The status ember exits with when this exit ends the VM; -1: the guest runs on. */
static int handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vcpu);
		return -1;
	case KVM_EXIT_MMIO:
		handle_mmio(vcpu);
		return -1;
	case KVM_EXIT_HLT:
		/* Only seen without an in-kernel LAPIC: nothing can wake us. */
		log_info("vCPU %u halted", vcpu->index);
		return 0;
	case KVM_EXIT_SHUTDOWN:
		/* A triple fault: what reboot=t does, and how a crashed guest ends. */
		log_info("vCPU %u: guest shut down (triple fault)", vcpu->index);
		report_shutdown(vcpu);
		return 0;
	case KVM_EXIT_SYSTEM_EVENT:
		log_info("vCPU %u: guest system event %u", vcpu->index, run->system_event.type);
		return 0;
	case KVM_EXIT_INTERNAL_ERROR:
		report_internal_error(vcpu);
		return 3;
	case KVM_EXIT_FAIL_ENTRY:
		log_err("vCPU %u: VM entry failed, reason 0x%llx", vcpu->index,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return 3;
	default:
		log_err("vCPU %u: unexpected KVM exit %u", vcpu->index, run->exit_reason);
		return 3;
	}
}

/* Parks the thread while the VM is paused. */
static void wait_while_paused(struct machine *machine)
{
	/* The common case costs one atomic load, not a lock, on every exit. A pause sets the
	 * flag before it kicks the vCPU, so the thread sees it when KVM_RUN returns. */
	if (!atomic_load(&machine->paused))
		return;
	pthread_mutex_lock(&machine->pause_lock);
	if (machine->paused && !atomic_load(&machine->exiting)) {
		machine->nr_parked++;
		pthread_cond_broadcast(&machine->pause_cond);
		while (machine->paused && !atomic_load(&machine->exiting))
			pthread_cond_wait(&machine->pause_cond, &machine->pause_lock);
		machine->nr_parked--;
	}
	pthread_mutex_unlock(&machine->pause_lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	/* Named for top -H, perf and pinning scripts (Firecracker's is "fc_vcpu N"). */
	char name[16];
	snprintf(name, sizeof(name), "ember_vcpu %u", vcpu->index);
	pthread_setname_np(pthread_self(), name);
	/* Before the first KVM_RUN: from here on the guest drives this thread. */
	int rc = seccomp_install(SECCOMP_VCPU);
	if (rc) {
		log_err("vCPU %u: cannot install the seccomp filter: %s", vcpu->index,
			strerror(-rc));
		machine_request_exit(vcpu->machine, 1);
		return NULL;
	}
	while (!atomic_load(&vcpu->machine->exiting)) {
		wait_while_paused(vcpu->machine);
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu->run->immediate_exit = 0;
				continue;
			}
			log_err("vCPU %u: KVM_RUN: %s", vcpu->index, strerror(errno));
			machine_request_exit(vcpu->machine, 3);
			break;
		}
		int status = handle_exit(vcpu);
		if (status >= 0) {
			machine_request_exit(vcpu->machine, status);
			break;
		}
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig; /* only here so that the signal interrupts KVM_RUN */
}

int vcpu_start(struct vcpu *vcpu)
{
	static bool handler_installed;
	if (!handler_installed) {
		struct sigaction sa = { .sa_handler = kick_handler };
		sigemptyset(&sa.sa_mask);
		sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
		handler_installed = true;
	}
	int rc = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	if (rc)
		return -rc;
	vcpu->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	/* immediate_exit covers the window before the thread re-enters KVM_RUN, the signal
	 * the time it already spends inside. */
	vcpu->run->immediate_exit = 1;
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_kvmclock_paused(struct vcpu *vcpu)
{
	/* EINVAL: the guest registered no kvmclock page, so there is nothing to flag. */
	if (ioctl(vcpu->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		log_warn("vCPU %u: KVM_KVMCLOCK_CTRL: %s", vcpu->index, strerror(errno));
}

void vcpu_stop(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	vcpu_kick(vcpu);
	pthread_join(vcpu->thread, NULL);
	vcpu->started = false;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run && vcpu->run != MAP_FAILED)
		munmap(vcpu->run, (size_t)vcpu->machine->vcpu_mmap_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
}
