/* dev-count: counts for ever through a virtio-net device in slot 0 (one frame per count,
 * which the host counts on its TAP) and the virtio-vsock device (one connection to the
 * echo listener per count), for tests/snapshot_devices.bats. Per count, echo_conn's line
 *   vsock: nN connect=RESPONSE buf_alloc=262144 echo=RW got="pong nN" close=RST
 * then "dev: count=N net=1". An event on the vsock event queue (a restored device's
 * TRANSPORT_RESET) prints "vsock: event id=0" and gives up the connection in progress,
 * as a driver drops its connections then. Either device may be missing ("net=-2"). */
#include "vsock.h"

static void delay(void)
{
	for (volatile unsigned long i = 0; i < 200000; i++)
		;
}

void snap_run(const char *cmdline)
{
	if (!has_word(cmdline, "dev-count"))
		return;
	bool net = net_count_init();
	bool vs = vs_start(cmdline);
	vs_watch_events = true;
	for (uint64_t n = 1;; n++) {
		delay();
		int net_rc = net ? net_count_send(n) : -2;
		for (int ev; vs && (ev = vs_event()) >= 0;) {
			line("event");
			kv("id", (uint64_t)ev);
			puts_uart("\n");
		}
		if (vs) {
			char name[24] = "n";
			char digits[21];
			unsigned nd = 0, i = 1;
			for (uint64_t v = n; v; v /= 10)
				digits[nd++] = (char)('0' + v % 10);
			while (nd)
				name[i++] = digits[--nd];
			name[i] = '\0';
			echo_conn(name, 40000 + (uint32_t)(n % 20000));
		}
		puts_uart("dev: count=");
		put_dec(n);
		puts_uart(" net=");
		if (net_rc < 0) {
			puts_uart("-");
			put_dec((uint64_t)-net_rc);
		} else {
			put_dec((uint64_t)net_rc);
		}
		puts_uart("\n");
	}
}
