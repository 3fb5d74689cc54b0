/* Builds the positioned node tree from libyaml's event stream. The event
 * API (not yaml_parser_load) is used so that depth, node count and alias
 * expansion are bounded while parsing, before any memory is committed. */
#include "canary/doc.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <yaml.h>

#include "canary/status.h"

/* The arena may hold the file's text several times over (scalars, alias
 * copies); beyond this a file is hostile, not a policy. */
#define DOC_ARENA_LIMIT (64u << 20)

typedef struct anchor {
    char *name;
    cn_node *node;
    size_t weight; /* nodes in the subtree, for the expansion budget */
    int height;    /* collection levels in the subtree, for the depth limit */
    struct anchor *next; /* in the same hash bucket */
} anchor;

/* Anchors by name. A list searched from the newest would make a file of
 * 100,000 anchors and 100,000 aliases (1.7 MB) cost 10^10 string compares;
 * a hash keyed with a per-load seed keeps each lookup short even for names
 * chosen to collide. */
typedef struct anchor_table {
    anchor **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first anchor */
    size_t count;
    uint64_t seed;
} anchor_table;

typedef struct frame {
    cn_node *node;
    cn_node **kids;
    size_t count, cap;
    char *anchor_name;
    size_t weight;
    int height; /* of the tallest child so far (scalars count 0) */
} frame;

typedef struct builder {
    cn_doc *doc;
    cn_diags *diags;
    frame stack[CN_DOC_MAX_DEPTH + 1];
    int depth;
    size_t nodes;
    anchor_table anchors;
    cn_node *root;
    size_t root_weight;
    int documents;
    int status;
} builder;

static void doc_error(builder *b, unsigned line, unsigned col, const char *msg)
{
    cn_diags_add(b->diags, b->doc->file, line, col, "%s", msg);
}

static cn_node *node_new(builder *b, cn_node_type t, const yaml_mark_t *m)
{
    cn_node *n = cn_arena_alloc(&b->doc->arena, sizeof(*n));
    if (!n)
        return NULL;
    n->type = t;
    n->line = (unsigned)m->line + 1;
    n->col = (unsigned)m->column + 1;
    return n;
}

static int budget(builder *b, size_t weight, const yaml_mark_t *m)
{
    if (weight > CN_DOC_MAX_NODES - b->nodes) {
        cn_diags_add(b->diags, b->doc->file, (unsigned)m->line + 1,
                     (unsigned)m->column + 1,
                     "document has more than %u nodes after alias expansion; "
                     "this is not a policy, change or topology file",
                     CN_DOC_MAX_NODES);
        return CN_ELIMIT;
    }
    b->nodes += weight;
    return CN_OK;
}

/* Deep copy for an alias. The budget was charged for the whole subtree
 * before copying, so this is bounded. Recursion depth is bounded by
 * CN_DOC_MAX_DEPTH because anchored subtrees were built within it. */
static cn_node *node_copy(builder *b, const cn_node *src)
{
    cn_node *n = cn_arena_alloc(&b->doc->arena, sizeof(*n));
    if (!n)
        return NULL;
    *n = *src;
    if (src->count) {
        size_t slots = src->type == CN_NODE_MAP ? src->count * 2 : src->count;
        n->items = cn_arena_alloc(&b->doc->arena, slots * sizeof(*n->items));
        if (!n->items)
            return NULL;
        for (size_t i = 0; i < slots; i++)
            if (!(n->items[i] = node_copy(b, src->items[i])))
                return NULL;
    }
    return n;
}

