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
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define RULES_MAX 128
#define LOW32	  0xffffffffULL /* int and unsigned int arguments: the kernel ignores the rest */

struct rule_table {
	struct seccomp_rule rules[RULES_MAX];
	unsigned count;
	bool overflowed;
};

static struct rule_table tables[SECCOMP_THREAD_KINDS];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void add(struct rule_table *t, struct seccomp_rule r)
{
	/* The tables are fixed at build time: an overflow is a programming error, reported by
	 * seccomp_rules() so that no filter silently misses a rule. */
	if (t->count < RULES_MAX)
		t->rules[t->count++] = r;
	else
		t->overflowed = true;
}

#define ALLOW(t, name) add(t, (struct seccomp_rule){ .nr = SCMP_SYS(name) })
/* The argument ANDed with mask equals value. */
#define ALLOW_IF(t, name, index, mask, val)                                                        \
	add(t, (struct seccomp_rule){                                                              \
		       .nr = SCMP_SYS(name), .nargs = 1, .args = { { (index), (mask), (val) } } })
#define ALLOW_IF_EQ(t, name, index, val) ALLOW_IF(t, name, index, LOW32, (uint64_t)(val))
/* The call fails with err instead of trapping. */
#define FAIL(t, name, err)                                                                         \
	add(t, (struct seccomp_rule){ .nr = SCMP_SYS(name), .fail_errno = (err) })

/* glibc and the libraries open a few files lazily, on whichever thread first needs them:
 * malloc reads /proc/sys/vm/overcommit_memory on the first shrink of a thread's heap, jansson
 * reads /dev/urandom for its hash seed. Both cope with a failed open (as they must in the jail,
 * where /proc does not exist), so threads that have no business opening files see EACCES
 * rather than a trap. */
#define FAIL_OPEN(t) FAIL(t, openat, EACCES)

/* What every thread needs: memory, locks, signals, writing a log line, dying. */
static void add_common(struct rule_table *t)
{
	ALLOW(t, exit);	      /* pthread exit */
	ALLOW(t, exit_group); /* exit(), and the SIGSYS handler's _exit */
	ALLOW(t, rt_sigreturn);
	ALLOW(t, rt_sigprocmask); /* pthread exit blocks signals */
	ALLOW(t, restart_syscall);
	ALLOW(t, write);	 /* log lines, the serial console, eventfds (irqfd, VMM wake-ups) */
	ALLOW(t, writev);	 /* glibc's fatal-error messages */
	ALLOW(t, clock_gettime); /* CPU-time clocks are not in the vDSO: the boot timer */
	ALLOW(t, gettimeofday);	 /* the metrics timestamp, where the vDSO falls back */
	ALLOW(t, getpid);	 /* pthread_kill, abort */
	ALLOW(t, gettid);
	ALLOW(t, sched_yield);
	ALLOW(t, brk);
	ALLOW(t, munmap);
	ALLOW(t, mremap);
	/* malloc arenas and thread stacks: never executable memory. */
	ALLOW_IF(t, mmap, 2, PROT_EXEC, 0);
	ALLOW_IF(t, mprotect, 2, PROT_EXEC, 0);
	ALLOW_IF_EQ(t, madvise, 2, MADV_DONTNEED); /* free() trimming, thread stacks at exit */
	/* glibc's mutexes, condition variables and pthread_join; not PI, requeue or wake-op. */
	const uint64_t futex_cmd_mask =
		LOW32 & ~(uint64_t)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
	ALLOW_IF(t, futex, 1, futex_cmd_mask, FUTEX_WAIT);
	ALLOW_IF(t, futex, 1, futex_cmd_mask, FUTEX_WAKE);
	ALLOW_IF(t, futex, 1, futex_cmd_mask, FUTEX_WAIT_BITSET);
	ALLOW_IF(t, futex, 1, futex_cmd_mask, FUTEX_WAKE_BITSET);
	/* abort() (a failed assert, glibc's heap checks): raise SIGABRT, reset its handler. */
	ALLOW_IF_EQ(t, tgkill, 2, SIGABRT);
	ALLOW_IF_EQ(t, rt_sigaction, 0, SIGABRT);
#ifdef __SANITIZE_ADDRESS__
	/* make SANITIZE=1: the ASan/LSan runtime maps shadow memory with other advice and
	 * prot values, and its leak check at exit stops the world with a ptrace helper. Never
	 * in a release build. */
	ALLOW(t, mmap);
	ALLOW(t, mprotect);
	ALLOW(t, madvise);
	ALLOW(t, sigaltstack);
	ALLOW(t, rt_sigaction);
	ALLOW(t, prlimit64);
	ALLOW(t, getrlimit);
	ALLOW(t, open); /* the sanitizer runtime uses the legacy x86_64 calls */
	ALLOW(t, read);
	ALLOW(t, close);
	ALLOW(t, newfstatat);
	ALLOW(t, getdents);
	ALLOW(t, getdents64);
	ALLOW(t, readlink);
	ALLOW(t, lseek);
	ALLOW(t, fstat);
	ALLOW(t, statx);
	ALLOW(t, clone);
	ALLOW(t, ptrace);
	ALLOW(t, wait4);
	ALLOW(t, prctl);
	ALLOW(t, getppid);
	ALLOW_IF_EQ(t, ioctl, 1, TCGETS); /* isatty(): whether to colour its reports */
	ALLOW(t, sched_getaffinity);
	ALLOW(t, nanosleep);
	ALLOW(t, clock_nanosleep);
#endif
}

