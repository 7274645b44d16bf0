/* Snapshot create and load; see snapshot.h and snapshot_file.h for the format. */
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json_fields.h"
#include "core/log.h"
#include "legacy/i8042.h"
#include "legacy/serial.h"
#include "virtio/virtio.h"
#include "vmm/controller.h"
#include "vmm/device_table.h"
#include "vmm/snapshot_file.h"
#include "vmm/snapshot_mem.h"
#include "vmm/snapshot_uffd.h"
#include "x86/layout.h"
#include "x86/vcpu_state.h"

#define CREATE_ERR "Create snapshot error: "
#define LOAD_ERR   "Load snapshot error: "

/* err prefixed with Firecracker's "Create snapshot error: " or "Load snapshot error: ". */
static int prefixed(char *err, int rc, const char *prefix)
{
	char msg[ERR_LEN];
	snprintf(msg, sizeof(msg), "%s", err);
	return errf(err, rc, "%s%s", prefix, msg);
}

/* --- create --- */

static json_t *devices_json(const struct vm *vm)
{
	json_t *root = json_object();
	for (int k = 0; device_kinds[k]; k++)
		json_object_set_new(root, device_kinds[k]->key,
				    device_kinds[k]->to_json(vm->cfg.devices[k]));
	return root;
}

static void save_machine(const struct vm *vm, struct snap_writer *w)
{
	const struct guest_mem *mem = &vm->m.mem;
	snapw_u32(w, vm->m.nr_vcpus);
	snapw_u32(w, vm->cfg.machine.mem_size_mib);
	snapw_u8(w, vm->cfg.machine.smt);
	snapw_u32(w, mem->nr_regions);
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		snapw_u64(w, mem->regions[i].gpa);
		snapw_u64(w, mem->regions[i].size);
	}
	snapw_u32(w, vm->devices.nr);
}

/* Every section of the state file into w; *nr counts them. */
static int save_state(struct vm *vm, struct snap_writer *w, unsigned *nr, char *err)
{
	size_t s = snapw_begin(w, SNAP_MACHINE, 0);
	save_machine(vm, w);
	snapw_end(w, s);

	json_t *devices = devices_json(vm);
	char *conf = json_dumps(devices, JSON_COMPACT);
	json_decref(devices);
	s = snapw_begin(w, SNAP_CONFIG, 0);
	snapw_bytes(w, conf, conf ? strlen(conf) : 0);
	snapw_end(w, s);
	free(conf);
	if (!conf)
		return errf(err, -ENOMEM, "out of memory");

	s = snapw_begin(w, SNAP_KVM_VM, 0);
	int rc = vm_kvm_state_save(&vm->m, &vm->saved_clock, w, err);
	snapw_end(w, s);
	s = snapw_begin(w, SNAP_WALL_CLOCK, 0);
	snapw_u64(w, vm->saved_clock.realtime); /* see vmm_pause */
	snapw_end(w, s);
	*nr = 4;
	for (unsigned i = 0; !rc && i < vm->m.nr_vcpus; i++, ++*nr) {
		s = snapw_begin(w, SNAP_VCPU, i);
		rc = vcpu_state_save(&vm->vcpus[i], w, err);
		snapw_end(w, s);
	}
	if (rc)
		return rc;
	s = snapw_begin(w, SNAP_SERIAL, 0);
	serial_save(vm->serial, w);
	snapw_end(w, s);
	s = snapw_begin(w, SNAP_I8042, 0);
	i8042_save(vm->i8042, w);
	snapw_end(w, s);
	*nr += 2;

	for (unsigned i = 0; i < vm->devices.nr; i++, ++*nr) {
		struct virtio_dev *dev = vm->devices.devs[i];
		const struct device_kind *kind = device_kinds[vm->device_kind_of[i]];
		struct snap_writer transport = { 0 }, own = { 0 };
		virtio_mmio_save(dev, &transport);
		rc = kind->save(dev, &own, err);
		s = snapw_begin(w, SNAP_VIRTIO, dev->slot);
		snapw_blob(w, kind->key, (uint32_t)strlen(kind->key));
		snapw_blob(w, dev->label, (uint32_t)strlen(dev->label));
		snapw_blob(w, transport.buf, (uint32_t)transport.len);
		snapw_blob(w, own.buf, (uint32_t)own.len);
		snapw_end(w, s);
		rc = rc ? rc : transport.oom || own.oom ? errf(err, -ENOMEM, "out of memory") : 0;
		snapw_free(&transport);
		snapw_free(&own);
		if (rc)
			return rc;
	}
	return w->oom ? errf(err, -ENOMEM, "out of memory") : 0;
}

