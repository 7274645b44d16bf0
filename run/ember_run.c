/* ember-run: one command in a fresh microVM, restored from a template (or booted cold),
 * with the command's stdin, stdout, stderr and exit status. It drives build/ember (found
 * next to itself) as a child process in a private directory, talks to the guest agent over
 * vsock (run/agent_proto.h), and removes everything it made on every way out. */
#include "run/run.h"
#include "run/agent_proto.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int template_cold_boot(struct vm *vm, const struct run_opts *o, char *err);

static void usage(int status)
{
	fputs("usage: ember-run --make-template DIR [--kernel K] [--rootfs IMG] [--mem MiB]\n"
	      "                 [--cpus N] [--net tap:NAME] [--append ARGS]\n"
	      "       ember-run [--template DIR] [--timeout S] [--net none|tap:NAME]\n"
	      "                 [--env K=V]... [--workdir D] [--copy-in HOST:GUEST]...\n"
	      "                 [--json] [--max-output BYTES]\n"
	      "                 [--jail [--jail-uid U] [--jail-gid G] [--cgroup F=V]...]\n"
	      "                 -- CMD [ARGS...]\n"
	      "Runs CMD in a fresh microVM restored from the template DIR (without --template:\n"
	      "booted cold from the default guest) and exits with its status: 128+N when a\n"
	      "signal N killed it, 124 on --timeout (the VM killed), 125 when ember-run, ember\n"
	      "or the guest agent failed. --json prints one object (exit_code, stdout, stderr,\n"
	      "timings_ms) instead of streaming the output.\n",
	      status ? stderr : stdout);
	exit(status);
}

static void die(const char *msg)
{
	fprintf(stderr, "ember-run: %s\n", msg);
	exit(RUN_FAILED);
}

static unsigned parse_uint(const char *s, const char *what, unsigned lo, unsigned hi)
{
	char *end;
	char msg[128];

	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
		snprintf(msg, sizeof(msg), "%s must be a number from %u to %u, not '%s'", what, lo,
			 hi, s);
		die(msg);
	}
	return (unsigned)v;
}

static double parse_seconds(const char *s, const char *what)
{
	char *end;
	char msg[128];

	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400 * 365) {
		snprintf(msg, sizeof(msg), "%s must be a number of seconds above 0, not '%s'", what,
			 s);
		die(msg);
	}
	return v;
}

