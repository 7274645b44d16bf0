/* Helpers shared by the cmocka unit tests: a KVM-less guest memory, temporary files that
 * are removed even when an assertion aborts a test, and little-endian field access. */
#ifndef EMBER_UNIT_UTIL_H
#define EMBER_UNIT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <ucontext.h>
#include <unistd.h>

#include "core/machine.h"
#include "virtio/virtio.h"

#define UNIT_MAX_TMP 16
#define MIB	     (1024ULL * 1024)
#define GIB	     (1024ULL * MIB)

/* State lives in a function-local static so that a file using only some helpers does not
 * trip -Wunused-variable. */
struct unit_state {
	struct machine vm;
	bool vm_live;
	char tmp[UNIT_MAX_TMP][PATH_MAX];
	unsigned nr_tmp;
};

static inline struct unit_state *unit_state(void)
{
	static struct unit_state s;
	return &s;
}

/* A zeroed vm with only guest memory: what loader, boot and mptable code needs. */
static inline struct machine *unit_vm_new(uint64_t bytes)
{
	struct unit_state *s = unit_state();
	if (s->vm_live)
		guest_mem_free(&s->vm.mem);
	memset(&s->vm, 0, sizeof(s->vm));
	s->vm.vm_fd = -1;
	s->vm.kvm_fd = -1;
	s->vm_live = false;
	assert_int_equal(guest_mem_init(&s->vm.mem, bytes), 0);
	s->vm_live = true;
	return &s->vm;
}

/* Writes len bytes to a fresh temporary file; the path stays valid until unit_teardown. */
static inline const char *unit_tmp_file(const void *data, size_t len)
{
	struct unit_state *s = unit_state();
	assert_true(s->nr_tmp < UNIT_MAX_TMP);
	const char *dir = getenv("TMPDIR");
	char *path = s->tmp[s->nr_tmp];
	snprintf(path, PATH_MAX, "%s/ember-unit-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	s->nr_tmp++;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const uint8_t *)data + done, len - done);
		assert_true(n > 0);
		done += (size_t)n;
	}
	close(fd);
	return path;
}

static inline const char *unit_tmp_text(const char *text)
{
	return unit_tmp_file(text, strlen(text));
}

/* A path that certainly does not exist (a removed temporary file). */
static inline const char *unit_missing_path(void)
{
	const char *p = unit_tmp_file("", 0);
	assert_int_equal(unlink(p), 0);
	return p;
}

/* A device test's machine taken down: the device (if any), the MMIO bus, the event loop. */
static inline void unit_device_machine_free(struct machine *vm, struct virtio_dev *dev)
{
	if (!vm)
		return;
	if (dev)
		virtio_dev_destroy(dev);
	io_bus_free(&vm->mmio_bus);
	evloop_close(&vm->loop);
}

/* unit_run_loop's 2 ms tick: stops the loop once done(arg) holds or the deadline passed. */
struct unit_tick {
	int fd;
	uint64_t deadline_ns;
	bool (*done)(void *arg);
	void *arg;
	struct evloop *loop;
};

static inline void unit_on_tick(void *opaque, uint32_t events)
{
	struct unit_tick *tk = opaque;
	(void)events;
	uint64_t n;
	ssize_t r = read(tk->fd, &n, sizeof(n));
	(void)r;
	if ((tk->done && tk->done(tk->arg)) || monotonic_ns() >= tk->deadline_ns)
		tk->loop->stop = true;
}

/* Runs the VMM event loop (queue eventfds, engines, timers) until done(arg) holds, checked
 * every 2 ms, or ms passed (done NULL: for ms). Returns the milliseconds it ran. */
static inline uint64_t unit_run_loop(struct evloop *loop, unsigned ms, bool (*done)(void *arg),
				     void *arg)
{
	uint64_t t0 = monotonic_ns();
	struct unit_tick tk = {
		.deadline_ns = t0 + (uint64_t)ms * 1000000, .done = done, .arg = arg, .loop = loop
	};
	tk.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	assert_true(tk.fd >= 0);
	struct itimerspec its = { .it_interval = { 0, 2000000 }, .it_value = { 0, 2000000 } };
	assert_int_equal(timerfd_settime(tk.fd, 0, &its, NULL), 0);
	assert_int_equal(evloop_add(loop, tk.fd, EPOLLIN, unit_on_tick, &tk), 0);
	loop->stop = false;
	assert_int_equal(evloop_run(loop), 0);
	evloop_remove(loop, tk.fd);
	close(tk.fd);
	return (monotonic_ns() - t0) / 1000000;
}

