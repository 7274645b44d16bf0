/* vCPU and VM state for snapshots; see vcpu_state.h. KVM's ordering rules, as QEMU and
 * Firecracker follow them:
 * - save: KVM_GET_MP_STATE first (it runs pending APIC events, which change the rest),
 *   KVM_GET_VCPU_EVENTS last;
 * - restore: CPUID first (it decides which MSRs and XSAVE features exist); SET_REGS clears
 *   pending exceptions, so SET_VCPU_EVENTS (which restores them) comes last; SET_SREGS
 *   restores the APIC base, so SET_LAPIC comes after it; the TSC deadline MSR only sticks
 *   with the LAPIC in its mode, so SET_MSRS comes after SET_LAPIC. */
#include "x86/vcpu_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/log.h"

/* The MSRs a guest's state lives in beyond regs and sregs (EFER and the APIC base are in
 * sregs). Only these are saved, and only these are accepted from a file. */
static const uint32_t saved_msrs[] = {
	0x10,				    /* TSC */
	0x3b,				    /* TSC_ADJUST */
	0x174,	    0x175,	0x176,	    /* SYSENTER_CS/ESP/EIP */
	0x1a0,				    /* MISC_ENABLE */
	0x277,				    /* PAT */
	0x2ff,				    /* MTRR_DEF_TYPE */
	0x6e0,				    /* TSC_DEADLINE: after the LAPIC */
	0xc0000081, 0xc0000082, 0xc0000083, /* STAR, LSTAR, CSTAR */
	0xc0000084,			    /* SYSCALL_MASK (FMASK) */
	0xc0000102,			    /* KERNEL_GS_BASE */
	0xc0000103,			    /* TSC_AUX */
	0x11,	    0x12,		    /* kvm-clock, old numbers: wall clock, system time */
	0x4b564d00, 0x4b564d01,		    /* kvm-clock: wall clock, system time */
	0x4b564d02, 0x4b564d03, 0x4b564d04, /* async PF, steal time, PV EOI */
	0x4b564d05, 0x4b564d06,		    /* poll control, async PF interrupt */
};
#define NR_SAVED_MSRS (sizeof(saved_msrs) / sizeof(saved_msrs[0]))
_Static_assert(NR_SAVED_MSRS <= VCPU_STATE_MSRS_MAX, "room for every saved MSR");

static bool msr_known(uint32_t index)
{
	for (unsigned i = 0; i < NR_SAVED_MSRS; i++)
		if (saved_msrs[i] == index)
			return true;
	return false;
}

