/* ember-run's template.json (run/template_json.c): the input is the file's text, read from a
 * template directory of the target's own that holds the three files a template names, a
 * link to one of them, a directory and a FIFO. Checks that a refusal says why and that an
 * accepted template names regular files directly inside the directory (no link, no path
 * out of it), with every number in its range. */
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "run/template_json.c"

static char dir[PATH_MAX], meta[PATH_MAX + 32];

static void remove_dir(void)
{
	const char *names[] = {
		"template.json", "vm.state", "vm.mem", "rootfs.ext4", "link", "fifo"
	};
	char p[PATH_MAX + 32];
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/dir", dir);
	rmdir(p);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* On tmpfs: every input rewrites template.json (eight times the rate of ext4). */
	const char *tmp = getenv("TMPDIR");
	char made[PATH_MAX], p[PATH_MAX + 32];
	snprintf(made, sizeof(made), "/dev/shm/ember-fuzz-template-XXXXXX");
	if (!mkdtemp(made)) {
		snprintf(made, sizeof(made), "%s/ember-fuzz-template-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(made))
			abort();
	}
	if (!realpath(made, dir))
		abort();
	atexit(remove_dir);
	const char *files[] = { "vm.state", "vm.mem", "rootfs.ext4" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			abort();
		close(fd);
	}
	snprintf(p, sizeof(p), "%s/link", dir);
	if (symlink("vm.state", p))
		abort();
	snprintf(p, sizeof(p), "%s/dir", dir);
	if (mkdir(p, 0755))
		abort();
	snprintf(p, sizeof(p), "%s/fifo", dir);
	if (mkfifo(p, 0644))
		abort();
	snprintf(meta, sizeof(meta), "%s/template.json", dir);
	return 0;
}

/* A path template_load accepted: a regular file, not a link, named directly in dir. */
static void check_file(const char *path)
{
	struct stat st;
	size_t n = strlen(dir);
	if (strncmp(path, dir, n) || path[n] != '/' || strchr(path + n + 1, '/') ||
	    lstat(path, &st) || !S_ISREG(st.st_mode))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = open(meta, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);

	struct template t;
	char err[ERR_MAX] = "";
	if (template_load(dir, &t, err)) {
		if (!err[0]) /* a refusal always says why */
			abort();
		return 0;
	}
	check_file(t.state);
	check_file(t.mem);
	check_file(t.rootfs);
	if (t.port < 1 || t.port > 0xfffffffe || t.mem_mib < 1 || t.mem_mib > 1 << 20 ||
	    t.cpus < 1 || t.cpus > 32 || strnlen(t.tap, sizeof(t.tap)) == sizeof(t.tap))
		abort();
	return 0;
}
