/* ember-run's parts: the VM's process and private directory (vm.c), templates (template.c),
 * the conversation with the guest agent (session.c), the result as JSON (output.c). */
#ifndef EMBER_RUN_RUN_H
#define EMBER_RUN_RUN_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define ERR_MAX 512
/* Writes the message into err (ERR_MAX bytes) and returns e: "return fail(err, -EIO, ...)".
 * Inline, so that a file taken alone (template_json.c in its fuzz target) has it too; a
 * macro around it, because the static analyzer does not follow a variadic function's return
 * value and took every failure for a possible success. e is evaluated before the message. */
__attribute__((format(printf, 2, 3))) static inline void run_fail_msg(char *err, const char *fmt,
								      ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, ERR_MAX, fmt, ap);
	va_end(ap);
}
#define fail(err, e, ...)                                                                          \
	({                                                                                         \
		int fail_e_ = (e);                                                                 \
		run_fail_msg(err, __VA_ARGS__);                                                    \
		fail_e_;                                                                           \
	})

/* The exit statuses of ember-run itself, as timeout(1) and docker use them. */
#define RUN_TIMEOUT 124
#define RUN_FAILED  125

struct copy_in {
	const char *host, *guest;
};

struct run_opts {
	const char *make_template, *template_dir;
	const char *kernel, *rootfs, *append;
	unsigned mem_mib, cpus, port;
	double timeout_s, boot_timeout_s;
	const char *net_tap; /* NULL: no network (or the template's TAP) */
	bool net_none;	     /* --net none said so */
	const char *workdir;
	const char **env;
	unsigned nenv;
	struct copy_in *copies;
	unsigned ncopies;
	size_t max_output;
	bool json, jail, quiet;
	unsigned jail_uid, jail_gid;
	const char *cgroups[16]; /* --cgroup FILE=VALUE, for ember-jailer */
	unsigned ncgroups;
	char **argv;
	int argc;
	/* where build/ember and the default guest are: the directory of this program */
	char bindir[PATH_MAX];
};

/* --- vm.c: one ember child process, its private directory, its vsock socket --- */

struct vm {
	char dir[128];		/* private, 0700, removed with everything in it (short: sockets) */
	char sockdir[PATH_MAX]; /* where ember's vsock socket appears: dir, or the jail's root */
	char cgroup[PATH_MAX];	/* a jail's cgroup (v2) to remove after ember, or "" */
	pid_t pid;
	int pidfd;
	int status; /* ember's wait status once it ended */
	bool ended;
};

/* A timer for the whole run (the --timeout): deadline in CLOCK_MONOTONIC ms, 0 = none. */
extern uint64_t run_deadline_ms;
uint64_t now_ms(void);
double now_s(void);
/* SIGINT, SIGTERM and SIGHUP, blocked and read here: every wait watches it. */
extern int run_sigfd;
extern int run_signal; /* the signal that ended the wait, or 0 */
int run_signals_init(char *err);

int vm_init(struct vm *vm, char *err);
/* Starts args[0] (ember) with its output in the VM's directory, killed if we die. */
int vm_spawn(struct vm *vm, char *const args[], char *err);
/* The same, with prep(ctx) run in the child before the exec. */
int vm_spawn_prep(struct vm *vm, char *const args[], int (*prep)(void *ctx), void *ctx, char *err);
/* Waits until NAME exists in the VM's directory; -ETIMEDOUT, -ECHILD (ember ended), -EINTR
 * (a signal), 0. */
int vm_wait_file(struct vm *vm, const char *name, uint64_t deadline_ms, char *err);
/* Connects to the vsock socket NAME in the VM's directory and to PORT in the guest
 * (Firecracker's CONNECT line). A connection fd, or a negative errno. */
int vm_vsock_connect(struct vm *vm, const char *name, unsigned port, uint64_t deadline_ms,
		     char *err);
/* Polls fd for events with the deadline, ember's end and the signals watched: 1 ready,
 * 0 deadline, or -ECHILD, -EINTR. */
int vm_poll(struct vm *vm, int fd, short events, uint64_t deadline_ms);
/* err for vm_poll's r (0: the deadline) while doing what; returns a negative errno. */
int vm_wait_error(struct vm *vm, int r, const char *what, char *err);
/* The end of ember's output (its log), for messages. */
void vm_log_tail(struct vm *vm, char *buf, size_t len);
/* Kills ember, waits for it, removes the directory. Safe to call twice. */
void vm_destroy(struct vm *vm);
/* path = VM dir + "/" + name */
void vm_path(const struct vm *vm, const char *name, char *path);
int write_file(const char *path, const char *data, char *err);
struct sockaddr_un;
/* sa for path: 0, or -ENAMETOOLONG */
int unix_addr(struct sockaddr_un *sa, const char *path);

/* --- ember_run.c, jail.c --- */
int write_restore_config(const char *cfg, const char *state, const char *mem, const char *vsock,
			 const char *tap, char *err);
struct template;
/* Starts ember under ember-jailer (found next to ember) in a jail under vm->dir, with the
 * template's files bound read-only into it; sets vm->sockdir. */
int jail_spawn(struct vm *vm, const struct run_opts *o, const struct template *t, const char *tap,
	       char *err);

/* --- template.c, template_json.c --- */

#define TEMPLATE_FORMAT 1 /* template.json's "format" */

struct template
{
	char state[PATH_MAX], mem[PATH_MAX], rootfs[PATH_MAX], tap[64];
	unsigned port, mem_mib, cpus;
};

int template_make(const struct run_opts *o, char *err);
int template_load(const char *dir, struct template *t, char *err);

/* --- session.c: one request to the agent, on a connected socket --- */

struct run_result {
	int exit_code; /* the command's, 128 + signal, RUN_TIMEOUT or RUN_FAILED */
	int signal;    /* the signal that killed the command, or 0 */
	bool timed_out, started;
	char error[ERR_MAX]; /* why RUN_FAILED or RUN_TIMEOUT */
	/* --json: the output, kept */
	char *out, *errout;
	size_t out_len, err_len;
	/* phases, in seconds */
	double t_restore, t_connect, t_command, t_teardown, t_total;
};

/* Connects to the agent on PORT through the VM's vsock socket and waits for its READY,
 * connecting again while the guest resets connections: the fd, or a negative errno. */
extern unsigned run_connects; /* connections made to the agent (resets make more) */
int session_connect(struct vm *vm, unsigned port, uint64_t deadline_ms, char *err);
int session_run(struct vm *vm, int conn, const struct run_opts *o, struct run_result *res);

/* --- output.c --- */
void output_json(const struct run_result *res);

#endif
