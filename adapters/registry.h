/*
 * registry — find an adapter's ops table: built-ins from a static table,
 * third-party ones from a shared object (dlopen + dlsym(ADP_SYMBOL)) whose
 * abi_version and struct_size must match this build's adapter.h.  Also
 * validates an instance's configured options against the adapter's key
 * table, so a typo is an error naming file, line and key.
 */
#ifndef ADP_REGISTRY_H
#define ADP_REGISTRY_H

#include <stddef.h>

#include "adapter.h"
#include "cfg.h"

/* A loaded, initialised adapter instance. */
struct adp_instance {
	const struct cfg_adapter *cfg;  /* borrowed from struct cfg */
	const struct adp_ops *ops;
	void *dl;                       /* dlopen handle for type "so" */
	void *state;                    /* from ops->init */
	struct adp_option *opts;        /* validated, defaults filled */
	size_t nopts;
};

/* Built-in ops by type name, or NULL. */
const struct adp_ops *adp_builtin(const char *type);

/*
 * Resolve ops, validate options and call init.  Returns 0, or -EINVAL with
 * one line in err ("file:line: adapters[name].options.key: reason" or
 * "adapter x: /path.so: ABI version 2, this chatvault speaks 1").
 */
int adp_instance_open(const struct cfg *cfg, const struct cfg_adapter *ca,
		      struct adp_instance **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void adp_instance_close(struct adp_instance *inst);

#endif
