#include "x86/loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "x86/layout.h"

#define MAX_PHDRS 64

/* Reads exactly len bytes at off; -EIO on a short file. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Looks for the "Linux" ELF notes that every kernel since 4.18 carries, and for symbols
 * of the PVM guest support (arch/x86/kernel/pvm.c) in the symbol table. */
static void classify_elf(int fd, const Elf64_Ehdr *eh, const Elf64_Phdr *ph, uint64_t file_size,
			 struct kernel_image *k)
{
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_NOTE || ph[i].p_filesz > (1 << 16) ||
		    ph[i].p_offset + ph[i].p_filesz > file_size)
			continue;
		uint8_t *notes = malloc(ph[i].p_filesz);
		if (!notes || read_at(fd, notes, ph[i].p_filesz, ph[i].p_offset)) {
			free(notes);
			continue;
		}
		for (uint64_t off = 0; off + sizeof(Elf64_Nhdr) <= ph[i].p_filesz;) {
			Elf64_Nhdr *n = (Elf64_Nhdr *)(notes + off);
			uint64_t name_off = off + sizeof(*n);
			if (n->n_namesz == 6 && name_off + 6 <= ph[i].p_filesz &&
			    memcmp(notes + name_off, "Linux", 6) == 0)
				k->is_linux = true;
			off = name_off + ((n->n_namesz + 3ULL) & ~3ULL) +
			      ((n->n_descsz + 3ULL) & ~3ULL);
		}
		free(notes);
	}
	if (!k->is_linux || eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shnum == 0 || eh->e_shnum > 4096)
		return;
	size_t shsz = (size_t)eh->e_shnum * sizeof(Elf64_Shdr);
	Elf64_Shdr *sh = malloc(shsz);
	if (!sh || read_at(fd, sh, shsz, eh->e_shoff)) {
		free(sh);
		return;
	}
	for (unsigned i = 0; i < eh->e_shnum && !k->is_pvm_guest; i++) {
		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
			continue;
		const Elf64_Shdr *strtab = &sh[sh[i].sh_link];
		if (strtab->sh_size > (64u << 20) ||
		    strtab->sh_offset + strtab->sh_size > file_size)
			continue;
		char *str = malloc(strtab->sh_size + 1);
		if (!str || read_at(fd, str, strtab->sh_size, strtab->sh_offset)) {
			free(str);
			continue;
		}
		str[strtab->sh_size] = '\0';
		/* The string table holds every symbol name: a search in it is enough. */
		for (uint64_t off = 0; off < strtab->sh_size; off += strlen(str + off) + 1) {
			if (strncmp(str + off, "pvm_", 4) == 0 && strstr(str + off, "guest")) {
				k->is_pvm_guest = true;
				break;
			}
		}
		free(str);
	}
	free(sh);
}

static int load_elf(const struct guest_mem *mem, int fd, const char *path, uint64_t file_size,
		    struct kernel_image *k, char *err)
{
	Elf64_Ehdr eh;
	if (file_size < sizeof(eh) || read_at(fd, &eh, sizeof(eh), 0))
		return errf(err, -EINVAL, "kernel %s: truncated ELF header", path);
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return errf(err, -EINVAL, "kernel %s: not a 64-bit little-endian ELF", path);
	if (eh.e_machine != EM_X86_64)
		return errf(err, -EINVAL, "kernel %s: ELF machine %u is not x86_64", path,
			    eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return errf(err, -EINVAL, "kernel %s: ELF is not an executable", path);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS)
		return errf(err, -EINVAL, "kernel %s: bad program header table", path);
	Elf64_Phdr ph[MAX_PHDRS];
	if (eh.e_phoff > file_size || read_at(fd, ph, eh.e_phnum * sizeof(Elf64_Phdr), eh.e_phoff))
		return errf(err, -EINVAL, "kernel %s: truncated program header table", path);

