/*
 * access.h: who may act on rollouts (the file given with --access).
 *
 *   users:
 *     alice: {roles: [developer]}
 *     bob:   {roles: [developer, senior]}
 *
 * Contract: cn_access_load() reports every problem as FILE:LINE:COLUMN and
 * returns CN_EINVAL; memory lives in acc->arena, freed by cn_access_free()
 * in every case. cn_access_has_role() is pure.
 */
#ifndef CANARY_ACCESS_H
#define CANARY_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "canary/arena.h"
#include "canary/diag.h"
#include "canary/doc.h"
#include "canary/schema.h"

typedef struct cn_user {
    const char *name;
    cn_strings roles;
} cn_user;

typedef struct cn_access {
    const char *file;
    cn_user *users;
    size_t count;
    cn_arena arena;
} cn_access;

int cn_access_load(cn_access *acc, const char *path, cn_diags *diags);
int cn_access_load_doc(cn_access *acc, const cn_doc *doc, cn_diags *diags);
void cn_access_free(cn_access *acc);
const cn_user *cn_access_find(const cn_access *acc, const char *name);
bool cn_access_has_role(const cn_access *acc, const char *user, const char *role);

#endif
