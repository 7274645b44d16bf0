/* The hand-off's region array; see uffd_handoff.h. */
#include "snap/uffd_handoff.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int refuse(char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return -1;
}

/* A non-negative integer member of o into *v (dflt when absent and not required). */
static bool get_u64(json_t *o, const char *key, bool required, uint64_t dflt, uint64_t *v)
{
	json_t *j = json_object_get(o, key);
	if (!j && !required) {
		*v = dflt;
		return true;
	}
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*v = (uint64_t)json_integer_value(j);
	return true;
}

static int parse_region(json_t *o, unsigned i, uint64_t file_size, struct uffd_region *r, char *why,
			size_t why_len)
{
	static const char *const keys[] = { "base_host_virt_addr", "size", "offset" };
	uint64_t *vals[] = { &r->base, &r->size, &r->offset };
	if (!json_is_object(o))
		return refuse(why, why_len, "region %u is not an object", i);
	for (unsigned k = 0; k < 3; k++)
		if (!get_u64(o, keys[k], true, 0, vals[k]))
			return refuse(why, why_len, "region %u: '%s' is %s", i, keys[k],
				      json_object_get(o, keys[k]) ? "not a non-negative integer"
								  : "missing");
	/* Firecracker sends both, in bytes; older versions only page_size_kib. */
	uint64_t kib, page;
	if (!get_u64(o, "page_size_kib", false, HANDOFF_PAGE_SIZE, &kib) ||
	    !get_u64(o, "page_size", false, kib, &page))
		return refuse(why, why_len,
			      "region %u: the page size is not a non-negative integer", i);
	if (page != HANDOFF_PAGE_SIZE)
		return refuse(why, why_len, "region %u: page size %llu (4 KiB pages only)", i,
			      (unsigned long long)page);
	if (!r->size || (r->base | r->size | r->offset) % HANDOFF_PAGE_SIZE)
		return refuse(why, why_len,
			      "region %u: address, size and offset must be whole pages", i);
	if (r->base + r->size < r->base)
		return refuse(why, why_len, "region %u: wraps around the address space", i);
	if (r->offset > file_size || r->size > file_size - r->offset)
		return refuse(why, why_len,
			      "region %u: %llu bytes at offset %llu, the memory file has %llu", i,
			      (unsigned long long)r->size, (unsigned long long)r->offset,
			      (unsigned long long)file_size);
	return 0;
}

int handoff_parse(const char *buf, size_t len, uint64_t file_size, struct uffd_region *reg,
		  char *why, size_t why_len)
{
	json_error_t jerr;
	json_t *root = json_loadb(buf, len, 0, &jerr);
	int rc = 0;
	size_t n = json_array_size(root);
	if (!json_is_array(root))
		rc = refuse(why, why_len, "not a JSON array (%s)",
			    root ? "another type" : jerr.text);
	else if (n < 1 || n > HANDOFF_REGIONS_MAX)
		rc = refuse(why, why_len, "%zu regions (1 to %d)", n, HANDOFF_REGIONS_MAX);
	for (unsigned i = 0; !rc && i < n; i++) {
		rc = parse_region(json_array_get(root, i), i, file_size, &reg[i], why, why_len);
		for (unsigned j = 0; !rc && j < i; j++)
			if (reg[i].base < reg[j].base + reg[j].size &&
			    reg[j].base < reg[i].base + reg[i].size)
				rc = refuse(why, why_len, "regions %u and %u overlap", j, i);
	}
	json_decref(root);
	return rc ? -1 : (int)n;
}
