/* A snapshot load's clock_realtime (vmm_clock_advance): with KVM_CLOCK_REALTIME the kernel
 * is handed the snapshot's wall-clock time; without it (kernels before 5.16: here a VM fd
 * that is not one, whose KVM_CHECK_EXTENSION fails) the kvmclock value itself goes forward
 * by the gap, never back, and a real VM takes that value in KVM_SET_CLOCK. */
#include "unit_util.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <time.h>

#include "vmm/controller.h"

static uint64_t realtime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define SEC 1000000000ULL

static void fallback_adds_the_gap(void **state)
{
	(void)state;
	int not_kvm = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(not_kvm >= 0);
	struct kvm_clock_data c = { .clock = 7 * SEC };
	uint64_t before = realtime();
	vmm_clock_advance(not_kvm, &c, before - 5 * SEC);
	uint64_t after = realtime();
	assert_int_equal(c.flags, 0);
	/* 7 s plus the 5 s since the "snapshot", plus however long the call took. */
	assert_true(c.clock >= 12 * SEC);
	assert_true(c.clock <= 12 * SEC + (after - before));
	close(not_kvm);
}

static void fallback_never_goes_back(void **state)
{
	(void)state;
	struct kvm_clock_data c = { .clock = 7 * SEC };
	/* A snapshot stamped in the future (the host's clock was set back since). */
	vmm_clock_advance(-1, &c, realtime() + 3600 * SEC);
	assert_int_equal(c.flags, 0);
	assert_true(c.clock == 7 * SEC);
}

/* On this host's KVM: the flag when the kernel offers it, else the sum; either way
 * KVM_SET_CLOCK takes it and the VM's clock reads at least the advanced value. */
static void real_vm_takes_it(void **state)
{
	(void)state;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		print_message("no /dev/kvm: %s; only the fallback was tested\n", strerror(errno));
		skip();
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	assert_true(vm >= 0);
	int caps = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);
	uint64_t then = realtime() - 5 * SEC;
	struct kvm_clock_data c = { .clock = 2 * SEC };
	vmm_clock_advance(vm, &c, then);
	if (caps > 0 && (caps & KVM_CLOCK_REALTIME)) {
		assert_int_equal(c.flags, KVM_CLOCK_REALTIME);
		assert_true(c.realtime == then);
		assert_true(c.clock == 2 * SEC);
	} else {
		assert_int_equal(c.flags, 0);
		assert_true(c.clock >= 7 * SEC);
	}
	assert_int_equal(ioctl(vm, KVM_SET_CLOCK, &c), 0);
	struct kvm_clock_data now = { 0 };
	assert_int_equal(ioctl(vm, KVM_GET_CLOCK, &now), 0);
	assert_true(now.clock >= 7 * SEC);
	assert_true(now.clock < 60 * SEC);
	close(vm);
	close(kvm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fallback_adds_the_gap),
		cmocka_unit_test(fallback_never_goes_back),
		cmocka_unit_test(real_vm_takes_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
