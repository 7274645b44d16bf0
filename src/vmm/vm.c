/* VM creation: KVM, memory, legacy devices, kernel, vCPUs; and the VMM thread's loop. */
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/vsock.h"
#include "x86/boot.h"
#include "legacy/boot_timer.h"
#include "legacy/i8042.h"
#include "x86/layout.h"
#include "x86/loader.h"
#include "core/log.h"
#include "x86/mptable.h"
#include "core/seccomp.h"
#include "legacy/serial.h"
#include "x86/vcpu.h"

/* The host CPU's own CPUID leaf (src/cpuid.h is about the guest's). */
static unsigned host_cpuid_ecx(unsigned leaf, unsigned *eax)
{
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(0));
	if (eax)
		*eax = a;
	return c;
}

/* Intel VMX (CPUID 1, ECX bit 5) or AMD SVM (CPUID 0x80000001, ECX bit 2). */
static bool cpu_has_hw_virt(void)
{
	unsigned max_ext;
	if (host_cpuid_ecx(1, NULL) & (1u << 5))
		return true;
	host_cpuid_ecx(0x80000000, &max_ext);
	return max_ext >= 0x80000001 && (host_cpuid_ecx(0x80000001, NULL) & (1u << 2));
}

static int open_kvm(struct vm *vm, char *err)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int rc = -errno;
		if (errno == ENOENT)
			snprintf(err, VM_ERR_LEN,
				 "/dev/kvm does not exist: this host has no KVM (load kvm_intel or "
				 "kvm_amd, or enable virtualization in the firmware)");
		else if (errno == EACCES || errno == EPERM)
			snprintf(err, VM_ERR_LEN,
				 "/dev/kvm: permission denied (run as root or join the group that "
				 "owns /dev/kvm)");
		else
			snprintf(err, VM_ERR_LEN, "/dev/kvm: %s", strerror(errno));
		return rc;
	}
	int version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION)
		die("/dev/kvm: KVM API version %d, ember needs %d", version, KVM_API_VERSION);
	/* PVM registers itself as the kvm_pvm module; it cannot run standard kernels. In a jail
	 * there is no /sys, but the CPU tells as much: a /dev/kvm without VMX or SVM
	 * underneath can only be a software one such as PVM. */
	vm->pvm_host = access("/sys/module/kvm_pvm", F_OK) == 0 || !cpu_has_hw_virt();
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size < (int)sizeof(struct kvm_run))
		die("/dev/kvm: KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
	return 0;
}

