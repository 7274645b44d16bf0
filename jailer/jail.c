/* The jail itself: its directory and binary, the namespaces, the device nodes, and the
 * privileges ember keeps (none). Each step fails with a message that names what it was
 * doing; by then validation has ruled out the user's mistakes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/sysmacros.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "jailer.h"

void jail_close_inherited_fds(void)
{
	/* Whatever the caller left open would otherwise follow ember into the jail. */
	if (close_range(3, ~0U, 0) == 0)
		return;
	/* Kernels before 5.9: the descriptors /proc lists. */
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		jailer_fail("cannot list open file descriptors: %s", strerror(errno));
	int fds[1024];
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 1024) {
		int fd = atoi(e->d_name);
		if (fd > 2 && fd != dirfd(d))
			fds[n++] = fd;
	}
	closedir(d);
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* mkdir -p: the base and the per-binary level are shared by every jail. */
static void make_dirs(const char *path)
{
	char partial[PATH_MAX];
	jailer_path(partial, "%s", path);
	for (char *p = partial + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(partial, 0755) < 0 && errno != EEXIST)
			jailer_fail("cannot create %s: %s", partial, strerror(errno));
		*p = saved;
		if (!saved)
			break;
	}
}

static void copy_exec_file(const struct jailer_args *a, const char *dest)
{
	/* O_NOFOLLOW and a second check on the open file: the path was validated earlier and
	 * might have been replaced since. */
	int in = open(a->exec_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
		jailer_fail("--exec-file %s: %s", a->exec_file,
			    in < 0 ? strerror(errno) : "is no longer a regular file");
	/* A previous run's copy may still be executing: replace it rather than write into it. */
	if (unlink(dest) < 0 && errno != ENOENT)
		jailer_fail("cannot replace %s: %s", dest, strerror(errno));
	int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0700);
	if (out < 0)
		jailer_fail("cannot create %s: %s", dest, strerror(errno));
	off_t left = st.st_size;
	while (left > 0) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
			char buf[65536];
			n = read(in, buf, sizeof(buf));
			if (n > 0 && write(out, buf, (size_t)n) != n)
				n = -1;
		}
		if (n <= 0)
			jailer_fail("copying %s to %s: %s", a->exec_file, dest,
				    n == 0 ? "file shrank while copying" : strerror(errno));
		left -= n;
	}
	/* The permission bits, never set-id ones: the copy is root's and runs as uid. */
	if (fchmod(out, st.st_mode & 0777) < 0 || close(out) < 0)
		jailer_fail("cannot finish %s: %s", dest, strerror(errno));
	close(in);
}

void jail_create_root(struct jailer_args *a)
{
	make_dirs(a->chroot_dir);
	char dest[PATH_MAX];
	jailer_path(dest, "%s/%s", a->chroot_dir, a->exec_name);
	copy_exec_file(a, dest);
	/* ember creates its API socket (and whatever else it writes) at the jail's root; through
	 * a descriptor, so that the chown lands on that directory and nothing it might link to. */
	int root = open(a->chroot_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0 || fchown(root, a->uid, a->gid) < 0)
		jailer_fail("cannot chown %s to %u:%u: %s", a->chroot_dir, a->uid, a->gid,
			    strerror(errno));
	close(root);
}

