/* Templates: `ember-run --make-template DIR` boots the guest with its agent, waits until the
 * agent answers, pauses the VM and writes a Full snapshot into DIR, with a copy of the root
 * image (every run opens it read-only; the snapshot names it) and template.json, which a run
 * reads back (template_load, template_json.c): format, the files, the agent's port, the VM's
 * size. */
#include "run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BOOT_ARGS "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"

/* A sparse copy: blocks of zeros become holes. */
static int copy_sparse(const char *from, const char *to, char *err)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail(err, -errno, "%s: %s", from, strerror(errno));
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		int e = errno;
		close(in);
		return fail(err, -e, "%s: %s", to, strerror(e));
	}
	off_t off = 0;
	int r = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0) {
			r = fail(err, -errno, "%s: read: %s", from, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		bool zero = true;
		for (ssize_t i = 0; i < n && zero; i++)
			zero = !buf[i];
		if (!zero && pwrite(out, buf, (size_t)n, off) != n) {
			r = fail(err, -EIO, "%s: write: %s", to, strerror(errno));
			break;
		}
		off += n;
	}
	if (!r && ftruncate(out, off) < 0)
		r = fail(err, -errno, "%s: %s", to, strerror(errno));
	close(in);
	close(out);
	return r;
}

/* One HTTP/1.1 request on ember's API socket: the status, or a negative errno. */
static int api_call(struct vm *vm, const char *method, const char *path, const char *body,
		    char *err)
{
	char sock[PATH_MAX], req[2048], resp[4096];
	struct sockaddr_un sa;

	vm_path(vm, "api.sock", sock);
	if (unix_addr(&sa, sock))
		return fail(err, -ENAMETOOLONG, "%s: too long for a socket path", sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return fail(err, -e, "%s: %s", sock, strerror(e));
	}
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s",
			 method, path, strlen(body), body);
	if (n >= (int)sizeof(req) || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return fail(err, -EIO, "%s %s: cannot send the request", method, path);
	}
	size_t have = 0;
	int status = -EPROTO;
	while (have < sizeof(resp) - 1) {
		int r = vm_poll(vm, fd, POLLIN, now_ms() + 120000);
		if (r <= 0) {
			close(fd);
			return fail(err, r ? r : -ETIMEDOUT, "%s %s: no answer from ember", method,
				    path);
		}
		ssize_t k = read(fd, resp + have, sizeof(resp) - 1 - have);
		if (k <= 0)
			break;
		have += (size_t)k;
		resp[have] = 0;
		char *end = strstr(resp, "\r\n\r\n");
		if (!end)
			continue;
		const char *cl = strcasestr(resp, "Content-Length:");
		size_t blen = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
		if (have >= (size_t)(end + 4 - resp) + blen)
			break;
	}
	close(fd);
	resp[have] = 0;
	if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
		return fail(err, -EPROTO, "%s %s: no HTTP answer", method, path);
	if (status >= 300) {
		char *b = strstr(resp, "\r\n\r\n");
		return fail(err, -EIO, "%s %s: HTTP %d %s", method, path, status, b ? b + 4 : "");
	}
	return status;
}

static json_t *vm_config(const struct run_opts *o, const char *kernel, const char *rootfs,
			 const char *vsock, const char *tap, unsigned port)
{
	char args[2048];

	snprintf(args, sizeof(args), "%s ember.agent=%u%s%s", BOOT_ARGS, port, o->append ? " " : "",
		 o->append ? o->append : "");
	json_t *cfg = json_pack(
		"{s:{s:s, s:s}, s:{s:i, s:i}, s:[{s:s, s:s, s:b, s:b}], s:{s:i, s:s}}",
		"boot-source", "kernel_image_path", kernel, "boot_args", args, "machine-config",
		"vcpu_count", (int)o->cpus, "mem_size_mib", (int)o->mem_mib, "drives", "drive_id",
		"rootfs", "path_on_host", rootfs, "is_root_device", 1, "is_read_only", 1, "vsock",
		"guest_cid", 3, "uds_path", vsock);
	if (cfg && tap)
		json_object_set_new(
			cfg, "network-interfaces",
			json_pack("[{s:s, s:s}]", "iface_id", "eth0", "host_dev_name", tap));
	return cfg;
}