static void create_vm_and_irqchip(struct vm *vm)
{
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		die("KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		die("KVM_SET_TSS_ADDR: %s", strerror(errno));
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s (not needed on this host)",
			  strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP: %s", strerror(errno));
}

static void *create_pit(void *arg)
{
	struct vm *vm = arg;
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		die("KVM_CREATE_PIT2: %s", strerror(errno));
	return NULL;
}

static void map_memory(struct vm *vm)
{
	uint64_t size = (uint64_t)vm->cfg->machine.mem_size_mib << 20;
	int rc = vm_memory_init(vm, size);
	if (rc)
		die("cannot map %u MiB of guest memory: %s", vm->cfg->machine.mem_size_mib,
		    strerror(-rc));
}

static void *register_memory(void *arg)
{
	struct vm *vm = arg;
	for (unsigned i = 0; i < vm->nr_mem; i++) {
		struct kvm_userspace_memory_region region = {
			.slot = i,
			.guest_phys_addr = vm->mem[i].gpa,
			.memory_size = vm->mem[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem[i].hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			die("KVM_SET_USER_MEMORY_REGION (slot %u, %llu MiB): %s", i,
			    (unsigned long long)(vm->mem[i].size >> 20), strerror(errno));
	}
	return NULL;
}

/* Runs fn on a helper thread: KVM_CREATE_PIT2 and KVM_SET_USER_MEMORY_REGION mostly sleep
 * (a kernel thread start, an SRCU grace period), so they overlap with the rest of setup. */
static pthread_t start_setup_thread(struct vm *vm, void *(*fn)(void *))
{
	pthread_t t;
	if (pthread_create(&t, NULL, fn, vm))
		die("cannot start a setup thread");
	return t;
}

static struct kvm_cpuid2 *supported_cpuid(struct vm *vm)
{
	for (unsigned nent = 128; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			die("out of memory");
		c->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	}
	die("KVM_GET_SUPPORTED_CPUID: too many entries");
}

/* Loads kernel and initrd and writes every boot structure; the entry point goes to
 * *entry. Errors are the user's (files, sizes): a message in err, nothing exits. */
static int load_guest(struct vm *vm, uint64_t *entry, char *err)
{
	const struct boot_source_config *boot = &vm->cfg->boot;
	struct kernel_image k;
	int rc = loader_load_kernel(vm, boot->kernel_image_path, &k, err);
	if (rc)
		return rc;
	if (vm->pvm_host && k.is_linux && !k.is_pvm_guest && !getenv("EMBER_PVM_FORCE")) {
		snprintf(err, VM_ERR_LEN,
			 "kernel %s is a standard Linux kernel, but this host's /dev/kvm is PVM "
			 "(kvm_pvm), which only runs kernels built as PVM guests: it would die in "
			 "early boot. Run it in the emulated KVM host (tests/vmhost/run -- "
			 "build/ember "
			 "...) or on a host with VMX/SVM; EMBER_PVM_FORCE=1 tries anyway",
			 boot->kernel_image_path);
		return -ENOTSUP;
	}

	uint64_t initrd_gpa = 0, initrd_size = 0;
	if (boot->initrd_path) {
		rc = loader_load_initrd(vm, boot->initrd_path, &k, &initrd_gpa, &initrd_size, err);
		if (rc)
			return rc;
	}

	char cmdline[CMDLINE_MAX];
	const char *args = boot->boot_args ? boot->boot_args : DEFAULT_BOOT_ARGS;
	/* Devices that announce themselves on the command line (virtio-mmio) join here. */
	const char *extra[VIRTIO_DEV_MAX + 1];
	unsigned nr_extra = 0;
	rc = blk_create_drives(vm, extra, VIRTIO_DEV_MAX + 1, &nr_extra, err, VM_ERR_LEN);
	if (rc)
		return rc;
	rc = net_create_all(vm, extra, VIRTIO_DEV_MAX + 1, &nr_extra, err, VM_ERR_LEN);
	if (rc)
		return rc;
	if (vm->cfg->vsock) {
		rc = vsock_create(vm, vm->cfg->vsock, extra, VIRTIO_DEV_MAX + 1, &nr_extra, err,
				  VM_ERR_LEN);
		if (rc)
			return rc;
	}
	if (boot_cmdline_build(cmdline, k.cmdline_max, args, extra, nr_extra)) {
		snprintf(err, VM_ERR_LEN, "kernel command line longer than %u bytes",
			 k.cmdline_max);
		return -ENAMETOOLONG;
	}
	rc = boot_write_params(vm, &k, cmdline, initrd_gpa, initrd_size, err);
	if (rc)
		return rc;
	if (boot_write_page_tables(vm) || mptable_write(vm, EBDA_START, 0xa0000, vm->nr_vcpus)) {
		snprintf(err, VM_ERR_LEN, "cannot write the boot page tables and MP table");
		return -ENOMEM;
	}
	log_debug("kernel %s: entry 0x%llx, command line: %s", boot->kernel_image_path,
		  (unsigned long long)k.entry, cmdline);
	*entry = k.entry;
	return 0;
}

static void on_exit_event(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	(void)events;
	uint64_t v;
	ssize_t r = read(vm->exit_event_fd, &v, sizeof(v));
	(void)r;
	vm->loop.stop = true;
}

static void on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	(void)events;
	struct signalfd_siginfo si;
	if (read(vm->loop_signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		log_info("received signal %u, stopping the VM", si.ssi_signo);
		vm_request_exit(vm, 128 + (int)si.ssi_signo);
	}
}

void vm_request_exit(struct vm *vm, int code)
{
	bool expected = false;
	if (!atomic_compare_exchange_strong(&vm->exiting, &expected, true))
		return;
	vm->exit_code = code;
	uint64_t one = 1;
	ssize_t r = write(vm->exit_event_fd, &one, sizeof(one));
	(void)r;
}

void vm_init(struct vm *vm)
{
	vm->kvm_fd = vm->vm_fd = vm->exit_event_fd = vm->loop_signal_fd = vm->serial_out_fd = -1;
	atomic_init(&vm->exiting, false);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	if (evloop_init(&vm->loop))
		die("epoll_create: %s", strerror(errno));
	vm->exit_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_event_fd < 0 ||
	    evloop_add(&vm->loop, vm->exit_event_fd, EPOLLIN, on_exit_event, vm))
		die("cannot create the exit eventfd: %s", strerror(errno));

	/* SIGTERM/SIGINT/SIGHUP end the VM through the loop; the mask is inherited by every
	 * thread created after this point. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	vm->loop_signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->loop_signal_fd < 0 ||
	    evloop_add(&vm->loop, vm->loop_signal_fd, EPOLLIN, on_signal, vm))
		die("cannot create the signalfd: %s", strerror(errno));
}

int vm_boot(struct vm *vm, const struct vm_config *cfg, char *err)
{
	vm->cfg = cfg;
	vm->nr_vcpus = cfg->machine.vcpu_count;
	int out_fd = STDOUT_FILENO;
	if (cfg->serial_out_path) {
		out_fd =
			open(cfg->serial_out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (out_fd < 0) {
			int rc = -errno;
			snprintf(err, VM_ERR_LEN, "serial_out_path %s: %s", cfg->serial_out_path,
				 strerror(errno));
			return rc;
		}
	}
	vm->serial_out_fd = out_fd;
	int rc = open_kvm(vm, err);
	if (rc) {
		vm_release(vm);
		return rc;
	}
	create_vm_and_irqchip(vm);
	map_memory(vm);
	pthread_t mem_thread = start_setup_thread(vm, register_memory);

	/* vCPUs before the PIT: KVM_CREATE_PIT2 holds the VM lock while it starts its kernel
	 * thread, and KVM_CREATE_VCPU would wait for it. */
	struct kvm_cpuid2 *cpuid = supported_cpuid(vm);
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		die("out of memory");
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_create(vm, &vm->vcpus[i], i, cpuid);
	free(cpuid);
	pthread_t pit_thread = start_setup_thread(vm, create_pit);

	vm->serial = serial_create(vm, out_fd, STDIN_FILENO);
	vm->i8042 = i8042_create(vm);
	if (vm->boot_timer_enabled)
		boot_timer_register(vm);

	uint64_t entry = 0;
	rc = load_guest(vm, &entry, err);
	/* Only the boot CPU starts in long mode; the others wait for the guest's INIT/SIPI. */
	if (!rc)
		vcpu_setup_long_mode(&vm->vcpus[0], entry);
	/* The filters compile while KVM finishes the PIT and the memory slots. */
	int seccomp_rc = seccomp_prepare();
	if (seccomp_rc)
		log_warn("seccomp filters do not compile (%s); installing them will fail",
			 strerror(-seccomp_rc));
	pthread_join(pit_thread, NULL);
	pthread_join(mem_thread, NULL);
	if (rc)
		vm_release(vm); /* the configuration can be fixed and the boot tried again */
	return rc;
}

int vm_start(struct vm *vm)
{
	log_debug("starting %u vCPUs, %llu us after the start", vm->nr_vcpus,
		  (unsigned long long)((monotonic_ns() - vm->start_ns) / 1000));
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		int rc = vcpu_start(&vm->vcpus[i]);
		if (rc) {
			log_err("cannot start vCPU %u thread: %s", i, strerror(-rc));
			vm_request_exit(vm, 1);
			return rc;
		}
	}
	/* After the last thread this one creates (a filter is inherited by threads created
	 * later) and before its loop handles anything the guest or an API client drives. With
	 * the API, InstanceStart calls this from the loop: the same point Firecracker picks. */
	int rc = seccomp_install(SECCOMP_VMM);
	if (rc) {
		log_err("cannot install the VMM thread's seccomp filter: %s", strerror(-rc));
		vm_request_exit(vm, 1);
		return rc;
	}
	return 0;
}

int vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	if (vm->paused) {
		pthread_mutex_unlock(&vm->pause_lock);
		return -EINVAL;
	}
	vm->paused = true;
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->nr_parked < vm->nr_vcpus && !atomic_load(&vm->exiting))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	/* kvmclock would otherwise jump forward by the paused time at resume. */
	struct kvm_clock_data clock = { 0 };
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) == 0) {
		free(vm->saved_clock);
		vm->saved_clock = malloc(sizeof(clock));
		if (vm->saved_clock)
			*vm->saved_clock = clock;
	}
	return 0;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	if (!vm->paused) {
		pthread_mutex_unlock(&vm->pause_lock);
		return -EINVAL;
	}
	if (vm->saved_clock) {
		struct kvm_clock_data clock = { .clock = vm->saved_clock->clock };
		if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
			log_warn("KVM_SET_CLOCK at resume: %s", strerror(errno));
		free(vm->saved_clock);
		vm->saved_clock = NULL;
	}
	vm->paused = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

