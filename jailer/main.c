/* ember-jailer: command line and validation. Nothing on the host changes until every
 * argument has been checked, so a typo never leaves half a jail behind. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jailer.h"

void jailer_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "ember-jailer: %s\n", msg);
	exit(1);
}

char *jailer_path(char *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		jailer_fail("path too long: %.80s...", out);
	return out;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ember-jailer --id ID --exec-file FILE --uid UID --gid GID [options]\n"
		"                    [-- EMBER ARGS...]\n"
		"\n"
		"  --id ID                 letters, digits and '-', at most 64 characters\n"
		"  --exec-file FILE        the ember binary (a regular file, not a symlink); "
		"copied\n"
		"                          into <chroot-base-dir>/<file name>/<id>/root\n"
		"  --uid UID, --gid GID    who ember runs as\n"
		"  --chroot-base-dir DIR   default " JAILER_DEFAULT_CHROOT_BASE "\n"
		"  --netns PATH            join this network namespace (e.g. /var/run/netns/NAME)\n"
		"  --daemonize             setsid() and standard I/O to /dev/null\n"
		"  --new-pid-ns            run ember as PID 1 of a new PID namespace; its host "
		"PID\n"
		"                          goes to <jail root>/<file name>.pid\n"
		"  --cgroup-version 1|2    default 1\n"
		"  --cgroup FILE=VALUE     e.g. cpu.shares=512 (repeatable)\n"
		"  --parent-cgroup PATH    relative to each hierarchy; default the exec file's "
		"name\n"
		"  --resource-limit fsize=N|no-file=N   (repeatable; default no-file=%d)\n"
		"  --version, --help\n"
		"\n"
		"ember is executed as: <file name> --id=ID --start-time-us=T "
		"--start-time-cpu-us=C\n"
		"followed by the arguments after \"--\". Exit status 1 on any error, with a "
		"message.\n",
		JAILER_DEFAULT_NO_FILE);
}

static uint64_t clock_us(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* A decimal number with nothing around it; false if it is anything else or above max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (!isdigit((unsigned char)s[0]))
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static void validate_id(const char *id)
{
	size_t len = strlen(id);
	if (len == 0 || len > JAILER_ID_MAX)
		jailer_fail("--id '%s': must be 1 to %d characters long", id, JAILER_ID_MAX);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '-')
			jailer_fail("--id '%s': only letters, digits and '-' are allowed", id);
}

static void validate_exec_file(struct jailer_args *a)
{
	struct stat st;
	/* lstat: a symlink could be swapped between this check and the copy. */
	if (lstat(a->exec_file, &st) < 0)
		jailer_fail("--exec-file %s: %s", a->exec_file, strerror(errno));
	if (S_ISLNK(st.st_mode))
		jailer_fail("--exec-file %s: is a symbolic link; give the file it points to",
			    a->exec_file);
	if (!S_ISREG(st.st_mode))
		jailer_fail("--exec-file %s: is not a regular file", a->exec_file);
	if (!(st.st_mode & 0111))
		jailer_fail("--exec-file %s: is not executable", a->exec_file);
	const char *slash = strrchr(a->exec_file, '/');
	a->exec_name = slash ? slash + 1 : a->exec_file;
}

static void validate_chroot_base(const char *base)
{
	struct stat st;
	if (base[0] != '/')
		jailer_fail("--chroot-base-dir %s: must be an absolute path", base);
	int rc = stat(base, &st);
	if (rc == 0 && !S_ISDIR(st.st_mode))
		jailer_fail("--chroot-base-dir %s: is not a directory", base);
	if (rc < 0 && errno != ENOENT) /* a missing base is created */
		jailer_fail("--chroot-base-dir %s: %s", base, strerror(errno));
}

static void validate_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		jailer_fail("--netns %s: %s", path, strerror(errno));
	int type = ioctl(fd, NS_GET_NSTYPE);
	close(fd);
	if (type != CLONE_NEWNET)
		jailer_fail("--netns %s: is not a network namespace", path);
}

/* No absolute paths and no "..": the cgroup must stay inside each hierarchy. */
static void validate_parent_cgroup(const char *p)
{
	if (p[0] == '\0' || p[0] == '/')
		jailer_fail("--parent-cgroup '%s': must be a relative path", p);
	for (const char *c = p; *c;) {
		const char *end = strchrnul(c, '/');
		if (end - c == 2 && c[0] == '.' && c[1] == '.')
			jailer_fail("--parent-cgroup '%s': must not contain '..'", p);
		c = *end ? end + 1 : end;
	}
}

static void add_cgroup(struct jailer_args *a, char *arg)
{
	char *eq = strchr(arg, '=');
	if (!eq || eq == arg || !eq[1])
		jailer_fail("--cgroup '%s': expected FILE=VALUE, e.g. cpu.shares=512", arg);
	if (a->nr_cgroups == JAILER_MAX_CGROUPS)
		jailer_fail("--cgroup: at most %d settings", JAILER_MAX_CGROUPS);
	*eq = '\0';
	struct cgroup_setting *c = &a->cgroups[a->nr_cgroups++];
	c->file = arg;
	c->value = eq + 1;
	const char *dot = strchr(arg, '.');
	size_t controller_len = dot ? (size_t)(dot - arg) : 0;
	if (!dot || controller_len == 0 || !dot[1] || strchr(arg, '/') ||
	    controller_len >= sizeof(c->controller))
		jailer_fail(
			"--cgroup '%s=%s': the file must be <controller>.<name>, e.g. cpu.shares",
			arg, c->value);
	memcpy(c->controller, arg, controller_len);
	c->controller[controller_len] = '\0';
}

