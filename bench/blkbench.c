/* blkbench: a small fio stand-in for the guest side of bench/blk.sh, built static so it
 * runs in the busybox initramfs. O_DIRECT (the guest's page cache stays out of the
 * numbers), and queue depth N as N threads each keeping one request in flight (the guest
 * kernel has no libaio or io_uring).
 *
 *   blkbench DEVICE read|write|randread BLOCK_BYTES DEPTH SECONDS
 *
 * Prints: RESULT <mode> qd=<depth> bs=<bytes> ops=<n> secs=<s> MBps=<MB/s> IOPS=<ops/s> */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <time.h>
#include <unistd.h>

enum mode { SEQ_READ, SEQ_WRITE, RAND_READ };

static int fd;
static enum mode mode;
static uint64_t bs, span, deadline_ns;
static atomic_uint_fast64_t next_block, total_ops, failures;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
	void *buf;
	if (posix_memalign(&buf, 4096, bs))
		return NULL;
	memset(buf, 0xa5, bs);
	uint64_t blocks = span / bs, ops = 0;
	while (now_ns() < deadline_ns) {
		uint64_t block;
		if (mode == RAND_READ) {
			seed ^= seed << 13; /* xorshift64 */
			seed ^= seed >> 7;
			seed ^= seed << 17;
			block = seed % blocks;
		} else {
			/* One shared cursor: the device sees one sequential stream. */
			block = atomic_fetch_add(&next_block, 1) % blocks;
		}
		ssize_t n = mode == SEQ_WRITE ? pwrite(fd, buf, bs, (off_t)(block * bs))
					      : pread(fd, buf, bs, (off_t)(block * bs));
		if (n != (ssize_t)bs) {
			atomic_fetch_add(&failures, 1);
			break;
		}
		ops++;
	}
	atomic_fetch_add(&total_ops, ops);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s DEVICE read|write|randread BLOCK_BYTES DEPTH SECONDS\n",
			argv[0]);
		return 2;
	}
	const char *m = argv[2];
	mode = strcmp(m, "write") == 0	    ? SEQ_WRITE
	       : strcmp(m, "randread") == 0 ? RAND_READ
					    : SEQ_READ;
	bs = strtoull(argv[3], NULL, 0);
	unsigned depth = (unsigned)strtoul(argv[4], NULL, 0);
	double secs = strtod(argv[5], NULL);
	fd = open(argv[1], (mode == SEQ_WRITE ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0 || bs == 0 || bs % 512 || depth == 0 || depth > 256 || secs <= 0) {
		perror(argv[1]);
		return 1;
	}
	if (ioctl(fd, BLKGETSIZE64, &span) < 0)
		span = (uint64_t)lseek(fd, 0, SEEK_END);
	if (span < bs) {
		fprintf(stderr, "%s: smaller than one block\n", argv[1]);
		return 1;
	}
	uint64_t t0 = now_ns();
	deadline_ns = t0 + (uint64_t)(secs * 1e9);
	pthread_t threads[256];
	for (unsigned i = 0; i < depth; i++)
		pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (unsigned i = 0; i < depth; i++)
		pthread_join(threads[i], NULL);
	double elapsed = (double)(now_ns() - t0) / 1e9;
	uint64_t ops = atomic_load(&total_ops);
	printf("RESULT %s qd=%u bs=%llu ops=%llu secs=%.2f MBps=%.1f IOPS=%.0f%s\n", m, depth,
	       (unsigned long long)bs, (unsigned long long)ops, elapsed,
	       (double)ops * (double)bs / elapsed / 1e6, (double)ops / elapsed,
	       atomic_load(&failures) ? " (I/O ERRORS)" : "");
	return atomic_load(&failures) ? 1 : 0;
}
