/* --jail: ember under ember-jailer (root only). */
#include "run/run.h"

#include <errno.h>
#include <stdio.h>

int jail_spawn(struct vm *vm, const struct run_opts *o, const char *cfg, char *err);
int jail_spawn(struct vm *vm, const struct run_opts *o, const char *cfg, char *err)
{
	(void)vm, (void)o, (void)cfg;
	snprintf(err, ERR_MAX, "--jail is not implemented yet");
	return -ENOSYS;
}
