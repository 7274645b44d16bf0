/* The per-thread seccomp filters: tables, dumps, installation, and what a trapped syscall
 * does (log line with the number, metrics flush, exit 148). Every filter is installed in a
 * forked child, so the test binary itself stays unfiltered. */
#include "unit_util.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "core/seccomp.h"
#include "core/metrics.h"

static const enum seccomp_thread all_kinds[] = { SECCOMP_VMM, SECCOMP_VCPU, SECCOMP_API };
#define NR_KINDS (sizeof(all_kinds) / sizeof(all_kinds[0]))

/* What a forked child did: its wait status and everything it wrote on stderr. */
struct child_result {
	int status;
	char err[2048];
};

/* Runs fn(arg) in a child with stderr on a pipe; the child exits with fn's return. */
static struct child_result run_child(int (*fn)(long), long arg)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		_exit(fn(arg));
	}
	close(pipefd[1]);
	struct child_result r = { 0 };
	size_t n = 0;
	ssize_t got;
	while (n < sizeof(r.err) - 1 &&
	       (got = read(pipefd[0], r.err + n, sizeof(r.err) - 1 - n)) > 0)
		n += (size_t)got;
	r.err[n] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &r.status, 0), pid);
	return r;
}

/* The calling thread's "Seccomp:" mode from /proc, -1 if it cannot be read. */
static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/thread-self/status", "r");
	if (!f)
		return -1;
	char line[256];
	int mode = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	return mode;
}

static void names_round_trip(void **state)
{
	(void)state;
	for (unsigned i = 0; i < NR_KINDS; i++) {
		enum seccomp_thread t;
		assert_int_equal(seccomp_thread_from_name(seccomp_thread_name(all_kinds[i]), &t),
				 0);
		assert_int_equal(t, all_kinds[i]);
	}
	enum seccomp_thread t;
	assert_int_equal(seccomp_thread_from_name("VMM", &t), -EINVAL);
	assert_int_equal(seccomp_thread_from_name("", &t), -EINVAL);
	assert_string_equal(seccomp_thread_name(SECCOMP_VCPU), "vcpu");
}

static void tables_are_sane(void **state)
{
	(void)state;
	for (unsigned i = 0; i < NR_KINDS * 2; i++) {
		unsigned n = 0;
		/* Each kind's own rules, then (i odd) those every kind shares. */
		const struct seccomp_rule *rules = seccomp_rules(all_kinds[i / 2], i % 2, &n);
		assert_non_null(rules);
		assert_true(n >= 4);
		for (unsigned j = 0; j < n; j++) {
			assert_true(rules[j].nr >= 0);
			assert_true(rules[j].nargs <= 2);
			for (unsigned k = 0; k < rules[j].nargs; k++)
				assert_true(rules[j].args[k].arg <= 5);
		}
	}
}

static void dump_writes_whole_programs(void **state)
{
	(void)state;
	for (unsigned i = 0; i < NR_KINDS; i++) {
		int fd = memfd_create("dump", MFD_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(seccomp_dump(seccomp_thread_name(all_kinds[i]), fd), 0);
		struct stat st;
		assert_int_equal(fstat(fd, &st), 0);
		assert_true(st.st_size > 0);
		assert_int_equal(st.st_size % sizeof(struct sock_filter), 0);
		assert_true(st.st_size / sizeof(struct sock_filter) <= BPF_MAXINSNS);
		close(fd);
	}
	assert_int_equal(seccomp_dump("bogus", STDOUT_FILENO), -EINVAL);
}

/* Child: filter kind, then one allowed call, then socket(AF_INET), which no thread may make
 * (the handler exits 148 before this returns). */
static int install_then_forbidden_call(long kind)
{
	if (seccomp_install((enum seccomp_thread)kind))
		return 11;
	/* Reading /proc needs openat, which only the VMM thread may make. */
	if ((enum seccomp_thread)kind == SECCOMP_VMM && seccomp_mode() != 2)
		return 12;
	if (write(STDERR_FILENO, "allowed write\n", 14) != 14)
		return 13;
	syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	return 14;
}

static void trapped_syscall_logs_and_exits_148(void **state)
{
	(void)state;
	for (unsigned i = 0; i < NR_KINDS; i++) {
		struct child_result r = run_child(install_then_forbidden_call, all_kinds[i]);
		char expected[128];
		snprintf(expected, sizeof(expected), "bad syscall (%d) on a %s thread", SYS_socket,
			 seccomp_thread_name(all_kinds[i]));
		if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != SECCOMP_EXIT_BAD_SYSCALL ||
		    !strstr(r.err, "allowed write") || !strstr(r.err, expected))
			fail_msg("%s filter: status 0x%x, stderr: %s",
				 seccomp_thread_name(all_kinds[i]), r.status, r.err);
	}
}

