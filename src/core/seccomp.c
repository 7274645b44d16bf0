/* Compiling, installing and dumping the per-thread filters, and the SIGSYS handler that turns
 * a trapped syscall into a log line, a metric and exit status 148. */
#include "core/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"

/* si_code of a seccomp SIGSYS (asm-generic/siginfo.h, which clashes with glibc's signal.h). */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

static const char *const thread_names[SECCOMP_THREAD_KINDS] = {
	[SECCOMP_VMM] = "vmm",
	[SECCOMP_VCPU] = "vcpu",
	[SECCOMP_API] = "api",
};

static bool disabled;
/* Which filter this thread installed, for the fault message. */
static __thread int installed_kind = -1;

/* The compiled programs, built once per kind and shared by every thread of that kind: a VM
 * with many vCPUs compiles the vCPU filter once. */
static struct sock_fprog compiled[SECCOMP_THREAD_KINDS];
static int compile_error[SECCOMP_THREAD_KINDS];
static pthread_mutex_t compile_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t process_setup_once = PTHREAD_ONCE_INIT;

const char *seccomp_thread_name(enum seccomp_thread t)
{
	return (unsigned)t < SECCOMP_THREAD_KINDS ? thread_names[t] : "unknown";
}

int seccomp_thread_from_name(const char *name, enum seccomp_thread *t)
{
	for (unsigned i = 0; i < SECCOMP_THREAD_KINDS; i++) {
		if (strcmp(name, thread_names[i]) == 0) {
			*t = (enum seccomp_thread)i;
			return 0;
		}
	}
	return -EINVAL;
}

void seccomp_disable(void)
{
	disabled = true;
}

bool seccomp_enabled(void)
{
	return !disabled;
}

/* Runs on the faulting thread, under its filter: only syscalls every allowlist has (write,
 * clock_gettime, memory, futex, exit_group). The message follows Firecracker's, and so does
 * flushing the metrics from here: the flush takes a lock and allocates, which is safe unless
 * the trapped call came from inside a flush or malloc, and every syscall those make is in
 * every allowlist. */
static void on_sigsys(int sig, siginfo_t *info, void *ucontext)
{
	(void)sig;
	(void)ucontext;
	if (info->si_code != SYS_SECCOMP) {
		log_err("received SIGSYS from pid %d, not from seccomp; exiting",
			(int)info->si_pid);
		_exit(128 + SIGSYS);
	}
	metric_inc(&seccomp_metrics[SECCOMP_NUM_FAULTS]);
	long nr = info->si_syscall;
	const char *kind = installed_kind >= 0 ? thread_names[installed_kind] : "unfiltered";
	log_err("Shutting down VM after intercepting a bad syscall (%ld) on a %s thread: exit "
		"status %d",
		nr, kind, SECCOMP_EXIT_BAD_SYSCALL);
	if (metrics_configured())
		metrics_flush();
	_exit(SECCOMP_EXIT_BAD_SYSCALL);
}

static int process_setup_error;

static void process_setup(void)
{
	/* glibc reads the time zone file on the first gmtime_r (every log line): do it now, while
	 * opening files is still allowed. */
	tzset();
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		process_setup_error = -errno;
}

/* Adds rule r to ctx: 0 or a libseccomp error. */
static int add_rule(scmp_filter_ctx ctx, const struct seccomp_rule *r)
{
	struct scmp_arg_cmp cmp[2];
	for (unsigned j = 0; j < r->nargs; j++)
		cmp[j] = (struct scmp_arg_cmp){ .arg = r->args[j].arg,
						.op = SCMP_CMP_MASKED_EQ,
						.datum_a = r->args[j].mask,
						.datum_b = r->args[j].value == SECCOMP_SIGRTMIN
								   ? (uint64_t)SIGRTMIN
								   : r->args[j].value };
	uint32_t action = r->fail_errno ? SCMP_ACT_ERRNO((uint32_t)r->fail_errno) : SCMP_ACT_ALLOW;
	int rc = seccomp_rule_add_array(ctx, action, r->nr, r->nargs, cmp);
	return rc == -EEXIST ? 0 : rc; /* -EEXIST: an unconditional rule already covers it */
}

/* Builds kind t's allowlist and writes its BPF program to fd: 0 or -errno. */
static int export_filter(enum seccomp_thread t, int fd)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx)
		return -ENOMEM;
	/* A binary tree of syscall numbers instead of a linear scan: KVM_RUN's exit path then
	 * costs a handful of BPF instructions, not one per rule. */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (int shared = 1; shared >= 0; shared--) {
		unsigned count;
		const struct seccomp_rule *rules = seccomp_rules(t, shared, &count);
		for (unsigned i = 0; rc == 0 && i < count; i++)
			rc = add_rule(ctx, &rules[i]);
	}
	if (rc == 0)
		rc = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	return rc > 0 ? -EINVAL : rc;
}

/* Exports kind t's program into memory: libseccomp 2.5 only exports to a descriptor. */
static int compile(enum seccomp_thread t, struct sock_fprog *prog)
{
	int fd = memfd_create("ember-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = export_filter(t, fd);
	struct stat st;
	if (!err && fstat(fd, &st) < 0)
		err = -errno;
	if (!err && (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
		     st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS))
		err = -E2BIG;
	struct sock_filter *insns = err ? NULL : malloc((size_t)st.st_size);
	if (!err && !insns)
		err = -ENOMEM;
	if (!err && pread(fd, insns, (size_t)st.st_size, 0) != st.st_size)
		err = -EIO;
	close(fd);
	if (err) {
		free(insns);
		return err;
	}
	prog->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	prog->filter = insns;
	return 0;
}

/* The process-wide setup, then kind t's program: each is done once, and later calls return
 * the first result. */
static int ready(enum seccomp_thread t)
{
	pthread_once(&process_setup_once, process_setup);
	if (process_setup_error)
		return process_setup_error;
	pthread_mutex_lock(&compile_lock);
	if (!compiled[t].filter && !compile_error[t])
		compile_error[t] = compile(t, &compiled[t]);
	int rc = compile_error[t];
	pthread_mutex_unlock(&compile_lock);
	return rc;
}

int seccomp_prepare(void)
{
	if (disabled)
		return 0;
	for (unsigned t = 0; t < SECCOMP_THREAD_KINDS; t++) {
		int rc = ready((enum seccomp_thread)t);
		if (rc)
			return rc;
	}
	return 0;
}

int seccomp_install(enum seccomp_thread t)
{
	if (disabled)
		return 0;
	if ((unsigned)t >= SECCOMP_THREAD_KINDS)
		return -EINVAL;
	int rc = ready(t);
	if (rc)
		return rc;

	/* Without CAP_SYS_ADMIN (under the jailer) the kernel requires no_new_privs; the jailer
	 * already set it, and setting it again is harmless. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	/* Without SECCOMP_FILTER_FLAG_TSYNC: this thread only, as each kind has its own list. */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &compiled[t]) < 0)
		return -errno;
	installed_kind = (int)t;
	return 0;
}

int seccomp_dump(const char *thread_name, int fd)
{
	enum seccomp_thread t;
	if (seccomp_thread_from_name(thread_name, &t))
		return -EINVAL;
	return export_filter(t, fd);
}