static uint64_t anchor_hash(const anchor_table *t, const char *name)
{
    uint64_t h = 0xcbf29ce484222325u ^ t->seed; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    /* FNV's low bits depend only on low bits; mix so every bit counts */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

static anchor *find_anchor(const anchor_table *t, const char *name)
{
    if (!t->nbuckets)
        return NULL;
    anchor *a = t->buckets[anchor_hash(t, name) & (t->nbuckets - 1)];
    while (a && strcmp(a->name, name))
        a = a->next;
    return a;
}

static int grow_anchors(anchor_table *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
    anchor **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return CN_ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        anchor *a = t->buckets[i];
        while (a) {
            anchor *next = a->next;
            size_t j = anchor_hash(t, a->name) & (n - 1);
            a->next = nb[j];
            nb[j] = a;
            a = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->nbuckets = n;
    return CN_OK;
}

/* A redefined anchor replaces the old one: aliases after it refer to the
 * newest definition, so names stay unique in the table. */
static int remember_anchor(builder *b, const char *name, cn_node *n, size_t w,
                           int height)
{
    anchor_table *t = &b->anchors;
    anchor *a = find_anchor(t, name);
    if (!a) {
        if (t->count >= t->nbuckets && grow_anchors(t))
            return CN_ENOMEM;
        if (!(a = malloc(sizeof(*a))) || !(a->name = strdup(name))) {
            free(a);
            return CN_ENOMEM;
        }
        size_t j = anchor_hash(t, name) & (t->nbuckets - 1);
        a->next = t->buckets[j];
        t->buckets[j] = a;
        t->count++;
    }
    a->node = n;
    a->weight = w;
    a->height = height;
    return CN_OK;
}

/* Hands a finished node to its parent frame (or makes it the root). */
static int attach(builder *b, cn_node *n, size_t weight, int height)
{
    if (b->depth == 0) {
        b->root = n;
        b->root_weight = weight;
        return CN_OK;
    }
    frame *f = &b->stack[b->depth - 1];
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        cn_node **k = realloc(f->kids, cap * sizeof(*k));
        if (!k)
            return CN_ENOMEM;
        f->kids = k;
        f->cap = cap;
    }
    f->kids[f->count++] = n;
    f->weight += weight;
    if (height > f->height)
        f->height = height;
    return CN_OK;
}

static int open_collection(builder *b, cn_node_type t, const yaml_event_t *e,
                           const yaml_char_t *anchor_name)
{
    if (b->depth >= CN_DOC_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "nesting deeper than %d levels",
                 CN_DOC_MAX_DEPTH);
        doc_error(b, (unsigned)e->start_mark.line + 1,
                  (unsigned)e->start_mark.column + 1, msg);
        return CN_ELIMIT;
    }
    int rc = budget(b, 1, &e->start_mark);
    if (rc)
        return rc;
    cn_node *n = node_new(b, t, &e->start_mark);
    if (!n)
        return CN_ENOMEM;
    frame *f = &b->stack[b->depth++];
    memset(f, 0, sizeof(*f));
    f->node = n;
    f->weight = 1;
    if (anchor_name && !(f->anchor_name = strdup((const char *)anchor_name)))
        return CN_ENOMEM;
    return CN_OK;
}

static int close_collection(builder *b)
{
    frame *f = &b->stack[--b->depth];
    cn_node *n = f->node;
    int rc = CN_OK;
    if (n->type == CN_NODE_MAP && f->count % 2) {
        rc = CN_EINVAL; /* libyaml never produces this; be safe anyway */
        goto out;
    }
    n->count = n->type == CN_NODE_MAP ? f->count / 2 : f->count;
    if (f->count) {
        n->items = cn_arena_alloc(&b->doc->arena, f->count * sizeof(*n->items));
        if (!n->items) {
            rc = CN_ENOMEM;
            goto out;
        }
        memcpy(n->items, f->kids, f->count * sizeof(*n->items));
    }
    if (f->anchor_name &&
        (rc = remember_anchor(b, f->anchor_name, n, f->weight, f->height + 1)))
        goto out;
    rc = attach(b, n, f->weight, f->height + 1);
out:
    free(f->kids);
    free(f->anchor_name);
    return rc;
}

