/*
 * builtin — the adapters compiled into chatvault (registered statically in
 * adapters/registry.c).  Each is one const struct adp_ops.
 */
#ifndef ADP_BUILTIN_H
#define ADP_BUILTIN_H

#include "adapter.h"

extern const struct adp_ops adp_archive_ops; /* adapters/archive.c */
extern const struct adp_ops adp_xml_ops;     /* adapters/xml.c */
extern const struct adp_ops adp_jsonl_ops;   /* adapters/jsonl.c */
extern const struct adp_ops adp_eml_ops;     /* adapters/eml.c */

#endif
