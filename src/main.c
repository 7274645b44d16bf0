/* ember: command line, then one VM from configuration to exit. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/log.h"
#include "vmm/config_json.h"
#include "core/seccomp.h"
#include "core/version.h"
#include "vmm/controller.h"

static struct termios saved_termios;
static bool termios_saved;

static void restore_terminal(void)
{
	if (termios_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
}

/* Raw mode: every key, Ctrl+C included, goes to the guest, as on a real serial line. */
static void make_terminal_raw(void)
{
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		return;
	termios_saved = true;
	atexit(restore_terminal);
	struct termios raw = saved_termios;
	raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO | ISIG);
	raw.c_iflag &= (tcflag_t) ~(ICRNL | IXON);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

/* Each of up to 1024 vsock connections holds a host socket, on top of ember's own
 * descriptors: a soft limit of 1024 open files (the kernel's default, which a shell or a
 * service manager often leaves) refused the last connections. The soft limit goes up to the
 * hard one, which the jailer (no-file) or the caller chose. */
static void raise_open_file_limit(void)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ember [--api-sock PATH] [--config-file FILE] [options]\n"
		"       ember --no-api --config-file FILE [options]\n"
		"       ember [--no-api] --snapshot STATE --snapshot-mem MEM [options]\n"
		"\n"
		"  --api-sock PATH       the API's Unix socket (default " API_DEFAULT_SOCKET ")\n"
		"  --http-api-max-payload-size N\n"
		"                        largest request body accepted (default 51200 bytes)\n"
		"  --config-file FILE    Firecracker-style JSON (boot-source, machine-config, "
		"drives,\n"
		"                        network-interfaces, vsock, serial, logger, metrics):\n"
		"                        the VM starts at once, the API stays open unless "
		"--no-api\n"
		"  --no-api              no API socket: --config-file or --snapshot is the whole\n"
		"                        configuration\n"
		"  --snapshot STATE      start from a snapshot (PUT /snapshot/create's state "
		"file)\n"
		"  --snapshot-mem MEM    ... and its memory file: loaded as PUT /snapshot/load\n"
		"                        with the File backend, vCPUs resumed\n"
		"  --boot-timer          log Guest-boot-time when the guest writes the boot timer\n"
		"  --log-path PATH       write the log to PATH (file or FIFO) instead of stderr\n"
		"  --metrics-path PATH   write metrics to PATH (file or FIFO), as PUT /metrics\n"
		"  --level LEVEL         Error, Warning, Info (default) or Debug\n"
		"  --id ID               instance id shown in log lines\n"
		"  --no-seccomp          install no seccomp filters (debugging only)\n"
		"  --dump-seccomp THREAD write the compiled seccomp BPF of THREAD (vmm, vcpu or "
		"api)\n"
		"                        to stdout and exit\n"
		"  --version, --help\n"
		"\n"
		"Exit status: 0 when the guest powers off or resets, 1 on a setup error,\n"
		"3 when a vCPU fails, 148 when a seccomp filter traps a syscall,\n"
		"128+N when stopped by signal N.\n");
}

