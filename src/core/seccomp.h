/* Per-thread seccomp filters: each kind of ember thread installs its own allowlist before it
 * handles anything a guest or an API client controls.
 *
 * A syscall outside the allowlist traps (SIGSYS); the handler logs the syscall number and the
 * thread kind, counts the fault in the metrics (seccomp.num_faults) and flushes them if a
 * metrics file is configured, then ends ember with SECCOMP_EXIT_BAD_SYSCALL, as Firecracker
 * does. seccomp_install() only affects the calling
 * thread and the threads it creates afterwards, and filters stack: a thread that creates other
 * threads after installing its filter gives them its allowlist too (so the VMM thread installs
 * its filter only after every vCPU thread exists). */
#ifndef EMBER_SECCOMP_H
#define EMBER_SECCOMP_H

#include <stdbool.h>
#include <stdint.h>

/* Firecracker's FcExitCode::BadSyscall. */
#define SECCOMP_EXIT_BAD_SYSCALL 148

enum seccomp_thread {
	SECCOMP_VMM,  /* the event loop: devices, backends, API requests after InstanceStart */
	SECCOMP_VCPU, /* KVM_RUN and the PIO/MMIO exit handlers */
	SECCOMP_API,  /* the HTTP server on the Unix socket */
	SECCOMP_THREAD_KINDS,
};

/* "vmm", "vcpu", "api" (Firecracker's names for the same threads). */
const char *seccomp_thread_name(enum seccomp_thread t);
/* -EINVAL for an unknown name. */
int seccomp_thread_from_name(const char *name, enum seccomp_thread *t);

/* --no-seccomp: seccomp_install() then does nothing (debugging only). */
void seccomp_disable(void);
bool seccomp_enabled(void);

/* Compiles every kind's filter now (and does the process-wide setup), so that installing
 * them later costs no compilation on the boot path. 0 or -errno. */
int seccomp_prepare(void);

/* Installs thread kind t's filter on the calling thread. Returns 0 or -errno. The first call
 * also installs the SIGSYS handler (process-wide) and initializes the libc state that would
 * otherwise open files lazily (the time zone), so that logging keeps working under a filter. */
int seccomp_install(enum seccomp_thread t);

/* Writes the compiled BPF program of the thread named thread_name ("vmm", "vcpu" or "api") to
 * fd, as raw struct sock_filter instructions (what the kernel loads). -EINVAL for an unknown
 * name, -errno for a write error. */
int seccomp_dump(const char *thread_name, int fd);

/* The allowlists, one table per thread kind (seccomp_rules.c). */
struct seccomp_arg_rule {
	unsigned arg;	/* argument index, 0 to 5 */
	uint64_t mask;	/* the argument is ANDed with mask ... */
	uint64_t value; /* ... and must then equal value */
};

struct seccomp_rule {
	int nr; /* syscall number */
	unsigned nargs;
	struct seccomp_arg_rule args[2]; /* all must hold */
	int fail_errno;			 /* 0: allow the call; else make it fail with this errno */
};

/* Thread kind t's allowlist: the rules every kind shares (shared: true; t is then ignored) and
 * its own (shared: false). Returns the rules and sets their count. Several rules for one syscall
 * are alternatives (any one may match). */
const struct seccomp_rule *seccomp_rules(enum seccomp_thread t, bool shared, unsigned *count);
/* An argument value that stands for SIGRTMIN, which is only known at run time: the filter is
 * built with the real number. */
#define SECCOMP_SIGRTMIN UINT64_MAX

#endif
