/* The VM's state machine and its actions; see controller.h. */
#include "vmm/controller.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/json_fields.h"
#include "core/log.h"
#include "core/metrics.h"
#include "legacy/i8042.h"
#include "virtio/virtio.h"
#include "vmm/config_json.h"
#include "vmm/device_table.h"
#include "vmm/snapshot.h"
#include "x86/vcpu.h"

#define METRICS_PERIOD_S 60

static int put_logger(struct vm *vm, json_t *body, char *err)
{
	static const char *const keys[] = { "log_path",	       "level",	 "show_level",
					    "show_log_origin", "module", NULL };
	const char *path, *level, *module;
	bool show_level = true, show_origin = false;
	if (cfg_check_keys(body, "logger", keys, err) ||
	    cfg_get_str(body, "logger", "log_path", false, &path, err) ||
	    cfg_get_str(body, "logger", "level", false, &level, err) ||
	    cfg_get_str(body, "logger", "module", false, &module, err) ||
	    cfg_get_bool(body, "logger", "show_level", false, &show_level, err) ||
	    cfg_get_bool(body, "logger", "show_log_origin", false, &show_origin, err))
		return -EINVAL;
	if (level && log_set_level_name(level))
		return cfg_fail(err, "logger: invalid level '%s'", level);
	int rc = path ? log_open(path) : 0;
	if (rc)
		return errf(err, rc, "logger: cannot open %s: %s", path, strerror(-rc));
	if (path) {
		free(vm->log_path);
		vm->log_path = strdup(path);
	}
	log_set_format(show_level, show_origin);
	return 0;
}

static void on_metrics_timer(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	(void)events;
	uint64_t expirations;
	if (read(vm->metrics_timer_fd, &expirations, sizeof(expirations)) > 0)
		metrics_flush();
}

int vmm_open_metrics(struct vm *vm, const char *path, char *err)
{
	if (vm->metrics_path)
		return cfg_fail(err, "metrics: reinitialization of metrics is not allowed");
	int rc = metrics_open(path);
	if (rc)
		return errf(err, rc, "metrics: cannot open %s: %s", path, strerror(-rc));
	vm->metrics_path = strdup(path);
	/* Flushed every 60 s from the VMM loop, as Firecracker does. */
	vm->metrics_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->metrics_timer_fd < 0)
		rc = -errno;
	else {
		struct itimerspec period = { { METRICS_PERIOD_S, 0 }, { METRICS_PERIOD_S, 0 } };
		timerfd_settime(vm->metrics_timer_fd, 0, &period, NULL);
		rc = evloop_add(&vm->m.loop, vm->metrics_timer_fd, EPOLLIN, on_metrics_timer, vm);
	}
	return rc ? errf(err, rc, "metrics: flush timer: %s", strerror(-rc)) : 0;
}

static int put_metrics(struct vm *vm, json_t *body, char *err)
{
	json_t *path = json_object_get(body, "metrics_path");
	if (json_object_size(body) != 1 || !path || !json_is_string(path))
		return cfg_fail(err, "metrics: expected exactly one string field 'metrics_path'");
	return vmm_open_metrics(vm, json_string_value(path), err);
}

/* The first running device of kind k (the only one, for a kind without ids), or NULL. */
static struct virtio_dev *running_device(const struct vm *vm, int k)
{
	for (unsigned i = 0; i < vm->devices.nr; i++)
		if (vm->device_kind_of[i] == k)
			return vm->devices.devs[i];
	return NULL;
}

/* A device kind's object: the configuration before start, the running device after. */
static int configure_device(struct vm *vm, int k, const char *id, json_t *body, bool patch,
			    char *err)
{
	const struct device_kind *kind = device_kinds[k];
	void *store = vm->cfg.devices[k];
	if (vm->state == VM_CONFIGURING) {
		/* Firecracker: PUT replaces an object before boot, PATCH updates a running
		 * device only (test_api_patch_pre_boot), except where the kind takes a PATCH
		 * before boot too (the balloon's target). */
		if (!patch)
			return kind->put(store, id, body, err);
		err[0] = '\0';
		int rc = kind->patch ? kind->patch(store, id, body, err) : -EPERM;
		if (rc == -EPERM && !err[0])
			snprintf(err, ERR_LEN, "%s", POST_BOOT_ONLY);
		return rc;
	}
	if (!patch || !kind->update)
		return errf(err, -EPERM, PRE_BOOT_ONLY);
	if (!kind->per_id) /* the one device, or NULL: the kind says what that means */
		return kind->update(store, running_device(vm, k), id, body, err);
	for (unsigned i = 0; i < vm->devices.nr; i++) {
		struct virtio_dev *dev = vm->devices.devs[i];
		if (vm->device_kind_of[i] == k && id && strcmp(dev->label, id) == 0)
			return kind->update(store, dev, id, body, err);
	}
	return errf(err, -ENOENT, "%s '%.64s' does not exist", kind->key, id ? id : "");
}