static int write_file(const char *path, const void *buf, size_t len, char *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return errf(err, -errno, "snapshot_path %s: %s", path, strerror(errno));
	const uint8_t *p = buf;
	int rc = 0;
	while (len && !rc) {
		ssize_t n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == 0 || errno != EINTR) {
			rc = errf(err, n ? -errno : -EIO, "snapshot_path %s: %s", path,
				  strerror(n ? errno : EIO));
		}
	}
	close(fd);
	return rc;
}

static int create(struct vm *vm, json_t *body, char *err)
{
	static const char *const keys[] = { "snapshot_path", "mem_file_path", "snapshot_type",
					    "version", NULL };
	const char *state_path, *mem_path, *type = NULL, *version;
	if (cfg_check_keys(body, "snapshot", keys, err) ||
	    cfg_get_str(body, "snapshot", "snapshot_path", true, &state_path, err) ||
	    cfg_get_str(body, "snapshot", "mem_file_path", true, &mem_path, err) ||
	    cfg_get_str(body, "snapshot", "snapshot_type", false, &type, err) ||
	    cfg_get_str(body, "snapshot", "version", false, &version, err))
		return -EINVAL;
	bool diff = type && strcmp(type, "Diff") == 0;
	if (type && !diff && strcmp(type, "Full") != 0)
		return cfg_fail(err, "snapshot_type '%.32s': Full or Diff", type);
	if (diff && !vm->m.mem.dirty)
		return cfg_fail(err, DIFF_NEEDS_TRACKING);
	if (vm->state == VM_RUNNING)
		return cfg_fail(err, "Cannot save the microVM state: Operation not allowed: "
				     "save/restore unavailable while running");
	for (unsigned i = 0; i < vm->devices.nr; i++) {
		const struct device_kind *kind = device_kinds[vm->device_kind_of[i]];
		if (!kind->save || !kind->restore)
			return cfg_fail(err,
					"%s '%s': this kind of device cannot be snapshotted yet",
					kind->key, vm->devices.devs[i]->label);
	}
	/* The CPU time too: on a busy host the wall time is mostly waiting for a core (vCPUs
	 * are parked, so the process's CPU time is this thread's). */
	uint64_t t0 = monotonic_ns(), cpu0 = process_cpu_ns();
	for (unsigned i = 0; i < vm->devices.nr; i++) {
		const struct device_kind *kind = device_kinds[vm->device_kind_of[i]];
		int rc = kind->quiesce ? kind->quiesce(vm->devices.devs[i], err) : 0;
		if (rc)
			return rc;
	}
	struct snap_writer w = { 0 };
	unsigned nr = 0;
	/* With tracking, every snapshot starts the next Diff afresh: the log is taken (and
	 * cleared) now, and given back if the snapshot fails. */
	struct snap_dirty dirty = { 0 };
	int rc = vm->m.mem.dirty ? snapshot_mem_collect(&vm->m, &dirty, err) : 0;
	snapshot_file_start(&w);
	if (!rc)
		rc = save_state(vm, &w, &nr, err);
	if (!rc) {
		size_t sec = snapw_begin(&w, SNAP_MEMORY, 0);
		snapshot_mem_save(&vm->m.mem, diff ? &dirty : NULL, &w);
		snapw_end(&w, sec);
		snapshot_file_seal(&w, nr + 1);
		/* Memory first: a state file on disk means its memory file is complete. */
		rc = w.oom ? errf(err, -ENOMEM, "out of memory")
			   : snapshot_mem_write(&vm->m, mem_path, diff ? &dirty : NULL, err);
	}
	if (!rc)
		rc = write_file(state_path, w.buf, w.len, err);
	if (!rc)
		log_info("snapshot: %s, %zu-byte state written to %s in %llu us (%llu us of CPU)",
			 diff ? "Diff" : "Full", w.len, state_path,
			 (unsigned long long)((monotonic_ns() - t0) / 1000),
			 (unsigned long long)((process_cpu_ns() - cpu0) / 1000));
	if (rc)
		snapshot_mem_restore_dirty(&vm->m, &dirty);
	snapshot_mem_free(&dirty);
	snapw_free(&w);
	return rc;
}