static void parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{ "make-template", required_argument, NULL, 'M' },
		{ "template", required_argument, NULL, 't' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "rootfs", required_argument, NULL, 'r' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "append", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "boot-timeout", required_argument, NULL, 'B' },
		{ "net", required_argument, NULL, 'n' },
		{ "env", required_argument, NULL, 'e' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "copy-in", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "max-output", required_argument, NULL, 'O' },
		{ "jail", no_argument, NULL, 'J' },
		{ "jail-uid", required_argument, NULL, 'u' },
		{ "jail-gid", required_argument, NULL, 'g' },
		{ "cgroup", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'M':
			o->make_template = optarg;
			break;
		case 't':
			o->template_dir = optarg;
			break;
		case 'k':
			o->kernel = optarg;
			break;
		case 'r':
			o->rootfs = optarg;
			break;
		case 'm':
			o->mem_mib = parse_uint(optarg, "--mem", 32, 1 << 20);
			break;
		case 'c':
			o->cpus = parse_uint(optarg, "--cpus", 1, 32);
			break;
		case 'a':
			if (strchr(optarg, '"') || strchr(optarg, '\\'))
				die("--append: no quotes or backslashes");
			o->append = optarg;
			break;
		case 'p':
			o->port = parse_uint(optarg, "--port", 1, 0xfffffffe);
			break;
		case 'T':
			o->timeout_s = parse_seconds(optarg, "--timeout");
			break;
		case 'B':
			o->boot_timeout_s = parse_seconds(optarg, "--boot-timeout");
			break;
		case 'n':
			if (!strcmp(optarg, "none"))
				o->net_tap = NULL, o->net_none = true;
			else if (!strncmp(optarg, "tap:", 4) && optarg[4] &&
				 strlen(optarg + 4) < 16)
				o->net_tap = optarg + 4;
			else
				die("--net must be 'none' or 'tap:NAME' (NAME at most 15 bytes)");
			break;
		case 'e':
			if (optarg[0] == '=' || !optarg[0])
				die("--env wants KEY=VALUE or KEY");
			o->env = realloc(o->env, (o->nenv + 1) * sizeof(*o->env));
			o->env[o->nenv++] = optarg;
			break;
		case 'w':
			if (optarg[0] != '/')
				die("--workdir must be an absolute path");
			o->workdir = optarg;
			break;
		case 'C': {
			char *colon = strrchr(optarg, ':');
			if (!colon || colon == optarg || colon[1] != '/')
				die("--copy-in wants HOST:GUEST, GUEST an absolute path");
			*colon = 0;
			o->copies = realloc(o->copies, (o->ncopies + 1) * sizeof(*o->copies));
			o->copies[o->ncopies++] = (struct copy_in){ optarg, colon + 1 };
			if (o->ncopies > AGENT_FILES_MAX)
				die("too many --copy-in files");
			break;
		}
		case 'j':
			o->json = true;
			break;
		case 'O':
			o->max_output = parse_uint(optarg, "--max-output", 1, 1u << 31);
			break;
		case 'J':
			o->jail = true;
			break;
		case 'u':
			o->jail_uid = parse_uint(optarg, "--jail-uid", 0, 0xfffffffe);
			break;
		case 'g':
			o->jail_gid = parse_uint(optarg, "--jail-gid", 0, 0xfffffffe);
			break;
		case 'G':
			if (!strchr(optarg, '=') || o->ncgroups >= 16)
				die("--cgroup wants FILE=VALUE (at most 16)");
			o->cgroups[o->ncgroups++] = optarg;
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(2);
		}
	}
	o->argv = argv + optind;
	o->argc = argc - optind;
	if (o->make_template && o->template_dir)
		die("--make-template and --template exclude each other");
	if (!o->make_template && o->argc < 1)
		usage(2);
	if (o->make_template && o->argc > 0)
		die("--make-template runs no command");
	if (o->argc > AGENT_ARGC_MAX)
		die("too many arguments");
	if (o->jail && !o->template_dir)
		die("--jail runs from a template (--template DIR)");
	if (o->jail && geteuid() != 0)
		die("--jail needs root (ember-jailer makes the jail, then drops to --jail-uid)");
}

/* Where build/ember and the default guest (build/guest/) are: our own directory. */
static void find_bindir(struct run_opts *o)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		die("cannot read /proc/self/exe");
	self[n] = 0;
	snprintf(o->bindir, sizeof(o->bindir), "%s", dirname(self));
}

/* The config of a restore, at cfg: the template's snapshot (state and mem as ember sees
 * them) with this run's vsock socket (and TAP). */
int write_restore_config(const char *cfg, const char *state, const char *mem, const char *vsock,
			 const char *tap, char *err)
{
	json_t *load = json_pack("{s:s, s:{s:s, s:s}, s:b, s:{s:s}}", "snapshot_path", state,
				 "mem_backend", "backend_type", "File", "backend_path", mem,
				 "resume_vm", 1, "vsock_override", "uds_path", vsock);
	if (load && tap)
		json_object_set_new(
			load, "network_overrides",
			json_pack("[{s:s, s:s}]", "iface_id", "eth0", "host_dev_name", tap));
	json_t *root = load ? json_pack("{s:o}", "snapshot-load", load) : NULL;
	int r = root && json_dump_file(root, cfg, 0) == 0 ? 0 : -EIO;
	json_decref(root);
	if (r)
		snprintf(err, ERR_MAX, "cannot write %.400s", cfg);
	return r;
}

static int restore(struct vm *vm, const struct run_opts *o, const struct template *t, char *err)
{
	char cfg[PATH_MAX], vsock[PATH_MAX], ember[PATH_MAX + 16];
	const char *tap = t->tap[0] ? (o->net_tap ? o->net_tap : t->tap) : NULL;
	int r;

	if (o->net_none && t->tap[0]) {
		snprintf(err, ERR_MAX,
			 "--net none: the template has a network interface (on TAP %s when it was "
			 "made); give each run a TAP of its own with --net tap:NAME",
			 t->tap);
		return -EINVAL;
	}
	if (o->net_tap && !t->tap[0]) {
		snprintf(err, ERR_MAX,
			 "--net tap:%s: the template has no network interface "
			 "(make it with --net tap:NAME)",
			 o->net_tap);
		return -EINVAL;
	}
	if (o->jail) {
		r = jail_spawn(vm, o, t, tap, err);
	} else {
		vm_path(vm, "restore.json", cfg);
		vm_path(vm, "v.sock", vsock);
		r = write_restore_config(cfg, t->state, t->mem, vsock, tap, err);
		if (r)
			return r;
		snprintf(ember, sizeof(ember), "%s/ember", o->bindir);
		char *args[] = { ember, "--no-api", "--config-file", cfg, NULL };
		r = vm_spawn(vm, args, err);
	}
	if (r)
		return r;
	return vm_wait_file(vm, "v.sock", run_deadline_ms, err);
}