int vmm_device_get(struct vm *vm, const char *key, const char *id, json_t **out, char *err)
{
	int k = device_kind_find(key);
	*out = NULL;
	err[0] = '\0';
	if (k < 0 || !device_kinds[k]->get)
		return cfg_fail(err, "no GET for '%s'", key);
	bool started = vm->state != VM_CONFIGURING;
	int rc = device_kinds[k]->get(vm->cfg.devices[k], started ? running_device(vm, k) : NULL,
				      started, id, out, err);
	if (rc == -EPERM && !err[0])
		snprintf(err, ERR_LEN, "%s", started ? PRE_BOOT_ONLY : POST_BOOT_ONLY);
	return rc;
}

int vmm_configure(struct vm *vm, const char *key, const char *id, json_t *body, bool patch,
		  char *err)
{
	int k = device_kind_find(key);
	/* Firecracker's boot path: after these, a snapshot load is refused. */
	if (vm->state == VM_CONFIGURING && strcmp(key, "logger") && strcmp(key, "metrics"))
		vm->configured = true;
	if (k >= 0)
		return configure_device(vm, k, id, body, patch, err);
	if (vm->state != VM_CONFIGURING)
		return errf(err, -EPERM, PRE_BOOT_ONLY);
	if (strcmp(key, "machine-config") == 0) {
		int rc = config_put_machine_config(&vm->cfg, body, patch, err);
		if (!rc)
			builder_resize_memory(vm);
		return rc;
	}
	if (strcmp(key, "boot-source") == 0)
		return config_put_boot_source(&vm->cfg, body, err);
	if (strcmp(key, "serial") == 0)
		return config_put_serial(&vm->cfg, body, err);
	if (strcmp(key, "logger") == 0)
		return put_logger(vm, body, err);
	if (strcmp(key, "metrics") == 0)
		return put_metrics(vm, body, err);
	return cfg_fail(err, "unknown key '%s'", key);
}

static int config_file_key(void *opaque, const char *key, json_t *val, char *err)
{
	struct vm *vm = opaque;
	if (!json_is_object(val))
		return cfg_fail(err, "%s: expected a JSON object", key);
	if (strcmp(key, SNAPSHOT_LOAD_KEY) == 0) {
		/* Loaded by vmm_start_configured, after the logger and the API socket. */
		json_decref(vm->config_snapshot);
		vm->config_snapshot = json_incref(val);
		return 0;
	}
	return strcmp(key, "logger") == 0 ? put_logger(vm, val, err) : put_metrics(vm, val, err);
}

int vmm_load_config_file(struct vm *vm, const char *path, char *err)
{
	return config_load_file(path, &vm->cfg, config_file_key, vm, err);
}

int vmm_start_configured(struct vm *vm, char *err)
{
	if (!vm->config_snapshot)
		return vmm_start(vm, err);
	char why[ERR_LEN];
	int rc = vmm_snapshot_load(vm, vm->config_snapshot, why);
	if (rc)
		errf(err, rc, "%s: %.400s", SNAPSHOT_LOAD_KEY, why);
	json_decref(vm->config_snapshot);
	vm->config_snapshot = NULL;
	return rc;
}

int vmm_load_snapshot_files(struct vm *vm, const char *state_path, const char *mem_path, char *err)
{
	json_t *body =
		json_pack("{s:s, s:{s:s, s:s}, s:b}", "snapshot_path", state_path, "mem_backend",
			  "backend_type", "File", "backend_path", mem_path, "resume_vm", 1);
	int rc = body ? vmm_snapshot_load(vm, body, err) : errf(err, -ENOMEM, "out of memory");
	json_decref(body);
	return rc;
}