	bool entry_loaded = false;
	unsigned loads = 0;
	k->load_end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD)
			continue;
		loads++;
		if (p->p_filesz > p->p_memsz || p->p_offset > file_size ||
		    p->p_filesz > file_size - p->p_offset)
			return errf(err, -EINVAL,
				    "kernel %s: segment %u extends past the end of the file "
				    "(truncated?)",
				    path, i);
		if (p->p_paddr < HIMEM_START)
			return errf(err, -EINVAL,
				    "kernel %s: segment %u at 0x%llx would overwrite the boot "
				    "structures below 1 MiB",
				    path, i, (unsigned long long)p->p_paddr);
		uint8_t *dst = guest_mem_ptr_w(mem, p->p_paddr, p->p_memsz);
		if (!dst)
			return errf(err, -EINVAL,
				    "kernel %s: segment %u (0x%llx, %llu bytes) does not fit in "
				    "guest memory (%llu MiB)",
				    path, i, (unsigned long long)p->p_paddr,
				    (unsigned long long)p->p_memsz,
				    (unsigned long long)(mem->size >> 20));
		if (read_at(fd, dst, p->p_filesz, p->p_offset))
			return errf(err, -EIO, "kernel %s: cannot read segment %u", path, i);
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		if (eh.e_entry >= p->p_paddr && eh.e_entry - p->p_paddr < p->p_memsz)
			entry_loaded = true;
		if (p->p_paddr + p->p_memsz > k->load_end)
			k->load_end = p->p_paddr + p->p_memsz;
	}
	if (loads == 0)
		return errf(err, -EINVAL, "kernel %s: ELF has no loadable segment", path);
	if (!entry_loaded)
		return errf(err, -EINVAL,
			    "kernel %s: entry point 0x%llx is outside the loaded segments", path,
			    (unsigned long long)eh.e_entry);
	k->entry = eh.e_entry;
	k->is_bzimage = false;
	k->initrd_addr_max = 0x37ffffff; /* the boot protocol's default for old kernels */
	k->cmdline_max = CMDLINE_MAX - 1;
	classify_elf(fd, &eh, ph, file_size, k);
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int load_bzimage(const struct guest_mem *mem, int fd, const char *path, uint64_t file_size,
			struct kernel_image *k, char *err)
{
	uint8_t boot_sector[1024];
	if (file_size < sizeof(boot_sector) || read_at(fd, boot_sector, sizeof(boot_sector), 0))
		return errf(err, -EINVAL, "kernel %s: truncated bzImage header", path);
	const uint8_t *hdr = boot_sector; /* offsets below are from the start of the file */
	k->protocol = (uint16_t)(hdr[0x206] | hdr[0x207] << 8);
	if (k->protocol < 0x20c)
		return errf(err, -EINVAL,
			    "kernel %s: boot protocol %u.%02u is too old (2.12 needed for 64-bit "
			    "entry)",
			    path, k->protocol >> 8, k->protocol & 0xff);
	uint16_t xloadflags = (uint16_t)(hdr[0x236] | hdr[0x237] << 8);
	if (!(xloadflags & 1)) /* XLF_KERNEL_64 */
		return errf(err, -EINVAL, "kernel %s: bzImage has no 64-bit entry point", path);
	unsigned setup_sects = hdr[0x1f1] ? hdr[0x1f1] : 4;
	uint64_t pm_offset = (uint64_t)(setup_sects + 1) * 512;
	if (pm_offset >= file_size)
		return errf(err, -EINVAL, "kernel %s: truncated bzImage (no protected-mode kernel)",
			    path);
	uint64_t pm_size = file_size - pm_offset;
	uint32_t syssize = le32(hdr + 0x1f4);
	if ((uint64_t)syssize * 16 > pm_size)
		return errf(err, -EINVAL, "kernel %s: truncated bzImage (%llu of %llu bytes)", path,
			    (unsigned long long)pm_size, (unsigned long long)syssize * 16);

	/* Load where the kernel prefers to run, so its decompressor need not move itself. */
	uint64_t load = ((uint64_t)le32(hdr + 0x25c) << 32) | le32(hdr + 0x258);
	uint32_t init_size = le32(hdr + 0x260);
	uint64_t need = init_size > pm_size ? init_size : pm_size;
	/* A relocatable kernel would move itself up to its preferred address anyway, so a
	 * guest without room there cannot run it. */
	uint8_t *dst = load >= HIMEM_START ? guest_mem_ptr_w(mem, load, need) : NULL;
	if (!dst)
		return errf(err, -EINVAL,
			    "kernel %s: needs %llu MiB of guest memory (%llu bytes at 0x%llx), the "
			    "guest has %llu MiB",
			    path, (unsigned long long)((load + need + (1 << 20) - 1) >> 20),
			    (unsigned long long)need, (unsigned long long)load,
			    (unsigned long long)(mem->size >> 20));
	if (read_at(fd, dst, pm_size, pm_offset))
		return errf(err, -EIO, "kernel %s: cannot read the protected-mode kernel", path);