static void add_rlimit(struct jailer_args *a, const char *arg)
{
	static const struct {
		const char *name;
		int resource;
	} known[] = { { "fsize", RLIMIT_FSIZE }, { "no-file", RLIMIT_NOFILE } };
	const char *eq = strchr(arg, '=');
	if (!eq)
		jailer_fail("--resource-limit '%s': expected fsize=N or no-file=N", arg);
	if (a->nr_rlimits == JAILER_MAX_RLIMITS)
		jailer_fail("--resource-limit: at most %d settings", JAILER_MAX_RLIMITS);
	for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strlen(known[i].name) != (size_t)(eq - arg) ||
		    strncmp(arg, known[i].name, (size_t)(eq - arg)))
			continue;
		uint64_t v;
		if (!parse_u64(eq + 1, RLIM_INFINITY - 1, &v))
			jailer_fail("--resource-limit '%s': '%s' is not a number", arg, eq + 1);
		a->rlimits[a->nr_rlimits++] =
			(struct rlimit_setting){ known[i].name, known[i].resource, (rlim_t)v };
		return;
	}
	jailer_fail("--resource-limit '%s': unknown resource '%.*s' (expected fsize or no-file)",
		    arg, (int)(eq - arg), arg);
}

static void parse_args(struct jailer_args *a, int argc, char **argv)
{
	/* getopt_long returns val: the options that only keep their value give their place in
	 * keep[], the others a letter of their own (only "h" is also a short option). */
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 0 },
		{ "exec-file", required_argument, NULL, 1 },
		{ "uid", required_argument, NULL, 2 },
		{ "gid", required_argument, NULL, 3 },
		{ "chroot-base-dir", required_argument, NULL, 4 },
		{ "netns", required_argument, NULL, 5 },
		{ "parent-cgroup", required_argument, NULL, 6 },
		{ "daemonize", no_argument, NULL, 'd' },
		{ "new-pid-ns", no_argument, NULL, 'p' },
		{ "cgroup-version", required_argument, NULL, 'V' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "resource-limit", required_argument, NULL, 'r' },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *uid = NULL, *gid = NULL;
	const char **keep[] = { &a->id,	   &a->exec_file,    &uid, &gid, &a->chroot_base,
				&a->netns, &a->parent_cgroup };
	int opt;
	opterr = 0; /* our own messages name the option */
	/* "+": stop at the first non-option, so nothing after "--" is taken for ours; ":": a
	 * missing value is reported as such. */
	while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (opt < (int)(sizeof(keep) / sizeof(keep[0]))) {
			*keep[opt] = optarg;
			continue;
		}
		switch (opt) {
		case 'd':
			a->daemonize = true;
			break;
		case 'p':
			a->new_pid_ns = true;
			break;
		case 'V':
			if (strcmp(optarg, "1") && strcmp(optarg, "2"))
				jailer_fail("--cgroup-version '%s': expected 1 or 2", optarg);
			a->cgroup_version = optarg[0] - '0';
			break;
		case 'c':
			add_cgroup(a, optarg);
			break;
		case 'r':
			add_rlimit(a, optarg);
			break;
		case 'v':
			printf("ember-jailer v0.1.0\n");
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			jailer_fail("%s needs a value (see --help)", argv[optind - 1]);
		default:
			jailer_fail("unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0)
		jailer_fail("unexpected argument '%s': ember's own arguments go after \"--\"",
			    argv[optind]);
	a->exec_args = argv + optind;
	a->nr_exec_args = argc - optind;

	if (!a->id || !a->exec_file || !uid || !gid)
		jailer_fail("--id, --exec-file, --uid and --gid are required (see --help)");
	uint64_t v;
	/* (uid_t)-1 means "unchanged" to setresuid: not a user anyone can ask for. */
	if (!parse_u64(uid, UINT32_MAX - 1, &v))
		jailer_fail("--uid '%s': expected a number from 0 to %u", uid, UINT32_MAX - 1);
	a->uid = (uid_t)v;
	if (!parse_u64(gid, UINT32_MAX - 1, &v))
		jailer_fail("--gid '%s': expected a number from 0 to %u", gid, UINT32_MAX - 1);
	a->gid = (gid_t)v;
}

static void validate(struct jailer_args *a)
{
	validate_id(a->id);
	validate_exec_file(a);
	validate_chroot_base(a->chroot_base);
	if (a->netns)
		validate_netns(a->netns);
	if (!a->parent_cgroup)
		a->parent_cgroup = a->exec_name; /* Firecracker's default */
	validate_parent_cgroup(a->parent_cgroup);
	cgroup_validate(a);
	jailer_path(a->chroot_dir, "%s/%s/%s/root", a->chroot_base, a->exec_name, a->id);
}

int main(int argc, char **argv)
{
	static struct jailer_args a = {
		.chroot_base = JAILER_DEFAULT_CHROOT_BASE,
		.cgroup_version = 1,
		.dev_null_fd = -1,
	};
	a.start_us = clock_us(CLOCK_MONOTONIC);
	a.start_cpu_us = clock_us(CLOCK_PROCESS_CPUTIME_ID);

	parse_args(&a, argc, argv);
	validate(&a);

	jail_close_inherited_fds();
	clearenv();
	jail_create_root(&a);
	jail_join_netns(&a);
	jail_set_rlimits(&a);
	if (a.nr_cgroups)
		cgroup_setup(&a);
	jail_enter(&a);
	jail_detach(&a);
	jail_drop_privileges(&a);
	jail_exec(&a);
}
