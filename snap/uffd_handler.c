/* ember-uffd-handler: a page fault handler for PUT /snapshot/load with the Uffd memory
 * backend. It serves one VM from one of ember's memory files:
 *
 *   ember-uffd-handler [-v] SOCKET MEMFILE
 *
 * listens on the Unix socket SOCKET, takes one connection, receives ember's hand-off (a JSON
 * array describing each guest memory region, with the userfaultfd as SCM_RIGHTS), and then
 * fills each page the guest (or KVM, or ember) touches: a page that is a hole in MEMFILE
 * (ember writes memory files sparse) with UFFDIO_ZEROPAGE, one with data with UFFDIO_COPY.
 * It ends when ember's end of the connection closes (ember exited, or dropped the VM), and
 * prints what it served. Everything that comes over the socket is checked first: the handler
 * may run with other rights than ember. Exit status: 0 after serving, 1 on an error.
 *
 * A handler of one's own speaks the same protocol (Firecracker's): see README.md. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "snap/uffd_handoff.h"

#define PAGE_SIZE     HANDOFF_PAGE_SIZE
#define HANDOFF_MAX   (64 * 1024) /* a region is ~130 bytes of JSON */
#define HANDOFF_WAIT  5000	  /* ms for ember to send its hand-off once connected */
#define EXTENTS_FIRST 1024

/* The memory file's data extents, sorted: everything between them is a hole. */
struct extent {
	uint64_t start, end;
};

static struct {
	bool verbose;
	const uint8_t *file; /* the memory file, mapped read-only */
	uint64_t file_size;
	struct extent *ext;
	size_t nr_ext;
	struct uffd_region reg[HANDOFF_REGIONS_MAX];
	unsigned nr_reg;
	uint64_t copied, zeroed, raced, outside;
} h;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ember-uffd-handler: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* The data extents of fd (SEEK_DATA/SEEK_HOLE), so that a fault needs no system call to
 * tell a hole from data. A file system without them reports one extent: all data. */
static void map_memory_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		fail("%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size % PAGE_SIZE)
		fail("%s: not a memory file (a regular file, a whole number of pages)", path);
	h.file_size = (uint64_t)st.st_size;
	h.file = mmap(NULL, h.file_size, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	if (h.file == MAP_FAILED)
		fail("%s: mmap: %s", path, strerror(errno));
	size_t cap = EXTENTS_FIRST;
	h.ext = malloc(cap * sizeof(*h.ext));
	if (!h.ext)
		fail("out of memory");
	off_t pos = 0;
	while ((uint64_t)pos < h.file_size) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only a hole from pos on */
		if (data < 0)
			fail("%s: SEEK_DATA: %s", path, strerror(errno));
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole <= data)
			hole = (off_t)h.file_size;
		if (h.nr_ext == cap) {
			struct extent *e = realloc(h.ext, 2 * cap * sizeof(*h.ext));
			if (!e)
				fail("out of memory");
			h.ext = e;
			cap *= 2;
		}
		/* Extents start and end on page boundaries in ember's files; round outwards
		 * anyway, a page that holds any data is copied. */
		uint64_t s = (uint64_t)data & ~(PAGE_SIZE - 1);
		uint64_t e = ((uint64_t)hole + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		h.ext[h.nr_ext++] = (struct extent){ s, e < h.file_size ? e : h.file_size };
		pos = hole;
	}
	close(fd);
}