/* Per-test teardown: frees guest memory and removes the test's files. */
static inline int unit_teardown(void **state)
{
	(void)state;
	struct unit_state *s = unit_state();
	if (s->vm_live)
		guest_mem_free(&s->vm.mem);
	s->vm_live = false;
	for (unsigned i = 0; i < s->nr_tmp; i++)
		unlink(s->tmp[i]);
	s->nr_tmp = 0;
	return 0;
}

#define UNIT_TEST(fn) cmocka_unit_test_teardown(fn, unit_teardown)

/* Reads a whole file into a malloc'd buffer, NULL if it cannot be read. */
static inline uint8_t *unit_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			uint8_t *nb = realloc(buf, cap);
			assert_non_null(nb);
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Files the build puts next to the test binaries (build/tests/) are found from the binary's
 * own location, so the tests work from any directory. */
static inline void unit_build_path(char *out, size_t len, const char *rel)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	assert_non_null(slash);
	*slash = '\0';
	int w = snprintf(out, len, "%s/%s", exe, rel);
	assert_true(w > 0 && (size_t)w < len);
}

static inline uint16_t get16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t get32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t get64(const void *p)
{
	return get32(p) | (uint64_t)get32((const uint8_t *)p + 4) << 32;
}

static inline void put16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void put32(void *p, uint32_t v)
{
	uint8_t *b = p;
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* Guest memory at gpa, failing the test if the accessor refuses it. */
static inline uint8_t *unit_gpa(struct machine *vm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&vm->mem, gpa, len);
	assert_non_null(p);
	return p;
}

/* A virtio-mmio driver for device tests: registers through the MMIO bus, as a vCPU's
 * accesses arrive. */
static inline uint32_t unit_mmio_rd(struct machine *vm, struct virtio_dev *dev, uint64_t off)
{
	uint8_t d[4];
	assert_true(io_bus_access(&vm->mmio_bus, dev->mmio_base + off, d, 4, false));
	return get32(d);
}

static inline void unit_mmio_wr(struct machine *vm, struct virtio_dev *dev, uint64_t off,
				uint32_t v)
{
	uint8_t d[4];
	put32(d, v);
	assert_true(io_bus_access(&vm->mmio_bus, dev->mmio_base + off, d, 4, true));
}

struct unit_ring {
	uint16_t num;
	uint64_t desc, avail, used; /* each below 4 GiB */
};

/* The driver's side of initialisation, from reset to DRIVER_OK: accepts features (which
 * must include VIRTIO_F_VERSION_1 and only offered bits), zeroes and sets up queue i at
 * rings[i]. */
static inline void unit_driver_init(struct machine *vm, struct virtio_dev *dev, uint64_t features,
				    const struct unit_ring *rings, unsigned nr)
{
	unit_mmio_wr(vm, dev, VIRTIO_MMIO_STATUS, 0);
	unit_mmio_wr(vm, dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	unit_mmio_wr(vm, dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	for (uint32_t sel = 0; sel < 2; sel++) {
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_DRIVER_FEATURES,
			     (uint32_t)(features >> (32 * sel)));
	}
	uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	unit_mmio_wr(vm, dev, VIRTIO_MMIO_STATUS, st);
	assert_int_equal(unit_mmio_rd(vm, dev, VIRTIO_MMIO_STATUS), st);
	for (unsigned i = 0; i < nr; i++) {
		const struct unit_ring *r = &rings[i];
		memset(unit_gpa(vm, r->desc, 16 * r->num), 0, 16 * r->num);
		memset(unit_gpa(vm, r->avail, 6 + 2 * r->num), 0, 6 + 2 * r->num);
		memset(unit_gpa(vm, r->used, 6 + 8 * r->num), 0, 6 + 8 * r->num);
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_QUEUE_SEL, i);
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_QUEUE_NUM, r->num);
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)r->desc);
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)r->avail);
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)r->used);
		unit_mmio_wr(vm, dev, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	st |= VIRTIO_STATUS_DRIVER_OK;
	unit_mmio_wr(vm, dev, VIRTIO_MMIO_STATUS, st);
	assert_int_equal(unit_mmio_rd(vm, dev, VIRTIO_MMIO_STATUS), st);
}

