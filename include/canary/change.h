/*
 * change.h: the change being rolled out (a YAML or JSON file).
 *
 * Contract: cn_change_load() fills a cn_change; strings live in
 * change->arena; free with cn_change_free() in every case. Problems are
 * reported as FILE:LINE:COLUMN to diags and the result is CN_EINVAL.
 * ai_assisted is -1 when the file does not say (provenance decides).
 */
#ifndef CANARY_CHANGE_H
#define CANARY_CHANGE_H

#include <stdbool.h>

#include "canary/arena.h"
#include "canary/diag.h"
#include "canary/doc.h"
#include "canary/schema.h"

typedef struct cn_change {
    const char *file;
    const char *id; /* default "<service>-<version>" */
    const char *service;
    const char *version;
    const char *previous_version;
    const char *author;
    int ai_assisted; /* -1 unknown, 0 no, 1 yes */
    bool has_diff;
    unsigned diff_files;
    unsigned diff_lines;
    cn_strings diff_kinds;
    unsigned service_line, service_col; /* for "unknown service" errors */
    cn_arena arena;
} cn_change;

int cn_change_load(cn_change *c, const char *path, cn_diags *diags);
int cn_change_load_doc(cn_change *c, const cn_doc *doc, cn_diags *diags);
void cn_change_free(cn_change *c);

#endif