int vmm_snapshot_create(struct vm *vm, json_t *body, char *err)
{
	if (vm->state == VM_CONFIGURING)
		return errf(err, -EPERM, POST_BOOT_ONLY);
	int rc = create(vm, body, err);
	return rc ? prefixed(err, rc, CREATE_ERR) : 0;
}

/* --- load --- */

/* The state file parsed and checked before anything of the VM is built. */
struct loaded {
	struct snap_file file;
	unsigned nr_vcpus, mem_mib, nr_devices;
	bool smt;
	struct vm_kvm_state kvm;
	struct vcpu_state *vcpus;
	struct snap_mem_record mem;
	const char *uffd_path;	    /* the Uffd backend: its handler's socket */
	struct snapshot_uffd *uffd; /* and the hand-off, once made */
	json_t *overrides; /* the load request's body, for the kinds' override keys; or NULL */
	bool has_realtime; /* the snapshot says when it was taken (SNAP_WALL_CLOCK) */
	uint64_t realtime_ns;
};

static const struct snap_section *need(const struct snap_file *f, uint32_t tag, uint32_t inst,
				       const char *what, char *err)
{
	const struct snap_section *s = snapshot_file_find(f, tag, inst);
	if (!s)
		errf(err, -EINVAL, "the snapshot has no %s section", what);
	return s;
}

static struct snap_reader section_reader(const struct snap_section *s)
{
	return snapr_init(s->data, s->len);
}

static int parse_machine(struct loaded *l, char *err)
{
	const struct snap_section *s = need(&l->file, SNAP_MACHINE, 0, "machine", err);
	if (!s)
		return -EINVAL;
	struct snap_reader r = section_reader(s);
	l->nr_vcpus = snapr_u32(&r);
	l->mem_mib = snapr_u32(&r);
	l->smt = snapr_u8(&r) != 0;
	unsigned nr_regions = snapr_u32(&r);
	if (r.bad || l->nr_vcpus < 1 || l->nr_vcpus > VCPU_MAX)
		return errf(err, -EINVAL, "the snapshot has %u vCPUs (1 to %u)", l->nr_vcpus,
			    VCPU_MAX);
	if (l->mem_mib < MEM_MIB_MIN || l->mem_mib > MEM_MIB_MAX)
		return errf(err, -EINVAL, "the snapshot has %u MiB of memory (%u to %u)",
			    l->mem_mib, MEM_MIB_MIN, MEM_MIB_MAX);
	/* The layout this ember builds for that size, region by region. */
	uint64_t size = (uint64_t)l->mem_mib << 20;
	uint64_t low = size < MMIO_GAP_START ? size : MMIO_GAP_START;
	uint64_t want[2][2] = { { 0, low }, { MMIO_GAP_END, size - low } };
	unsigned want_nr = size > low ? 2 : 1;
	bool same = nr_regions == want_nr;
	for (unsigned i = 0; i < want_nr && same; i++) {
		uint64_t gpa = snapr_u64(&r), len = snapr_u64(&r);
		same = gpa == want[i][0] && len == want[i][1];
	}
	if (!same)
		return errf(err, -EINVAL,
			    "the snapshot's memory layout is not the one this ember builds for %u "
			    "MiB",
			    l->mem_mib);
	l->nr_devices = snapr_u32(&r);
	if (!snapr_done(&r) || l->nr_devices > VIRTIO_DEV_MAX)
		return errf(err, -EINVAL, "the snapshot's machine section is malformed");
	return 0;
}

