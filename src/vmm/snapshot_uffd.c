/* The Uffd memory backend of a snapshot load; see snapshot_uffd.h. */
#include "vmm/snapshot_uffd.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/seccomp.h"

#define PAGE_SIZE   4096ULL
#define MINCORE_RUN (64ULL << 20) /* pages checked per mincore() call: a 16 KiB vector */

enum watch_state { WATCH_LOADING, WATCH_ARMED, WATCH_CLOSED, WATCH_CANCELLED };

struct snapshot_uffd {
	int uffd, conn;
	const struct guest_mem *mem;
	struct vm *vm;
	pthread_t watcher;
	bool watching; /* a watcher to join or detach */
	pthread_mutex_t lock;
	enum watch_state state;
	int filter_rc; /* the watcher's seccomp_install, once it ended */
};

static int uffd_open(char *err)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	int sys_errno = errno;
	/* Since Linux 6.1 a process without CAP_SYS_PTRACE, where vm.unprivileged_userfaultfd
	 * is 0, may still get one through /dev/userfaultfd if it may open that. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		int dev_errno = errno;
		close(dev);
		if (fd >= 0)
			return fd;
		sys_errno = dev_errno;
	}
	return errf(err, -sys_errno,
		    "userfaultfd is not available on this host: %s (ember needs "
		    "CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access to "
		    "/dev/userfaultfd; a kernel without CONFIG_USERFAULTFD has none)",
		    strerror(sys_errno));
}

static int uffd_register(int uffd, const struct guest_mem *mem, char *err)
{
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return errf(err, -errno, "userfaultfd: UFFDIO_API: %s", strerror(errno));
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		struct uffdio_register reg = {
			.range = { (uint64_t)(uintptr_t)r->hva, r->size },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
			return errf(err, -errno,
				    "userfaultfd: registering %llu MiB of guest memory: %s",
				    (unsigned long long)(r->size >> 20), strerror(errno));
		if (!(reg.ioctls & (1ULL << _UFFDIO_COPY)))
			return errf(err, -ENOTSUP,
				    "userfaultfd: this kernel cannot fill guest memory (no "
				    "UFFDIO_COPY)");
	}
	return 0;
}

/* A non-blocking connect: a handler that does not accept (a full backlog) is an error, not
 * an API that waits for it. */
