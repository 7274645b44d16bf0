/* --cgroup: <hierarchy>/<parent-cgroup>/<id> in cgroup v1 (one hierarchy per controller, found
 * in /proc/mounts) or v2 (the one unified hierarchy, controllers enabled level by level down
 * to the parent), the values written, then the jailer moves itself in; ember inherits it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jailer.h"

/* The mount point of the v1 hierarchy that has controller, or of the v2 hierarchy when
 * controller is NULL. False if there is none. */
static bool find_hierarchy(const char *controller, char *mount, size_t len)
{
	FILE *f = setmntent("/proc/mounts", "re");
	if (!f)
		return false;
	bool found = false;
	struct mntent *m;
	while (!found && (m = getmntent(f))) {
		found = controller ? strcmp(m->mnt_type, "cgroup") == 0 && hasmntopt(m, controller)
				   : strcmp(m->mnt_type, "cgroup2") == 0;
		if (found)
			snprintf(mount, len, "%s", m->mnt_dir);
	}
	endmntent(f);
	return found;
}

static bool read_small_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

static int write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, value, strlen(value));
	int err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* True if word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += len)
		if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
			return true;
	return false;
}

/* Where a setting's hierarchy is mounted (PATH_MAX bytes). */
static void hierarchy_of(const struct jailer_args *a, const struct cgroup_setting *c, char *mount)
{
	if (a->cgroup_version == 1) {
		if (!find_hierarchy(c->controller, mount, PATH_MAX))
			jailer_fail(
				"--cgroup %s=%s: no cgroup v1 hierarchy has the '%s' controller "
				"(see /proc/mounts; --cgroup-version 2 for the unified hierarchy)",
				c->file, c->value, c->controller);
		return;
	}
	if (!find_hierarchy(NULL, mount, PATH_MAX))
		jailer_fail("--cgroup-version 2: no cgroup2 hierarchy is mounted");
	if (strcmp(c->controller, "cgroup") == 0)
		return; /* core files (cgroup.max.descendants...) need no controller */
	char path[PATH_MAX], controllers[512];
	jailer_path(path, "%s/cgroup.controllers", mount);
	if (!read_small_file(path, controllers, sizeof(controllers)) ||
	    !has_word(controllers, c->controller))
		jailer_fail("--cgroup %s=%s: the cgroup v2 hierarchy at %s has no '%s' controller "
			    "(it has: %s)",
			    c->file, c->value, mount, c->controller, controllers);
}

/* Whether file exists in the hierarchy's root or in one of its direct children: some files
 * are never on the root (pids.max; every controller file in v2). With no child to look at,
 * the answer waits until the jail's own cgroup exists. */
static bool file_known_or_unknowable(const char *mount, const char *file)
{
	char path[PATH_MAX];
	jailer_path(path, "%s/%s", mount, file);
	if (access(path, F_OK) == 0)
		return true;
	DIR *d = opendir(mount);
	if (!d)
		return true;
	bool seen_child = false, found = false;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		seen_child = true;
		jailer_path(path, "%s/%s/%s", mount, e->d_name, file);
		found = access(path, F_OK) == 0;
	}
	closedir(d);
	return found || !seen_child;
}

static void __attribute__((noreturn))
unknown_file(const struct cgroup_setting *c, const char *where)
{
	jailer_fail("--cgroup %s=%s: unknown cgroup file '%s' (not in %s)", c->file, c->value,
		    c->file, where);
}

void cgroup_validate(const struct jailer_args *a)
{
	for (unsigned i = 0; i < a->nr_cgroups; i++) {
		const struct cgroup_setting *c = &a->cgroups[i];
		char mount[PATH_MAX];
		hierarchy_of(a, c, mount);
		if (!file_known_or_unknowable(mount, c->file))
			unknown_file(c, mount);
	}
}

/* mkdir that accepts an existing directory: the parent is shared by every jail. Returns 1
 * if it created the directory. */
static int make_dir(const char *path)
{
	if (mkdir(path, 0755) == 0)
		return 1;
	if (errno == EEXIST)
		return 0;
	jailer_fail("cgroup %s: %s", path, strerror(errno));
}

/* A new cpuset starts with no CPUs and no memory nodes, and nothing can join it until it
 * has some: start from the parent's, as Firecracker does. */