int vm_run(struct vm *vm)
{
	int rc = evloop_run(&vm->loop);
	if (rc)
		log_err("event loop failed: %s", strerror(-rc));
	vm_request_exit(vm, rc ? 1 : 0); /* no-op if the VM already chose its code */
	/* Paused vCPUs wake up, see exiting and finish. */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_stop(&vm->vcpus[i]);
	return vm->exit_code;
}

void vm_release(struct vm *vm)
{
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	serial_destroy(vm->serial);
	vm->serial = NULL;
	i8042_destroy(vm->i8042);
	vm->i8042 = NULL;
	if (vm->serial_out_fd > STDERR_FILENO)
		close(vm->serial_out_fd);
	vm->serial_out_fd = -1;
	free(vm->saved_clock);
	vm->saved_clock = NULL;
	virtio_devices_destroy(vm); /* before the memory their requests point into */
	vm_memory_free(vm);
	io_bus_free(&vm->pio_bus);
	io_bus_free(&vm->mmio_bus);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}

void vm_destroy(struct vm *vm)
{
	vm_release(vm);
	evloop_close(&vm->loop);
	if (vm->exit_event_fd >= 0)
		close(vm->exit_event_fd);
	if (vm->loop_signal_fd >= 0)
		close(vm->loop_signal_fd);
	vm->exit_event_fd = vm->loop_signal_fd = -1;
}
