/* --jail: ember under ember-jailer (as root; the jailer drops to --jail-uid/--jail-gid, by
 * default 65534). The jail's root is <run dir>/ember/run-XXXXXX/root; the template's state, memory
 * and root image are bind-mounted into it read-only, in a mount namespace of the child's own
 * (made before it execs the jailer, whose namespace copies it), so the mounts go with the
 * run however it ends. The root image keeps its path: the snapshot names it.
 *
 * ember's PR_SET_PDEATHSIG (vm.c) does not survive the jailer's setuid, so the child runs in a
 * PID namespace of its own, as its pid 1: it stays root with the death signal, runs the
 * jailer as its child and ends with its status. When it dies, even after a SIGKILL of
 * ember-run, the kernel kills everything in the namespace: the jailed ember too. */
#include "run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct jail {
	char root[PATH_MAX];
	const struct template *t;
};

/* mkdir -p for path's parents, then an empty file at path (a bind mount's target). */
static int placeholder(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = 0;
		int r = mkdir(path, 0755);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -errno;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* In the child: a private mount namespace, and the template's files bound in. */
static int bind_ro(const char *src, const char *root, const char *inside)
{
	char dst[PATH_MAX * 2];

	snprintf(dst, sizeof(dst), "%s%s", root, inside);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
		dprintf(2, "ember-run: bind %s on %s: %s\n", src, dst, strerror(errno));
		return -1;
	}
	return 0;
}

static int prep(void *ctx)
{
	struct jail *j = ctx;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) < 0) {
		dprintf(2, "ember-run: a mount namespace for the jail: %s\n", strerror(errno));
		return -1;
	}
	if (bind_ro(j->t->state, j->root, "/vm.state") || bind_ro(j->t->mem, j->root, "/vm.mem") ||
	    bind_ro(j->t->rootfs, j->root, j->t->rootfs))
		return -1;
	pid_t jailer = fork();
	if (jailer < 0) {
		dprintf(2, "ember-run: fork in the jail's PID namespace: %s\n", strerror(errno));
		return -1;
	}
	if (jailer == 0)
		return 0; /* goes on to exec the jailer */
	int st;
	while (waitpid(jailer, &st, 0) < 0)
		if (errno != EINTR)
			_exit(127);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int jail_spawn(struct vm *vm, const struct run_opts *o, const struct template *t, const char *tap,
	       char *err)
{
	static struct jail j;
	char path[PATH_MAX * 2], jailer[PATH_MAX + 32], ember[PATH_MAX + 32], uid[16], gid[16];
	int r;

	/* The jail's id names its cgroup too: one per run (mkdtemp's suffix is [A-Za-z0-9]). */
	static char id[32];
	snprintf(id, sizeof(id), "run-%s", strrchr(vm->dir, '.') + 1);
	j.t = t;
	snprintf(j.root, sizeof(j.root), "%s/ember/%s/root", vm->dir, id);
	snprintf(path, sizeof(path), "%s/", j.root);
	const char *files[] = { "/vm.state", "/vm.mem", t->rootfs };
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s%s", j.root, files[i]);
		if ((r = placeholder(path)) < 0)
			return fail(err, r, "%s: %s", path, strerror(-r));
	}
	snprintf(path, sizeof(path), "%s/restore.json", j.root);
	if ((r = write_restore_config(path, "/vm.state", "/vm.mem", "/v.sock", tap, err)))
		return r;
	chmod(path, 0644); /* read by the jailed user */
	snprintf(vm->sockdir, sizeof(vm->sockdir), "%s", j.root);

	snprintf(jailer, sizeof(jailer), "%s/ember-jailer", o->bindir);
	snprintf(ember, sizeof(ember), "%s/ember", o->bindir);
	snprintf(uid, sizeof(uid), "%u", o->jail_uid);
	snprintf(gid, sizeof(gid), "%u", o->jail_gid);
	char *args[64] = { jailer, "--id",  id,	 "--exec-file",	      ember,  "--uid",
			   uid,	   "--gid", gid, "--chroot-base-dir", vm->dir };
	int n = 11;
	if (o->ncgroups) {
		args[n++] = "--cgroup-version";
		args[n++] = "2";
		/* The jailer leaves its cgroup; the teardown removes it once ember is gone. */
		snprintf(vm->cgroup, sizeof(vm->cgroup), "/sys/fs/cgroup/ember/%s", id);
	}
	for (unsigned i = 0; i < o->ncgroups; i++) {
		args[n++] = "--cgroup";
		args[n++] = (char *)o->cgroups[i];
	}
	args[n++] = "--";
	args[n++] = "--no-api";
	args[n++] = "--config-file";
	args[n++] = "/restore.json";
	args[n] = NULL;
	/* ember-run's next child (its only one) is pid 1 of a new PID namespace. */
	if (unshare(CLONE_NEWPID) < 0)
		return fail(err, -errno, "a PID namespace for the jail: %s", strerror(errno));
	return vm_spawn_prep(vm, args, prep, &j, err);
}