static int on_scalar(builder *b, const yaml_event_t *e)
{
    int rc = budget(b, 1, &e->start_mark);
    if (rc)
        return rc;
    cn_node *n = node_new(b, CN_NODE_SCALAR, &e->start_mark);
    if (!n)
        return CN_ENOMEM;
    n->len = e->data.scalar.length;
    n->text = cn_arena_strndup(&b->doc->arena,
                               (const char *)e->data.scalar.value, n->len);
    if (!n->text)
        return CN_ENOMEM;
    n->quoted = e->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                e->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                e->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
    if (e->data.scalar.anchor &&
        (rc = remember_anchor(b, (const char *)e->data.scalar.anchor, n, 1, 0)))
        return rc;
    return attach(b, n, 1, 0);
}

static int on_alias(builder *b, const yaml_event_t *e)
{
    const char *name = (const char *)e->data.alias.anchor;
    anchor *a = find_anchor(&b->anchors, name);
    if (a) {
        int rc = budget(b, a->weight, &e->start_mark);
        if (rc)
            return rc;
        /* The copy's collections sit at levels b->depth + 1 .. b->depth +
         * height; like collections written out, they must stay within the
         * limit, or chains of aliases could nest without bound. */
        if (b->depth + a->height > CN_DOC_MAX_DEPTH) {
            char msg[128];
            snprintf(msg, sizeof msg, "alias '*%.60s' nests deeper than %d levels",
                     name, CN_DOC_MAX_DEPTH);
            doc_error(b, (unsigned)e->start_mark.line + 1,
                      (unsigned)e->start_mark.column + 1, msg);
            return CN_ELIMIT;
        }
        cn_node *n = node_copy(b, a->node);
        if (!n)
            return CN_ENOMEM;
        n->line = (unsigned)e->start_mark.line + 1;
        n->col = (unsigned)e->start_mark.column + 1;
        return attach(b, n, a->weight, a->height);
    }
    char msg[160];
    snprintf(msg, sizeof msg, "alias '*%.100s' refers to no anchor defined before it",
             name);
    doc_error(b, (unsigned)e->start_mark.line + 1,
              (unsigned)e->start_mark.column + 1, msg);
    return CN_EINVAL;
}

static int on_event(builder *b, const yaml_event_t *e)
{
    switch (e->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            doc_error(b, (unsigned)e->start_mark.line + 1,
                      (unsigned)e->start_mark.column + 1,
                      "more than one YAML document in the file; put one "
                      "policy, change or topology in each file");
            return CN_EINVAL;
        }
        return CN_OK;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, e);
    case YAML_SEQUENCE_START_EVENT:
        return open_collection(b, CN_NODE_SEQ, e, e->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return open_collection(b, CN_NODE_MAP, e, e->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_collection(b);
    case YAML_ALIAS_EVENT:
        return on_alias(b, e);
    default:
        return CN_OK;
    }
}

static void builder_cleanup(builder *b)
{
    while (b->depth > 0) {
        frame *f = &b->stack[--b->depth];
        free(f->kids);
        free(f->anchor_name);
    }
    for (size_t i = 0; i < b->anchors.nbuckets; i++) {
        anchor *a = b->anchors.buckets[i];
        while (a) {
            anchor *next = a->next;
            free(a->name);
            free(a);
            a = next;
        }
    }
    free(b->anchors.buckets);
}

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && !strcmp(name + n - k, suffix);
}

bool cn_doc_is_config_name(const char *name)
{
    return name[0] != '.' && (has_suffix(name, ".yaml") || has_suffix(name, ".yml") ||
                              has_suffix(name, ".json"));
}

/* By the name first: a .yaml file may open with a YAML flow map such as
 * "{name: web}", which is not JSON. Names with neither suffix (pipes,
 * tests) are told by their first character. */
static bool looks_like_json(const char *name, const char *buf, size_t len)
{
    if (has_suffix(name, ".json"))
        return true;
    if (has_suffix(name, ".yaml") || has_suffix(name, ".yml"))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')
            continue;
        return buf[i] == '{' || buf[i] == '[';
    }
    return false;
}