int vmm_start(struct vm *vm, char *err)
{
	if (vm->state != VM_CONFIGURING)
		return errf(err, -EPERM, PRE_BOOT_ONLY);
	int rc = config_validate_for_start(&vm->cfg, err);
	if (!rc)
		rc = builder_start(vm, err);
	if (!rc)
		vm->state = VM_RUNNING;
	return rc;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* controller.h says what it does; an older kernel gets the sum. */
void vmm_clock_advance(int vm_fd, struct kvm_clock_data *clock, uint64_t then_ns)
{
	uint64_t now = realtime_ns(), gap = now > then_ns ? now - then_ns : 0;
	int caps = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);
	if (caps > 0 && (caps & KVM_CLOCK_REALTIME)) {
		clock->flags = KVM_CLOCK_REALTIME;
		clock->realtime = then_ns;
	} else {
		clock->clock += gap;
	}
	log_info("clock_realtime: kvmclock advanced by %llu ms, the wall-clock time since the "
		 "snapshot%s",
		 (unsigned long long)(gap / 1000000), clock->flags ? " (KVM_CLOCK_REALTIME)" : "");
}

int vmm_pause(struct vm *vm, char *err)
{
	struct machine *m = &vm->m;
	if (vm->state == VM_CONFIGURING)
		return errf(err, -EPERM, POST_BOOT_ONLY);
	if (vm->state == VM_PAUSED)
		return 0; /* as Firecracker: pausing a paused VM succeeds (test_pause_resume.py) */
	pthread_mutex_lock(&m->pause_lock);
	m->paused = true;
	pthread_mutex_unlock(&m->pause_lock);
	for (unsigned i = 0; i < m->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&m->pause_lock);
	while (m->nr_parked < m->nr_vcpus && !atomic_load(&m->exiting))
		pthread_cond_wait(&m->pause_cond, &m->pause_lock);
	pthread_mutex_unlock(&m->pause_lock);
	/* kvmclock would otherwise jump forward by the paused time at resume. */
	vm->clock_saved = ioctl(m->vm_fd, KVM_GET_CLOCK, &vm->saved_clock) == 0;
	/* A snapshot keeps the wall-clock time of that reading: the kernel gives it with the
	 * clock where it can (KVM_CLOCK_REALTIME, a stable TSC), else it is taken here. */
	if (!(vm->saved_clock.flags & KVM_CLOCK_REALTIME))
		vm->saved_clock.realtime = realtime_ns();
	vm->state = VM_PAUSED;
	log_info("VM paused");
	return 0;
}

