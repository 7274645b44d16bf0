/* The builder: makes the VM from its configuration. Through the API the slow parts do not
 * wait for InstanceStart: the KVM VM and its irqchip once the socket is up, the PIT on a
 * helper thread right after, guest memory on another as soon as machine-config gives its
 * size (KVM_CREATE_PIT2 and KVM_SET_USER_MEMORY_REGION mostly sleep: a kernel thread start,
 * an SRCU grace period). InstanceStart then only loads the kernel, creates the devices and
 * vCPUs, and starts them. */
#include <cpuid.h>
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
#include <unistd.h>

#include "core/log.h"
#include "core/seccomp.h"
#include "legacy/boot_timer.h"
#include "legacy/i8042.h"
#include "legacy/serial.h"
#include "vmm/device_table.h"
#include "vmm/vm.h"
#include "x86/boot.h"
#include "x86/layout.h"
#include "x86/loader.h"
#include "x86/mptable.h"
#include "x86/vcpu.h"

/* Intel VMX or AMD SVM: the host CPU's own CPUID (src/x86/cpuid.h is about the guest's). */
static bool cpu_has_hw_virt(void)
{
	unsigned a, b, c, d;
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 5))) /* VMX */
		return true;
	return __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & (1u << 2)); /* SVM */
}

static int open_kvm(struct machine *m, char *err)
{
	m->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (m->kvm_fd < 0 && errno == ENOENT)
		return errf(err, -ENOENT,
			    "/dev/kvm does not exist: this host has no KVM (load kvm_intel or "
			    "kvm_amd, or enable virtualization in the firmware)");
	if (m->kvm_fd < 0 && (errno == EACCES || errno == EPERM))
		return errf(err, -errno,
			    "/dev/kvm: permission denied (run as root or join the group that "
			    "owns /dev/kvm)");
	if (m->kvm_fd < 0)
		return errf(err, -errno, "/dev/kvm: %s", strerror(errno));
	int version = ioctl(m->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION)
		die("/dev/kvm: KVM API version %d, ember needs %d", version, KVM_API_VERSION);
	/* PVM registers itself as the kvm_pvm module; it cannot run standard kernels. In a jail
	 * there is no /sys, but the CPU tells as much: a /dev/kvm without VMX or SVM
	 * underneath can only be a software one such as PVM. */
	m->pvm_host = access("/sys/module/kvm_pvm", F_OK) == 0 || !cpu_has_hw_virt();
	m->vcpu_mmap_size = ioctl(m->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (m->vcpu_mmap_size < (int)sizeof(struct kvm_run))
		die("/dev/kvm: KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
	return 0;
}

static void create_vm_and_irqchip(struct machine *m)
{
	do
		m->vm_fd = ioctl(m->kvm_fd, KVM_CREATE_VM, 0);
	while (m->vm_fd < 0 && errno == EINTR);
	if (m->vm_fd < 0)
		die("KVM_CREATE_VM: %s", strerror(errno));
	if (ioctl(m->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		die("KVM_SET_TSS_ADDR: %s", strerror(errno));
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(m->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s (not needed on this host)",
			  strerror(errno));
	if (ioctl(m->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP: %s", strerror(errno));
}

static struct kvm_cpuid2 *supported_cpuid(struct machine *m)
{
	for (unsigned nent = 128; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			die("out of memory");
		c->nent = nent;
		if (ioctl(m->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	}
	die("KVM_GET_SUPPORTED_CPUID: too many entries");
}

/* The PIT, and what InstanceStart would otherwise compute: the host's CPUID for the vCPUs
 * and the seccomp filters. */
static void *make_pit_and_filters(void *arg)
{
	struct vm *vm = arg;
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->m.vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		die("KVM_CREATE_PIT2: %s", strerror(errno));
	if (!vm->cpuid)
		vm->cpuid = supported_cpuid(&vm->m);
	seccomp_prepare(); /* its result comes again, cached, at InstanceStart */
	return NULL;
}

/* With dirty page tracking (the VMM's bitmap exists: track_dirty) KVM logs the guest's
 * writes to each slot too; KVM takes a flags-only change of a slot as it is. */
static void set_memory_slots(struct machine *m, bool remove)
{
	for (unsigned i = 0; i < m->mem.nr_regions; i++) {
		const struct mem_region *r = &m->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = i,
			.flags = m->mem.dirty && !remove ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = r->gpa,
			.memory_size = remove ? 0 : r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};
		if (ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			die("KVM_SET_USER_MEMORY_REGION (slot %u, %llu MiB): %s", i,
			    (unsigned long long)(remove ? 0 : r->size >> 20), strerror(errno));
	}
}

/* Gives KVM guest memory of mem_bytes: a mapping of another size goes first (KVM takes a
 * slot's size only when it is added), one of this size is only registered. */
static void *map_memory(void *arg)
{
	struct vm *vm = arg;
	if (vm->m.mem.nr_regions && vm->m.mem.size != vm->mem_bytes) {
		if (!vm->mem_rc)
			set_memory_slots(&vm->m, true);
		guest_mem_free(&vm->m.mem);
	}
	if (!vm->m.mem.nr_regions)
		vm->mem_rc = guest_mem_init(&vm->m.mem, vm->mem_bytes);
	if (!vm->mem_rc)
		set_memory_slots(&vm->m, false);
	return NULL;
}

static void start_helper(struct vm *vm, pthread_t *t, bool *pending, void *(*fn)(void *))
{
	if (pthread_create(t, NULL, fn, vm))
		die("cannot start a setup thread");
	*pending = true;
}

static void join_helper(pthread_t t, bool *pending)
{
	if (*pending)
		pthread_join(t, NULL);
	*pending = false;
}

/* Memory of the configured size, on a helper thread (after the previous one is done). */
static void start_memory(struct vm *vm)
{
	join_helper(vm->mem_thread, &vm->mem_pending);
	/* The helper reads the size from here, not from the configuration the API changes. */
	vm->mem_bytes = (uint64_t)vm->cfg.machine.mem_size_mib << 20;
	start_helper(vm, &vm->mem_thread, &vm->mem_pending, map_memory);
}

/* The KVM VM with its irqchip, and (build_ahead) the PIT on a helper thread. Memory waits
 * for machine-config (builder_resize_memory): clients set its size before anything else. */
static void prepare(struct vm *vm)
{
	vm->prepare_err[0] = '\0';
	if (open_kvm(&vm->m, vm->prepare_err))
		return;
	create_vm_and_irqchip(&vm->m);
	vm->kvm_ready = true;
	if (vm->build_ahead)
		start_helper(vm, &vm->pit_thread, &vm->pit_pending, make_pit_and_filters);
}

static void on_exit_event(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	(void)events;
	uint64_t v;
	ssize_t r = read(vm->m.exit_event_fd, &v, sizeof(v));
	(void)r;
	vm->m.loop.stop = true;
}

static void on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	(void)events;
	struct signalfd_siginfo si;
	if (read(vm->loop_signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		log_info("received signal %u, stopping the VM", si.ssi_signo);
		machine_request_exit(&vm->m, 128 + (int)si.ssi_signo);
	}
}

void builder_init(struct vm *vm, bool build_ahead)
{
	struct machine *m = &vm->m;
	m->kvm_fd = m->vm_fd = m->exit_event_fd = -1;
	vm->loop_signal_fd = vm->serial_out_fd = vm->metrics_timer_fd = -1;
	vm->build_ahead = build_ahead;
	vm_config_init(&vm->cfg);
	atomic_init(&m->exiting, false);
	pthread_mutex_init(&m->pause_lock, NULL);
	pthread_cond_init(&m->pause_cond, NULL);
	if (evloop_init(&m->loop))
		die("epoll_create: %s", strerror(errno));
	m->exit_event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->exit_event_fd < 0 ||
	    evloop_add(&m->loop, m->exit_event_fd, EPOLLIN, on_exit_event, vm))
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
	    evloop_add(&m->loop, vm->loop_signal_fd, EPOLLIN, on_signal, vm))
		die("cannot create the signalfd: %s", strerror(errno));
}

void builder_prepare(struct vm *vm)
{
	if (!vm->kvm_ready)
		prepare(vm);
}

void builder_resize_memory(struct vm *vm)
{
	if (vm->kvm_ready && vm->build_ahead &&
	    vm->mem_bytes != (uint64_t)vm->cfg.machine.mem_size_mib << 20)
		start_memory(vm);
}

int builder_create_devices(struct vm *vm, char *err)
{
	for (int k = 0; device_kinds[k]; k++) {
		unsigned first = vm->devices.nr;
		int rc = device_kinds[k]->create(&vm->m, vm->cfg.devices[k], &vm->devices, err);
		for (unsigned i = first; i < vm->devices.nr; i++)
			vm->device_kind_of[i] = k;
		if (rc)
			return rc;
	}
	return 0;
}

/* The kernel command line the builder owns: the user's boot_args (or Firecracker's
 * default), then each virtio device's virtio_mmio.device=... and the devices' own
 * arguments, with everything after " -- " kept last for init. */
static int build_cmdline(struct vm *vm, const struct kernel_image *k, char *cmdline, char *err)
{
	const char *extra[2 * VIRTIO_DEV_MAX];
	unsigned n = 0;
	for (unsigned i = 0; i < vm->devices.nr; i++) {
		extra[n++] = vm->devices.devs[i]->cmdline;
		if (vm->devices.args[i])
			extra[n++] = vm->devices.args[i];
	}
	const char *args = vm->cfg.boot.boot_args ? vm->cfg.boot.boot_args : DEFAULT_BOOT_ARGS;
	if (boot_cmdline_build(cmdline, k->cmdline_max, args, extra, n))
		return errf(err, -ENAMETOOLONG, "kernel command line longer than %u bytes",
			    k->cmdline_max);
	return 0;
}

/* Loads kernel and initrd, creates the devices and writes every boot structure; the entry
 * point goes to *entry. Errors are the user's (files, sizes): a message in err. */
static int load_guest(struct vm *vm, uint64_t *entry, char *err)
{
	const struct boot_source_config *boot = &vm->cfg.boot;
	const struct guest_mem *mem = &vm->m.mem;
	struct kernel_image k;
	int rc = loader_load_kernel(mem, boot->kernel_image_path, &k, err);
	if (rc)
		return rc;
	if (vm->m.pvm_host && k.is_linux && !k.is_pvm_guest && !getenv("EMBER_PVM_FORCE")) {
		snprintf(err, ERR_LEN,
			 "kernel %s is a standard Linux kernel, but this host's /dev/kvm is PVM "
			 "(kvm_pvm), which only runs kernels built as PVM guests: it would die in "
			 "early boot. Run it in the emulated KVM host (tests/vmhost/run -- "
			 "build/ember "
			 "...) or on a host with VMX/SVM; EMBER_PVM_FORCE=1 tries anyway",
			 boot->kernel_image_path);
		return -ENOTSUP;
	}
	uint64_t initrd_gpa = 0, initrd_size = 0;
	if (boot->initrd_path &&
	    (rc = loader_load_initrd(mem, boot->initrd_path, &k, &initrd_gpa, &initrd_size, err)))
		return rc;
	char cmdline[CMDLINE_MAX];
	if ((rc = builder_create_devices(vm, err)) || (rc = build_cmdline(vm, &k, cmdline, err)) ||
	    (rc = boot_write_params(mem, &k, cmdline, initrd_gpa, initrd_size, err)))
		return rc;
	if (boot_write_page_tables(mem) || mptable_write(mem, EBDA_START, 0xa0000, vm->m.nr_vcpus))
		return errf(err, -ENOMEM, "cannot write the boot page tables and MP table");
	log_debug("kernel %s: entry 0x%llx, command line: %s", boot->kernel_image_path,
		  (unsigned long long)k.entry, cmdline);
	*entry = k.entry;
	return 0;
}

/* Undoes what InstanceStart made and the KVM VM with it (vCPUs cannot be taken out of a
 * KVM VM), leaving the configuration and the event loop. */
static void release(struct vm *vm)
{
	struct machine *m = &vm->m;
	join_helper(vm->pit_thread, &vm->pit_pending);
	if (vm->vcpus) {
		for (unsigned i = 0; i < m->nr_vcpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	serial_destroy(vm->serial);
	vm->serial = NULL;
	i8042_destroy(vm->i8042);
	vm->i8042 = NULL;
	boot_timer_destroy(vm->boot_timer);
	vm->boot_timer = NULL;
	if (vm->serial_out_fd > STDERR_FILENO)
		close(vm->serial_out_fd);
	vm->serial_out_fd = -1;
	free(vm->cpuid);
	vm->cpuid = NULL;
	/* The devices before the memory their requests point into. */
	for (unsigned i = 0; i < vm->devices.nr; i++)
		virtio_dev_destroy(vm->devices.devs[i]);
	memset(&vm->devices, 0, sizeof(vm->devices));
	/* Closing the KVM VM drops the memory slots (and after start the VMM thread's seccomp
	 * filter allows no KVM_SET_USER_MEMORY_REGION). */
	join_helper(vm->mem_thread, &vm->mem_pending);
	guest_mem_free(&vm->m.mem);
	vm->mem_bytes = 0;
	vm->mem_rc = 0;
	io_bus_free(&m->pio_bus);
	io_bus_free(&m->mmio_bus);
	m->nr_mmio_slots = 0;
	if (m->vm_fd >= 0)
		close(m->vm_fd);
	if (m->kvm_fd >= 0)
		close(m->kvm_fd);
	m->vm_fd = m->kvm_fd = -1;
	vm->kvm_ready = false;
}

/* machine-config's track_dirty_pages (or the snapshot load's): the VMM's dirty bitmap, before
 * anything writes guest memory and before the slots are registered with KVM's log. */
static int track_dirty(struct vm *vm)
{
	return vm->cfg.machine.track_dirty_pages ? guest_mem_track(&vm->m.mem, true) : 0;
}

/* Guest memory for a snapshot load: the memory file mapped copy-on-write, registered here
 * (the KVM VM is fresh: no slot and no memory thread yet). */
static int map_memory_file(struct vm *vm, int fd, char *err)
{
	uint64_t size = (uint64_t)vm->cfg.machine.mem_size_mib << 20;
	join_helper(vm->mem_thread, &vm->mem_pending);
	if (vm->m.mem.nr_regions) {
		if (!vm->mem_rc)
			set_memory_slots(&vm->m, true);
		guest_mem_free(&vm->m.mem);
	}
	vm->mem_rc = guest_mem_init_file(&vm->m.mem, size, fd);
	if (!vm->mem_rc)
		vm->mem_rc = track_dirty(vm);
	if (vm->mem_rc)
		return errf(err, vm->mem_rc, "cannot map the memory file: %s",
			    strerror(-vm->mem_rc));
	vm->mem_bytes = size;
	set_memory_slots(&vm->m, false);
	return 0;
}

/* Creates what the guest runs on, from the configuration; the KVM VM exists. With from, the
 * guest comes from a snapshot: memory from its file, no kernel, and from->apply restores
 * the state onto the devices and vCPUs. */
static int build(struct vm *vm, const struct builder_snapshot *from, char *err)
{
	struct machine *m = &vm->m;
	const struct vm_config *cfg = &vm->cfg;
	int out_fd = STDOUT_FILENO;
	if (cfg->serial_out_path) {
		out_fd =
			open(cfg->serial_out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (out_fd < 0)
			return errf(err, -errno, "serial_out_path %s: %s", cfg->serial_out_path,
				    strerror(errno));
	}
	vm->serial_out_fd = out_fd;
	/* Otherwise the memory is mapped here, for the kernel, and KVM takes it on a
	 * helper thread meanwhile. */
	if (from) {
		int rc = map_memory_file(vm, from->mem_fd, err);
		if (rc)
			return rc;
	} else if (vm->build_ahead) {
		builder_resize_memory(vm); /* no machine-config came: the default size */
		join_helper(vm->mem_thread, &vm->mem_pending);
		/* Registered without the log ahead of time: the flag now. */
		if (!vm->mem_rc && cfg->machine.track_dirty_pages &&
		    !(vm->mem_rc = track_dirty(vm)))
			set_memory_slots(m, false);
	} else if (!(vm->mem_rc =
			     guest_mem_init(&m->mem, (uint64_t)cfg->machine.mem_size_mib << 20)) &&
		   !(vm->mem_rc = track_dirty(vm))) {
		vm->mem_bytes = m->mem.size;
		start_helper(vm, &vm->mem_thread, &vm->mem_pending, map_memory);
	}
	if (vm->mem_rc)
		return errf(err, vm->mem_rc, "cannot map %u MiB of guest memory: %s",
			    cfg->machine.mem_size_mib, strerror(-vm->mem_rc));

	/* vCPUs before a late PIT: KVM_CREATE_PIT2 holds the VM lock while it starts its kernel
	 * thread, and KVM_CREATE_VCPU would wait for it. */
	m->nr_vcpus = cfg->machine.vcpu_count;
	if (vm->build_ahead)
		join_helper(vm->pit_thread, &vm->pit_pending);
	else
		vm->cpuid = supported_cpuid(m);
	vm->vcpus = calloc(m->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		die("out of memory");
	for (unsigned i = 0; i < m->nr_vcpus; i++)
		vcpu_create(m, &vm->vcpus[i], i, vm->cpuid, cfg->machine.smt);
	if (!vm->build_ahead)
		start_helper(vm, &vm->pit_thread, &vm->pit_pending, make_pit_and_filters);

	vm->serial = serial_create(m, out_fd, STDIN_FILENO, &cfg->serial_rate_limiter);
	vm->i8042 = i8042_create(m);
	if (vm->boot_timer_enabled)
		vm->boot_timer = boot_timer_create(m);

	int rc;
	if (from) {
		/* KVM_SET_PIT2 needs the PIT. */
		join_helper(vm->pit_thread, &vm->pit_pending);
		rc = builder_create_devices(vm, err);
		if (!rc)
			rc = from->apply(vm, from->arg, err);
	} else {
		uint64_t entry = 0;
		rc = load_guest(vm, &entry, err);
		/* Only the boot CPU starts in long mode; the others wait for INIT/SIPI. */
		if (!rc)
			vcpu_setup_long_mode(&vm->vcpus[0], entry);
	}
	/* Compiled already when built ahead; else now, while KVM finishes the PIT and memory. */
	int seccomp_rc = seccomp_prepare();
	if (seccomp_rc)
		log_warn("seccomp filters do not compile (%s); installing them will fail",
			 strerror(-seccomp_rc));
	join_helper(vm->mem_thread, &vm->mem_pending);
	join_helper(vm->pit_thread, &vm->pit_pending);
	return rc;
}

static int start_vcpus(struct vm *vm, char *err)
{
	struct machine *m = &vm->m;
	log_debug("starting %u vCPUs, %llu us after the start", m->nr_vcpus,
		  (unsigned long long)((monotonic_ns() - m->start_ns) / 1000));
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		int rc = vcpu_start(&vm->vcpus[i]);
		if (rc) {
			snprintf(err, ERR_LEN, "cannot start vCPU %u thread: %s", i, strerror(-rc));
			machine_request_exit(m, 1);
			return rc;
		}
	}
	/* After the last thread this one creates (a filter is inherited by threads created
	 * later) and before its loop handles anything the guest or an API client drives. With
	 * the API, InstanceStart calls this from the loop: the same point Firecracker picks. */
	int rc = seccomp_install(SECCOMP_VMM);
	if (rc) {
		snprintf(err, ERR_LEN, "cannot install the VMM thread's seccomp filter: %s",
			 strerror(-rc));
		machine_request_exit(m, 1);
	}
	return rc;
}

int builder_start(struct vm *vm, char *err)
{
	builder_prepare(vm); /* a failed attempt took the KVM VM down, or it never came up */
	if (!vm->kvm_ready)
		return errf(err, -ENODEV, "%s", vm->prepare_err);
	int rc = build(vm, NULL, err);
	if (rc) {
		/* The configuration can be fixed and the start tried again on a new KVM VM. */
		release(vm);
		prepare(vm);
		return rc;
	}
	/* Logged before the vCPUs run, so the line never splits the guest's first output. */
	log_info("VM started");
	return start_vcpus(vm, err);
}

int builder_restore(struct vm *vm, const struct builder_snapshot *from, char *err)
{
	builder_prepare(vm);
	if (!vm->kvm_ready)
		return errf(err, -ENODEV, "%s", vm->prepare_err);
	int rc = build(vm, from, err);
	if (rc) {
		/* Nothing of the half-restored VM survives: the process is as it started. */
		release(vm);
		prepare(vm);
		return rc;
	}
	/* Paused before they start: each thread parks before its first KVM_RUN. */
	vm->m.paused = true;
	return start_vcpus(vm, err);
}

void builder_destroy(struct vm *vm)
{
	release(vm);
	evloop_close(&vm->m.loop);
	if (vm->m.exit_event_fd >= 0)
		close(vm->m.exit_event_fd);
	if (vm->loop_signal_fd >= 0)
		close(vm->loop_signal_fd);
	vm->m.exit_event_fd = vm->loop_signal_fd = -1;
	vm_config_free(&vm->cfg);
}
