#include "canary/change.h"

#include <stddef.h>
#include <string.h>

#include "canary/status.h"

typedef struct diff_fields {
    unsigned files;
    unsigned lines;
    cn_strings kinds;
} diff_fields;

static const cn_field diff_table[] = {
    {.key = "files", .parse = cn_parse_uint, .offset = offsetof(diff_fields, files)},
    {.key = "lines", .parse = cn_parse_uint, .offset = offsetof(diff_fields, lines)},
    {.key = "kinds", .parse = cn_parse_strings, .offset = offsetof(diff_fields, kinds)},
};
static const cn_schema diff_schema = CN_SCHEMA("diff", diff_table);

typedef struct change_fields {
    const char *id, *service, *version, *previous_version, *author, *description;
    bool ai_assisted;
    diff_fields diff;
} change_fields;

enum { F_ID, F_SERVICE, F_VERSION, F_PREVIOUS, F_AUTHOR, F_DESCRIPTION, F_AI, F_DIFF };
static const cn_field change_table[] = {
    [F_ID] = {.key = "id", .parse = cn_parse_string, .offset = offsetof(change_fields, id)},
    [F_SERVICE] = {.key = "service", .parse = cn_parse_string,
                   .offset = offsetof(change_fields, service), .flags = CN_REQUIRED},
    [F_VERSION] = {.key = "version", .parse = cn_parse_string,
                   .offset = offsetof(change_fields, version), .flags = CN_REQUIRED},
    [F_PREVIOUS] = {.key = "previous_version", .parse = cn_parse_string,
                    .offset = offsetof(change_fields, previous_version)},
    [F_AUTHOR] = {.key = "author", .parse = cn_parse_string,
                  .offset = offsetof(change_fields, author)},
    [F_DESCRIPTION] = {.key = "description", .parse = cn_parse_string,
                       .offset = offsetof(change_fields, description)},
    [F_AI] = {.key = "ai_assisted", .parse = cn_parse_bool,
              .offset = offsetof(change_fields, ai_assisted)},
    [F_DIFF] = {.key = "diff", .parse = cn_parse_map, .offset = offsetof(change_fields, diff),
                .sub = &diff_schema},
};
static const cn_schema change_schema = CN_SCHEMA("change", change_table);

/* Ids and names end up in file names, environment variables and URLs:
 * keep them to characters that need no quoting anywhere. */
static bool is_safe_name(const char *s)
{
    if (!*s || strlen(s) > 128)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr("._:-+", *p)))
            return false;
    return true;
}

static void check_name(cn_loader *ld, const cn_node *map, const char *key,
                       const char *value)
{
    if (value && !is_safe_name(value))
        cn_loader_error(ld, cn_node_get(map, key),
                        "'%s' may only contain letters, digits and . _ : - + "
                        "(at most 128), got '%s'",
                        key, value);
}

int cn_change_load_doc(cn_change *c, const cn_doc *doc, cn_diags *diags)
{
    memset(c, 0, sizeof(*c));
    cn_arena_init(&c->arena, 0);
    c->ai_assisted = -1;
    cn_loader ld;
    cn_loader_init(&ld, doc->file, diags, &c->arena);
    c->file = cn_arena_strdup(&c->arena, doc->file);
    if (!c->file)
        return CN_ENOMEM;

    change_fields f = {0};
    uint64_t present = cn_load_map(&ld, doc->root, &change_schema, &f);
    check_name(&ld, doc->root, "id", f.id);
    check_name(&ld, doc->root, "service", f.service);
    check_name(&ld, doc->root, "version", f.version);
    check_name(&ld, doc->root, "previous_version", f.previous_version);
    if (f.version && f.previous_version && !strcmp(f.version, f.previous_version))
        cn_loader_error(&ld, cn_node_get(doc->root, "previous_version"),
                        "'previous_version' is the same as 'version' ('%s'); "
                        "rollback would restore the new version",
                        f.version);
    if (ld.errors)
        return CN_EINVAL;

    c->service = f.service;
    c->version = f.version;
    c->previous_version = f.previous_version;
    c->author = f.author;
    c->id = f.id ? f.id : cn_arena_printf(&c->arena, "%s-%s", f.service, f.version);
    if (!c->id)
        return CN_ENOMEM;
    if (present & (1u << F_AI))
        c->ai_assisted = f.ai_assisted;
    c->has_diff = present & (1u << F_DIFF);
    c->diff_files = f.diff.files;
    c->diff_lines = f.diff.lines;
    c->diff_kinds = f.diff.kinds;
    const cn_node *svc = cn_node_get(doc->root, "service");
    c->service_line = svc->line;
    c->service_col = svc->col;
    return CN_OK;
}

int cn_change_load(cn_change *c, const char *path, cn_diags *diags)
{
    cn_doc doc;
    int rc = cn_doc_load_file(&doc, path, diags);
    if (rc == CN_OK)
        rc = cn_change_load_doc(c, &doc, diags);
    else {
        memset(c, 0, sizeof(*c));
        cn_arena_init(&c->arena, 0);
    }
    cn_doc_free(&doc);
    return rc;
}

void cn_change_free(cn_change *c)
{
    cn_arena_free(&c->arena);
}