/* The saved MSRs this host's KVM lists (KVM_GET_MSR_INDEX_LIST), in saved_msrs' order. */
static int host_msrs(int kvm_fd, uint32_t *out, unsigned *n, char *err)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return errf(err, -errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	struct kvm_msr_list *list = malloc(sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return errf(err, -ENOMEM, "out of memory");
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		int rc = errf(err, -errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		free(list);
		return rc;
	}
	*n = 0;
	for (unsigned i = 0; i < NR_SAVED_MSRS; i++)
		for (unsigned j = 0; j < list->nmsrs; j++)
			if (list->indices[j] == saved_msrs[i]) {
				out[(*n)++] = saved_msrs[i];
				break;
			}
	free(list);
	return 0;
}

#define GET(vcpu, req, arg, err)                                                                   \
	(ioctl((vcpu)->fd, (req), (arg)) < 0                                                       \
		 ? errf((err), -errno, "vCPU %u: " #req ": %s", (vcpu)->index, strerror(errno))    \
		 : 0)

int vcpu_state_save(struct vcpu *vcpu, struct snap_writer *w, char *err)
{
	struct vcpu_state *st = calloc(1, sizeof(*st));
	if (!st)
		return errf(err, -ENOMEM, "out of memory");
	int fd = vcpu->fd, rc;
	int kvm_fd = vcpu->machine->kvm_fd;
	st->has_xsave = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	st->has_xcrs = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	if ((rc = GET(vcpu, KVM_GET_MP_STATE, &st->mp_state, err)) ||
	    (rc = GET(vcpu, KVM_GET_REGS, &st->regs, err)) ||
	    (rc = GET(vcpu, KVM_GET_SREGS, &st->sregs, err)) ||
	    (rc = st->has_xsave ? GET(vcpu, KVM_GET_XSAVE, &st->xsave, err)
				: GET(vcpu, KVM_GET_FPU, &st->fpu, err)) ||
	    (st->has_xcrs && (rc = GET(vcpu, KVM_GET_XCRS, &st->xcrs, err))) ||
	    (rc = GET(vcpu, KVM_GET_DEBUGREGS, &st->debugregs, err)) ||
	    (rc = GET(vcpu, KVM_GET_LAPIC, &st->lapic, err)))
		goto out;
	uint32_t idx[NR_SAVED_MSRS];
	unsigned n = 0;
	if ((rc = host_msrs(kvm_fd, idx, &n, err)))
		goto out;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[NR_SAVED_MSRS];
	} msrs = { .hdr.nmsrs = n };
	for (unsigned i = 0; i < n; i++)
		msrs.e[i].index = idx[i];
	int got = ioctl(fd, KVM_GET_MSRS, &msrs);
	if (got < 0 || (unsigned)got < n) {
		rc = errf(err, -EIO, "vCPU %u: KVM_GET_MSRS read %d of %u (MSR 0x%x)", vcpu->index,
			  got, n, got >= 0 ? idx[got] : 0);
		goto out;
	}
	struct {
		struct kvm_cpuid2 hdr;
		struct kvm_cpuid_entry2 e[VCPU_STATE_CPUID_MAX];
	} cpuid = { .hdr.nent = VCPU_STATE_CPUID_MAX };
	if ((rc = GET(vcpu, KVM_GET_CPUID2, &cpuid, err)) ||
	    (rc = GET(vcpu, KVM_GET_VCPU_EVENTS, &st->events, err)))
		goto out;
	/* The TSC's rate is the guest's clock: a host that runs another one must scale it. */
	int khz = ioctl(fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0) {
		rc = errf(err, khz < 0 ? -errno : -EIO, "vCPU %u: KVM_GET_TSC_KHZ: %s", vcpu->index,
			  khz < 0 ? strerror(errno) : "no frequency");
		goto out;
	}

	if (vcpu->index == 0)
		log_debug("snapshot: %u of %u MSRs listed by this host's KVM, %s, %s", n,
			  (unsigned)NR_SAVED_MSRS, st->has_xsave ? "XSAVE" : "FPU only",
			  st->has_xcrs ? "XCRs" : "no XCRs");
	snapw_blob(w, &st->mp_state, sizeof(st->mp_state));
	snapw_blob(w, &st->regs, sizeof(st->regs));
	snapw_blob(w, &st->sregs, sizeof(st->sregs));
	snapw_u8(w, st->has_xsave);
	if (st->has_xsave)
		snapw_blob(w, &st->xsave, sizeof(st->xsave));
	else
		snapw_blob(w, &st->fpu, sizeof(st->fpu));
	snapw_u8(w, st->has_xcrs);
	if (st->has_xcrs)
		snapw_blob(w, &st->xcrs, sizeof(st->xcrs));
	snapw_blob(w, &st->debugregs, sizeof(st->debugregs));
	snapw_blob(w, &st->lapic, sizeof(st->lapic));
	snapw_u32(w, n);
	for (unsigned i = 0; i < n; i++) {
		snapw_u32(w, msrs.e[i].index);
		snapw_u64(w, msrs.e[i].data);
	}
	snapw_blob(w, &st->events, sizeof(st->events));
	snapw_u32(w, cpuid.hdr.nent);
	snapw_bytes(w, cpuid.e, cpuid.hdr.nent * sizeof(cpuid.e[0]));
	snapw_u32(w, (uint32_t)khz);
out:
	free(st);
	return rc;
}

int vcpu_state_parse(struct snap_reader *r, struct vcpu_state *st, char *err)
{
	memset(st, 0, sizeof(*st));
	snapr_blob_exact(r, &st->mp_state, sizeof(st->mp_state));
	snapr_blob_exact(r, &st->regs, sizeof(st->regs));
	snapr_blob_exact(r, &st->sregs, sizeof(st->sregs));
	st->has_xsave = snapr_u8(r);
	if (st->has_xsave)
		snapr_blob_exact(r, &st->xsave, sizeof(st->xsave));
	else
		snapr_blob_exact(r, &st->fpu, sizeof(st->fpu));
	st->has_xcrs = snapr_u8(r);
	if (st->has_xcrs)
		snapr_blob_exact(r, &st->xcrs, sizeof(st->xcrs));
	snapr_blob_exact(r, &st->debugregs, sizeof(st->debugregs));
	snapr_blob_exact(r, &st->lapic, sizeof(st->lapic));
	if (r->bad)
		return errf(err, -EINVAL, "vCPU state: a register block has the wrong size");
	st->nr_msrs = snapr_u32(r);
	if (st->nr_msrs > VCPU_STATE_MSRS_MAX)
		return errf(err, -EINVAL, "vCPU state: %u MSRs (at most %u)", st->nr_msrs,
			    VCPU_STATE_MSRS_MAX);
	for (unsigned i = 0; i < st->nr_msrs; i++) {
		st->msrs[i].index = snapr_u32(r);
		st->msrs[i].data = snapr_u64(r);
		if (!r->bad && !msr_known(st->msrs[i].index))
			return errf(err, -EINVAL, "vCPU state: MSR 0x%x is not one ember restores",
				    st->msrs[i].index);
	}
	snapr_blob_exact(r, &st->events, sizeof(st->events));
	st->nr_cpuid = snapr_u32(r);
	if (st->nr_cpuid > VCPU_STATE_CPUID_MAX)
		return errf(err, -EINVAL, "vCPU state: %u CPUID entries (at most %u)", st->nr_cpuid,
			    VCPU_STATE_CPUID_MAX);
	snapr_bytes(r, st->cpuid, st->nr_cpuid * sizeof(st->cpuid[0]));
	/* Format 1.3 and later end with the TSC frequency; older files have none. */
	if (!r->bad && r->len - r->off == 4 && !(st->tsc_khz = snapr_u32(r)))
		return errf(err, -EINVAL, "vCPU state: a TSC frequency of 0 kHz");
	if (!snapr_done(r))
		return errf(err, -EINVAL, "vCPU state: truncated or with trailing bytes");
	return 0;
}

#define SET(vcpu, req, arg, err) GET(vcpu, req, (void *)(arg), err)

/* The saved TSC frequency onto this host's vCPU: nothing to do within Firecracker's
 * tolerance of 250 parts per million, else KVM scales it (KVM_SET_TSC_KHZ) or the load
 * fails, naming both rates (a guest whose clock ran at another speed would drift). */
static int set_tsc_khz(struct vcpu *vcpu, const struct vcpu_state *st, char *err)
{
	int host = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);
	if (!st->tsc_khz || host <= 0)
		return 0;
	uint64_t diff = st->tsc_khz > (uint32_t)host ? st->tsc_khz - (uint32_t)host
						     : (uint32_t)host - st->tsc_khz;
	if (diff * 4000 <= (uint64_t)host)
		return 0;
	if (ioctl(vcpu->fd, KVM_SET_TSC_KHZ, (unsigned long)st->tsc_khz) == 0)
		return 0;
	return errf(err, -EINVAL,
		    "vCPU %u: the snapshot's TSC runs at %u kHz, this host's at %d kHz, and its "
		    "KVM cannot scale it (KVM_SET_TSC_KHZ: %s)",
		    vcpu->index, st->tsc_khz, host, strerror(errno));
}