int vmm_resume(struct vm *vm, char *err)
{
	struct machine *m = &vm->m;
	if (vm->state == VM_CONFIGURING)
		return errf(err, -EPERM, POST_BOOT_ONLY);
	if (vm->state != VM_PAUSED)
		return 0; /* resuming a running VM succeeds, as in Firecracker */
	struct kvm_clock_data clock = { .clock = vm->saved_clock.clock };
	if (vm->clock_saved && vm->clock_realtime)
		vmm_clock_advance(m->vm_fd, &clock, vm->saved_clock.realtime);
	vm->clock_realtime = false; /* once, for the time the snapshot was on disk */
	if (vm->clock_saved && ioctl(m->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		log_warn("KVM_SET_CLOCK at resume: %s", strerror(errno));
	for (unsigned i = 0; i < m->nr_vcpus; i++)
		vcpu_kvmclock_paused(&vm->vcpus[i]);
	pthread_mutex_lock(&m->pause_lock);
	m->paused = false;
	pthread_cond_broadcast(&m->pause_cond);
	pthread_mutex_unlock(&m->pause_lock);
	vm->state = VM_RUNNING;
	log_info("VM resumed");
	return 0;
}

int vmm_send_ctrl_alt_del(struct vm *vm, char *err)
{
	if (vm->state == VM_CONFIGURING)
		return errf(err, -EPERM, POST_BOOT_ONLY);
	if (i8042_send_ctrl_alt_del(vm->i8042))
		return cfg_fail(err, "the i8042 buffer is full, try again");
	return 0;
}

int vmm_flush_metrics(struct vm *vm, char *err)
{
	/* Firecracker refuses FlushMetrics before boot and, after it, flushes nothing without
	 * a sink and says 204 (rpc_interface.rs). */
	if (vm->state == VM_CONFIGURING)
		return errf(err, -EPERM, POST_BOOT_ONLY);
	if (!metrics_configured())
		return 0;
	int rc = metrics_flush();
	return rc ? errf(err, rc, "cannot write metrics: %s", strerror(-rc)) : 0;
}

const char *vmm_state_name(const struct vm *vm)
{
	return vm->state == VM_CONFIGURING ? "Not started"
	       : vm->state == VM_PAUSED	   ? "Paused"
					   : "Running";
}

json_t *vmm_machine_config_json(const struct vm *vm)
{
	const struct machine_config *mc = &vm->cfg.machine;
	/* Firecracker leaves cpu_template out when none is set; ember has none. */
	return json_pack("{s:i, s:i, s:b, s:b, s:s}", "vcpu_count", (json_int_t)mc->vcpu_count,
			 "mem_size_mib", (json_int_t)mc->mem_size_mib, "smt", mc->smt,
			 "track_dirty_pages", mc->track_dirty_pages, "huge_pages", "None");
}

/* GET /vm/config's keys in Firecracker's order (resources.rs VmmConfig). The objects ember
 * does not have (yet) are null, as Firecracker shows them unconfigured; a device kind of
 * that name fills its key, and kinds not listed follow. */
static const char *const config_keys[] = { "balloon",	 "drives",	"boot-source",
					   "cpu-config", "logger",	"machine-config",
					   "metrics",	 "mmds-config", "network-interfaces",
					   "vsock",	 "entropy",	NULL };

static json_t *config_object(const struct vm *vm, const char *key)
{
	const struct boot_source_config *b = &vm->cfg.boot;
	int k = device_kind_find(key);
	if (k >= 0)
		return device_kinds[k]->to_json(vm->cfg.devices[k]);
	if (strcmp(key, "boot-source") == 0) /* before PUT: an empty path and nulls */
		return json_pack("{s:s, s:o, s:o}", "kernel_image_path",
				 b->kernel_image_path ? b->kernel_image_path : "", "initrd_path",
				 b->initrd_path ? json_string(b->initrd_path) : json_null(),
				 "boot_args",
				 b->boot_args ? json_string(b->boot_args) : json_null());
	if (strcmp(key, "machine-config") == 0)
		return vmm_machine_config_json(vm);
	/* Firecracker always shows null for these two; ember shows what it writes to, in
	 * the form a config file takes back. */
	if (strcmp(key, "logger") == 0 && vm->log_path)
		return json_pack("{s:s}", "log_path", vm->log_path);
	if (strcmp(key, "metrics") == 0 && vm->metrics_path)
		return json_pack("{s:s}", "metrics_path", vm->metrics_path);
	return json_null();
}

json_t *vmm_config_json(const struct vm *vm)
{
	json_t *root = json_object();
	for (int i = 0; config_keys[i]; i++)
		json_object_set_new(root, config_keys[i], config_object(vm, config_keys[i]));
	for (int k = 0; device_kinds[k]; k++)
		if (!json_object_get(root, device_kinds[k]->key))
			json_object_set_new(root, device_kinds[k]->key,
					    device_kinds[k]->to_json(vm->cfg.devices[k]));
	return root;
}

int vmm_run(struct vm *vm)
{
	struct machine *m = &vm->m;
	int rc = evloop_run(&m->loop);
	if (rc)
		log_err("event loop failed: %s", strerror(-rc));
	machine_request_exit(m, rc ? 1 : 0); /* no-op if the VM already chose its code */
	/* Paused vCPUs wake up, see exiting and finish. */
	pthread_mutex_lock(&m->pause_lock);
	pthread_cond_broadcast(&m->pause_cond);
	pthread_mutex_unlock(&m->pause_lock);
	for (unsigned i = 0; vm->vcpus && i < m->nr_vcpus; i++)
		vcpu_stop(&vm->vcpus[i]);
	if (vm->metrics_path)
		metrics_flush(); /* the last interval's counts */
	return m->exit_code;
}

void vmm_destroy(struct vm *vm)
{
	builder_destroy(vm);
	free(vm->log_path);
	free(vm->metrics_path);
	if (vm->metrics_timer_fd >= 0)
		close(vm->metrics_timer_fd);
}
