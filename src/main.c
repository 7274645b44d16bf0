/* ember: command line, then one VM from configuration to exit. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "core/log.h"
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

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ember [--api-sock PATH] [--config-file FILE] [options]\n"
		"       ember --no-api --config-file FILE [options]\n"
		"\n"
		"  --api-sock PATH       the API's Unix socket (default " API_DEFAULT_SOCKET ")\n"
		"  --http-api-max-payload-size N\n"
		"                        largest request body accepted (default 51200 bytes)\n"
		"  --config-file FILE    Firecracker-style JSON (boot-source, machine-config, "
		"drives,\n"
		"                        network-interfaces, vsock, serial, logger, metrics):\n"
		"                        the VM starts at once, the API stays open unless "
		"--no-api\n"
		"  --no-api              no API socket: --config-file is the whole configuration\n"
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
	static struct vm vm; /* zeroed, as vmm_init expects */
	vm.m.start_ns = monotonic_ns();
	vm.m.start_cpu_ns = process_cpu_ns();
	log_set_level_name("Info");

	enum {
		OPT_NO_API = 256,
		OPT_CONFIG,
		OPT_BOOT_TIMER,
		OPT_LOG_PATH,
		OPT_LEVEL,
		OPT_ID,
		OPT_VERSION,
		OPT_API_SOCK,
		OPT_MAX_PAYLOAD,
		OPT_NO_SECCOMP,
		OPT_DUMP_SECCOMP,
		OPT_START_TIME_US,
		OPT_START_TIME_CPU_US,
		OPT_METRICS_PATH
	};
	static const struct option opts[] = {
		{ "no-api", no_argument, NULL, OPT_NO_API },
		{ "config-file", required_argument, NULL, OPT_CONFIG },
		{ "boot-timer", no_argument, NULL, OPT_BOOT_TIMER },
		{ "log-path", required_argument, NULL, OPT_LOG_PATH },
		{ "metrics-path", required_argument, NULL, OPT_METRICS_PATH },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "id", required_argument, NULL, OPT_ID },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "api-sock", required_argument, NULL, OPT_API_SOCK },
		{ "http-api-max-payload-size", required_argument, NULL, OPT_MAX_PAYLOAD },
		{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
		{ "dump-seccomp", required_argument, NULL, OPT_DUMP_SECCOMP },
		{ "start-time-us", required_argument, NULL, OPT_START_TIME_US },
		{ "start-time-cpu-us", required_argument, NULL, OPT_START_TIME_CPU_US },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool no_api = false;
	const char *config_path = NULL;
	const char *metrics_path = NULL;
	const char *api_sock = API_DEFAULT_SOCKET;
	const char *instance_id = "anonymous-instance";
	size_t max_payload = API_DEFAULT_MAX_PAYLOAD;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_NO_API:
			no_api = true;
			break;
		case OPT_CONFIG:
			config_path = optarg;
			break;
		case OPT_BOOT_TIMER:
			vm.boot_timer_enabled = true;
			break;
		case OPT_LOG_PATH: {
			int rc = log_open(optarg);
			if (rc)
				die("--log-path %s: %s", optarg, strerror(-rc));
			break;
		}
		case OPT_METRICS_PATH:
			metrics_path = optarg;
			break;
		case OPT_LEVEL:
			if (log_set_level_name(optarg))
				die("--level %s: expected Error, Warning, Info or Debug", optarg);
			break;
		case OPT_ID:
			if (strlen(optarg) == 0 || strlen(optarg) > 64)
				die("--id: must be 1 to 64 characters");
			log_set_id(optarg);
			instance_id = optarg;
			break;
		case OPT_API_SOCK:
			api_sock = optarg;
			break;
		case OPT_MAX_PAYLOAD: {
			char *end;
			unsigned long long n = strtoull(optarg, &end, 10);
			if (*end || n == 0 || n > (1ULL << 30))
				die("--http-api-max-payload-size %s: expected a byte count",
				    optarg);
			max_payload = (size_t)n;
			break;
		}
		case OPT_NO_SECCOMP:
			seccomp_disable();
			break;
		case OPT_DUMP_SECCOMP: {
			int rc = seccomp_dump(optarg, STDOUT_FILENO);
			if (rc == -EINVAL)
				die("--dump-seccomp %s: expected vmm, vcpu or api", optarg);
			if (rc)
				die("--dump-seccomp %s: %s", optarg, strerror(-rc));
			return 0;
		}
		case OPT_START_TIME_US:
		case OPT_START_TIME_CPU_US: {
			/* Passed by ember-jailer, as Firecracker's jailer does: the boot timer then
			 * counts from the jailer's start, CPU time included. */
			char *end;
			errno = 0;
			unsigned long long us = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end)
				die("--%s %s: expected a number of microseconds",
				    opt == OPT_START_TIME_US ? "start-time-us"
							     : "start-time-cpu-us",
				    optarg);
			if (opt == OPT_START_TIME_US)
				vm.m.start_ns = us * 1000;
			else
				vm.m.start_cpu_ns = us * 1000;
			break;
		}
		case OPT_VERSION:
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
	if (no_api && !config_path)
		die("--no-api needs --config-file FILE");

	char err[ERR_LEN] = "";
	/* With a config file the VM starts at once; through the API, its slow parts are built
	 * while the client configures it. */
	builder_init(&vm, !config_path);
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
	if (config_path && vmm_start(&vm, err))
		die("%s", err);
	builder_prepare(&vm);
	make_terminal_raw();
	int code = vmm_run(&vm);
	api_server_stop(srv);
	vmm_destroy(&vm);
	return code;
}