void jail_join_netns(const struct jailer_args *a)
{
	if (!a->netns)
		return;
	int fd = open(a->netns, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		jailer_fail("--netns %s: cannot join: %s", a->netns, strerror(errno));
	close(fd);
}

void jail_set_rlimits(const struct jailer_args *a)
{
	static const struct rlimit_setting default_no_file = { "no-file", RLIMIT_NOFILE,
							       JAILER_DEFAULT_NO_FILE };
	const struct rlimit_setting *limits = a->nr_rlimits ? a->rlimits : &default_no_file;
	unsigned n = a->nr_rlimits ? a->nr_rlimits : 1;
	for (unsigned i = 0; i < n; i++) {
		struct rlimit r = { limits[i].value, limits[i].value };
		if (setrlimit(limits[i].resource, &r) == 0)
			continue;
		int err = errno;
		jailer_fail("--resource-limit %s=%llu: %s%s", limits[i].name,
			    (unsigned long long)limits[i].value, strerror(err),
			    err == EPERM ? " (raising the hard limit needs CAP_SYS_RESOURCE)" : "");
	}
}

/* The jail's root belongs to the jailed user, so whatever a previous ember left there is
 * untrusted: a directory the jailer works in must be a real directory that only root can
 * change, or a later run's nodes could be swapped for links into the jail's mounts (drives,
 * sockets) between their creation and their chown. Created if missing; the descriptor is
 * what every later step uses, never the path again. */
static int open_jail_dir(int parent, const char *name, const char *shown)
{
	if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
		jailer_fail("cannot create %s in the jail: %s", shown, strerror(errno));
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
		jailer_fail("the jail's %s is a symbolic link or not a directory: refusing to work "
			    "through it (remove it; the jailer creates it)",
			    shown);
	if (fd < 0 || fstat(fd, &st) < 0)
		jailer_fail("cannot open %s in the jail: %s", shown, strerror(errno));
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		jailer_fail(
			"the jail's %s is owned by uid %u or writable by others (mode %03o): "
			"refusing to create device nodes in it (remove it; the jailer creates it)",
			shown, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
	return fd;
}

/* A character device owned by the jailed user, replacing whatever a previous run left. dir
 * is root's alone (open_jail_dir), so nothing can replace the node before its chown. */
static void make_device(int dir, const char *name, const char *shown, unsigned major,
			unsigned minor, const struct jailer_args *a)
{
	if (unlinkat(dir, name, 0) < 0 && errno != ENOENT)
		jailer_fail("cannot replace %s in the jail: %s", shown, strerror(errno));
	if (mknodat(dir, name, S_IFCHR | 0600, makedev(major, minor)) < 0 ||
	    fchownat(dir, name, a->uid, a->gid, AT_SYMLINK_NOFOLLOW) < 0)
		jailer_fail("cannot create %s in the jail: %s", shown, strerror(errno));
}

void jail_enter(struct jailer_args *a)
{
	if (a->daemonize) {
		/* The jail has no /dev/null: open it while the host's tree is still visible. */
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			jailer_fail("--daemonize: /dev/null: %s", strerror(errno));
		a->dev_null_fd = fd;
	}
	/* Linux 6.1+: the Uffd snapshot backend's way to a userfaultfd for a process without
	 * CAP_SYS_PTRACE (vm.unprivileged_userfaultfd 0). Its minor number is the host's. */
	struct stat uffd;
	if (stat("/dev/userfaultfd", &uffd) == 0 && S_ISCHR(uffd.st_mode))
		a->userfaultfd_dev = uffd.st_rdev;
	if (unshare(CLONE_NEWNS) < 0)
		jailer_fail("cannot create a mount namespace: %s", strerror(errno));
	/* Nothing done from here on may propagate back to the host's mounts. */
	if (mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) < 0)
		jailer_fail("cannot make the mounts private: %s", strerror(errno));
	/* pivot_root needs the new root to be a mount point; MS_REC keeps any mounts the user
	 * placed inside the jail (drives, sockets). */
	if (mount(a->chroot_dir, a->chroot_dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		jailer_fail("cannot bind-mount %s: %s", a->chroot_dir, strerror(errno));
	if (chdir(a->chroot_dir) < 0)
		jailer_fail("cannot enter %s: %s", a->chroot_dir, strerror(errno));
	/* pivot_root(".", "."), as pivot_root(2) describes: the old root is stacked on the new
	 * one and detached from there, so no old_root directory is created in the jail and
	 * removed again (an ext4 journal commit on every start). */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		jailer_fail("pivot_root into %s: %s", a->chroot_dir, strerror(errno));
	if (umount2(".", MNT_DETACH) < 0)
		jailer_fail("cannot detach the host's root: %s", strerror(errno));
	/* For good measure, as Firecracker does: the process root is the new "/" either way. */
	if (chroot(".") < 0 || chdir("/") < 0)
		jailer_fail("chroot: %s", strerror(errno));

	int dev = open_jail_dir(AT_FDCWD, "/dev", "/dev");
	int net = open_jail_dir(dev, "net", "/dev/net");
	make_device(dev, "kvm", "/dev/kvm", 10, 232, a);
	make_device(net, "tun", "/dev/net/tun", 10, 200, a);
	make_device(dev, "urandom", "/dev/urandom", 1, 9, a);
	if (a->userfaultfd_dev)
		make_device(dev, "userfaultfd", "/dev/userfaultfd", major(a->userfaultfd_dev),
			    minor(a->userfaultfd_dev), a);
	close(net);
	close(dev);
#ifdef __SANITIZE_ADDRESS__
	/* make SANITIZE=1 only: the sanitizer runtime reads its options, the executable's name
	 * and, for the leak check at exit, the thread list from /proc. A release jail has none. */
	if ((mkdir("/proc", 0555) < 0 && errno != EEXIST) ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		jailer_fail("sanitizer build: cannot mount /proc in the jail: %s", strerror(errno));
#endif
}

/* The --new-pid-ns file at the jail's root, which the jailed user owns: a previous run may
 * have left a link there to a file the jail can see (a drive's bind mount). Only a regular
 * file is replaced, and the new one is created, never opened through a link. */
static int create_pid_file(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
		jailer_fail("--new-pid-ns: the jail's %s is %s, not a regular file: refusing to "
			    "write through it (remove it)",
			    path, S_ISLNK(st.st_mode) ? "a symbolic link" : "something else");
	if (unlink(path) < 0 && errno != ENOENT)
		jailer_fail("--new-pid-ns: cannot replace %s: %s", path, strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		jailer_fail("--new-pid-ns: cannot create %s: %s%s", path, strerror(errno),
			    errno == EEXIST ? " (something put it back while it was replaced)"
					    : "");
	return fd;
}

void jail_detach(struct jailer_args *a)
{
	/* The pid file first: a refusal must still reach the caller's stderr. */
	char path[PATH_MAX];
	int fd = -1;
	if (a->new_pid_ns)
		fd = create_pid_file(jailer_path(path, "/%s.pid", a->exec_name));
	if (a->daemonize) {
		if (setsid() < 0)
			jailer_fail(
				"--daemonize: setsid: %s (the jailer must not be a process group "
				"leader)",
				strerror(errno));
		for (int fd = 0; fd < 3; fd++)
			if (dup2(a->dev_null_fd, fd) < 0)
				jailer_fail("--daemonize: %s", strerror(errno));
		close(a->dev_null_fd);
	}
	if (!a->new_pid_ns)
		return;
	/* The next child is PID 1 of a new namespace; the jailer only records its host PID. */
	if (unshare(CLONE_NEWPID) < 0)
		jailer_fail("--new-pid-ns: %s", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		jailer_fail("--new-pid-ns: fork: %s", strerror(errno));
	if (child > 0) {
		char pid[24];
		int n = snprintf(pid, sizeof(pid), "%d\n", (int)child);
		if (write(fd, pid, (size_t)n) != n) {
			kill(child, SIGKILL);
			jailer_fail("--new-pid-ns: cannot write %s: %s", path, strerror(errno));
		}
		close(fd);
		/* _exit: nothing is buffered, and no exit-time work (a sanitizer's leak check
		 * traces its own children) may run with a child in another PID namespace. */
		_exit(0);
	}
	close(fd);
	/* A new process: its CPU clock starts again at zero. */
	a->start_cpu_us = 0;
}

void jail_drop_privileges(const struct jailer_args *a)
{
	/* The bounding set first, while CAP_SETPCAP is still ours; then no_new_privs, so that
	 * nothing exec'd can gain privileges back; then the groups and the user, which need
	 * CAP_SETGID and CAP_SETUID. setresuid to a non-zero uid empties the other sets, and
	 * they are cleared explicitly for uid 0. */
	for (cap_value_t cap = 0; cap < (cap_value_t)cap_max_bits(); cap++)
		if (CAP_IS_SUPPORTED(cap) && cap_drop_bound(cap) < 0)
			jailer_fail("cannot drop capability %d from the bounding set: %s", cap,
				    strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		jailer_fail("cannot set no_new_privs: %s", strerror(errno));
	if (setgroups(0, NULL) < 0 || setresgid(a->gid, a->gid, a->gid) < 0)
		jailer_fail("cannot switch to gid %u: %s", a->gid, strerror(errno));
	if (setresuid(a->uid, a->uid, a->uid) < 0)
		jailer_fail("cannot switch to uid %u: %s", a->uid, strerror(errno));
	cap_t none = cap_init();
	if (!none || cap_set_proc(none) < 0)
		jailer_fail("cannot clear the capability sets: %s", strerror(errno));
	cap_free(none);
	if (cap_reset_ambient() < 0 && errno != EINVAL) /* EINVAL: no ambient capabilities */
		jailer_fail("cannot clear the ambient capabilities: %s", strerror(errno));
}

void jail_exec(const struct jailer_args *a)
{
	char path[PATH_MAX], id[JAILER_ID_MAX + 8], start[48], start_cpu[48];
	jailer_path(path, "/%s", a->exec_name);
	snprintf(id, sizeof(id), "--id=%s", a->id);
	snprintf(start, sizeof(start), "--start-time-us=%llu", (unsigned long long)a->start_us);
	snprintf(start_cpu, sizeof(start_cpu), "--start-time-cpu-us=%llu",
		 (unsigned long long)a->start_cpu_us);
	char **argv = calloc((size_t)a->nr_exec_args + 5, sizeof(*argv));
	if (!argv)
		jailer_fail("out of memory");
	char *head[] = { (char *)a->exec_name, id, start, start_cpu };
	memcpy(argv, head, sizeof(head));
	/* Then ember's own arguments; calloc left the NULL that ends the list. */
	memcpy(argv + 4, a->exec_args, (size_t)a->nr_exec_args * sizeof(*argv));
	char *env[] = { NULL }; /* nothing of the caller's environment reaches ember */
	execve(path, argv, env);
	int err = errno;
	if (err == ENOENT && access(path, F_OK) == 0)
		jailer_fail("exec %s: its ELF interpreter or a shared library is missing inside "
			    "the jail: build/ember is static, a dynamically linked exec file needs "
			    "them copied into the jail",
			    path);
	jailer_fail("exec %s: %s", path, strerror(err));
}
