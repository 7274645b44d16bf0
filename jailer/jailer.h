/* ember-jailer: Firecracker's jailer for ember. Everything the jailer was asked to do,
 * validated before it does anything (main.c), then the jail itself (jail.c) and its cgroups
 * (cgroup.c). */
#ifndef EMBER_JAILER_H
#define EMBER_JAILER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define JAILER_ID_MAX		   64
#define JAILER_DEFAULT_CHROOT_BASE "/srv/jailer"
/* Firecracker's bound on descriptors when no --resource-limit is given. */
#define JAILER_DEFAULT_NO_FILE 2048
#define JAILER_MAX_CGROUPS     32
#define JAILER_MAX_RLIMITS     8

struct cgroup_setting {
	const char *file;    /* "cpu.shares": <controller>.<name> */
	const char *value;   /* written as given */
	char controller[64]; /* "cpu"; "cgroup" for cgroup v2's core files */
};

struct rlimit_setting {
	const char *name; /* "fsize" or "no-file", for messages */
	int resource;	  /* RLIMIT_FSIZE, RLIMIT_NOFILE */
	rlim_t value;
};

struct jailer_args {
	const char *id;
	const char *exec_file;
	const char *exec_name; /* the last path component of exec_file */
	uid_t uid;
	gid_t gid;
	const char *chroot_base;
	const char *netns; /* NULL: stay in the current network namespace */
	bool daemonize;
	bool new_pid_ns;
	int cgroup_version; /* 1 or 2 */
	const char *parent_cgroup;
	struct cgroup_setting cgroups[JAILER_MAX_CGROUPS];
	unsigned nr_cgroups;
	struct rlimit_setting rlimits[JAILER_MAX_RLIMITS];
	unsigned nr_rlimits;
	char **exec_args; /* what followed "--", passed to ember */
	int nr_exec_args;

	/* Passed on to ember as --start-time-us and --start-time-cpu-us. */
	uint64_t start_us;
	uint64_t start_cpu_us;

	char chroot_dir[PATH_MAX]; /* <chroot_base>/<exec_name>/<id>/root */
	int dev_null_fd;	   /* --daemonize: opened before the jail hides /dev/null */
	dev_t userfaultfd_dev;	   /* the host's /dev/userfaultfd, or 0 where it has none */
};

/* Prints "ember-jailer: <message>" on stderr and exits with status 1. */
void jailer_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Formats a path into out (PATH_MAX bytes); one that does not fit fails, never cut short. */
char *jailer_path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* cgroup.c. Validation only reads /proc/mounts and the hierarchies; fails via jailer_fail(). */
void cgroup_validate(const struct jailer_args *a);
/* Creates <hierarchy>/<parent_cgroup>/<id> in every hierarchy the settings need, writes the
 * values and moves the calling process in. Fails via jailer_fail(). */
void cgroup_setup(const struct jailer_args *a);

/* jail.c: the steps after validation, in order. */
void jail_close_inherited_fds(void);
void jail_create_root(struct jailer_args *a);
void jail_join_netns(const struct jailer_args *a);
void jail_set_rlimits(const struct jailer_args *a);
void jail_enter(struct jailer_args *a);	 /* mount namespace, pivot_root, /dev nodes */
void jail_detach(struct jailer_args *a); /* --daemonize and --new-pid-ns */
void jail_drop_privileges(const struct jailer_args *a);
void jail_exec(const struct jailer_args *a) __attribute__((noreturn));

#endif
