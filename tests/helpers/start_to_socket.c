/* start_to_socket SOCKET -- CMD [ARGS...]: starts CMD and prints how many microseconds pass
 * until a connect() to the Unix socket SOCKET succeeds, then stops CMD with SIGTERM and
 * waits for it. For the start-up benchmarks: polling from C every 20 us costs far less than
 * the start it measures. Exit status 1 if CMD ends first or 10 s pass. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int try_connect(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[2], "--") != 0) {
		fprintf(stderr, "usage: %s SOCKET -- CMD [ARGS...]\n", argv[0]);
		return 2;
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "%s: socket path too long\n", argv[1]);
		return 2;
	}
	strcpy(addr.sun_path, argv[1]);

	long long start = now_us();
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		execvp(argv[3], argv + 3);
		perror(argv[3]);
		_exit(127);
	}
	int status, rc = 1;
	const struct timespec pause = { 0, 20000 };
	while (now_us() - start < 10000000LL) {
		if (try_connect(&addr) == 0) {
			printf("%lld\n", now_us() - start);
			rc = 0;
			break;
		}
		if (waitpid(child, &status, WNOHANG) == child) {
			fprintf(stderr, "%s exited (status 0x%x) before %s accepted\n", argv[3],
				status, argv[1]);
			return 1;
		}
		nanosleep(&pause, NULL);
	}
	if (rc)
		fprintf(stderr, "%s: no connection within 10 s\n", argv[1]);
	kill(child, SIGTERM);
	waitpid(child, &status, 0);
	return rc;
}