static int fault_flushes_metrics(long unused)
{
	(void)unused;
	const char *path = getenv("EMBER_UNIT_METRICS");
	if (!path || metrics_open(path) || seccomp_install(SECCOMP_VCPU))
		return 10;
	syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	return 11;
}

static void fault_is_counted_in_the_metrics(void **state)
{
	(void)state;
	const char *path = unit_tmp_text("");
	setenv("EMBER_UNIT_METRICS", path, 1);
	struct child_result r = run_child(fault_flushes_metrics, 0);
	unsetenv("EMBER_UNIT_METRICS");
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), SECCOMP_EXIT_BAD_SYSCALL);
	size_t len = 0;
	char *text = (char *)unit_read_file(path, &len);
	assert_non_null(text);
	text = realloc(text, len + 1);
	text[len] = '\0';
	if (!strstr(text, "\"seccomp\":{\"num_faults\":1}"))
		fail_msg("metrics line: %s", text);
	free(text);
}

/* Child: the vCPU filter lets KVM_RUN through (EBADF on a closed descriptor), makes open
 * fail with EACCES, and traps KVM_CREATE_VM. */
static int vcpu_argument_checks(long unused)
{
	(void)unused;
	if (seccomp_install(SECCOMP_VCPU))
		return 10;
	if (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF)
		return 11;
	if (open("/dev/null", O_RDONLY) != -1 || errno != EACCES)
		return 12;
	void *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rw == MAP_FAILED)
		return 13;
	ioctl(-1, KVM_CREATE_VM, 0);
	return 14;
}

static void vcpu_filter_checks_arguments(void **state)
{
	(void)state;
	struct child_result r = run_child(vcpu_argument_checks, 0);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != SECCOMP_EXIT_BAD_SYSCALL ||
	    !strstr(r.err, "bad syscall (16)")) /* ioctl */
		fail_msg("status 0x%x, stderr: %s", r.status, r.err);
}

/* Not in the sanitized build: there the filters allow any mmap, which the sanitizer
 * runtime needs, so there is nothing to check. */
#ifndef __SANITIZE_ADDRESS__
static int executable_mapping(long unused)
{
	(void)unused;
	if (seccomp_install(SECCOMP_VMM))
		return 10;
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return 11;
}

static void no_thread_maps_executable_memory(void **state)
{
	(void)state;
	struct child_result r = run_child(executable_mapping, 0);
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != SECCOMP_EXIT_BAD_SYSCALL ||
	    !strstr(r.err, "bad syscall (9)")) /* mmap */
		fail_msg("status 0x%x, stderr: %s", r.status, r.err);
}
#endif

static int disabled_installs_nothing(long unused)
{
	(void)unused;
	seccomp_disable();
	if (seccomp_enabled() || seccomp_install(SECCOMP_VCPU))
		return 10;
	if (seccomp_mode() != 0)
		return 11;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	return fd >= 0 ? 0 : 12;
}

static void no_seccomp_installs_nothing(void **state)
{
	(void)state;
	struct child_result r = run_child(disabled_installs_nothing, 0);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT_TEST(names_round_trip),
		UNIT_TEST(tables_are_sane),
		UNIT_TEST(dump_writes_whole_programs),
		UNIT_TEST(trapped_syscall_logs_and_exits_148),
		UNIT_TEST(fault_is_counted_in_the_metrics),
		UNIT_TEST(vcpu_filter_checks_arguments),
#ifndef __SANITIZE_ADDRESS__
		UNIT_TEST(no_thread_maps_executable_memory),
#endif
		UNIT_TEST(no_seccomp_installs_nothing),
	};
	return cmocka_run_group_tests_name("seccomp", tests, NULL, NULL);
}
