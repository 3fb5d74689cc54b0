/*
 * diag.h: diagnostics, the list of problems found in a user's files.
 *
 * Contract: loaders never stop at the first problem; they append every
 * problem they find here and return CN_EINVAL at the end. Each entry is
 * printed as "FILE:LINE:COLUMN: message" (1-based; line 0 means the
 * problem concerns the whole file and prints as "FILE: message").
 * Messages follow git's rules: lower-case start, no final full stop,
 * quoted subjects. The list owns copies of every string given to it.
 */
#ifndef CANARY_DIAG_H
#define CANARY_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef struct cn_diag {
    char *file;
    unsigned line;
    unsigned col;
    char *message;
} cn_diag;

typedef struct cn_diags {
    cn_diag *items;
    size_t count;
    size_t cap;
    size_t dropped; /* entries past CN_DIAGS_MAX, counted but not kept */
} cn_diags;

/* A file with thousands of mistakes needs the first ones, not all of them. */
#define CN_DIAGS_MAX 200

void cn_diags_init(cn_diags *d);
void cn_diags_free(cn_diags *d);
void cn_diags_add(cn_diags *d, const char *file, unsigned line, unsigned col,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
size_t cn_diags_total(const cn_diags *d);
/* Prints every entry, files in the order first reported and each file's
 * entries by position, then a count of dropped ones. */
void cn_diags_print(const cn_diags *d, FILE *out);
/* Index of the first entry whose message contains needle, or -1 (tests). */
long cn_diags_find(const cn_diags *d, const char *needle);

#endif
