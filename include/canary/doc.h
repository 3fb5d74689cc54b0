/*
 * doc.h: a YAML or JSON file read into a tree of positioned nodes.
 *
 * Contract: cn_doc_load_file() reads one file (JSON when named *.json, YAML
 * when named *.yaml or *.yml, otherwise JSON when it starts with '{' or
 * '['; JSON syntax is checked by jansson first), enforces the safety limits below, and builds a tree in
 * which every node knows its 1-based line and column. On failure it adds
 * "FILE:LINE:COLUMN: message" diagnostics and returns CN_EINVAL or
 * CN_ELIMIT; the doc then holds no tree but must still be freed.
 * Aliases are expanded into copies, counted against the node limit, so an
 * alias bomb ("billion laughs") stops at the limit instead of exhausting
 * memory. All memory lives in doc->arena.
 */
#ifndef CANARY_DOC_H
#define CANARY_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "canary/arena.h"
#include "canary/diag.h"

#define CN_DOC_MAX_BYTES (4u << 20) /* policies and changes are small */
#define CN_DOC_MAX_DEPTH 64
#define CN_DOC_MAX_NODES 200000     /* after alias expansion */

typedef enum { CN_NODE_SCALAR, CN_NODE_SEQ, CN_NODE_MAP } cn_node_type;

typedef struct cn_node cn_node;
struct cn_node {
    cn_node_type type;
    unsigned line, col;
    /* Scalars: text (NUL-terminated), and whether it was quoted; a quoted
     * "123" is a string, never a number. */
    const char *text;
    size_t len;
    bool quoted;
    /* Sequences: count items. Maps: count pairs, items[2i] the key and
     * items[2i+1] the value. */
    cn_node **items;
    size_t count;
};

typedef struct cn_doc {
    const char *file; /* copy in the arena */
    cn_node *root;    /* NULL after a failed load */
    cn_arena arena;
} cn_doc;

int cn_doc_load_file(cn_doc *doc, const char *path, cn_diags *diags);
/* name is used in diagnostics in place of a path. */
int cn_doc_load_buffer(cn_doc *doc, const char *name, const char *buf,
                       size_t len, cn_diags *diags);
void cn_doc_free(cn_doc *doc);

/* Whether a directory entry is a file canary reads: *.yaml, *.yml or
 * *.json, not hidden. `validate DIR` and `--policies DIR` use the same. */
bool cn_doc_is_config_name(const char *name);

/* Map helpers: value for key, or NULL when absent. */
const cn_node *cn_node_get(const cn_node *map, const char *key);
/* Null is "~", "null", "Null", "NULL" or an empty plain scalar. */
bool cn_node_is_null(const cn_node *n);
const char *cn_node_type_name(const cn_node *n);

#endif