static int connect_handler(const char *path, char *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return errf(err, -ENAMETOOLONG, "backend_path %.200s: longer than %zu bytes", path,
			    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errf(err, -errno, "backend_path %s: socket: %s", path, strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = errf(err, -errno,
			      "backend_path %s: cannot connect to the page fault handler: %s", path,
			      errno == EAGAIN ? "it accepts no more connections" : strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

/* The regions as Firecracker describes them (GuestRegionUffdMapping). */
static int handoff_json(const struct guest_mem *mem, char *buf, size_t cap)
{
	size_t len = 0;
	uint64_t offset = 0;
	len += (size_t)snprintf(buf + len, cap - len, "[");
	for (unsigned i = 0; i < mem->nr_regions && len < cap; i++) {
		const struct mem_region *r = &mem->regions[i];
		len += (size_t)snprintf(buf + len, cap - len,
					"%s{\"base_host_virt_addr\": %llu, \"size\": %llu, "
					"\"offset\": %llu, \"page_size\": %llu, "
					"\"page_size_kib\": %llu}",
					i ? ", " : "", (unsigned long long)(uintptr_t)r->hva,
					(unsigned long long)r->size, (unsigned long long)offset,
					PAGE_SIZE, PAGE_SIZE);
		offset += r->size;
	}
	if (len < cap)
		len += (size_t)snprintf(buf + len, cap - len, "]");
	return len < cap ? (int)len : -ENOSPC;
}

static int send_handoff(int conn, int uffd, const char *json, size_t len, const char *path,
			char *err)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { (void *)json, len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(conn, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errf(err, -errno, "backend_path %s: sending the userfaultfd: %s", path,
			    strerror(errno));
	/* A few hundred bytes into an empty socket buffer: all of it or something is wrong. */
	if ((size_t)n != len)
		return errf(err, -EIO, "backend_path %s: sent %zd of %zu bytes of the hand-off",
			    path, n, len);
	return 0;
}

/* Whether every page of guest memory is in place: then the handler has nothing left to do. */
static bool all_present(const struct guest_mem *mem)
{
	static unsigned char vec[MINCORE_RUN / PAGE_SIZE];
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		for (uint64_t c = 0; c < r->size; c += MINCORE_RUN) {
			uint64_t len = r->size - c < MINCORE_RUN ? r->size - c : MINCORE_RUN;
			if (mincore(r->hva + c, len, vec) < 0)
				return false;
			for (uint64_t p = 0; p < len / PAGE_SIZE; p++)
				if (!(vec[p] & 1))
					return false;
		}
	}
	return true;
}

/* A thread may be waiting for a page: a vCPU inside KVM, where a signal does not always
 * reach it (on a PVM host it does not), or the VMM thread reading guest memory (a device's
 * restore, a snapshot). Without ember's copy, a handler that is gone leaves no userfaultfd:
 * its waiters get zero pages and come back to see the VM stop or the load fail. With
 * u->lock. */
static void drop_uffd(struct snapshot_uffd *u)
{
	if (u->uffd >= 0)
		close(u->uffd);
	u->uffd = -1;
}

/* The handler's connection ended after a successful load. */
static void handler_gone(struct snapshot_uffd *u)
{
	if (all_present(u->mem)) {
		log_info("the page fault handler closed its connection; every page of guest "
			 "memory is in place");
		return;
	}
	log_err("the page fault handler closed its connection before every page of guest "
		"memory was in place: the VM cannot go on, stopping it");
	pthread_mutex_lock(&u->lock);
	drop_uffd(u);
	pthread_mutex_unlock(&u->lock);
	struct machine *m = &u->vm->m;
	machine_request_exit(m, 3); /* also wakes a pause waiting for that vCPU to park */
}

/* The watcher thread: waits for the connection's end. Not on the VMM thread, whose loop
 * may wait for a vCPU that waits for a page (a pause). */
static void *watch(void *arg)
{
	struct snapshot_uffd *u = arg;
	pthread_setname_np(pthread_self(), "ember_uffd");
	/* The VMM thread's list has what it needs; without it the load fails (the check). */
	int rc = seccomp_install(SECCOMP_VMM);
	for (;;) {
		char buf[256];
		/* The protocol has nothing more to say on this connection: what comes is
		 * dropped. */
		ssize_t n = rc ? 0 : recv(u->conn, buf, sizeof(buf), 0);
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		break;
	}
	pthread_mutex_lock(&u->lock);
	enum watch_state was = u->state;
	u->state = WATCH_CLOSED;
	u->filter_rc = rc;
	if (was == WATCH_LOADING)
		drop_uffd(u); /* the load fails at its check */
	pthread_mutex_unlock(&u->lock);
	if (was == WATCH_ARMED)
		handler_gone(u);
	return NULL;
}

static int start_watcher(struct snapshot_uffd *u, char *err)
{
	int flags = fcntl(u->conn, F_GETFL);
	if (flags < 0 || fcntl(u->conn, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return errf(err, -errno, "the page fault handler's connection: %s",
			    strerror(errno));
	pthread_mutex_init(&u->lock, NULL);
	int rc = pthread_create(&u->watcher, NULL, watch, u);
	if (rc)
		return errf(err, -rc, "cannot start a thread to watch the page fault handler: %s",
			    strerror(rc));
	u->watching = true;
	return 0;
}

int snapshot_uffd_handoff(const struct guest_mem *mem, const char *path, struct snapshot_uffd **out,
			  char *err)
{
	char json[1024];
	int len = handoff_json(mem, json, sizeof(json));
	if (len < 0)
		return errf(err, len, "the hand-off does not fit %zu bytes", sizeof(json));
	struct snapshot_uffd *u = calloc(1, sizeof(*u));
	if (!u)
		return errf(err, -ENOMEM, "out of memory");
	u->conn = -1;
	u->mem = mem;
	u->uffd = uffd_open(err);
	int rc = u->uffd < 0 ? u->uffd : uffd_register(u->uffd, mem, err);
	if (!rc && (u->conn = connect_handler(path, err)) < 0)
		rc = u->conn;
	if (!rc)
		rc = send_handoff(u->conn, u->uffd, json, (size_t)len, path, err);
	if (!rc)
		rc = start_watcher(u, err);
	if (rc) {
		snapshot_uffd_close(u);
		return rc;
	}
	log_info("snapshot: guest memory (%u regions) handed to the page fault handler at %s",
		 mem->nr_regions, path);
	*out = u;
	return 0;
}

int snapshot_uffd_check(struct snapshot_uffd *u, char *err)
{
	pthread_mutex_lock(&u->lock);
	bool closed = u->state == WATCH_CLOSED;
	int filter_rc = u->filter_rc;
	pthread_mutex_unlock(&u->lock);
	if (filter_rc)
		return errf(err, filter_rc,
			    "cannot install the seccomp filter of the thread that watches the page "
			    "fault handler: %s",
			    strerror(-filter_rc));
	/* A handler that filled every page up front may leave. */
	if (closed && !all_present(u->mem))
		return errf(err, -EPIPE, "the page fault handler closed its connection");
	return 0;
}

void snapshot_uffd_watch(struct vm *vm, struct snapshot_uffd *u)
{
	u->vm = vm;
	vm->uffd = u;
	pthread_mutex_lock(&u->lock);
	enum watch_state was = u->state;
	if (was == WATCH_LOADING)
		u->state = WATCH_ARMED;
	pthread_mutex_unlock(&u->lock);
	pthread_detach(u->watcher);
	u->watching = false;
	/* Gone between the load's check and now: as if the watcher had seen it. */
	if (was == WATCH_CLOSED)
		handler_gone(u);
}

void snapshot_uffd_close(struct snapshot_uffd *u)
{
	if (!u)
		return;
	if (u->watching) {
		/* The load failed: the watcher ends without a word. */
		pthread_mutex_lock(&u->lock);
		u->state = WATCH_CANCELLED;
		pthread_mutex_unlock(&u->lock);
		shutdown(u->conn, SHUT_RDWR);
		pthread_join(u->watcher, NULL);
	}
	if (u->conn >= 0)
		close(u->conn);
	if (u->uffd >= 0)
		close(u->uffd);
	free(u);
}