int snapshot_config_apply(struct vm_config *cfg, json_t *root, json_t *overrides, char *err)
{
	const char *key;
	json_t *val;
	int rc = 0;
	for (int k = 0; json_is_object(overrides) && device_kinds[k] && !rc; k++) {
		const struct device_kind *kind = device_kinds[k];
		json_t *ov =
			kind->override_key ? json_object_get(overrides, kind->override_key) : NULL;
		json_t *saved = json_object_get(root, kind->key);
		if (ov && !json_is_null(ov))
			rc = kind->override(saved ? saved : json_null(), ov, err);
	}
	json_object_foreach (root, key, val) {
		if (rc)
			break;
		int k = device_kind_find(key);
		if (k < 0) {
			rc = errf(err, -EINVAL, "the snapshot has devices of unknown kind '%.64s'",
				  key);
			break;
		}
		if ((rc = device_kinds[k]->load(cfg->devices[k], val, err)))
			break;
	}
	return rc;
}

/* The devices' configuration into the (fresh) configuration, through each kind's checks. */
static int parse_config(struct vm_config *cfg, const struct loaded *l, char *err)
{
	const struct snap_section *s = need(&l->file, SNAP_CONFIG, 0, "configuration", err);
	if (!s)
		return -EINVAL;
	json_error_t jerr;
	json_t *root = json_loadb((const char *)s->data, s->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return errf(err, -EINVAL,
			    "the snapshot's device configuration is not a JSON object");
	}
	int rc = snapshot_config_apply(cfg, root, l->overrides, err);
	json_decref(root);
	return rc;
}

/* Everything that can be checked without a VM, in order; the devices' configuration goes
 * into cfg. */
static int parse_state(struct vm_config *cfg, struct loaded *l, const uint8_t *buf, size_t len,
		       char *err)
{
	int rc = snapshot_file_parse(buf, len, &l->file, err);
	if (rc || (rc = parse_machine(l, err)) ||
	    (rc = snapshot_mem_parse(&l->file, l->mem_mib, &l->mem, err)))
		return rc;
	const struct snap_section *s = need(&l->file, SNAP_KVM_VM, 0, "KVM VM", err);
	if (!s)
		return -EINVAL;
	struct snap_reader r = section_reader(s);
	if ((rc = vm_kvm_state_parse(&r, &l->kvm, err)))
		return rc;
	if ((s = snapshot_file_find(&l->file, SNAP_WALL_CLOCK, 0))) {
		r = section_reader(s);
		l->realtime_ns = snapr_u64(&r);
		if (!snapr_done(&r))
			return errf(err, -EINVAL, "the snapshot's wall-clock section is malformed");
		l->has_realtime = true;
	}
	l->vcpus = calloc(l->nr_vcpus, sizeof(*l->vcpus));
	if (!l->vcpus)
		return errf(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < l->nr_vcpus; i++) {
		if (!(s = need(&l->file, SNAP_VCPU, i, "vCPU", err)))
			return -EINVAL;
		r = section_reader(s);
		char why[ERR_LEN];
		if ((rc = vcpu_state_parse(&r, &l->vcpus[i], why)))
			return errf(err, rc, "vCPU %u: %.400s", i, why);
	}
	if (!need(&l->file, SNAP_SERIAL, 0, "serial", err) ||
	    !need(&l->file, SNAP_I8042, 0, "i8042", err))
		return -EINVAL;
	return parse_config(cfg, l, err);
}

