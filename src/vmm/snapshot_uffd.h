/* The Uffd memory backend of PUT /snapshot/load (Firecracker's hand-off): guest memory is
 * anonymous, a userfaultfd watches its missing pages, and a page fault handler outside ember
 * fills them. ember connects to the handler's Unix socket (backend_path) and sends, in one
 * message, a JSON array with one object per memory region
 *
 *   {"base_host_virt_addr": N, "size": N, "offset": N, "page_size": 4096,
 *    "page_size_kib": 4096}
 *
 * (offset: where the region's bytes lie in the memory file, regions back to back;
 * page_size_kib is Firecracker's deprecated name, in bytes as Firecracker sends it) and the
 * userfaultfd as SCM_RIGHTS. ember keeps its own copy of the userfaultfd, so that a handler
 * that dies leaves the guest waiting rather than running on zero pages, and keeps the
 * connection: its end is the handler's end. */
#ifndef EMBER_SNAPSHOT_UFFD_H
#define EMBER_SNAPSHOT_UFFD_H

#include "core/guest_mem.h"
#include "vmm/vm.h"

struct snapshot_uffd;

/* Creates the userfaultfd, registers mem's regions with it (missing pages) and hands it to
 * the handler listening at path. Memory must be freshly mapped and untouched. On success
 * *out holds the userfaultfd and the connection; 0 or -errno with err. */
int snapshot_uffd_handoff(const struct guest_mem *mem, const char *path, struct snapshot_uffd **out,
			  char *err);
/* Whether the handler is still connected (the load's last step): 0 or -EPIPE with err. */
int snapshot_uffd_check(struct snapshot_uffd *u, char *err);
/* The load succeeded: vm keeps u. A thread watches the connection from the hand-off on; a
 * handler that goes away before every page of guest memory is in place stops the VM
 * (exit status 3). */
void snapshot_uffd_watch(struct vm *vm, struct snapshot_uffd *u);
/* A failed load: closes both descriptors. NULL is fine. */
void snapshot_uffd_close(struct snapshot_uffd *u);

#endif