static int run(struct run_opts *o, struct run_result *res)
{
	struct template t;
	struct vm vm;
	double t0 = now_s();
	int conn = -1;
	char err[ERR_MAX] = "";

	vm.dir[0] = 0;
	vm.pid = -1, vm.pidfd = -1;
	if (o->template_dir && template_load(o->template_dir, &t, err))
		goto fail;
	if (o->template_dir && !o->port)
		o->port = t.port;
	if (!o->port)
		o->port = AGENT_DEFAULT_PORT;
	for (unsigned i = 0; i < o->ncopies; i++)
		if (access(o->copies[i].host, R_OK) < 0) {
			snprintf(err, sizeof(err), "--copy-in %.400s: %s", o->copies[i].host,
				 strerror(errno));
			goto fail;
		}
	if (vm_init(&vm, err))
		goto fail;
	if (o->template_dir) {
		if (restore(&vm, o, &t, err))
			goto fail;
		res->t_restore = now_s() - t0;
		conn = session_connect(&vm, o->port, run_deadline_ms, err);
	} else {
		conn = template_cold_boot(&vm, o, err);
		res->t_restore = now_s() - t0; /* the boot, with the agent's connect */
	}
	if (conn < 0)
		goto fail;
	res->t_connect = now_s() - t0 - res->t_restore;
	/* A connection the guest reset before the command started: connect again. */
	for (int attempt = 1; session_run(&vm, conn, o, res) == 1; attempt++) {
		close(conn);
		if (attempt == 10) {
			snprintf(err, sizeof(err), "the guest reset %d connections in a row",
				 attempt);
			goto fail;
		}
		double tc = now_s();
		conn = session_connect(&vm, o->port, run_deadline_ms, err);
		if (conn < 0)
			goto fail;
		res->t_connect += now_s() - tc;
	}
	close(conn);
	double td = now_s();
	vm_destroy(&vm);
	res->t_teardown = now_s() - td;
	res->t_total = now_s() - t0;
	return res->exit_code;
fail:
	if (run_signal)
		res->exit_code = 128 + run_signal;
	else if (run_deadline_ms && now_ms() >= run_deadline_ms)
		res->exit_code = RUN_TIMEOUT, res->timed_out = true;
	else
		res->exit_code = RUN_FAILED;
	snprintf(res->error, sizeof(res->error), "%s", err);
	td = now_s();
	vm_destroy(&vm);
	res->t_teardown = now_s() - td;
	res->t_total = now_s() - t0;
	return res->exit_code;
}

int main(int argc, char **argv)
{
	struct run_opts o = { .mem_mib = 128,
			      .cpus = 1,
			      .boot_timeout_s = 300,
			      .max_output = 64u << 20,
			      .jail_uid = 65534,
			      .jail_gid = 65534 };
	struct run_result res = { 0 };
	char err[ERR_MAX], kernel[PATH_MAX + 32], rootfs[PATH_MAX + 32];

	parse_args(argc, argv, &o);
	find_bindir(&o);
	snprintf(kernel, sizeof(kernel), "%s/guest/vmlinux", o.bindir);
	snprintf(rootfs, sizeof(rootfs), "%s/guest/rootfs.ext4", o.bindir);
	if (!o.kernel)
		o.kernel = kernel;
	if (!o.rootfs)
		o.rootfs = rootfs;
	if (run_signals_init(err))
		die(err);
	if (o.timeout_s)
		run_deadline_ms = now_ms() + (uint64_t)(o.timeout_s * 1000);
	if (o.make_template) {
		if (!o.port)
			o.port = AGENT_DEFAULT_PORT;
		if (template_make(&o, err))
			die(err);
		return 0;
	}
	int status = run(&o, &res);
	if (o.json)
		output_json(&res);
	if (res.error[0])
		fprintf(stderr, "ember-run: %s\n", res.error);
	free(res.out);
	free(res.errout);
	free(o.env);
	free(o.copies);
	return status;
}