/* A name from the file as printable text (the file is hostile: no terminal escapes). */
static void printable(char *out, size_t size, const struct snap_reader *blob)
{
	size_t n = 0;
	for (; n + 1 < size && n < blob->len; n++) {
		char c = (char)blob->p[n];
		out[n] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[n] = '\0';
}

/* The saved devices, as the sections of a checked file name them (restore_device matches
 * them against the configuration's). */
static void describe(const struct loaded *l, struct snapshot_info *info)
{
	info->major = l->file.major;
	info->minor = l->file.minor;
	info->nr_vcpus = l->nr_vcpus;
	info->tsc_khz = l->vcpus[0].tsc_khz;
	info->mem_mib = l->mem_mib;
	info->mem = l->mem;
	info->nr_devices = 0;
	for (unsigned i = 0; i < l->file.nr && info->nr_devices < VIRTIO_DEV_MAX; i++) {
		const struct snap_section *s = &l->file.sec[i];
		if (s->tag != SNAP_VIRTIO)
			continue;
		struct snap_reader r = section_reader(s);
		struct snap_reader key = snapr_blob(&r), label = snapr_blob(&r);
		struct snapshot_device *d = &info->devices[info->nr_devices++];
		d->slot = s->instance;
		printable(d->kind, sizeof(d->kind), &key);
		printable(d->id, sizeof(d->id), &label);
	}
}

int vmm_snapshot_inspect(const uint8_t *buf, size_t len, struct snapshot_info *info, char *err)
{
	struct loaded *l = calloc(1, sizeof(*l));
	struct vm_config cfg;
	vm_config_init(&cfg);
	int rc = l ? parse_state(&cfg, l, buf, len, err) : errf(err, -ENOMEM, "out of memory");
	if (!rc && info)
		describe(l, info);
	vm_config_free(&cfg);
	if (l)
		free(l->vcpus);
	free(l);
	return rc;
}

int vmm_snapshot_check(const uint8_t *buf, size_t len, char *err)
{
	return vmm_snapshot_inspect(buf, len, NULL, err);
}

static int restore_device(struct vm *vm, unsigned i, const struct loaded *l, char *err)
{
	struct virtio_dev *dev = vm->devices.devs[i];
	const struct device_kind *kind = device_kinds[vm->device_kind_of[i]];
	const struct snap_section *s = need(&l->file, SNAP_VIRTIO, dev->slot, "virtio device", err);
	if (!s)
		return -EINVAL;
	struct snap_reader r = section_reader(s);
	struct snap_reader key = snapr_blob(&r), label = snapr_blob(&r);
	struct snap_reader transport = snapr_blob(&r), own = snapr_blob(&r);
	if (!snapr_done(&r))
		return errf(err, -EINVAL, "virtio slot %u: malformed section", dev->slot);
	if (key.len != strlen(kind->key) || memcmp(key.p, kind->key, key.len) ||
	    label.len != strlen(dev->label) || memcmp(label.p, dev->label, label.len))
		return errf(err, -EINVAL, "virtio slot %u: the saved device is not %s '%s'",
			    dev->slot, kind->key, dev->label);
	if (!kind->restore)
		return errf(err, -EINVAL, "%s '%s': this kind of device cannot be restored yet",
			    kind->key, dev->label);
	int rc = virtio_mmio_restore(dev, &transport, err);
	return rc ? rc : kind->restore(dev, &own, err);
}

/* builder_restore's apply: the saved state onto the new devices and vCPUs. */
static int apply(struct vm *vm, void *arg, char *err)
{
	struct loaded *l = arg;
	if (vm->devices.nr != l->nr_devices)
		return errf(err, -EINVAL,
			    "the snapshot has %u virtio devices, its configuration %u",
			    l->nr_devices, vm->devices.nr);
	int rc = vm_kvm_state_restore(&vm->m, &l->kvm, err);
	for (unsigned i = 0; !rc && i < l->nr_vcpus; i++)
		rc = vcpu_state_restore(&vm->vcpus[i], &l->vcpus[i], err);
	if (rc)
		return rc;
	struct snap_reader r = section_reader(snapshot_file_find(&l->file, SNAP_SERIAL, 0));
	if ((rc = serial_restore(vm->serial, &r, err)))
		return rc;
	r = section_reader(snapshot_file_find(&l->file, SNAP_I8042, 0));
	if ((rc = i8042_restore(vm->i8042, &r, err)))
		return rc;
	for (unsigned i = 0; !rc && i < vm->devices.nr; i++)
		rc = restore_device(vm, i, l, err);
	/* Last, so that a handler that took the hand-off and went fails the load. */
	if (!rc && l->uffd)
		rc = snapshot_uffd_check(l->uffd, err);
	return rc;
}

/* builder_restore's mem_ready with the Uffd backend. */
static int uffd_ready(const struct guest_mem *mem, void *arg, char *err)
{
	struct loaded *l = arg;
	return snapshot_uffd_handoff(mem, l->uffd_path, &l->uffd, err);
}

static int read_state_file(const char *path, uint8_t **buf, size_t *len, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int rc = errf(err, -errno, "snapshot_path %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	int rc = 0;
	if (!S_ISREG(st.st_mode) || st.st_size > SNAP_FILE_MAX)
		rc = errf(err, -EINVAL, "snapshot_path %s: not a regular file of at most %u MiB",
			  path, SNAP_FILE_MAX >> 20);
	else if (!(*buf = malloc((size_t)st.st_size + 1)))
		rc = errf(err, -ENOMEM, "out of memory");
	ssize_t n = rc ? 0 : read(fd, *buf, (size_t)st.st_size + 1);
	if (!rc && n < 0)
		rc = errf(err, -errno, "snapshot_path %s: %s", path, strerror(errno));
	*len = n > 0 ? (size_t)n : 0;
	close(fd);
	return rc;
}

static int open_memory(const char *path, uint64_t size, int *fd, char *err)
{
	struct stat st;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errf(err, -errno, "memory file %s: %s", path, strerror(errno));
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		int rc = errf(err, -EINVAL,
			      "memory file %s: %lld bytes, the snapshot's memory is %llu", path,
			      (long long)st.st_size, (unsigned long long)size);
		close(*fd);
		return rc;
	}
	return 0;
}

struct load_request {
	const char *state_path, *mem_path; /* mem_path: the handler's socket with uffd */
	bool resume, uffd;
	bool track; /* track_dirty_pages, or the deprecated enable_diff_snapshots */
	bool clock_realtime;
	json_t *body; /* for the device kinds' override keys */
};

/* cfg_check_keys with the device kinds' override keys allowed too: parse_config hands each
 * to its kind. */
static int check_load_keys(json_t *body, const char *const *keys, char *err)
{
	json_t *rest = json_copy(body);
	if (!rest)
		return errf(err, -ENOMEM, "out of memory");
	for (int k = 0; device_kinds[k]; k++)
		if (device_kinds[k]->override_key)
			json_object_del(rest, device_kinds[k]->override_key);
	int rc = cfg_check_keys(rest, "snapshot", keys, err);
	json_decref(rest);
	return rc;
}

static int parse_load_body(json_t *body, struct load_request *req, char *err)
{
	static const char *const keys[] = { "snapshot_path",	 "mem_backend",
					    "mem_file_path",	 "enable_diff_snapshots",
					    "track_dirty_pages", "resume_vm",
					    "clock_realtime",	 NULL };
	static const char *const backend_keys[] = { "backend_type", "backend_path", NULL };
	bool diff = false, dirty = false;
	const char *type = NULL;
	*req = (struct load_request){ .body = body };
	if (check_load_keys(body, keys, err) ||
	    cfg_get_bool(body, "snapshot", "clock_realtime", false, &req->clock_realtime, err) ||
	    cfg_get_str(body, "snapshot", "snapshot_path", true, &req->state_path, err) ||
	    cfg_get_str(body, "snapshot", "mem_file_path", false, &req->mem_path, err) ||
	    cfg_get_bool(body, "snapshot", "enable_diff_snapshots", false, &diff, err) ||
	    cfg_get_bool(body, "snapshot", "track_dirty_pages", false, &dirty, err) ||
	    cfg_get_bool(body, "snapshot", "resume_vm", false, &req->resume, err))
		return -EINVAL;
	json_t *backend = json_object_get(body, "mem_backend");
	if (backend && req->mem_path)
		return cfg_fail(err, "snapshot: mem_backend and the deprecated mem_file_path "
				     "exclude each other");
	if (!backend && !req->mem_path)
		return cfg_fail(err, "snapshot: mem_backend is required");
	if (backend &&
	    (!json_is_object(backend) ||
	     cfg_check_keys(backend, "mem_backend", backend_keys, err) ||
	     cfg_get_str(backend, "mem_backend", "backend_type", true, &type, err) ||
	     cfg_get_str(backend, "mem_backend", "backend_path", true, &req->mem_path, err)))
		return json_is_object(backend) ? -EINVAL
					       : cfg_fail(err, "mem_backend: expected an object");
	req->uffd = type && strcmp(type, "Uffd") == 0;
	if (type && strcmp(type, "File") != 0 && !req->uffd)
		return cfg_fail(err, "mem_backend: backend_type '%.32s' is neither File nor Uffd",
				type);
	req->track = diff || dirty;
	return 0;
}

static int load(struct vm *vm, const struct load_request *req, char *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct loaded *l = calloc(1, sizeof(*l));
	int mem_fd = -1;
	if (!l)
		return errf(err, -ENOMEM, "out of memory");
	l->overrides = req->body;
	int rc = read_state_file(req->state_path, &buf, &len, err);
	if (!rc)
		rc = parse_state(&vm->cfg, l, buf, len, err);
	if (!rc && req->clock_realtime && !l->has_realtime)
		rc = errf(err, -EINVAL,
			  "clock_realtime: the snapshot does not say when it was "
			  "taken (made by an older ember)");
	int max_vcpus =
		vm->kvm_ready ? ioctl(vm->m.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS) : 0;
	if (!rc && max_vcpus > 0 && l->nr_vcpus > (unsigned)max_vcpus)
		rc = errf(err, -EINVAL, "the snapshot has %u vCPUs, this host's KVM runs %d",
			  l->nr_vcpus, max_vcpus);
	if (!rc && !req->uffd)
		rc = open_memory(req->mem_path, (uint64_t)l->mem_mib << 20, &mem_fd, err);
	if (!rc) {
		vm->cfg.machine.vcpu_count = l->nr_vcpus;
		vm->cfg.machine.mem_size_mib = l->mem_mib;
		vm->cfg.machine.smt = l->smt;
		vm->cfg.machine.track_dirty_pages = req->track;
		if (l->mem.diff)
			log_warn("snapshot %s is a Diff: its memory file must be merged onto its "
				 "base first (ember-snap merge BASE_MEM DIFF_MEM)",
				 req->state_path);
		l->uffd_path = req->mem_path;
		struct builder_snapshot from = {
			.mem_fd = mem_fd, .apply = apply, .arg = l, .mem_ready = uffd_ready
		};
		rc = builder_restore(vm, &from, err);
		/* The mapping keeps the file; the descriptor is not needed any more. */
		if (mem_fd >= 0)
			close(mem_fd);
	}
	if (!rc && l->uffd)
		snapshot_uffd_watch(vm, l->uffd);
	else
		snapshot_uffd_close(l->uffd);
	if (rc) {
		/* The configuration taken from the file goes too: the process is as it started. */
		vm_config_free(&vm->cfg);
		vm_config_init(&vm->cfg);
	} else {
		vm->saved_clock = l->kvm.clock;
		vm->saved_clock.realtime = l->realtime_ns;
		vm->clock_saved = true; /* set when the vCPUs resume */
		vm->clock_realtime = req->clock_realtime;
	}
	free(l->vcpus);
	free(l);
	free(buf);
	return rc;
}

int vmm_snapshot_load(struct vm *vm, json_t *body, char *err)
{
	uint64_t t0 = monotonic_ns();
	struct load_request req;
	int rc = parse_load_body(body, &req, err);
	if (!rc && vm->state != VM_CONFIGURING)
		return errf(err, -EPERM, PRE_BOOT_ONLY);
	if (!rc && vm->configured)
		rc = cfg_fail(err, "Loading a microVM snapshot not allowed after configuring "
				   "boot-specific resources.");
	if (!rc)
		rc = load(vm, &req, err);
	if (rc)
		return prefixed(err, rc, LOAD_ERR);
	vm->state = VM_PAUSED;
	vm->configured = true;
	if (req.resume && (rc = vmm_resume(vm, err)))
		return prefixed(err, rc, LOAD_ERR);
	log_info("snapshot %s loaded in %llu us%s", req.state_path,
		 (unsigned long long)((monotonic_ns() - t0) / 1000),
		 req.resume ? ", vCPUs running" : ", paused");
	return 0;
}