int vcpu_state_restore(struct vcpu *vcpu, const struct vcpu_state *st, char *err)
{
	struct {
		struct kvm_cpuid2 hdr;
		struct kvm_cpuid_entry2 e[VCPU_STATE_CPUID_MAX];
	} cpuid = { .hdr.nent = st->nr_cpuid };
	memcpy(cpuid.e, st->cpuid, st->nr_cpuid * sizeof(st->cpuid[0]));
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[VCPU_STATE_MSRS_MAX];
	} msrs = { .hdr.nmsrs = st->nr_msrs };
	memcpy(msrs.e, st->msrs, st->nr_msrs * sizeof(st->msrs[0]));
	int rc;
	if ((rc = SET(vcpu, KVM_SET_CPUID2, &cpuid, err)) || (rc = set_tsc_khz(vcpu, st, err)) ||
	    (rc = SET(vcpu, KVM_SET_MP_STATE, &st->mp_state, err)) ||
	    (rc = SET(vcpu, KVM_SET_REGS, &st->regs, err)) ||
	    (rc = SET(vcpu, KVM_SET_SREGS, &st->sregs, err)) ||
	    (rc = st->has_xsave ? SET(vcpu, KVM_SET_XSAVE, &st->xsave, err)
				: SET(vcpu, KVM_SET_FPU, &st->fpu, err)) ||
	    (st->has_xcrs && (rc = SET(vcpu, KVM_SET_XCRS, &st->xcrs, err))) ||
	    (rc = SET(vcpu, KVM_SET_DEBUGREGS, &st->debugregs, err)) ||
	    (rc = SET(vcpu, KVM_SET_LAPIC, &st->lapic, err)))
		return rc;
	int set = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
	if (set < 0 || (unsigned)set < st->nr_msrs)
		return errf(err, -EINVAL, "vCPU %u: this host's KVM refused MSR 0x%x", vcpu->index,
			    set >= 0 ? st->msrs[set].index : 0);
	return SET(vcpu, KVM_SET_VCPU_EVENTS, &st->events, err);
}