/* Runs the device's queue handler as the VMM thread does on a notification. */
static inline void unit_queue_notify(struct virtio_dev *dev, unsigned q)
{
	pthread_mutex_lock(&dev->lock);
	if (virtio_dev_running(dev) && dev->queues[q].active)
		dev->ops->queue_notify(dev, q);
	pthread_mutex_unlock(&dev->lock);
}

/* Store logging for one page of memory: the page is made read-only, each store into it
 * faults, its address is logged and the store is let through by single-stepping it (the
 * x86 trap flag), after which the page is read-only again. It shows what the final memory
 * cannot: how often and in which order a device wrote a ring field. Same thread only. */
#define UNIT_WATCH_MAX 4096
struct unit_watch {
	uint8_t *page;
	size_t page_size;
	uintptr_t addr[UNIT_WATCH_MAX];
	unsigned nr;
	/* Called before each store goes through: a test can play the other side (the
	 * driver) at that precise moment. */
	void (*on_store)(uintptr_t addr);
	struct sigaction old_segv, old_trap;
};

static inline struct unit_watch *unit_watch(void)
{
	static struct unit_watch w;
	return &w;
}

static inline void unit_watch_on_segv(int sig, siginfo_t *si, void *ctx)
{
	struct unit_watch *w = unit_watch();
	uint8_t *a = si->si_addr;
	if (!w->page || a < w->page || a >= w->page + w->page_size) {
		/* Not ours: let the fault happen again under the previous handler. */
		sigaction(sig, &w->old_segv, NULL);
		return;
	}
	if (w->nr < UNIT_WATCH_MAX)
		w->addr[w->nr] = (uintptr_t)a;
	w->nr++;
	mprotect(w->page, w->page_size, PROT_READ | PROT_WRITE);
	if (w->on_store)
		w->on_store((uintptr_t)a);
	((ucontext_t *)ctx)->uc_mcontext.gregs[REG_EFL] |= 0x100; /* TF */
}

static inline void unit_watch_on_trap(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)si;
	struct unit_watch *w = unit_watch();
	mprotect(w->page, w->page_size, PROT_READ);
	((ucontext_t *)ctx)->uc_mcontext.gregs[REG_EFL] &= ~0x100LL;
}

/* Starts logging stores into the page that holds p. */
static inline void unit_watch_start(void *p)
{
	struct unit_watch *w = unit_watch();
	w->page_size = (size_t)sysconf(_SC_PAGESIZE);
	w->page = (uint8_t *)((uintptr_t)p & ~(uintptr_t)(w->page_size - 1));
	w->nr = 0;
	struct sigaction sa = { .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	sa.sa_sigaction = unit_watch_on_segv;
	assert_int_equal(sigaction(SIGSEGV, &sa, &w->old_segv), 0);
	sa.sa_sigaction = unit_watch_on_trap;
	assert_int_equal(sigaction(SIGTRAP, &sa, &w->old_trap), 0);
	assert_int_equal(mprotect(w->page, w->page_size, PROT_READ), 0);
}

/* Stops logging; returns how many stores were logged. */
static inline unsigned unit_watch_stop(void)
{
	struct unit_watch *w = unit_watch();
	assert_int_equal(mprotect(w->page, w->page_size, PROT_READ | PROT_WRITE), 0);
	sigaction(SIGSEGV, &w->old_segv, NULL);
	sigaction(SIGTRAP, &w->old_trap, NULL);
	w->page = NULL;
	w->on_store = NULL;
	assert_true(w->nr <= UNIT_WATCH_MAX);
	return w->nr;
}

/* How many logged stores hit [p, p+len). */
static inline unsigned unit_watch_count(const void *p, size_t len)
{
	struct unit_watch *w = unit_watch();
	unsigned n = 0;
	for (unsigned i = 0; i < w->nr && i < UNIT_WATCH_MAX; i++)
		n += w->addr[i] >= (uintptr_t)p && w->addr[i] < (uintptr_t)p + len;
	return n;
}

#endif