int main(int argc, char **argv)
{
	static struct vm vm; /* zeroed, as builder_init expects */
	vm.m.start_ns = monotonic_ns();
	vm.m.start_cpu_ns = process_cpu_ns();
	log_set_level_name("Info");

	/* Long options only: their letters are not in the short-option string. */
	static const struct option opts[] = {
		{ "no-api", no_argument, NULL, 'N' },
		{ "config-file", required_argument, NULL, 'c' },
		{ "boot-timer", no_argument, NULL, 'b' },
		{ "log-path", required_argument, NULL, 'l' },
		{ "metrics-path", required_argument, NULL, 'm' },
		{ "level", required_argument, NULL, 'L' },
		{ "id", required_argument, NULL, 'i' },
		{ "version", no_argument, NULL, 'v' },
		{ "api-sock", required_argument, NULL, 'a' },
		{ "http-api-max-payload-size", required_argument, NULL, 'p' },
		{ "no-seccomp", no_argument, NULL, 's' },
		{ "dump-seccomp", required_argument, NULL, 'd' },
		{ "start-time-us", required_argument, NULL, 't' },
		{ "start-time-cpu-us", required_argument, NULL, 'T' },
		{ "snapshot", required_argument, NULL, 'S' },
		{ "snapshot-mem", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool no_api = false;
	const char *config_path = NULL;
	const char *snapshot_path = NULL, *snapshot_mem = NULL;
	const char *metrics_path = NULL;
	const char *api_sock = API_DEFAULT_SOCKET;
	const char *instance_id = "anonymous-instance";
	size_t max_payload = API_DEFAULT_MAX_PAYLOAD;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'N':
			no_api = true;
			break;
		case 'S':
			snapshot_path = optarg;
			break;
		case 'M':
			snapshot_mem = optarg;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'b':
			vm.boot_timer_enabled = true;
			break;
		case 'l': {
			int rc = log_open(optarg);
			if (rc)
				die("--log-path %s: %s", optarg, strerror(-rc));
			break;
		}
		case 'm':
			metrics_path = optarg;
			break;
		case 'L':
			if (log_set_level_name(optarg))
				die("--level %s: expected Error, Warning, Info or Debug", optarg);
			break;
		case 'i':
			if (strlen(optarg) == 0 || strlen(optarg) > 64)
				die("--id: must be 1 to 64 characters");
			log_set_id(optarg);
			instance_id = optarg;
			break;
		case 'a':
			api_sock = optarg;
			break;
		case 'p': {
			char *end;
			unsigned long long n = strtoull(optarg, &end, 10);
			if (*end || n == 0 || n > (1ULL << 30))
				die("--http-api-max-payload-size %s: expected a byte count",
				    optarg);
			max_payload = (size_t)n;
			break;
		}
		case 's':
			seccomp_disable();
			break;
		case 'd': {
			int rc = seccomp_dump(optarg, STDOUT_FILENO);
			if (rc == -EINVAL)
				die("--dump-seccomp %s: expected vmm, vcpu or api", optarg);
			if (rc)
				die("--dump-seccomp %s: %s", optarg, strerror(-rc));
			return 0;
		}
		case 't':
		case 'T': {
			/* Passed by ember-jailer, as Firecracker's jailer does: the boot timer then
			 * counts from the jailer's start, CPU time included. */
			char *end;
			errno = 0;
			unsigned long long us = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end)
				die("--%s %s: expected a number of microseconds",
				    opt == 't' ? "start-time-us" : "start-time-cpu-us", optarg);
			if (opt == 't')
				vm.m.start_ns = us * 1000;
			else
				vm.m.start_cpu_ns = us * 1000;
			break;
		}
		case 'v':
			printf("ember v%s\n", EMBER_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (no_api && !config_path && !snapshot_path)
		die("--no-api needs --config-file FILE or --snapshot STATE");
	if (!snapshot_path != !snapshot_mem)
		die("--snapshot and --snapshot-mem come together");
	if (snapshot_path && config_path)
		die("--snapshot and --config-file exclude each other (a config file names its "
		    "snapshot with \"" SNAPSHOT_LOAD_KEY "\")");

	raise_open_file_limit();
	char err[ERR_LEN] = "";
	/* With a config file the VM starts at once; through the API, its slow parts are built
	 * while the client configures it. */
	builder_init(&vm, !config_path && !snapshot_path);
	api_metrics_init();
	struct api_ctx ctx = { .vm = &vm, .instance_id = instance_id };
	if (config_path && vmm_load_config_file(&vm, config_path, err))
		die("%s", err);
	if (metrics_path && vmm_open_metrics(&vm, metrics_path, err))
		die("--metrics-path: %s", err);
	struct api_server *srv = NULL;
	if (!no_api) {
		srv = api_server_start(&ctx, api_sock, max_payload, err);
		if (!srv)
			die("%s", err);
	}
	/* A config file starts the VM at once, as Firecracker does; the API, if any, stays. */
	if (config_path && vmm_start_configured(&vm, err))
		die("%s", err);
	if (snapshot_path && vmm_load_snapshot_files(&vm, snapshot_path, snapshot_mem, err))
		die("--snapshot %s: %s", snapshot_path, err);
	if (no_api && vm.state == VM_PAUSED)
		die("--no-api: the snapshot was loaded paused (resume_vm false) and nothing could "
		    "resume it");
	builder_prepare(&vm);
	make_terminal_raw();
	int code = vmm_run(&vm);
	api_server_stop(srv);
	vmm_destroy(&vm);
	return code;
}