	k->entry = load + 0x200; /* startup_64 of the decompressor */
	k->load_end = load + need;
	k->is_bzimage = true;
	k->is_linux = true;
	size_t hdr_len = 0x202 + hdr[0x201] - SETUP_HDR_OFFSET;
	k->setup_hdr_len = hdr_len < SETUP_HDR_MAX ? hdr_len : SETUP_HDR_MAX;
	memcpy(k->setup_hdr, hdr + SETUP_HDR_OFFSET, k->setup_hdr_len);
	/* code32_start tells the kernel where it was loaded. */
	uint32_t load32 = (uint32_t)load;
	memcpy(k->setup_hdr + (0x214 - SETUP_HDR_OFFSET), &load32, 4);
	k->initrd_addr_max = le32(hdr + 0x22c);
	uint32_t cmdline_size = le32(hdr + 0x238);
	k->cmdline_max =
		cmdline_size && cmdline_size < CMDLINE_MAX ? cmdline_size : CMDLINE_MAX - 1;
	return 0;
}

/* Opens path for reading and fills st; what ("kernel", "initrd") names it in the message. */
static int open_stat(const char *what, const char *path, struct stat *st, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, st) == 0)
		return fd;
	int rc = errf(err, -errno, "%s %s: %s", what, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

int loader_load_kernel(const struct guest_mem *mem, const char *path, struct kernel_image *k,
		       char *err)
{
	memset(k, 0, sizeof(*k));
	struct stat st;
	int fd = open_stat("kernel", path, &st, err);
	if (fd < 0)
		return fd;
	uint8_t magic[0x206] = { 0 };
	size_t probe = (uint64_t)st.st_size < sizeof(magic) ? (size_t)st.st_size : sizeof(magic);
	int rc;
	if (!S_ISREG(st.st_mode))
		rc = errf(err, -EINVAL, "kernel %s: not a regular file", path);
	else if (read_at(fd, magic, probe, 0) < 0 || probe < 4)
		rc = errf(err, -EINVAL, "kernel %s: file too short to be a kernel image", path);
	else if (memcmp(magic, ELFMAG, SELFMAG) == 0)
		rc = load_elf(mem, fd, path, (uint64_t)st.st_size, k, err);
	else if (probe >= 0x206 && memcmp(magic + 0x202, "HdrS", 4) == 0)
		rc = load_bzimage(mem, fd, path, (uint64_t)st.st_size, k, err);
	else
		rc = errf(err, -EINVAL, "kernel %s: neither an ELF vmlinux nor a bzImage", path);
	close(fd);
	return rc;
}

int loader_load_initrd(const struct guest_mem *mem, const char *path, const struct kernel_image *k,
		       uint64_t *gpa, uint64_t *size, char *err)
{
	struct stat st;
	int fd = open_stat("initrd", path, &st, err);
	if (fd < 0)
		return fd;
	uint64_t len = (uint64_t)st.st_size;
	uint64_t top = mem->regions[0].size; /* the initrd must sit in low memory */
	if (k->initrd_addr_max && top > (uint64_t)k->initrd_addr_max + 1)
		top = (uint64_t)k->initrd_addr_max + 1;
	uint64_t start = top >= len ? (top - len) & ~0xfffULL : 0;
	/* Only a range check: the read below happens after the size checks. */
	void *dst = guest_mem_ptr_w(mem, start, len);
	int rc = 0;
	if (!S_ISREG(st.st_mode) || len == 0)
		rc = errf(err, -EINVAL, "initrd %s: not a non-empty regular file", path);
	else if (top < len || start < k->load_end)
		rc = errf(err, -ENOMEM,
			  "initrd %s: %llu bytes do not fit between the kernel and the top of low "
			  "memory (%llu MiB guest)",
			  path, (unsigned long long)len, (unsigned long long)(mem->size >> 20));
	else if (!dst || read_at(fd, dst, len, 0))
		rc = errf(err, -EIO, "initrd %s: cannot read", path);
	if (rc == 0) {
		*gpa = start;
		*size = len;
	}
	close(fd);
	return rc;
}
