#include "canary/access.h"

#include <string.h>

#include "canary/status.h"

static const cn_field user_table[] = {
    {.key = "roles", .parse = cn_parse_strings, .offset = offsetof(cn_user, roles),
     .flags = CN_REQUIRED},
};
static const cn_schema user_schema = CN_SCHEMA("user", user_table);

static void load_users(cn_loader *ld, cn_access *acc, const cn_node *users)
{
    if (!users || users->type != CN_NODE_MAP || users->count == 0) {
        cn_loader_error(ld, users, "'users' must be a non-empty map of user names "
                                   "to {roles: [...]}");
        return;
    }
    acc->users = cn_arena_alloc(ld->arena, users->count * sizeof(*acc->users));
    if (!acc->users) {
        cn_loader_error(ld, users, "out of memory");
        return;
    }
    for (size_t i = 0; i < users->count; i++) {
        const cn_node *k = users->items[2 * i];
        if (cn_expect_scalar(ld, k, "users", "user names as keys"))
            continue;
        if (cn_access_find(acc, k->text)) {
            cn_loader_error(ld, k, "user '%s' is listed twice", k->text);
            continue;
        }
        cn_user *u = &acc->users[acc->count];
        u->name = cn_arena_strdup(ld->arena, k->text);
        cn_load_map(ld, users->items[2 * i + 1], &user_schema, u);
        if (u->name)
            acc->count++;
    }
}

int cn_access_load_doc(cn_access *acc, const cn_doc *doc, cn_diags *diags)
{
    memset(acc, 0, sizeof(*acc));
    cn_arena_init(&acc->arena, 0);
    cn_loader ld;
    cn_loader_init(&ld, doc->file, diags, &acc->arena);
    acc->file = cn_arena_strdup(&acc->arena, doc->file);
    const cn_node *root = doc->root;
    if (root->type != CN_NODE_MAP) {
        cn_loader_error(&ld, root, "an access file must be a map with 'users', got %s",
                        cn_node_type_name(root));
        return CN_EINVAL;
    }
    static const char *const top[] = {"users"};
    for (size_t i = 0; i < root->count; i++) {
        const cn_node *k = root->items[2 * i];
        if (k->type == CN_NODE_SCALAR && strcmp(k->text, "users"))
            cn_unknown_key(&ld, k, "access file", top, 1);
    }
    const cn_node *users = cn_node_get(root, "users");
    if (!users)
        cn_loader_error(&ld, root, "access file is missing the required key 'users'");
    else
        load_users(&ld, acc, users);
    return ld.errors ? CN_EINVAL : CN_OK;
}

int cn_access_load(cn_access *acc, const char *path, cn_diags *diags)
{
    cn_doc doc;
    int rc = cn_doc_load_file(&doc, path, diags);
    if (rc == CN_OK)
        rc = cn_access_load_doc(acc, &doc, diags);
    else {
        memset(acc, 0, sizeof(*acc));
        cn_arena_init(&acc->arena, 0);
    }
    cn_doc_free(&doc);
    return rc;
}

void cn_access_free(cn_access *acc)
{
    cn_arena_free(&acc->arena);
}

const cn_user *cn_access_find(const cn_access *acc, const char *name)
{
    for (size_t i = 0; i < acc->count; i++)
        if (!strcmp(acc->users[i].name, name))
            return &acc->users[i];
    return NULL;
}

bool cn_access_has_role(const cn_access *acc, const char *user, const char *role)
{
    const cn_user *u = cn_access_find(acc, user);
    for (size_t i = 0; u && i < u->roles.count; i++)
        if (!strcmp(u->roles.items[i], role))
            return true;
    return false;
}
