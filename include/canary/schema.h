/*
 * schema.h: turns positioned nodes (doc.h) into typed C structs.
 *
 * Contract: a map is described by a table of cn_field entries (key, parser,
 * offset into the destination struct, constraints). cn_load_map() checks
 * the node is a map, rejects unknown keys with a "did you mean" hint,
 * duplicate keys and missing required keys, runs each field's parser, and
 * reports every problem at its line and column through the loader. It
 * never stops at the first problem. Fields absent from the file keep the
 * value the caller put in the struct beforehand (the default).
 * Strings are copied into the loader's arena.
 *
 * Scalars are parsed strictly: "12abc" is not a number, "5" is not a
 * duration, "1" is not a percentage, "yes" is not a boolean.
 */
#ifndef CANARY_SCHEMA_H
#define CANARY_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/arena.h"
#include "canary/diag.h"
#include "canary/doc.h"

typedef struct cn_loader {
    const char *file;
    cn_diags *diags;
    cn_arena *arena; /* owner of the strings and arrays loaded */
    unsigned errors;
} cn_loader;

void cn_loader_init(cn_loader *ld, const char *file, cn_diags *diags,
                    cn_arena *arena);
/* Reports a problem at node's position (or at the file when at is NULL). */
void cn_loader_error(cn_loader *ld, const cn_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct cn_field cn_field;
/* Parses value into dst (the struct member at the field's offset). Returns
 * 0, or -1 after reporting the problem through ld. */
typedef int (*cn_field_parser)(cn_loader *ld, const cn_node *value,
                               const cn_field *f, void *dst);

enum {
    CN_REQUIRED = 1u << 0,
    CN_MIN = 1u << 1,          /* value >= min */
    CN_MAX = 1u << 2,          /* value <= max */
    CN_MIN_EXCLUSIVE = 1u << 3 /* with CN_MIN: value > min */
};

typedef struct cn_schema cn_schema;

struct cn_field {
    const char *key;
    cn_field_parser parse;
    size_t offset;
    unsigned flags;
    double min, max;            /* with CN_MIN / CN_MAX, in stored units */
    const char *const *choices; /* cn_parse_enum: NULL-terminated names */
    const cn_schema *sub;       /* cn_parse_map: the nested map's schema */
};

struct cn_schema {
    const char *what; /* shown in messages: "policy", "analysis", ... */
    const cn_field *fields;
    size_t count;
};

#define CN_SCHEMA(what, table) {what, table, sizeof(table) / sizeof(table[0])}

/* Returns a bit per field present (bit i for fields[i]; tables hold at most
 * 64 fields). Problems go to ld. A NULL or null node is an empty map. */
uint64_t cn_load_map(cn_loader *ld, const cn_node *node, const cn_schema *s,
                     void *base);

/* Field parsers; the dst type is given for each. */
int cn_parse_string(cn_loader *, const cn_node *, const cn_field *, void *); /* const char * */
int cn_parse_number(cn_loader *, const cn_node *, const cn_field *, void *); /* double */
int cn_parse_uint(cn_loader *, const cn_node *, const cn_field *, void *);   /* unsigned */
int cn_parse_bool(cn_loader *, const cn_node *, const cn_field *, void *);   /* bool */
/* "0.1%" stored as the fraction 0.001; a % sign is required. */
int cn_parse_percent(cn_loader *, const cn_node *, const cn_field *, void *); /* double */
/* Either a plain number or a percentage (stored as a fraction). */
int cn_parse_quantity(cn_loader *, const cn_node *, const cn_field *, void *); /* double */
/* "200ms", "30s", "5m", "1h", "1h30m"; stored in milliseconds. */
int cn_parse_duration(cn_loader *, const cn_node *, const cn_field *, void *); /* int64_t */
int cn_parse_enum(cn_loader *, const cn_node *, const cn_field *, void *);    /* int */
int cn_parse_strings(cn_loader *, const cn_node *, const cn_field *, void *); /* cn_strings */
int cn_parse_map(cn_loader *, const cn_node *, const cn_field *, void *);    /* f->sub struct */

typedef struct cn_strings {
    const char **items;
    size_t count;
} cn_strings;

/* Scalar text parsers used by the field parsers, for values found outside
 * a schema (map keys, command-line flags). 0 on success, -1 otherwise. */
int cn_text_number(const char *s, double *out);
int cn_text_uint(const char *s, unsigned *out);
int cn_text_percent(const char *s, double *fraction);
/* -2 (not -1) when the text is a duration but longer than the maximum. */
int cn_text_duration(const char *s, int64_t *ms);
#define CN_MAX_DURATION_MS (365.0 * 24 * 3600000)
/* The inverse of cn_text_duration: "200ms", "30s", "4m", "1h30m". */
void cn_format_duration(char *buf, size_t len, int64_t ms);

/* Levenshtein distance ignoring ASCII case; SIZE_MAX when either string is
 * longer than 200 bytes (nobody mistyped that much). */
size_t cn_edit_distance(const char *a, const char *b);

/* The candidate closest to word by edit distance, if close enough to be a
 * likely typo; NULL otherwise. */
const char *cn_suggest(const char *word, const char *const *candidates,
                       size_t n);

/* For cross-field checks, which must compare only values that loaded: true
 * when key is absent from map or its value passes its field's parser
 * (number, whole number, percentage, quantity or duration: type and range);
 * false otherwise, and for other parsers. Reports nothing. */
bool cn_field_value_ok(const cn_node *map, const cn_schema *s, const char *key);

/* Reports an unknown key with a suggestion taken from candidates. */
void cn_unknown_key(cn_loader *ld, const cn_node *key, const char *what,
                    const char *const *candidates, size_t n);

/* True and reports a problem when node is not a scalar (or is null). */
bool cn_expect_scalar(cn_loader *ld, const cn_node *node, const char *key,
                      const char *expected);

#endif