/* The VMM thread after boot: the event loop and what the device backends do in it. */
static void add_vmm(struct rule_table *t)
{
	add_common(t);
	ALLOW(t, epoll_wait);
	ALLOW(t, epoll_pwait);
	ALLOW(t, epoll_ctl);
	ALLOW(t, read);	 /* eventfds, the signalfd, console input, TAP frames */
	ALLOW(t, readv); /* TAP, block reads */
	ALLOW(t, pread64);
	ALLOW(t, preadv);
	ALLOW(t, pwrite64);
	ALLOW(t, pwritev);
	ALLOW(t, lseek);
	ALLOW(t, fsync); /* VIRTIO_BLK_T_FLUSH */
	ALLOW(t, fdatasync);
	ALLOW(t, openat); /* PATCH /drives swaps a backing file after boot */
	ALLOW(t, close);
	ALLOW(t, unlink);     /* the API socket, removed as ember exits */
	ALLOW(t, fstat);      /* backing file sizes */
	ALLOW(t, newfstatat); /* glibc's fstat() and stat(): PATCH /drives checks the new path */
	ALLOW(t, access);     /* the same: may ember read (and write) it? */
	ALLOW(t, eventfd2);   /* io_uring completion notifications */
	ALLOW(t, timerfd_create);
	ALLOW(t, timerfd_settime); /* rate limiters, the metrics period */
	ALLOW(t, timerfd_gettime);
	ALLOW(t, io_uring_setup); /* the block device's io_uring engine, set up at activation */
	ALLOW(t, io_uring_enter);
	ALLOW(t, io_uring_register);
	/* vsock's host side is Unix sockets; the VMM creates no other kind. */
	ALLOW_IF_EQ(t, socket, 0, AF_UNIX);
	ALLOW(t, connect);
	ALLOW(t, accept4);
	ALLOW(t, recvfrom);
	ALLOW(t, recvmsg);
	ALLOW(t, sendto);
	ALLOW(t, sendmsg);
	ALLOW(t, shutdown);
	ALLOW(t, getsockopt); /* SO_ERROR after a non-blocking connect */
	ALLOW_IF_EQ(t, fcntl, 1, F_GETFL);
	ALLOW_IF_EQ(t, fcntl, 1, F_SETFL);
	ALLOW_IF_EQ(t, fcntl, 1, F_GETFD);
	ALLOW_IF_EQ(t, fcntl, 1, F_SETFD);
	/* Stopping and pausing vCPUs: pthread_kill with the kick signal (vcpu.c). */
	ALLOW_IF_EQ(t, tgkill, 2, SIGRTMIN);
	ALLOW_IF_EQ(t, ioctl, 1, FIONBIO);
	ALLOW_IF_EQ(t, ioctl, 1, TCGETS); /* isatty(), and the terminal restored at exit */
	ALLOW_IF_EQ(t, ioctl, 1, TCSETS);
	ALLOW_IF_EQ(t, ioctl, 1, TIOCGWINSZ);
	ALLOW_IF_EQ(t, ioctl, 1, BLKGETSIZE64);	 /* PATCH /drives onto a block device */
	ALLOW_IF_EQ(t, ioctl, 1, TUNSETOFFLOAD); /* virtio-net applies the driver's features */
	ALLOW_IF_EQ(t, ioctl, 1, TUNSETVNETHDRSZ);
	/* virtio-mmio wires queue notifiers and interrupts when a driver (re)activates a device */
	ALLOW_IF_EQ(t, ioctl, 1, KVM_IOEVENTFD);
	ALLOW_IF_EQ(t, ioctl, 1, KVM_IRQFD);
	ALLOW_IF_EQ(t, ioctl, 1, KVM_IRQ_LINE);
	/* PATCH /vm: the guest clock is held while paused (vm_pause, vm_resume). */
	ALLOW_IF_EQ(t, ioctl, 1, KVM_GET_CLOCK);
	ALLOW_IF_EQ(t, ioctl, 1, KVM_SET_CLOCK);
}

/* vCPU threads: KVM_RUN and the exit handlers, which only touch device state in memory and
 * write to descriptors (the console, irqfds, eventfds towards the VMM thread). */
static void add_vcpu(struct rule_table *t)
{
	add_common(t);
	ALLOW_IF_EQ(t, ioctl, 1, KVM_RUN);
	ALLOW_IF_EQ(t, ioctl, 1, KVM_GET_REGS);	     /* reporting a KVM internal error */
	ALLOW_IF_EQ(t, ioctl, 1, KVM_GET_SREGS);     /* the same */
	ALLOW_IF_EQ(t, ioctl, 1, KVM_KVMCLOCK_CTRL); /* on resume: the guest's clock stood still */
	FAIL_OPEN(t);
}

/* The API thread: ember's HTTP server (api/server.c) on the Unix socket it was given: one
 * epoll loop that accepts, receives and sends, and waits on the VMM thread's reply. */
static void add_api(struct rule_table *t)
{
	add_common(t);
	ALLOW(t, epoll_wait);
	ALLOW(t, epoll_pwait);
	ALLOW(t, epoll_ctl);
	ALLOW(t, accept4);
	ALLOW(t, recvfrom); /* recv() */
	ALLOW(t, sendto);   /* send() */
	ALLOW(t, close);
	FAIL_OPEN(t);
}

static void build_tables(void)
{
	add_vmm(&tables[SECCOMP_VMM]);
	add_vcpu(&tables[SECCOMP_VCPU]);
	add_api(&tables[SECCOMP_API]);
}

const struct seccomp_rule *seccomp_rules(enum seccomp_thread t, unsigned *count)
{
	pthread_once(&tables_once, build_tables);
	*count = tables[t].count;
	return tables[t].overflowed ? NULL : tables[t].rules;
}