static bool is_data(uint64_t off)
{
	size_t lo = 0, hi = h.nr_ext;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (off < h.ext[mid].start)
			hi = mid;
		else if (off >= h.ext[mid].end)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static void parse_regions(const char *buf, size_t len)
{
	char why[256];
	int n = handoff_parse(buf, len, h.file_size, h.reg, why, sizeof(why));
	if (n < 0)
		fail("hand-off: %s", why);
	h.nr_reg = (unsigned)n;
}

/* A descriptor received over the socket is only used if it is a userfaultfd. */
static void check_is_uffd(int fd)
{
	char link[64], target[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return; /* no /proc (a jail): UFFDIO_API below still tells */
	target[n] = '\0';
	if (strcmp(target, "anon_inode:[userfaultfd]") != 0)
		fail("hand-off: the descriptor received is %s, not a userfaultfd", target);
}

/* Receives the hand-off: JSON bytes (possibly in more than one piece) and one descriptor. */
static int receive_handoff(int conn)
{
	static char buf[HANDOFF_MAX + 1];
	size_t len = 0;
	int uffd = -1;
	for (;;) {
		struct pollfd p = { conn, POLLIN, 0 };
		int ready = poll(&p, 1, HANDOFF_WAIT);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			fail("no complete hand-off from ember within %d ms", HANDOFF_WAIT);
		union {
			struct cmsghdr c;
			char b[CMSG_SPACE(4 * sizeof(int))];
		} ctl;
		struct iovec iov = { buf + len, HANDOFF_MAX - len };
		struct msghdr msg = { .msg_iov = &iov,
				      .msg_iovlen = 1,
				      .msg_control = ctl.b,
				      .msg_controllen = sizeof(ctl.b) };
		ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("the connection closed before the hand-off was complete");
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nfd; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (uffd < 0)
					uffd = fd;
				else
					close(fd); /* only one is expected */
			}
		}
		if (msg.msg_flags & MSG_CTRUNC)
			fail("hand-off: more descriptors than expected");
		len += (size_t)n;
		buf[len] = '\0';
		/* Complete, or wrong in a way more bytes cannot mend: parse_regions says which. */
		json_error_t jerr;
		json_t *probe = json_loadb(buf, len, 0, &jerr);
		json_decref(probe);
		if (probe || json_error_code(&jerr) != json_error_premature_end_of_input)
			break;
		if (len == HANDOFF_MAX)
			fail("hand-off: longer than %d bytes", HANDOFF_MAX);
	}
	if (uffd < 0)
		fail("hand-off: no userfaultfd came with it");
	parse_regions(buf, len);
	check_is_uffd(uffd);
	return uffd;
}

static const struct uffd_region *region_of(uint64_t addr)
{
	for (unsigned i = 0; i < h.nr_reg; i++)
		if (addr >= h.reg[i].base && addr - h.reg[i].base < h.reg[i].size)
			return &h.reg[i];
	return NULL;
}

/* Fills the page at addr. EEXIST: another fault on the same page was served first. */
static void serve(int uffd, uint64_t addr)
{
	addr &= ~(PAGE_SIZE - 1);
	const struct uffd_region *r = region_of(addr);
	int rc;
	if (!r) {
		/* Not in any region ember described: it registered more than it said. Zeros
		 * let its thread go on rather than wait for ever. */
		h.outside++;
		struct uffdio_zeropage z = { .range = { addr, PAGE_SIZE } };
		rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
	} else {
		uint64_t off = r->offset + (addr - r->base);
		if (is_data(off)) {
			struct uffdio_copy c = { .dst = addr,
						 .src = (uint64_t)(uintptr_t)(h.file + off),
						 .len = PAGE_SIZE };
			rc = ioctl(uffd, UFFDIO_COPY, &c);
			h.copied += rc == 0;
		} else {
			struct uffdio_zeropage z = { .range = { addr, PAGE_SIZE } };
			rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
			h.zeroed += rc == 0;
		}
	}
	if (rc < 0 && errno == EEXIST) {
		h.raced++;
		return;
	}
	/* ENOENT, ESRCH: ember's memory is going away (it is exiting). */
	if (rc < 0 && errno != ENOENT && errno != ESRCH)
		fail("filling the page at 0x%llx: %s", (unsigned long long)addr, strerror(errno));
	if (h.verbose)
		fprintf(stderr, "ember-uffd-handler: page 0x%llx served\n",
			(unsigned long long)addr);
}

