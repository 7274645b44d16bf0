/* The allowlists. Each entry was seen in `strace -f` of real runs (the test guest, SIGTERM,
 * the console on a terminal) or is called by code the thread runs on a path those runs did not
 * reach (error reports, abort, the device backends); the comment says which. Anything else
 * traps. */
#include "core/seccomp.h"

#include <asm/ioctls.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/futex.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define LOW32 0xffffffffULL /* int and unsigned int arguments: the kernel ignores the rest */

#define RULE(...)                                                                                  \
	{                                                                                          \
		__VA_ARGS__                                                                        \
	}
#define ALLOW(name) RULE(.nr = SCMP_SYS(name))
/* The argument ANDed with mask equals value. */
#define ALLOW_IF(name, index, mask, val)                                                           \
	RULE(.nr = SCMP_SYS(name), .nargs = 1, .args = { { (index), (mask), (val) } })
#define ALLOW_IF_EQ(name, index, val) ALLOW_IF(name, index, LOW32, (uint64_t)(val))
/* The call fails with err instead of trapping. */
#define FAIL(name, err) RULE(.nr = SCMP_SYS(name), .fail_errno = (err))

/* glibc and the libraries open a few files lazily, on whichever thread first needs them:
 * malloc reads /proc/sys/vm/overcommit_memory on the first shrink of a thread's heap, jansson
 * reads /dev/urandom for its hash seed. Both cope with a failed open (as they must in the jail,
 * where /proc does not exist), so threads that have no business opening files see EACCES
 * rather than a trap. */
#define FAIL_OPEN FAIL(openat, EACCES)

/* A futex command, whatever its private and clock flags. */
#define FUTEX_CMD (LOW32 & ~(uint64_t)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME))

/* What every thread needs: memory, locks, signals, writing a log line, dying. */
static const struct seccomp_rule common[] = {
	ALLOW(exit),	   /* pthread exit */
	ALLOW(exit_group), /* exit(), and the SIGSYS handler's _exit */
	ALLOW(rt_sigreturn),
	ALLOW(rt_sigprocmask), /* pthread exit blocks signals */
	ALLOW(restart_syscall),
	ALLOW(write),	      /* log lines, the serial console, eventfds (irqfd, VMM wake-ups) */
	ALLOW(writev),	      /* glibc's fatal-error messages */
	ALLOW(clock_gettime), /* CPU-time clocks are not in the vDSO: the boot timer */
	ALLOW(gettimeofday),  /* the metrics timestamp, where the vDSO falls back */
	ALLOW(getpid),	      /* pthread_kill, abort */
	ALLOW(gettid),
	ALLOW(sched_yield),
	ALLOW(brk),
	ALLOW(munmap),
	ALLOW(mremap),
	/* malloc arenas and thread stacks: never executable memory. */
	ALLOW_IF(mmap, 2, PROT_EXEC, 0),
	ALLOW_IF(mprotect, 2, PROT_EXEC, 0),
	ALLOW_IF_EQ(madvise, 2, MADV_DONTNEED), /* free() trimming, thread stacks at exit */
	/* glibc's mutexes, condition variables and pthread_join; not PI, requeue or wake-op. */
	ALLOW_IF(futex, 1, FUTEX_CMD, FUTEX_WAIT),
	ALLOW_IF(futex, 1, FUTEX_CMD, FUTEX_WAKE),
	ALLOW_IF(futex, 1, FUTEX_CMD, FUTEX_WAIT_BITSET),
	ALLOW_IF(futex, 1, FUTEX_CMD, FUTEX_WAKE_BITSET),
	/* abort() (a failed assert, glibc's heap checks): raise SIGABRT, reset its handler. */
	ALLOW_IF_EQ(tgkill, 2, SIGABRT),
	ALLOW_IF_EQ(rt_sigaction, 0, SIGABRT),
#ifdef __SANITIZE_ADDRESS__
	/* make SANITIZE=1: the ASan/LSan runtime maps shadow memory with other advice and
	 * prot values, and its leak check at exit stops the world with a ptrace helper. Never
	 * in a release build. */
	ALLOW(mmap),
	ALLOW(mprotect),
	ALLOW(madvise),
	ALLOW(sigaltstack),
	ALLOW(rt_sigaction),
	ALLOW(prlimit64),
	ALLOW(getrlimit),
	ALLOW(open), /* the sanitizer runtime uses the legacy x86_64 calls */
	ALLOW(read),
	ALLOW(close),
	ALLOW(newfstatat),
	ALLOW(getdents),
	ALLOW(getdents64),
	ALLOW(readlink),
	ALLOW(lseek),
	ALLOW(fstat),
	ALLOW(statx),
	ALLOW(clone),
	ALLOW(ptrace),
	ALLOW(wait4),
	ALLOW(prctl),
	ALLOW(getppid),
	ALLOW_IF_EQ(ioctl, 1, TCGETS), /* isatty(): whether to colour its reports */
	ALLOW(sched_getaffinity),
	ALLOW(nanosleep),
	ALLOW(clock_nanosleep),
#endif
};