/* Boots the guest of o in vm (config written there) and connects to its agent. */
static int boot(struct vm *vm, const struct run_opts *o, const char *kernel, const char *rootfs,
		bool api, char *err)
{
	char vsock[PATH_MAX], cfgpath[PATH_MAX], ember[PATH_MAX + 16];

	vm_path(vm, "v.sock", vsock);
	vm_path(vm, "vm.json", cfgpath);
	json_t *cfg = vm_config(o, kernel, rootfs, vsock, o->net_tap, o->port);
	if (!cfg || json_dump_file(cfg, cfgpath, 0) < 0) {
		json_decref(cfg);
		return fail(err, -EIO, "cannot write %s", cfgpath);
	}
	json_decref(cfg);
	snprintf(ember, sizeof(ember), "%s/ember", o->bindir);
	char api_sock[PATH_MAX];
	vm_path(vm, "api.sock", api_sock);
	char *args_api[] = { ember, "--api-sock", api_sock, "--config-file", cfgpath, NULL };
	char *args_noapi[] = { ember, "--no-api", "--config-file", cfgpath, NULL };
	int r = vm_spawn(vm, api ? args_api : args_noapi, err);
	if (r)
		return r;
	uint64_t deadline = now_ms() + (uint64_t)(o->boot_timeout_s * 1000);
	if (run_deadline_ms && run_deadline_ms < deadline)
		deadline = run_deadline_ms;
	return session_connect(vm, o->port, deadline, err);
}

/* A cold boot for a run without a template: the default guest, straight to the agent. */
int template_cold_boot(struct vm *vm, const struct run_opts *o, char *err);
int template_cold_boot(struct vm *vm, const struct run_opts *o, char *err)
{
	return boot(vm, o, o->kernel, o->rootfs, false, err);
}

static int abs_path(const char *p, char *out, char *err)
{
	if (!realpath(p, out))
		return fail(err, -errno, "%s: %s", p, strerror(errno));
	return 0;
}

int template_make(const struct run_opts *o, char *err)
{
	char dir[PATH_MAX], kernel[PATH_MAX], rootfs[PATH_MAX], copy[PATH_MAX + 32];
	char state[PATH_MAX + 32], mem[PATH_MAX + 32], meta[PATH_MAX + 32], tmp[PATH_MAX + 40];
	struct vm vm;
	int r;

	if (mkdir(o->make_template, 0755) < 0 && errno != EEXIST)
		return fail(err, -errno, "%s: %s", o->make_template, strerror(errno));
	if ((r = abs_path(o->make_template, dir, err)) || (r = abs_path(o->kernel, kernel, err)) ||
	    (r = abs_path(o->rootfs, rootfs, err)))
		return r;
	snprintf(meta, sizeof(meta), "%s/template.json", dir);
	snprintf(copy, sizeof(copy), "%s/rootfs.ext4", dir);
	snprintf(state, sizeof(state), "%s/vm.state", dir);
	snprintf(mem, sizeof(mem), "%s/vm.mem", dir);
	if (!access(meta, F_OK) || !access(copy, F_OK) || !access(state, F_OK))
		return fail(err, -EEXIST, "%s already holds a template (remove it first)", dir);
	r = copy_sparse(rootfs, copy, err);
	if (r)
		return r;
	r = vm_init(&vm, err);
	if (r)
		goto fail_copy;
	int conn = boot(&vm, o, kernel, copy, true, err);
	if (conn < 0) {
		r = conn;
		goto fail_vm;
	}
	/* The agent answers: it waits in accept(). This connection goes before the pause; the
	 * restored device resets the guest's connections anyway. */
	close(conn);
	if ((r = api_call(&vm, "PATCH", "/vm", "{\"state\": \"Paused\"}", err)) < 0)
		goto fail_vm;
	json_t *req = json_pack("{s:s, s:s, s:s}", "snapshot_type", "Full", "snapshot_path", state,
				"mem_file_path", mem);
	char *body = req ? json_dumps(req, 0) : NULL;
	json_decref(req);
	r = body ? api_call(&vm, "PUT", "/snapshot/create", body, err) : -ENOMEM;
	free(body);
	if (r < 0)
		goto fail_vm;
	vm_destroy(&vm);
	/* Readable by the unprivileged user of a --jail run (the files are the same for all). */
	chmod(state, 0644);
	chmod(mem, 0644);
	json_t *m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "format", TEMPLATE_FORMAT,
			      "snapshot", "vm.state", "memory", "vm.mem", "rootfs", "rootfs.ext4",
			      "kernel", kernel, "agent_port", (int)o->port, "mem_mib",
			      (int)o->mem_mib, "vcpus", (int)o->cpus);
	if (m && o->net_tap)
		json_object_set_new(m, "tap", json_string(o->net_tap));
	if (m && o->append)
		json_object_set_new(m, "append", json_string(o->append));
	snprintf(tmp, sizeof(tmp), "%s.tmp", meta);
	if (!m || json_dump_file(m, tmp, JSON_INDENT(2)) < 0 || rename(tmp, meta) < 0) {
		json_decref(m);
		r = fail(err, -EIO, "cannot write %s", meta);
		goto fail_files;
	}
	json_decref(m);
	return 0;
fail_vm:
	vm_destroy(&vm);
fail_files:
	unlink(state);
	unlink(mem);
	unlink(tmp);
fail_copy:
	unlink(copy);
	return r;
}