/* Serves faults until ember's end of the connection closes. */
static void serve_faults(int uffd, int conn)
{
	struct uffdio_api api = { .api = UFFD_API };
	/* ember did UFFDIO_API already; a second one fails with EINVAL on a real userfaultfd,
	 * and with ENOTTY on anything else. */
	if (ioctl(uffd, UFFDIO_API, &api) < 0 && errno != EINVAL)
		fail("the descriptor received is not a userfaultfd: %s", strerror(errno));
	int flags = fcntl(uffd, F_GETFL);
	if (flags < 0 || fcntl(uffd, F_SETFL, flags | O_NONBLOCK) < 0)
		fail("userfaultfd: %s", strerror(errno));
	for (;;) {
		struct pollfd p[2] = { { uffd, POLLIN, 0 }, { conn, POLLIN | POLLRDHUP, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll: %s", strerror(errno));
		}
		if (p[0].revents & POLLIN) {
			struct uffd_msg msgs[16];
			ssize_t n = read(uffd, msgs, sizeof(msgs));
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				fail("reading the userfaultfd: %s", strerror(errno));
			for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(msgs[0]); i++)
				if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
					serve(uffd, msgs[i].arg.pagefault.address);
		}
		if (p[0].revents & (POLLERR | POLLHUP))
			return;
		if (p[1].revents & (POLLHUP | POLLRDHUP | POLLERR))
			return;
		if (p[1].revents & POLLIN) {
			char junk[256];
			ssize_t n = recv(conn, junk, sizeof(junk), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return;
		}
	}
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "vh")) != -1) {
		if (opt == 'v') {
			h.verbose = true;
			continue;
		}
		fprintf(opt == 'h' ? stdout : stderr,
			"usage: %s [-v] SOCKET MEMFILE\n"
			"Serves the guest memory of one VM that ember restores with\n"
			"  PUT /snapshot/load {..., \"mem_backend\": {\"backend_type\": \"Uffd\", "
			"\"backend_path\": SOCKET}}\n"
			"from MEMFILE (the snapshot's mem_file_path). -v: a line per page.\n",
			argv[0]);
		return opt == 'h' ? 0 : 1;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: %s [-v] SOCKET MEMFILE (-h for help)\n", argv[0]);
		return 1;
	}
	const char *sock_path = argv[optind], *mem_path = argv[optind + 1];
	signal(SIGPIPE, SIG_IGN);
	map_memory_file(mem_path);

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		fail("%s: longer than %zu bytes", sock_path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
		fail("%s: %s", sock_path, strerror(errno));
	fprintf(stderr, "ember-uffd-handler: listening on %s, serving %s (%zu data extents)\n",
		sock_path, mem_path, h.nr_ext);

	int conn;
	do
		conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	while (conn < 0 && errno == EINTR);
	if (conn < 0)
		fail("accept: %s", strerror(errno));
	/* One VM per handler: nobody else may connect now. */
	close(lfd);
	unlink(sock_path);

	struct ucred peer;
	socklen_t plen = sizeof(peer);
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &plen) < 0)
		peer.pid = 0;
	int uffd = receive_handoff(conn);
	uint64_t total = 0;
	for (unsigned i = 0; i < h.nr_reg; i++)
		total += h.reg[i].size;
	fprintf(stderr, "ember-uffd-handler: ember (pid %d) handed over %u regions, %llu MiB\n",
		(int)peer.pid, h.nr_reg, (unsigned long long)(total >> 20));
	serve_faults(uffd, conn);
	fprintf(stderr,
		"ember-uffd-handler: done: %llu faults served (%llu pages copied, %llu zero "
		"pages, %llu already there, %llu outside the regions)\n",
		(unsigned long long)(h.copied + h.zeroed + h.outside), (unsigned long long)h.copied,
		(unsigned long long)h.zeroed, (unsigned long long)h.raced,
		(unsigned long long)h.outside);
	return 0;
}
