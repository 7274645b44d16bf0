/* The API's routes (api/routes.c) and everything behind them (controller, config JSON, every
 * device kind's hooks): a run of requests, method, path and JSON body from the input, on a VM
 * that is configuring and then, after the input's "start", running.
 *
 * Start without KVM: the devices the configuration names are created as InstanceStart
 * creates them (device kinds' create hooks) and the state becomes running, with an i8042 for
 * SendCtrlAltDel; no vCPU, no kernel. A real InstanceStart routed here fails, as /dev/kvm is
 * not in the scratch root.
 *
 * Routes open files the body names (logger, metrics, drives, vsock sockets): the target
 * runs chrooted in an empty scratch directory of its own (a private mount namespace with /usr
 * and /proc bound read-only, for the sanitizers' symbolizer and LeakSanitizer), and every
 * input starts from an empty one. Input: per request a method byte, a path byte (one of the paths
 * below, or the next bytes up to a NUL), a 16-bit body length and the body; a method byte of 0xff
 * is "start". */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "legacy/i8042.h"
#include "core/metrics.h"
#include "vmm/controller.h"
#include "vmm/device_table.h"
#include "fuzz.h"

static const char *const paths[] = {
	"/",
	"/version",
	"/machine-config",
	"/boot-source",
	"/drives/rootfs",
	"/drives/d1",
	"/network-interfaces/eth0",
	"/network-interfaces/eth1",
	"/vsock",
	"/logger",
	"/metrics",
	"/serial",
	"/actions",
	"/vm",
	"/vm/config",
	"/drives",
	"/drives/",
	"/mmds",
};
static const char *const methods[] = { "GET", "PUT", "PATCH", "DELETE", "POST" };

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

/* The scratch root: the only place a route can create a file. */
static void enter_scratch_root(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/ember-fuzz-router-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		die_errno("mkdtemp");
	if (unshare(CLONE_NEWNS) && unshare(CLONE_NEWUSER | CLONE_NEWNS))
		die_errno("unshare");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die_errno("mount --make-rprivate /");
	char at[300];
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
	/* The directory goes with the mount namespace's last user: detach it from the host's
	 * view now (its files are only ever removed below). */
	rmdir(dir);
}

/* Removes what the last input created in the scratch root. */
static void empty_scratch_root(void)
{
	DIR *d = opendir("/");
	if (!d)
		die_errno("opendir /");
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, "usr") && strcmp(e->d_name, "proc") &&
		    strcmp(e->d_name, "null") && strncmp(e->d_name, "lib", 3) &&
		    strcmp(e->d_name, "bin") && e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	enter_scratch_root(*argc, *argv);
	api_metrics_init();
	fuzz_quiet();
	return 0;
}

/* InstanceStart as far as it goes without KVM: the devices and the running state. */
static void fake_start(struct vm *vm)
{
	char err[ERR_LEN];
	if (vm->state != VM_CONFIGURING)
		return;
	for (int k = 0; device_kinds[k]; k++) {
		unsigned first = vm->devices.nr;
		int rc = device_kinds[k]->create(&vm->m, vm->cfg.devices[k], &vm->devices, err);
		for (unsigned i = first; i < vm->devices.nr; i++)
			vm->device_kind_of[i] = k;
		if (rc)
			return;
	}
	vm->i8042 = i8042_create(&vm->m);
	vm->state = VM_RUNNING;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	static struct vm vm;
	memset(&vm, 0, sizeof(vm));
	builder_init(&vm, false);
	struct api_ctx ctx = { .vm = &vm, .instance_id = "fuzz" };
	char path[256];
	while (fin_more(&f)) {
		uint8_t m = fin8(&f);
		if (m == 0xff) {
			fake_start(&vm);
			continue;
		}
		uint8_t p = fin8(&f);
		if (p < sizeof(paths) / sizeof(*paths)) {
			snprintf(path, sizeof(path), "%s", paths[p]);
		} else {
			size_t n = 0;
			while (fin_more(&f) && n + 1 < sizeof(path) && (path[n] = (char)fin8(&f)))
				n++;
			path[n] = '\0';
		}
		size_t len = fin16(&f), got;
		const uint8_t *body = fin_bytes(&f, len, &got);
		/* The body as the API thread hands it over: in the connection's buffer, not
		 * NUL-terminated (a copy of its own, so that ASan sees a read past it). */
		char *copy = malloc(got ? got : 1);
		memcpy(copy, body, got);
		struct api_reply reply = { 0 };
		api_dispatch(&ctx, methods[m % 5], path, (m & 0x80) ? NULL : copy, got, &reply);
		free(reply.body);
		free(copy);
	}
	vmm_destroy(&vm);
	/* Logger and metrics are process-wide: back to the sink, and quiet again. */
	log_open("/null");
	metrics_open("/null");
	fuzz_quiet();
	empty_scratch_root();
	return 0;
}
