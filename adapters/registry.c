/*
 * registry — see registry.h.
 */
#include "registry.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "cv_result.h"

/* The adapter ABI and the internal result type must agree value for value. */
_Static_assert((int)ADP_OK == (int)CV_OK, "ADP_OK");
_Static_assert((int)ADP_RETRY == (int)CV_RETRY, "ADP_RETRY");
_Static_assert((int)ADP_FAIL == (int)CV_FAIL, "ADP_FAIL");

static const struct adp_ops *const builtins[] = {
	&adp_archive_ops,
	&adp_xml_ops,
	&adp_jsonl_ops,
	&adp_eml_ops,
};

const struct adp_ops *adp_builtin(const char *type)
{
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (strcmp(builtins[i]->type, type) == 0)
			return builtins[i];
	return NULL;
}

static int load_so(const struct cfg_adapter *ca, struct adp_instance *inst, char *err,
		   size_t errlen)
{
	const struct adp_ops *ops;

	inst->dl = dlopen(ca->path, RTLD_NOW | RTLD_LOCAL);
	if (!inst->dl) {
		snprintf(err, errlen, "%s:%d: adapter %s: cannot load %s: %s", ca->file, ca->line,
			 ca->name, ca->path, dlerror());
		return -EINVAL;
	}
	ops = dlsym(inst->dl, ADP_SYMBOL);
	if (!ops) {
		snprintf(err, errlen, "%s:%d: adapter %s: %s exports no symbol %s", ca->file,
			 ca->line, ca->name, ca->path, ADP_SYMBOL);
		return -EINVAL;
	}
	/* nginx-style signature check: refuse before calling anything. */
	if (ops->abi_version != ADP_ABI_VERSION || ops->struct_size != sizeof(struct adp_ops)) {
		snprintf(err, errlen, "%s:%d: adapter %s: %s was built for adapter ABI %" PRIu32
			 " (struct size %" PRIu32 "); this chatvault speaks ABI %u (size %zu): rebuild "
			 "it against this adapter.h", ca->file, ca->line, ca->name, ca->path,
			 ops->abi_version, ops->struct_size, ADP_ABI_VERSION, sizeof(struct adp_ops));
		return -EINVAL;
	}
	if (!ops->type || !ops->init || !ops->deliver || !ops->close) {
		snprintf(err, errlen, "%s:%d: adapter %s: %s: incomplete ops table", ca->file,
			 ca->line, ca->name, ca->path);
		return -EINVAL;
	}
	inst->ops = ops;
	return 0;
}

static const struct adp_key *find_key(const struct adp_ops *ops, const char *name)
{
	for (const struct adp_key *k = ops->keys; k && k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static int validate_opts(const struct cfg_adapter *ca, struct adp_instance *inst, char *err,
			 size_t errlen)
{
	const struct adp_ops *ops = inst->ops;
	size_t nkeys = 0;

	for (size_t i = 0; i < ca->nopts; i++) {
		const struct cfg_opt *o = &ca->opts[i];
		const struct adp_key *k = find_key(ops, o->key);
		const char *want = NULL;

		if (!k) {
			snprintf(err, errlen, "%s:%d: adapters.%s.options.%s: unknown option for "
				 "adapter type \"%s\"", o->file, o->line, ca->name, o->key, ops->type);
			return -EINVAL;
		}
		if (k->type == ADP_KEY_STRING && o->type != CFG_OPT_STRING)
			want = "a string";
		else if (k->type == ADP_KEY_INT && o->type != CFG_OPT_INT)
			want = "an integer";
		else if (k->type == ADP_KEY_BOOL && o->type != CFG_OPT_BOOL)
			want = "true or false";
		if (want) {
			snprintf(err, errlen, "%s:%d: adapters.%s.options.%s: must be %s", o->file,
				 o->line, ca->name, o->key, want);
			return -EINVAL;
		}
	}
	for (const struct adp_key *k = ops->keys; k && k->name; k++)
		nkeys++;
	inst->opts = calloc(nkeys ? nkeys : 1, sizeof(*inst->opts));
	if (!inst->opts)
		return -ENOMEM;
	for (const struct adp_key *k = ops->keys; k && k->name; k++) {
		const struct cfg_opt *o = cfg_adapter_opt(ca, k->name);
		const char *v = o ? (o->type == CFG_OPT_BOOL ? (o->i ? "true" : "false") : o->str)
				  : k->dflt;

		if (v)
			inst->opts[inst->nopts++] = (struct adp_option){ k->name, v };
	}
	return 0;
}

int adp_instance_open(const struct cfg *cfg, const struct cfg_adapter *ca,
		      struct adp_instance **out, char *err, size_t errlen)
{
	struct adp_instance *inst = calloc(1, sizeof(*inst));
	struct adp_env env;
	char why[512] = "";
	int rc;

	*out = NULL;
	if (!inst)
		return -ENOMEM;
	inst->cfg = ca;
	if (strcmp(ca->type, "so") == 0) {
		if ((rc = load_so(ca, inst, err, errlen)) != 0)
			goto fail;
	} else if (!(inst->ops = adp_builtin(ca->type))) {
		snprintf(err, errlen, "%s:%d: adapters.%s.type: unknown adapter type \"%s\" "
			 "(built-in: archive, xml, jsonl, eml; or \"so\" with a path)",
			 ca->file, ca->line, ca->name, ca->type);
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = validate_opts(ca, inst, err, errlen)) != 0)
		goto fail;
	env = (struct adp_env){
		.name = ca->name,
		.data_dir = cfg->data_dir,
		.file_store = cfg->deliver.file_store,
		.opts = inst->opts,
		.nopts = inst->nopts,
	};
	if ((rc = inst->ops->init(&env, &inst->state, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s:%d: adapter %s: %s", ca->file, ca->line, ca->name, why);
		rc = -EINVAL;
		goto fail;
	}
	*out = inst;
	return 0;
fail:
	adp_instance_close(inst);
	return rc;
}

void adp_instance_close(struct adp_instance *inst)
{
	if (!inst)
		return;
	if (inst->state && inst->ops)
		inst->ops->close(inst->state);
	free(inst->opts);
	if (inst->dl)
		dlclose(inst->dl);
	free(inst);
}