static void inherit_cpuset(const char *dir)
{
	static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
	for (unsigned i = 0; i < 2; i++) {
		char path[PATH_MAX], parent_path[PATH_MAX], value[512];
		jailer_path(path, "%s/%s", dir, files[i]);
		if (!read_small_file(path, value, sizeof(value)) || value[0])
			continue;
		jailer_path(parent_path, "%s/../%s", dir, files[i]);
		if (read_small_file(parent_path, value, sizeof(value)) && value[0])
			write_file(path, value);
	}
}

/* Enables controller for the children of dir (cgroup v2), if it is not already. */
static void enable_controller(const char *dir, const char *controller)
{
	char path[PATH_MAX], enabled[512], change[80];
	jailer_path(path, "%s/cgroup.subtree_control", dir);
	if (read_small_file(path, enabled, sizeof(enabled)) && has_word(enabled, controller))
		return;
	jailer_path(change, "+%s", controller);
	int rc = write_file(path, change);
	if (rc)
		jailer_fail("cgroup v2: cannot enable the '%s' controller in %s: %s%s", controller,
			    path, strerror(-rc),
			    rc == -EBUSY ? " (that cgroup has processes of its own)" : "");
}

/* Creates mount/<parent_cgroup>/<id> level by level into dir; returns 1 if the last level
 * is new. v2 enables the settings' controllers on every level above the leaf. */
static int create_cgroup(const struct jailer_args *a, const char *mount, bool cpuset, char *dir,
			 size_t len)
{
	char relative[PATH_MAX];
	jailer_path(relative, "%s/%s", a->parent_cgroup, a->id);
	snprintf(dir, len, "%s", mount);
	int created = 0;
	for (char *part = strtok(relative, "/"); part; part = strtok(NULL, "/")) {
		if (a->cgroup_version == 2)
			for (unsigned i = 0; i < a->nr_cgroups; i++)
				if (strcmp(a->cgroups[i].controller, "cgroup"))
					enable_controller(dir, a->cgroups[i].controller);
		size_t used = strlen(dir);
		snprintf(dir + used, len - used, "/%s", part);
		created = make_dir(dir);
		if (cpuset)
			inherit_cpuset(dir);
	}
	return created;
}

void cgroup_setup(const struct jailer_args *a)
{
	/* The distinct directories this jail joins: several controllers may share one v1
	 * hierarchy (cpu,cpuacct), and v2 has only one. */
	char dirs[JAILER_MAX_CGROUPS][PATH_MAX];
	bool created[JAILER_MAX_CGROUPS];
	unsigned nr_dirs = 0;
	unsigned dir_of[JAILER_MAX_CGROUPS];
	for (unsigned i = 0; i < a->nr_cgroups; i++) {
		char mount[PATH_MAX], dir[PATH_MAX];
		hierarchy_of(a, &a->cgroups[i], mount);
		int is_new =
			create_cgroup(a, mount, strcmp(a->cgroups[i].controller, "cpuset") == 0,
				      dir, sizeof(dir));
		unsigned d = 0;
		while (d < nr_dirs && strcmp(dirs[d], dir))
			d++;
		if (d == nr_dirs) {
			jailer_path(dirs[nr_dirs], "%s", dir);
			created[nr_dirs++] = is_new;
		}
		dir_of[i] = d;
	}
	/* Every file is checked before any is written: an unknown one leaves nothing set. */
	for (unsigned i = 0; i < a->nr_cgroups; i++) {
		char path[PATH_MAX];
		jailer_path(path, "%s/%s", dirs[dir_of[i]], a->cgroups[i].file);
		if (access(path, F_OK) == 0)
			continue;
		for (unsigned d = 0; d < nr_dirs; d++)
			if (created[d])
				rmdir(dirs[d]);
		unknown_file(&a->cgroups[i], dirs[dir_of[i]]);
	}
	for (unsigned i = 0; i < a->nr_cgroups; i++) {
		char path[PATH_MAX];
		jailer_path(path, "%s/%s", dirs[dir_of[i]], a->cgroups[i].file);
		int rc = write_file(path, a->cgroups[i].value);
		if (rc)
			jailer_fail("--cgroup %s=%s: writing %s: %s", a->cgroups[i].file,
				    a->cgroups[i].value, path, strerror(-rc));
	}
	char pid[24];
	jailer_path(pid, "%d", (int)getpid());
	for (unsigned d = 0; d < nr_dirs; d++) {
		char path[PATH_MAX];
		jailer_path(path, "%s/%s", dirs[d],
			    a->cgroup_version == 1 ? "tasks" : "cgroup.procs");
		int rc = write_file(path, pid);
		if (rc)
			jailer_fail("cgroup: cannot join %s: %s", dirs[d], strerror(-rc));
	}
}