int vm_kvm_state_save(struct machine *m, const struct kvm_clock_data *clock, struct snap_writer *w,
		      char *err)
{
	struct vm_kvm_state st = { .clock = *clock };
	if (ioctl(m->vm_fd, KVM_GET_PIT2, &st.pit) < 0)
		return errf(err, -errno, "KVM_GET_PIT2: %s", strerror(errno));
	for (unsigned i = 0; i < 3; i++) {
		st.chips[i].chip_id = i;
		if (ioctl(m->vm_fd, KVM_GET_IRQCHIP, &st.chips[i]) < 0)
			return errf(err, -errno, "KVM_GET_IRQCHIP %u: %s", i, strerror(errno));
	}
	snapw_u64(w, st.clock.clock);
	snapw_blob(w, &st.pit, sizeof(st.pit));
	for (unsigned i = 0; i < 3; i++)
		snapw_blob(w, &st.chips[i], sizeof(st.chips[i]));
	return 0;
}

int vm_kvm_state_parse(struct snap_reader *r, struct vm_kvm_state *st, char *err)
{
	memset(st, 0, sizeof(*st));
	st->clock.clock = snapr_u64(r);
	snapr_blob_exact(r, &st->pit, sizeof(st->pit));
	for (unsigned i = 0; i < 3; i++) {
		snapr_blob_exact(r, &st->chips[i], sizeof(st->chips[i]));
		if (!r->bad && st->chips[i].chip_id != i)
			return errf(err, -EINVAL, "VM state: irqchip %u has id %u", i,
				    st->chips[i].chip_id);
	}
	if (!snapr_done(r))
		return errf(err, -EINVAL, "VM state: truncated or with trailing bytes");
	return 0;
}

int vm_kvm_state_restore(struct machine *m, const struct vm_kvm_state *st, char *err)
{
	if (ioctl(m->vm_fd, KVM_SET_PIT2, &st->pit) < 0)
		return errf(err, -errno, "KVM_SET_PIT2: %s", strerror(errno));
	for (unsigned i = 0; i < 3; i++)
		if (ioctl(m->vm_fd, KVM_SET_IRQCHIP, &st->chips[i]) < 0)
			return errf(err, -errno, "KVM_SET_IRQCHIP %u: %s", i, strerror(errno));
	return 0;
}