/* The VMM thread after boot: the event loop and what the device backends do in it. */
static const struct seccomp_rule vmm[] = {
	ALLOW(epoll_wait),
	ALLOW(epoll_pwait),
	ALLOW(epoll_ctl),
	ALLOW(read),  /* eventfds, the signalfd, console input, TAP frames */
	ALLOW(readv), /* TAP, block reads */
	ALLOW(pread64),
	ALLOW(preadv),
	ALLOW(pwrite64),
	ALLOW(pwritev),
	ALLOW(lseek),
	ALLOW(fsync), /* VIRTIO_BLK_T_FLUSH */
	ALLOW(fdatasync),
	ALLOW(openat), /* PATCH /drives swaps a backing file after boot */
	ALLOW(close),
	ALLOW(unlink),	   /* the API socket, removed as ember exits */
	ALLOW(fstat),	   /* backing file sizes */
	ALLOW(newfstatat), /* glibc's fstat() and stat(): PATCH /drives checks the new path */
	ALLOW(access),	   /* the same: may ember read (and write) it? */
	ALLOW(eventfd2),   /* io_uring completion notifications */
	ALLOW(getrandom),  /* virtio-rng fills the guest's requests */
	ALLOW(timerfd_create),
	ALLOW(timerfd_settime), /* rate limiters, the metrics period */
	ALLOW(timerfd_gettime),
	ALLOW(io_uring_setup), /* the block device's io_uring engine, set up at activation */
	ALLOW(io_uring_enter),
	ALLOW(io_uring_register),
	/* vsock's host side is Unix sockets; the VMM creates no other kind. */
	ALLOW_IF_EQ(socket, 0, AF_UNIX),
	ALLOW(connect),
	ALLOW(accept4),
	ALLOW(recvfrom),
	ALLOW(recvmsg),
	ALLOW(sendto),
	ALLOW(sendmsg),
	ALLOW(shutdown),
	ALLOW(getsockopt), /* SO_ERROR after a non-blocking connect */
	ALLOW_IF_EQ(fcntl, 1, F_GETFL),
	ALLOW_IF_EQ(fcntl, 1, F_SETFL),
	ALLOW_IF_EQ(fcntl, 1, F_GETFD),
	ALLOW_IF_EQ(fcntl, 1, F_SETFD),
	/* Stopping and pausing vCPUs: pthread_kill with the kick signal (vcpu.c). */
	ALLOW_IF_EQ(tgkill, 2, SECCOMP_SIGRTMIN),
	ALLOW_IF_EQ(ioctl, 1, FIONBIO),
	ALLOW_IF_EQ(ioctl, 1, TCGETS), /* isatty(), and the terminal restored at exit */
	ALLOW_IF_EQ(ioctl, 1, TCSETS),
	ALLOW_IF_EQ(ioctl, 1, TIOCGWINSZ),
	ALLOW_IF_EQ(ioctl, 1, BLKGETSIZE64),  /* PATCH /drives onto a block device */
	ALLOW_IF_EQ(ioctl, 1, TUNSETOFFLOAD), /* virtio-net applies the driver's features */
	ALLOW_IF_EQ(ioctl, 1, TUNSETVNETHDRSZ),
	/* virtio-mmio wires queue notifiers and interrupts when a driver (re)activates a device */
	ALLOW_IF_EQ(ioctl, 1, KVM_IOEVENTFD),
	ALLOW_IF_EQ(ioctl, 1, KVM_IRQFD),
	/* PATCH /vm: the guest clock is held while paused (vm_pause, vm_resume). */
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_CLOCK),
	ALLOW_IF_EQ(ioctl, 1, KVM_SET_CLOCK),
	ALLOW_IF_EQ(ioctl, 1, KVM_KVMCLOCK_CTRL), /* each vCPU, before it resumes */
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_TSC_KHZ),	  /* a snapshot's vCPU state */
	/* PUT /snapshot/create on the paused VM (vmm/snapshot.c): the KVM state of the VM
	 * and each vCPU, and the sparse memory file (mincore, sysinfo for swap, ftruncate). */
	ALLOW_IF_EQ(ioctl, 1, KVM_CHECK_EXTENSION),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_MSR_INDEX_LIST),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_PIT2),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_IRQCHIP),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_MP_STATE),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_REGS),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_SREGS),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_XSAVE),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_FPU),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_XCRS),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_DEBUGREGS),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_LAPIC),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_MSRS),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_CPUID2),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_VCPU_EVENTS),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_DIRTY_LOG), /* with track_dirty_pages (snapshot_mem.c) */
	ALLOW(mincore),
	ALLOW(sysinfo),
	ALLOW(ftruncate),
};

/* vCPU threads: KVM_RUN and the exit handlers, which only touch device state in memory and
 * write to descriptors (the console, irqfds, eventfds towards the VMM thread). */
static const struct seccomp_rule vcpu[] = {
	ALLOW_IF_EQ(ioctl, 1, KVM_RUN),
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_REGS),	  /* reporting a KVM internal error or */
	ALLOW_IF_EQ(ioctl, 1, KVM_GET_SREGS),	  /* a triple fault */
	ALLOW_IF_EQ(ioctl, 1, KVM_KVMCLOCK_CTRL), /* on resume: the guest's clock stood still */
	FAIL_OPEN,
};

/* The API thread: ember's HTTP server (api/server.c) on the Unix socket it was given: one
 * epoll loop that accepts, receives and sends, and waits on the VMM thread's reply. */
static const struct seccomp_rule api[] = {
	ALLOW(epoll_wait), ALLOW(epoll_pwait), ALLOW(epoll_ctl),
	ALLOW(accept4),	   ALLOW(recvfrom), /* recv() */
	ALLOW(sendto),			    /* send() */
	ALLOW(close),	   FAIL_OPEN,
};

#define TABLE(rules) RULE(rules, sizeof(rules) / sizeof(rules[0]))
static const struct {
	const struct seccomp_rule *rules;
	unsigned count;
} tables[SECCOMP_THREAD_KINDS] = {
	[SECCOMP_VMM] = TABLE(vmm), [SECCOMP_VCPU] = TABLE(vcpu), [SECCOMP_API] = TABLE(api)
};

const struct seccomp_rule *seccomp_rules(enum seccomp_thread t, bool shared, unsigned *count)
{
	*count = shared ? sizeof(common) / sizeof(common[0]) : tables[t].count;
	return shared ? common : tables[t].rules;
}