/* libyaml accepts JSON, but jansson's messages for broken JSON are the ones
 * a JSON author expects ("end of file expected", "'}' expected").
 * Nesting past jansson's own depth limit (2048) is left to the YAML pass,
 * which reports it like any other nesting past CN_DOC_MAX_DEPTH; *deferred
 * says so, and err keeps jansson's message in case that pass accepts. */
static int check_json(const char *buf, size_t len, json_error_t *err,
                      bool *deferred)
{
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, err);
    if (j) {
        json_decref(j);
        return CN_OK;
    }
    if (json_error_code(err) == json_error_stack_overflow) {
        *deferred = true;
        return CN_OK;
    }
    return CN_EINVAL;
}

static void json_diag(cn_doc *doc, const json_error_t *err, cn_diags *diags)
{
    cn_diags_add(diags, doc->file, err->line > 0 ? (unsigned)err->line : 1,
                 err->column > 0 ? (unsigned)err->column : 1, "invalid JSON: %s",
                 err->text);
}

/* libyaml's reader (encoding and control characters) decodes ahead of the
 * scanner and gives only a byte offset, its problem_mark staying at 1:1;
 * this turns the offset into a line and a column counted in characters,
 * as libyaml's marks are. */
static void offset_position(const char *buf, size_t len, size_t offset,
                            unsigned *line, unsigned *col)
{
    size_t i = 0;
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
        i = 3; /* libyaml drops a UTF-8 byte order mark before counting */
    *line = 1;
    *col = 1;
    for (; i < offset && i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n' || (c == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))) {
            ++*line;
            *col = 1;
        } else if ((c & 0xC0) != 0x80) {
            ++*col; /* UTF-8 continuation bytes are part of one character */
        }
    }
}

static void yaml_diag(builder *b, const yaml_parser_t *parser, const char *buf,
                      size_t len)
{
    if (parser->error == YAML_MEMORY_ERROR) {
        doc_error(b, 0, 0, "out of memory while reading the file");
        return;
    }
    unsigned line = (unsigned)parser->problem_mark.line + 1;
    unsigned col = (unsigned)parser->problem_mark.column + 1;
    if (parser->error == YAML_READER_ERROR) {
        if (parser->encoding == YAML_UTF8_ENCODING)
            offset_position(buf, len, parser->problem_offset, &line, &col);
        else
            line = col = 0; /* UTF-16: offsets count bytes, not characters */
    }
    char msg[256];
    snprintf(msg, sizeof msg, "invalid YAML: %s%s%s",
             parser->problem ? parser->problem : "syntax error",
             parser->context ? " " : "", parser->context ? parser->context : "");
    doc_error(b, line, col, msg);
}

