/* seccomp_try BPF_FILE CALL...: installs the raw BPF program that `ember --dump-seccomp THREAD`
 * wrote, then makes each named syscall in turn and prints what it returned. A call the filter
 * forbids never returns: the process dies of SIGSYS (status 159 in the shell), as nothing here
 * handles that signal. Output goes through write(2) only: stdio's first use would itself make
 * calls (fstat) that some filters forbid. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static long try_call(const char *name)
{
	if (!strcmp(name, "write"))
		return write(STDOUT_FILENO, "", 0);
	if (!strcmp(name, "getpid"))
		return getpid();
	if (!strcmp(name, "mmap-rw")) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);
		return p == MAP_FAILED ? -1 : 0;
	}
	if (!strcmp(name, "mmap-exec")) {
		void *p =
			mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? -1 : 0;
	}
	if (!strcmp(name, "mprotect-exec")) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);
		return mprotect(p, 4096, PROT_READ | PROT_EXEC);
	}
	/* ioctls on a descriptor that is not open: the filter looks only at the request, and
	 * an allowed one comes back with EBADF. */
	if (!strcmp(name, "ioctl-kvm-run"))
		return ioctl(-1, KVM_RUN, 0);
	if (!strcmp(name, "ioctl-kvm-create-vm"))
		return ioctl(-1, KVM_CREATE_VM, 0);
	if (!strcmp(name, "ioctl-kvm-get-clock"))
		return ioctl(-1, KVM_GET_CLOCK, 0);
	/* A snapshot reads the paused VM's state from the VMM thread; setting it is only for
	 * a load, before the filter. */
	if (!strcmp(name, "ioctl-kvm-get-regs"))
		return ioctl(-1, KVM_GET_REGS, 0);
	if (!strcmp(name, "ioctl-kvm-set-regs"))
		return ioctl(-1, KVM_SET_REGS, 0);
	if (!strcmp(name, "ioctl-kvm-set-msrs"))
		return ioctl(-1, KVM_SET_MSRS, 0);
	if (!strcmp(name, "mincore"))
		return mincore(NULL, 0, NULL);
	if (!strcmp(name, "ftruncate"))
		return ftruncate(-1, 0);
	/* A Uffd snapshot load makes its userfaultfd before the filter; the watcher of the
	 * handler's connection only receives on it. */
	if (!strcmp(name, "userfaultfd"))
		return syscall(SYS_userfaultfd, O_CLOEXEC);
	if (!strcmp(name, "recvfrom"))
		return recv(-1, NULL, 0, MSG_DONTWAIT);
	/* The ways to raise an interrupt other than an irqfd. */
	if (!strcmp(name, "ioctl-kvm-irq-line"))
		return ioctl(-1, KVM_IRQ_LINE, 0);
	if (!strcmp(name, "ioctl-kvm-signal-msi"))
		return ioctl(-1, KVM_SIGNAL_MSI, 0);
	if (!strcmp(name, "ioctl-kvm-interrupt"))
		return ioctl(-1, KVM_INTERRUPT, 0);
	if (!strcmp(name, "ioctl-kvm-set-user-memory-region"))
		return ioctl(-1, KVM_SET_USER_MEMORY_REGION, 0);
	if (!strcmp(name, "socket-unix"))
		return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!strcmp(name, "socket-inet"))
		return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!strcmp(name, "socket-netlink"))
		return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (!strcmp(name, "accept4"))
		return accept4(-1, NULL, NULL, SOCK_CLOEXEC);
	if (!strcmp(name, "openat"))
		return openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
	if (!strcmp(name, "execve")) {
		char *argv[] = { "true", NULL };
		return execve("/bin/true", argv, argv + 1);
	}
	if (!strcmp(name, "fork"))
		return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (!strcmp(name, "ptrace"))
		return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
	if (!strcmp(name, "tgkill-kick")) /* SIGRTMIN is ignored below */
		return syscall(SYS_tgkill, getpid(), gettid(), SIGRTMIN);
	if (!strcmp(name, "tgkill-term"))
		return syscall(SYS_tgkill, getpid(), gettid(), SIGTERM);
	if (!strcmp(name, "unlink"))
		return unlink("/nonexistent/seccomp_try");
	if (!strcmp(name, "mount"))
		return syscall(SYS_mount, "none", "/nonexistent", "tmpfs", 0, NULL);
	if (!strcmp(name, "kill-parent"))
		return kill(getppid(), 0);
	return -2;
}

static void say(const char *msg)
{
	ssize_t r = write(STDOUT_FILENO, msg, strlen(msg));
	(void)r;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s BPF_FILE CALL...\n", argv[0]);
		return 2;
	}
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		fprintf(stderr, "%s: not a BPF program\n", argv[1]);
		return 2;
	}
	struct sock_filter *insns = malloc((size_t)st.st_size);
	if (!insns || read(fd, insns, (size_t)st.st_size) != st.st_size) {
		fprintf(stderr, "%s: cannot read\n", argv[1]);
		return 2;
	}
	close(fd);
	struct sock_fprog prog = { .len = (unsigned short)(st.st_size / sizeof(*insns)),
				   .filter = insns };
	signal(SIGRTMIN, SIG_IGN);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("installing the filter");
		return 2;
	}
	free(insns); /* the kernel keeps its own copy */
	for (int i = 2; i < argc; i++) {
		errno = 0;
		long r = try_call(argv[i]);
		if (r == -2) {
			char msg[160];
			snprintf(msg, sizeof(msg), "%s: unknown call\n", argv[i]);
			say(msg);
			return 2;
		}
		char msg[160];
		snprintf(msg, sizeof(msg), "%s: returned %ld (%s)\n", argv[i], r,
			 r < 0 ? strerror(errno) : "ok");
		say(msg);
	}
	return 0;
}
