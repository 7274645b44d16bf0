/* A scratch root for the targets whose routes open what a request names (logger, metrics,
 * drives, vsock sockets): a private mount namespace, chrooted in an empty directory with /usr
 * and /proc bound read-only (the sanitizers' symbolizer, LeakSanitizer), a /null sink, and
 * libFuzzer's own paths bound at their usual places. */
#ifndef EMBER_FUZZ_SANDBOX_H
#define EMBER_FUZZ_SANDBOX_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void die_errno(const char *what)
{
	perror(what);
	abort();
}

/* mkdir -p of path's directories below root (path absolute), and path itself if dir. */
static void make_path(const char *root, const char *path, bool dir)
{
	char at[PATH_MAX];
	snprintf(at, sizeof(at), "%s%s", root, path);
	for (char *s = at + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(at, 0755);
		*s = '/';
	}
	if (dir)
		mkdir(at, 0755);
	else
		close(open(at, O_CREAT | O_WRONLY, 0600));
}

/* libFuzzer's own files (the binary, for the symbolizer; corpus directories, inputs,
 * artifacts: its arguments) keep their paths inside the scratch root: each is bound there at
 * the same absolute path. */
static void bind_fuzzer_paths(const char *root, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "-artifact_prefix=", 17) == 0)
			arg += 17;
		else if (arg[0] == '-')
			continue;
		char real[PATH_MAX], dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", arg);
		if (!realpath(arg, real)) {
			/* An artifact prefix names a directory and a file-name start. */
			char *slash = strrchr(dir, '/');
			if (!slash)
				continue;
			*slash = '\0';
			if (!realpath(dir, real))
				continue;
		}
		struct stat st;
		if (stat(real, &st))
			continue;
		make_path(root, real, S_ISDIR(st.st_mode));
		char at[PATH_MAX + 256];
		snprintf(at, sizeof(at), "%s%s", root, real);
		if (mount(real, at, NULL, MS_BIND, NULL))
			die_errno(real);
	}
}

/* The scratch root: the only place a route can create a file. A tmpfs over /mnt in the
 * private mount namespace, so that nothing of it is left on the host (and 64 MiB bound what
 * a route writes there). */
static void enter_scratch_root(int argc, char **argv)
{
	const char *dir = "/mnt";
	if (unshare(CLONE_NEWNS) && unshare(CLONE_NEWUSER | CLONE_NEWNS))
		die_errno("unshare");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die_errno("mount --make-rprivate /");
	if (mount("fuzz-scratch", dir, "tmpfs", 0, "size=64m,mode=0755"))
		die_errno("mount tmpfs /mnt");
	char at[PATH_MAX];
	snprintf(at, sizeof(at), "%s/usr", dir);
	if (mkdir(at, 0755) || mount("/usr", at, NULL, MS_BIND | MS_REC, NULL) ||
	    mount(NULL, at, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL))
		die_errno("bind /usr");
	/* Debian's merged /usr: the symbolizer's loader and libraries through the usual paths. */
	const char *const links[] = { "bin", "lib", "lib64" };
	for (int i = 0; i < 3; i++) {
		char target[16];
		snprintf(at, sizeof(at), "%s/%s", dir, links[i]);
		snprintf(target, sizeof(target), "usr/%s", links[i]);
		if (symlink(target, at))
			die_errno("symlink");
	}
	/* LeakSanitizer reads /proc/self; read-only, so that no route writes to /proc/sys. */
	snprintf(at, sizeof(at), "%s/proc", dir);
	if (mkdir(at, 0755) || mount("/proc", at, NULL, MS_BIND | MS_REC, NULL) ||
	    mount(NULL, at, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL))
		die_errno("bind /proc");
	snprintf(at, sizeof(at), "%s/null", dir);
	int fd = open(at, O_CREAT | O_WRONLY, 0600);
	if (fd < 0 || close(fd) || mount("/dev/null", at, NULL, MS_BIND, NULL))
		die_errno("bind /dev/null");
	bind_fuzzer_paths(dir, argc, argv);
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		die_errno("getcwd");
	make_path(dir, cwd, true);
	if (chroot(dir) || chdir(cwd))
		die_errno("chroot");
}

/* Removes what the last input created in the scratch root, but keep (NULL: nothing more). */
static void empty_scratch_root(const char *keep)
{
	DIR *d = opendir("/");
	if (!d)
		die_errno("opendir /");
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, "usr") && strcmp(e->d_name, "proc") &&
		    strcmp(e->d_name, "null") && strncmp(e->d_name, "lib", 3) &&
		    strcmp(e->d_name, "bin") && e->d_name[0] != '.' &&
		    !(keep && strcmp(e->d_name, keep) == 0))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

#endif