int cn_doc_load_buffer(cn_doc *doc, const char *name, const char *buf,
                       size_t len, cn_diags *diags)
{
    memset(doc, 0, sizeof(*doc));
    cn_arena_init(&doc->arena, DOC_ARENA_LIMIT);
    doc->file = cn_arena_strdup(&doc->arena, name);
    if (!doc->file)
        return CN_ENOMEM;
    if (len > CN_DOC_MAX_BYTES) {
        cn_diags_add(diags, doc->file, 0, 0,
                     "file is %zu bytes, over the %u byte limit for "
                     "policy, change and topology files",
                     len, CN_DOC_MAX_BYTES);
        return CN_ELIMIT;
    }
    json_error_t json_err;
    bool json_deferred = false;
    if (looks_like_json(name, buf, len) &&
        check_json(buf, len, &json_err, &json_deferred)) {
        json_diag(doc, &json_err, diags);
        return CN_EINVAL;
    }

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return CN_ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    builder b = {.doc = doc, .diags = diags};
    /* Unpredictable per load (ASLR, clock), so anchor names cannot be
     * chosen in advance to fall into one hash bucket. */
    b.anchors.seed = (uint64_t)(uintptr_t)&b ^ (uint64_t)(uintptr_t)buf ^
                     ((uint64_t)time(NULL) << 32) ^ (uint64_t)clock();
    int rc = CN_OK;
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&parser, &e)) {
            yaml_diag(&b, &parser, buf, len);
            rc = parser.error == YAML_MEMORY_ERROR ? CN_ENOMEM : CN_EINVAL;
            break;
        }
        int done = e.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &e);
        yaml_event_delete(&e);
        if (rc == CN_ENOMEM)
            doc_error(&b, 0, 0, "out of memory while reading the file");
        if (rc || done)
            break;
    }
    yaml_parser_delete(&parser);
    builder_cleanup(&b);
    if (rc)
        return rc;
    if (json_deferred) { /* cannot happen: the YAML pass saw the same depth */
        json_diag(doc, &json_err, diags);
        return CN_EINVAL;
    }
    if (!b.root || cn_node_is_null(b.root)) {
        cn_diags_add(diags, doc->file, 0, 0, "file is empty; expected a map of keys");
        return CN_EINVAL;
    }
    doc->root = b.root;
    return CN_OK;
}

int cn_doc_load_file(cn_doc *doc, const char *path, cn_diags *diags)
{
    memset(doc, 0, sizeof(*doc));
    FILE *f = fopen(path, "rb");
    if (!f) {
        int err = errno; /* before cn_diags_add's allocations can change it */
        cn_diags_add(diags, path, 0, 0, "cannot open: %s", strerror(err));
        return err == ENOENT ? CN_ENOTFOUND : CN_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        cn_diags_add(diags, path, 0, 0, "is a directory, expected a file");
        return CN_EINVAL;
    }
    /* Read at most one byte past the limit: enough to know it is too big
     * without reading a 50 MB file into memory. Works for pipes too. */
    size_t cap = CN_DOC_MAX_BYTES + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return CN_ENOMEM;
    }
    size_t n;
    errno = 0;
    while (len < cap && (n = fread(buf + len, 1, cap - len, f)) > 0)
        len += n;
    int failed = ferror(f), err = errno; /* before fclose can change it */
    fclose(f);
    if (failed) {
        free(buf);
        cn_diags_add(diags, path, 0, 0, "cannot read: %s",
                     strerror(err ? err : EIO));
        return CN_EIO;
    }
    if (len > CN_DOC_MAX_BYTES) {
        free(buf);
        cn_diags_add(diags, path, 0, 0,
                     "file is larger than the %u byte limit for policy, "
                     "change and topology files",
                     CN_DOC_MAX_BYTES);
        return CN_ELIMIT;
    }
    int rc = cn_doc_load_buffer(doc, path, buf, len, diags);
    free(buf);
    return rc;
}

void cn_doc_free(cn_doc *doc)
{
    cn_arena_free(&doc->arena);
    doc->root = NULL;
}

const cn_node *cn_node_get(const cn_node *map, const char *key)
{
    if (!map || map->type != CN_NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->count; i++) {
        const cn_node *k = map->items[2 * i];
        if (k->type == CN_NODE_SCALAR && strcmp(k->text, key) == 0)
            return map->items[2 * i + 1];
    }
    return NULL;
}

bool cn_node_is_null(const cn_node *n)
{
    if (n->type != CN_NODE_SCALAR || n->quoted)
        return false;
    return n->len == 0 || !strcmp(n->text, "~") || !strcmp(n->text, "null") ||
           !strcmp(n->text, "Null") || !strcmp(n->text, "NULL");
}

const char *cn_node_type_name(const cn_node *n)
{
    if (n->type == CN_NODE_MAP)
        return "a map";
    if (n->type == CN_NODE_SEQ)
        return "a list";
    if (cn_node_is_null(n))
        return "nothing (null)";
    return n->quoted ? "a quoted string" : "a scalar";
}
