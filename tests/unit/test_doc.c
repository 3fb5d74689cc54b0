/* The document loader (doc.c) with its arena and diagnostics: positions of
 * nodes, syntax errors at libyaml's and jansson's positions, and hostile
 * files (huge, deep, alias bombs, binary) rejected in bounded time and
 * memory. Fixed hostile files live in tests/data/hostile/, documents in
 * tests/data/doc/; the big ones are generated here, in /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "canary/arena.h"
#include "canary/diag.h"
#include "canary/doc.h"
#include "canary/status.h"
#include "checks.h"

/* Time bounds below are generous multiples of the real cost; valgrind
 * runs code about 30 times slower, so they stretch under it. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* ---- helpers ------------------------------------------------------------ */

/* Path of a file in the source tree: $CANARY_SRC, else the current
 * directory (make runs tests from the top of the tree). */
static const char *data_path(const char *relative)
{
    static char buf[4][4096];
    static int next;
    const char *root = getenv("CANARY_SRC");
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s/tests/data/%s", root ? root : ".", relative);
    return b;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Seconds a case that takes milliseconds natively may take here. */
static double time_bound(double seconds)
{
    return RUNNING_ON_VALGRIND ? seconds * 40 : seconds;
}

/* Fails unless d holds exactly one problem, at exactly this position, whose
 * message contains msg. */
#define assert_diag(d, line, col, msg) \
    assert_diag_at((d), (line), (col), (msg), __FILE__, __LINE__)
static void assert_diag_at(const cn_diags *d, unsigned line, unsigned col,
                           const char *msg, const char *file, int at)
{
    if (d->count == 1 && d->dropped == 0 && d->items[0].line == line &&
        d->items[0].col == col && strstr(d->items[0].message, msg))
        return;
    print_error("expected exactly %u:%u: ...%s...\ngot %zu (+%zu dropped):\n",
                line, col, msg, d->count, d->dropped);
    cn_test_print_diags(d);
    _fail(file, at);
}

/* Fails unless n is a node of type t at line:col. */
#define assert_node(n, t, line, col) \
    assert_node_at((n), (t), (line), (col), __FILE__, __LINE__)
static void assert_node_at(const cn_node *n, cn_node_type t, unsigned line,
                           unsigned col, const char *file, int at)
{
    if (n && n->type == t && n->line == line && n->col == col)
        return;
    if (!n)
        print_error("node is NULL, expected %u:%u\n", line, col);
    else
        print_error("node type %d at %u:%u, expected type %d at %u:%u\n",
                    (int)n->type, n->line, n->col, (int)t, line, col);
    _fail(file, at);
}

/* Fails unless n is a scalar with this text, quoting and position. */
#define assert_scalar(n, text, quoted, line, col) \
    assert_scalar_at((n), (text), (quoted), (line), (col), __FILE__, __LINE__)
static void assert_scalar_at(const cn_node *n, const char *text, bool quoted,
                             unsigned line, unsigned col, const char *file,
                             int at)
{
    assert_node_at(n, CN_NODE_SCALAR, line, col, file, at);
    if (!strcmp(n->text, text) && n->len == strlen(text) && n->quoted == quoted)
        return;
    print_error("scalar '%s' (len %zu, quoted %d), expected '%s' (quoted %d)\n",
                n->text, n->len, (int)n->quoted, text, (int)quoted);
    _fail(file, at);
}

static int load_text(cn_doc *doc, cn_diags *d, const char *text)
{
    return cn_doc_load_buffer(doc, "t.yaml", text, strlen(text), d);
}

/* pre + n copies of unit + post, NUL-terminated; *len gets the length. */
static char *repeat(const char *pre, const char *unit, size_t n,
                    const char *post, size_t *len)
{
    size_t a = strlen(pre), u = strlen(unit), c = strlen(post);
    char *b = malloc(a + u * n + c + 1);
    assert_non_null(b);
    memcpy(b, pre, a);
    for (size_t i = 0; i < n; i++)
        memcpy(b + a + i * u, unit, u);
    memcpy(b + a + u * n, post, c + 1);
    if (len)
        *len = a + u * n + c;
    return b;
}

/* Temporary files and directories of one test, removed by its teardown
 * even when the test fails (a 50 MB file must not stay behind). */
typedef struct temps {
    char paths[4][64];
    int n;
} temps;

static int temps_setup(void **state)
{
    temps *t = calloc(1, sizeof(*t));
    *state = t;
    return t ? 0 : -1;
}

static int temps_teardown(void **state)
{
    temps *t = *state;
    for (int i = t->n - 1; i >= 0; i--)
        if (unlink(t->paths[i]) != 0)
            rmdir(t->paths[i]);
    free(t);
    return 0;
}

/* A new, empty file in /tmp; its descriptor, open for writing. */
static int temp_fd(temps *t, const char **path)
{
    assert_true(t->n < 4);
    char *p = t->paths[t->n];
    snprintf(p, sizeof t->paths[0], "/tmp/canary-test-doc-XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    t->n++;
    *path = p;
    return fd;
}

/* A new file in /tmp holding data. */
static const char *temp_file(temps *t, const void *data, size_t len)
{
    const char *path;
    int fd = temp_fd(t, &path);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

static const char *temp_dir(temps *t)
{
    assert_true(t->n < 4);
    char *p = t->paths[t->n];
    snprintf(p, sizeof t->paths[0], "/tmp/canary-test-doc-XXXXXX");
    assert_non_null(mkdtemp(p));
    t->n++;
    return p;
}

/* Bytes this process has read through read(2) so far (Linux), or -1. */
static long long bytes_read(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return -1;
    long long n = -1;
    char line[128];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "rchar: %lld", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* ---- positions ----------------------------------------------------------- */

static void test_positions_yaml(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    const char *path = data_path("doc/positions.yaml");
    assert_int_equal(cn_doc_load_file(&doc, path, &d), CN_OK);
    assert_int_equal(d.count, 0);
    assert_string_equal(doc.file, path);
    const cn_node *root = doc.root;
    assert_node(root, CN_NODE_MAP, 2, 1);
    assert_int_equal(root->count, 9);
    assert_scalar(root->items[0], "name", false, 2, 1);
    assert_scalar(root->items[1], "web", false, 2, 7);

    /* flow sequence and flow map */
    const cn_node *ports = cn_node_get(root, "ports");
    assert_node(ports, CN_NODE_SEQ, 3, 8);
    assert_int_equal(ports->count, 2);
    assert_scalar(ports->items[0], "80", false, 3, 9);
    assert_scalar(ports->items[1], "443", false, 3, 13);
    const cn_node *meta = cn_node_get(root, "meta");
    assert_node(meta, CN_NODE_MAP, 4, 7);
    assert_int_equal(meta->count, 2);
    assert_scalar(meta->items[0], "team", false, 4, 8);
    assert_scalar(meta->items[1], "ops", false, 4, 14);
    assert_scalar(meta->items[2], "tier", false, 4, 19);
    assert_scalar(meta->items[3], "1", false, 4, 25);

    /* block sequence of a block map and quoted scalars */
    const cn_node *steps = cn_node_get(root, "steps");
    assert_node(steps, CN_NODE_SEQ, 6, 3);
    assert_int_equal(steps->count, 3);
    assert_node(steps->items[0], CN_NODE_MAP, 6, 5);
    assert_scalar(steps->items[0]->items[0], "weight", false, 6, 5);
    assert_scalar(cn_node_get(steps->items[0], "weight"), "5", false, 6, 13);
    assert_scalar(steps->items[0]->items[2], "pause", false, 7, 5);
    assert_scalar(cn_node_get(steps->items[0], "pause"), "30s", false, 7, 12);
    assert_scalar(steps->items[1], "second", true, 8, 5);
    assert_scalar(steps->items[2], "third", true, 9, 5);

    /* null forms; a quoted "null" is a string */
    assert_scalar(cn_node_get(root, "empty"), "", false, 10, 7);
    assert_true(cn_node_is_null(cn_node_get(root, "empty")));
    assert_scalar(cn_node_get(root, "tilde"), "~", false, 11, 8);
    assert_true(cn_node_is_null(cn_node_get(root, "tilde")));
    assert_scalar(cn_node_get(root, "null_word"), "null", false, 12, 12);
    assert_true(cn_node_is_null(cn_node_get(root, "null_word")));
    assert_scalar(cn_node_get(root, "quoted_null"), "null", true, 13, 14);
    assert_false(cn_node_is_null(cn_node_get(root, "quoted_null")));
    /* a block scalar counts as quoted: it is text, never a number */
    assert_scalar(cn_node_get(root, "note"), "kept as written\n", true, 14, 7);

    assert_string_equal(cn_node_type_name(root), "a map");
    assert_string_equal(cn_node_type_name(ports), "a list");
    assert_string_equal(cn_node_type_name(cn_node_get(root, "tilde")),
                        "nothing (null)");
    assert_string_equal(cn_node_type_name(cn_node_get(root, "quoted_null")),
                        "a quoted string");
    assert_string_equal(cn_node_type_name(cn_node_get(root, "name")), "a scalar");
    cn_doc_free(&doc);
    assert_null(doc.root);
    cn_diags_free(&d);
}

static void test_positions_json(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, data_path("doc/positions.json"), &d),
                     CN_OK);
    assert_int_equal(d.count, 0);
    const cn_node *root = doc.root;
    assert_node(root, CN_NODE_MAP, 1, 1);
    assert_int_equal(root->count, 4);
    assert_scalar(root->items[0], "name", true, 2, 3);
    assert_scalar(root->items[1], "web", true, 2, 11);
    const cn_node *steps = cn_node_get(root, "steps");
    assert_node(steps, CN_NODE_SEQ, 3, 12);
    assert_int_equal(steps->count, 3);
    assert_scalar(steps->items[0], "5", false, 3, 13);
    assert_scalar(steps->items[1], "25", false, 3, 16);
    const cn_node *step = steps->items[2];
    assert_node(step, CN_NODE_MAP, 4, 13);
    assert_scalar(step->items[0], "weight", true, 4, 14);
    assert_scalar(cn_node_get(step, "weight"), "50", false, 4, 24);
    assert_scalar(step->items[2], "pause", true, 4, 28);
    assert_scalar(cn_node_get(step, "pause"), "30s", true, 4, 37);
    assert_scalar(cn_node_get(root, "enabled"), "true", false, 5, 14);
    const cn_node *owner = cn_node_get(root, "owner");
    assert_scalar(owner, "null", false, 6, 12);
    assert_true(cn_node_is_null(owner));
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

static void test_nulls_and_quoting(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d,
                               "a: ~\n"
                               "b: null\n"
                               "c: Null\n"
                               "d: NULL\n"
                               "e:\n"
                               "f: nil\n"
                               "g: 'null'\n"
                               "h: \"\"\n"
                               "i: ''\n"
                               "j: nULL\n"
                               "k: >\n  folded\n  text\n"
                               "l: [~, null, x]\n"),
                     CN_OK);
    const cn_node *r = doc.root;
    assert_true(cn_node_is_null(cn_node_get(r, "a")));
    assert_true(cn_node_is_null(cn_node_get(r, "b")));
    assert_true(cn_node_is_null(cn_node_get(r, "c")));
    assert_true(cn_node_is_null(cn_node_get(r, "d")));
    assert_true(cn_node_is_null(cn_node_get(r, "e")));
    assert_false(cn_node_is_null(cn_node_get(r, "f")));
    assert_false(cn_node_is_null(cn_node_get(r, "g")));
    assert_false(cn_node_is_null(cn_node_get(r, "h"))); /* quoted empty */
    assert_false(cn_node_is_null(cn_node_get(r, "i")));
    assert_false(cn_node_is_null(cn_node_get(r, "j")));
    assert_scalar(cn_node_get(r, "h"), "", true, 8, 4);
    assert_scalar(cn_node_get(r, "k"), "folded text\n", true, 11, 4);
    const cn_node *l = cn_node_get(r, "l");
    assert_node(l, CN_NODE_SEQ, 14, 4);
    assert_int_equal(l->count, 3);
    assert_true(cn_node_is_null(l->items[0]));
    assert_true(cn_node_is_null(l->items[1]));
    assert_false(cn_node_is_null(l->items[2]));
    /* collections are never null */
    assert_false(cn_node_is_null(l));
    assert_false(cn_node_is_null(r));
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

static void test_node_get(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d,
                               "name: web\n"
                               "\"quoted key\": 1\n"
                               "[a, b]: 2\n"
                               "list: [name]\n"
                               "name2: x\n"),
                     CN_OK);
    const cn_node *r = doc.root;
    assert_scalar(cn_node_get(r, "name"), "web", false, 1, 7);
    assert_scalar(cn_node_get(r, "quoted key"), "1", false, 2, 15);
    assert_scalar(cn_node_get(r, "name2"), "x", false, 5, 8);
    assert_null(cn_node_get(r, "nam"));       /* no prefix matches */
    assert_null(cn_node_get(r, "Name"));      /* case matters */
    assert_null(cn_node_get(r, "[a, b]"));    /* a list key is no name */
    assert_null(cn_node_get(cn_node_get(r, "list"), "name")); /* not a map */
    assert_null(cn_node_get(cn_node_get(r, "name"), "name")); /* scalar */
    assert_null(cn_node_get(NULL, "name"));
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

/* ---- syntax errors --------------------------------------------------------- */

/* Each case: text, then libyaml's problem mark and message. */
static void test_yaml_syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned line, col;
        const char *message;
    } cases[] = {
        /* a tab used for indentation */
        {"a:\n\tb: 1\n", 2, 1,
         "invalid YAML: found character that cannot start any token while "
         "scanning for the next token"},
        {"a:\n  b: 1\n\tc: 2\n", 3, 1,
         "invalid YAML: found a tab character that violates indentation while "
         "scanning a plain scalar"},
        /* an unclosed flow sequence, at the end of the file */
        {"a: [1, 2\n", 2, 1,
         "invalid YAML: did not find expected ',' or ']' while parsing a flow "
         "sequence"},
        {"a: {b: 1\n", 2, 1,
         "invalid YAML: did not find expected ',' or '}' while parsing a flow "
         "mapping"},
        /* bad indentation: a key dedented into no mapping */
        {"a:\n    b: 1\n  c: 2\n", 3, 3,
         "invalid YAML: did not find expected key while parsing a block mapping"},
        {"a: 1\n b: 2\n", 2, 3,
         "invalid YAML: mapping values are not allowed in this context"},
        {"a: \"open\n", 2, 1,
         "invalid YAML: found unexpected end of stream while scanning a quoted "
         "scalar"},
        {"a: &\n", 1, 5,
         "invalid YAML: did not find expected alphabetic or numeric character "
         "while scanning an anchor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        int rc = load_text(&doc, &d, cases[i].text);
        if (rc != CN_EINVAL || d.count != 1 ||
            d.items[0].line != cases[i].line || d.items[0].col != cases[i].col ||
            strcmp(d.items[0].message, cases[i].message)) {
            print_error("case %zu: rc %d, expected %u:%u: %s\n", i, rc,
                        cases[i].line, cases[i].col, cases[i].message);
            cn_test_print_diags(&d);
            fail();
        }
        assert_null(doc.root);
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
}

/* JSON is checked by jansson first, for the messages a JSON author expects,
 * at jansson's line and column (the end of the offending token). */
static void test_json_syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned line, col;
        const char *message;
    } cases[] = {
        {"{\"a\": 1,}", 1, 9, "invalid JSON: string or '}' expected near '}'"},
        {"[1, 2,]", 1, 7, "invalid JSON: unexpected token near ']'"},
        {"{\"a\": 1", 1, 7, "invalid JSON: '}' expected near end of file"},
        {"{\"a\": 1,\n \"a\": 2}", 2, 4,
         "invalid JSON: duplicate object key near '\"a\"'"},
        {"{\"a\": 1} x", 1, 10, "invalid JSON: end of file expected near 'x'"},
        {"{a: 1}", 1, 2, "invalid JSON: string or '}' expected near 'a'"},
        {"{\"a\": \"x\\u0000y\"}", 1, 16,
         "invalid JSON: \\u0000 is not allowed without JSON_ALLOW_NUL near "
         "'\"x\\u0000y\"'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        int rc = cn_doc_load_buffer(&doc, "t.json", cases[i].text,
                                    strlen(cases[i].text), &d);
        if (rc != CN_EINVAL || d.count != 1 ||
            d.items[0].line != cases[i].line || d.items[0].col != cases[i].col ||
            strcmp(d.items[0].message, cases[i].message)) {
            print_error("case %zu: rc %d, expected %u:%u: %s\n", i, rc,
                        cases[i].line, cases[i].col, cases[i].message);
            cn_test_print_diags(&d);
            fail();
        }
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
}

/* ---- hostile files ----------------------------------------------------------- */

/* The fixed corpus in tests/data/hostile/: each file, the status, and the
 * one problem expected (line 0: about the whole file). */
static void test_hostile_corpus(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int rc;
        unsigned line, col;
        const char *message;
    } cases[] = {
        {"empty.yaml", CN_EINVAL, 0, 0, "file is empty; expected a map of keys"},
        {"comments-only.yaml", CN_EINVAL, 0, 0,
         "file is empty; expected a map of keys"},
        {"billion-laughs.yaml", CN_ELIMIT, 6, 11,
         "document has more than 200000 nodes after alias expansion; this is "
         "not a policy, change or topology file"},
        {"tab-indent.yaml", CN_EINVAL, 3, 1,
         "invalid YAML: found character that cannot start any token while "
         "scanning for the next token"},
        {"unclosed-flow.yaml", CN_EINVAL, 3, 9,
         "invalid YAML: did not find expected ',' or ']' while parsing a flow "
         "sequence"},
        {"bad-indent.yaml", CN_EINVAL, 4, 3,
         "invalid YAML: did not find expected key while parsing a block mapping"},
        {"trailing-comma.json", CN_EINVAL, 4, 1,
         "invalid JSON: string or '}' expected near '}'"},
        {"missing-brace.json", CN_EINVAL, 4, 1,
         "invalid JSON: '}' expected near end of file"},
        {"duplicate-key.json", CN_EINVAL, 3, 10,
         "invalid JSON: duplicate object key near '\"policy\"'"},
        {"two-documents.yaml", CN_EINVAL, 2, 1,
         "more than one YAML document in the file; put one policy, change or "
         "topology in each file"},
        {"undefined-alias.yaml", CN_EINVAL, 2, 11,
         "alias '*defualts' refers to no anchor defined before it"},
        /* an anchor is defined once its node ends: no cycles */
        {"recursive-alias.yaml", CN_EINVAL, 1, 23,
         "alias '*steps' refers to no anchor defined before it"},
        /* "policy: web\nsteps: " then bytes from an LCG; the first bad one is
         * 0x04 after the lead byte 0xdc, at offset 20 */
        {"garbage.bin", CN_EINVAL, 2, 9, "invalid YAML: invalid trailing UTF-8 octet"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "hostile/%s", cases[i].file);
        const char *path = data_path(rel);
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        double t0 = now();
        int rc = cn_doc_load_file(&doc, path, &d);
        double took = now() - t0;
        if (rc != cases[i].rc || d.count != 1 || d.dropped ||
            d.items[0].line != cases[i].line || d.items[0].col != cases[i].col ||
            strcmp(d.items[0].message, cases[i].message) ||
            strcmp(d.items[0].file, path)) {
            print_error("%s: rc %d, expected %d and %u:%u: %s\n", cases[i].file,
                        rc, cases[i].rc, cases[i].line, cases[i].col,
                        cases[i].message);
            cn_test_print_diags(&d);
            fail();
        }
        assert_null(doc.root);
        /* a bomb must stop at the node limit, long before the arena's */
        assert_true(doc.arena.used < (32u << 20));
        assert_true(took < time_bound(1.0));
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
}

static void test_empty_and_blank(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "", "\n", "   \n\n  ", "# only a comment", "---\n", "---\n...\n", "~\n",
        "null", "\xEF\xBB\xBF",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        assert_int_equal(load_text(&doc, &d, texts[i]), CN_EINVAL);
        assert_diag(&d, 0, 0, "file is empty; expected a map of keys");
        assert_null(doc.root);
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
}

/* Control characters, NUL and invalid UTF-8: libyaml's reader finds them
 * ahead of the scanner; the position is where the bad byte is. */
static void test_binary_bytes(void **state)
{
    (void)state;
#define BYTES(s) s, sizeof(s) - 1
    static const struct {
        const char *text;
        size_t len;
        unsigned line, col;
        const char *message;
    } cases[] = {
        {BYTES("a: 1\nb: \x01\x02\n"), 2, 4,
         "invalid YAML: control characters are not allowed"},
        {BYTES("a: 1\nb: x\0y\n"), 2, 5,
         "invalid YAML: control characters are not allowed"},
        {BYTES("a: 1\nbb: \xff\xfe\n"), 2, 5,
         "invalid YAML: invalid leading UTF-8 octet"},
        /* "é" is one character: the column counts characters, like libyaml */
        {BYTES("a: \xc3\xa9\xc3\xa9 \x7f\n"), 1, 7,
         "invalid YAML: control characters are not allowed"},
        {BYTES("a: x\r\nb: y\r\nc: \x80\n"), 3, 4,
         "invalid YAML: invalid leading UTF-8 octet"},
        /* a byte order mark is not a column */
        {BYTES("\xEF\xBB\xBF" "a: \x1b[0m\n"), 1, 4,
         "invalid YAML: control characters are not allowed"},
        {BYTES("a: \xe2\x82"), 1, 4,
         "invalid YAML: incomplete UTF-8 octet sequence"},
        {BYTES("\x7f" "ELF\x02\x01\x01\0\0\0"), 1, 1,
         "invalid YAML: control characters are not allowed"},
    };
#undef BYTES
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        int rc = cn_doc_load_buffer(&doc, "bin", cases[i].text, cases[i].len, &d);
        if (rc != CN_EINVAL || d.count != 1 ||
            d.items[0].line != cases[i].line || d.items[0].col != cases[i].col ||
            strcmp(d.items[0].message, cases[i].message)) {
            print_error("case %zu: rc %d, expected %u:%u: %s\n", i, rc,
                        cases[i].line, cases[i].col, cases[i].message);
            cn_test_print_diags(&d);
            fail();
        }
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
}

/* Random bytes: every buffer is rejected with one positioned problem. */
static void test_random_garbage(void **state)
{
    (void)state;
    uint32_t x = 2463534242u;
    char buf[4096];
    for (int round = 0; round < 200; round++) {
        size_t len = 64 + (size_t)round * 20;
        unsigned lines = 1; /* at most: libyaml also breaks at U+0085 etc. */
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            unsigned char c = (unsigned char)(x >> 24);
            buf[i] = (char)c;
            if (c == '\n' || c == '\r' || c == 0x85 || c == 0xa8 || c == 0xa9)
                lines++;
        }
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        int rc = cn_doc_load_buffer(&doc, "rnd", buf, len, &d);
        if (rc != CN_EINVAL || d.count != 1 || d.items[0].line < 1 ||
            d.items[0].line > lines || d.items[0].col < 1 ||
            (strncmp(d.items[0].message, "invalid YAML: ", 14) &&
             strncmp(d.items[0].message, "invalid JSON: ", 14))) {
            print_error("round %d (%zu bytes, %u lines): rc %d\n", round, len,
                        lines, rc);
            cn_test_print_diags(&d);
            fail();
        }
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
}

/* Bytes of a valid document flipped at random: whatever the result, the
 * loader must not crash (sanitizers, valgrind) and must explain failures. */
static void test_mutated_documents(void **state)
{
    (void)state;
    static const char base[] =
        "policy: web\n"
        "defaults: &d {interval: 30s, threshold: \"1%\"}\n"
        "steps:\n"
        "  - weight: 5\n"
        "    analysis: *d\n"
        "  - [25, 50, {pause: 5m}]\n"
        "note: |\n"
        "  text\n";
    static const char bytes[] = "\0\t\n\r :-[]{},&*!|>'\"#%@`?\x80\xc3\xff";
    char buf[sizeof base];
    uint32_t x = 88172645u;
    int ok = 0;
    for (int round = 0; round < 2000; round++) {
        memcpy(buf, base, sizeof base);
        for (int k = 0; k < 1 + round % 4; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[x % (sizeof base - 1)] = bytes[(x >> 16) % (sizeof bytes - 1)];
        }
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        int rc = cn_doc_load_buffer(&doc, "mut", buf, sizeof base - 1, &d);
        if (rc == CN_OK) {
            ok++;
            assert_int_equal(d.count, 0);
            assert_non_null(doc.root);
        } else {
            assert_true(rc == CN_EINVAL || rc == CN_ELIMIT);
            assert_int_equal(d.count, 1);
            assert_null(doc.root);
        }
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
    /* both outcomes were exercised */
    print_message("      mutations: %d of 2000 still load\n", ok);
    assert_true(ok > 100 && ok < 1900);
}

/* A 50 MB file: rejected after reading just over the limit, not 50 MB. */
static void test_huge_file(void **state)
{
    char chunk[1 << 16];
    static const char line[] = "key: a valid looking value\n";
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = line[i % (sizeof line - 1)];
    const char *path;
    int fd = temp_fd(*state, &path);
    for (int i = 0; i < 800; i++) /* 50 MiB */
        assert_int_equal(write(fd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
    assert_int_equal(close(fd), 0);

    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    long long before = bytes_read();
    double t0 = now();
    assert_int_equal(cn_doc_load_file(&doc, path, &d), CN_ELIMIT);
    double took = now() - t0;
    long long after = bytes_read();
    assert_diag(&d, 0, 0,
                "file is larger than the 4194304 byte limit for policy, change "
                "and topology files");
    assert_string_equal(d.items[0].file, path);
    assert_null(doc.root);
    if (before >= 0 && after >= 0) {
        print_message("      50 MB file: read %lld bytes in %.3f s\n",
                      after - before, took);
        assert_true(after - before > (long long)CN_DOC_MAX_BYTES);
        assert_true(after - before <= (long long)CN_DOC_MAX_BYTES + (1 << 20));
    }
    cn_doc_free(&doc);
    cn_diags_free(&d);

    /* an endless source stops at the limit too */
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, "/dev/zero", &d), CN_ELIMIT);
    assert_diag(&d, 0, 0, "file is larger than the 4194304 byte limit");
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

/* The byte limit is exact, for files and buffers. */
static void test_size_limit_boundary(void **state)
{
    size_t len = CN_DOC_MAX_BYTES + 1;
    char *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, '#', len); /* "a: 1\n" then one long comment */
    memcpy(buf, "a: 1\n", 5);

    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "big", buf, len, &d), CN_ELIMIT);
    assert_diag(&d, 0, 0,
                "file is 4194305 bytes, over the 4194304 byte limit for policy, "
                "change and topology files");
    cn_doc_free(&doc);
    cn_diags_free(&d);

    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "big", buf, len - 1, &d), CN_OK);
    assert_int_equal(d.count, 0);
    assert_scalar(cn_node_get(doc.root, "a"), "1", false, 1, 4);
    cn_doc_free(&doc);
    cn_diags_free(&d);

    const char *path = temp_file(*state, buf, len - 1);
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, path, &d), CN_OK);
    assert_int_equal(d.count, 0);
    cn_doc_free(&doc);
    cn_diags_free(&d);

    path = temp_file(*state, buf, len);
    free(buf);
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, path, &d), CN_ELIMIT);
    assert_diag(&d, 0, 0, "file is larger than the 4194304 byte limit");
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

static void expect_limit(const char *text, size_t len, int rc, unsigned line,
                         unsigned col, const char *msg)
{
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    double t0 = now();
    int got = cn_doc_load_buffer(&doc, "deep", text, len, &d);
    double took = now() - t0;
    if (got != rc) {
        print_error("rc %d, expected %d\n", got, rc);
        cn_test_print_diags(&d);
        fail();
    }
    assert_diag(&d, line, col, msg);
    assert_null(doc.root);
    assert_true(took < time_bound(1.0));
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

/* 100,000 levels, in every style; the 65th level is refused where it
 * opens. */
static void test_deep_nesting(void **state)
{
    (void)state;
    size_t len;
    char *t;
    const char *msg = "nesting deeper than 64 levels";

    /* JSON-looking: jansson stops at its own 2048 levels; the limit is
     * still reported as ours, at the 65th '[' */
    t = repeat("", "[", 100000, "", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 65, msg);
    free(t);
    t = repeat("", "{\"a\": ", 100000, "", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 1 + 64 * 6, msg);
    free(t);
    /* bare "{a:" is no JSON (unquoted key): jansson says so at once */
    t = repeat("", "{a: ", 100000, "", &len);
    expect_limit(t, len, CN_EINVAL, 1, 2,
                 "invalid JSON: string or '}' expected near 'a'");
    free(t);
    /* as YAML, under a root map (level 1): the 64th brace is level 65 */
    t = repeat("k: ", "{a: ", 100000, "", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 4 + 63 * 4, msg);
    free(t);
    t = repeat("k: ", "[", 100000, "", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 4 + 63, msg);
    free(t);
    /* one level per line */
    t = repeat("", "[\n", 100000, "", &len);
    expect_limit(t, len, CN_ELIMIT, 65, 1, msg);
    free(t);
    /* block sequences on one line */
    t = repeat("", "- ", 100000, "x\n", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 129, msg);
    free(t);
}

static void test_nesting_at_limit(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    size_t len;

    /* 64 flow levels load; 65 do not */
    char *open = repeat("", "[", 64, "", NULL);
    char *t = repeat(open, "]", 64, "", &len);
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "deep", t, len, &d), CN_OK);
    const cn_node *n = doc.root;
    for (int level = 1; level < 64; level++) {
        assert_node(n, CN_NODE_SEQ, 1, (unsigned)level);
        assert_int_equal(n->count, 1);
        n = n->items[0];
    }
    assert_node(n, CN_NODE_SEQ, 1, 64);
    assert_int_equal(n->count, 0);
    cn_doc_free(&doc);
    cn_diags_free(&d);
    free(t);
    free(open);
    open = repeat("", "[", 65, "", NULL);
    t = repeat(open, "]", 65, "", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 65, "nesting deeper than 64 levels");
    free(t);
    free(open);

    /* 64 block maps, "a:" indented two more on each line, a scalar last */
    char text[70 * 140];
    for (int levels = 64; levels <= 65; levels++) {
        size_t at = 0;
        for (int i = 0; i < levels; i++)
            at += (size_t)snprintf(text + at, sizeof text - at, "%*sa:%s\n",
                                   2 * i, "", i == levels - 1 ? " x" : "");
        cn_diags_init(&d);
        int rc = cn_doc_load_buffer(&doc, "deep", text, at, &d);
        if (levels == 64) {
            assert_int_equal(rc, CN_OK);
            n = doc.root;
            for (int i = 0; i < 63; i++)
                n = cn_node_get(n, "a");
            assert_node(n, CN_NODE_MAP, 64, 127);
            assert_scalar(cn_node_get(n, "a"), "x", false, 64, 130);
        } else {
            assert_int_equal(rc, CN_ELIMIT);
            assert_diag(&d, 65, 129, "nesting deeper than 64 levels");
        }
        cn_doc_free(&doc);
        cn_diags_free(&d);
    }
}

/* The classic billion laughs, built here as well: 10^9 strings if expanded;
 * stopped at the node limit within milliseconds and a bounded arena. */
static void test_billion_laughs(void **state)
{
    (void)state;
    char text[1024];
    size_t at = (size_t)snprintf(text, sizeof text,
                                 "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\","
                                 "\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (char c = 'b'; c <= 'i'; c++)
        at += (size_t)snprintf(text + at, sizeof text - at,
                               "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c,
                               c, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1,
                               c - 1, c - 1);
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    double t0 = now();
    assert_int_equal(cn_doc_load_buffer(&doc, "lol", text, at, &d), CN_ELIMIT);
    double took = now() - t0;
    /* nodes: 12 by line 1, 104, 925, 8307, 74738 by line 5; line 6 adds 2,
     * the first *e 66430 (141170), the second would make 207600 */
    assert_diag(&d, 6, 11, "more than 200000 nodes after alias expansion");
    print_message("      billion laughs: %.4f s, arena %zu bytes\n", took,
                  doc.arena.used);
    assert_true(doc.arena.used < (32u << 20));
    assert_true(took < time_bound(1.0));
    cn_doc_free(&doc);
    cn_diags_free(&d);

    /* a bomb inside a flow map, ten copies a level: the first '*e' of
     * line 6 would bring 123,465 nodes to 234,576 */
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d,
                               "x: {a: &a [1,1,1,1,1,1,1,1,1,1],\n"
                               "    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a],\n"
                               "    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b],\n"
                               "    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c],\n"
                               "    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d],\n"
                               "    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]}\n"),
                     CN_ELIMIT);
    assert_diag(&d, 6, 12, "more than 200000 nodes after alias expansion");
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

/* Anchor a(k) holds a(k-1) one level down: a chain of aliases nests like
 * written collections, and the 65th level is refused at the alias. */
static void test_alias_depth(void **state)
{
    (void)state;
    char *text = malloc(64 * 32);
    assert_non_null(text);
    size_t at = (size_t)sprintf(text, "a0: &a0 [x]\n");
    size_t ok_len = 0;
    for (int k = 1; k <= 63; k++) {
        at += (size_t)sprintf(text + at, "a%d: &a%d [*a%d]\n", k, k, k - 1);
        if (k == 62)
            ok_len = at;
    }
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    /* up to a62: the root map, a62's list and 62 copied lists: 64 levels */
    assert_int_equal(cn_doc_load_buffer(&doc, "chain", text, ok_len, &d), CN_OK);
    const cn_node *n = cn_node_get(doc.root, "a62");
    for (int level = 2; level <= 64; level++) {
        assert_non_null(n);
        assert_int_equal(n->type, CN_NODE_SEQ);
        assert_int_equal(n->count, 1);
        n = n->items[0];
    }
    assert_scalar(n, "x", false, 1, 10); /* copies keep their own positions */
    cn_doc_free(&doc);
    cn_diags_free(&d);

    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "chain", text, at, &d), CN_ELIMIT);
    assert_diag(&d, 64, 12, "alias '*a62' nests deeper than 64 levels");
    cn_doc_free(&doc);
    cn_diags_free(&d);
    free(text);

    /* At level 64 an alias may stand for a scalar, like a scalar written
     * there, but not for a collection, even an empty one. */
    size_t len;
    char *open = repeat("e: &e x\nk: ", "[", 63, "*e", NULL);
    char *t = repeat(open, "]", 63, "", &len);
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "deep", t, len, &d), CN_OK);
    cn_doc_free(&doc);
    cn_diags_free(&d);
    free(t);
    free(open);
    open = repeat("e: &e []\nk: ", "[", 63, "*e", NULL);
    t = repeat(open, "]", 63, "", &len);
    expect_limit(t, len, CN_ELIMIT, 2, 4 + 63,
                 "alias '*e' nests deeper than 64 levels");
    free(t);
    free(open);
    open = repeat("k: ", "[", 63, "[]", NULL);
    t = repeat(open, "]", 63, "", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 4 + 63, "nesting deeper than 64 levels");
    free(t);
    free(open);
}

static void test_undefined_alias(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d, "a: 1\nb: [1, *nope]\n"), CN_EINVAL);
    assert_diag(&d, 2, 8, "alias '*nope' refers to no anchor defined before it");
    assert_null(doc.root);
    cn_doc_free(&doc);
    cn_diags_free(&d);

    /* used before its anchor */
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d, "a: *x\nb: &x 1\n"), CN_EINVAL);
    assert_diag(&d, 1, 4, "alias '*x' refers to no anchor defined before it");
    cn_doc_free(&doc);
    cn_diags_free(&d);

    /* a long name is cut short in the message */
    size_t len;
    char *t = repeat("a: *", "n", 500, "\n", &len);
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "t.yaml", t, len, &d), CN_EINVAL);
    assert_int_equal(d.count, 1);
    assert_int_equal(strlen(d.items[0].message),
                     strlen("alias '*' refers to no anchor defined before it") +
                         100);
    cn_doc_free(&doc);
    cn_diags_free(&d);
    free(t);
}

static void test_multiple_documents(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d, "---\na: 1\n...\n---\nb: 2\n"), CN_EINVAL);
    assert_diag(&d, 4, 1, "more than one YAML document in the file");
    assert_null(doc.root);
    cn_doc_free(&doc);
    cn_diags_free(&d);

    /* one explicit document is fine */
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d, "---\na: 1\n...\n"), CN_OK);
    assert_scalar(cn_node_get(doc.root, "a"), "1", false, 2, 4);
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

static void test_directory_and_missing(void **state)
{
    const char *dir = temp_dir(*state);
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, dir, &d), CN_EINVAL);
    assert_diag(&d, 0, 0, "is a directory, expected a file");
    assert_string_equal(d.items[0].file, dir);
    assert_null(doc.root);
    cn_doc_free(&doc);
    cn_diags_free(&d);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope.yaml", dir);
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, missing, &d), CN_ENOTFOUND);
    assert_diag(&d, 0, 0, "cannot open: No such file or directory");
    assert_string_equal(d.items[0].file, missing);
    cn_doc_free(&doc);
    cn_diags_free(&d);

    /* a path through a file is not "not found" */
    const char *file = temp_file(*state, "a: 1\n", 5);
    char through[128];
    snprintf(through, sizeof through, "%s/x.yaml", file);
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, through, &d), CN_EIO);
    assert_diag(&d, 0, 0, "cannot open: Not a directory");
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

/* Anchors and aliases used as meant: aliases become copies placed at the
 * alias; the copied children keep the anchor's positions. */
static void test_anchors_expanded(void **state)
{
    (void)state;
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_file(&doc, data_path("doc/anchors.yaml"), &d),
                     CN_OK);
    assert_int_equal(d.count, 0);
    const cn_node *r = doc.root;
    const cn_node *defaults = cn_node_get(r, "defaults");
    assert_node(defaults, CN_NODE_MAP, 1, 11); /* at its anchor */
    const cn_node *analysis = cn_node_get(cn_node_get(r, "checkout"), "analysis");
    assert_node(analysis, CN_NODE_MAP, 5, 13);
    assert_true(analysis != defaults);
    assert_int_equal(analysis->count, 2);
    assert_scalar(analysis->items[0], "interval", false, 2, 3);
    assert_scalar(cn_node_get(analysis, "interval"), "30s", false, 2, 13);
    assert_scalar(cn_node_get(analysis, "threshold"), "1%", false, 3, 14);
    assert_true(analysis->items != defaults->items);

    const cn_node *steps = cn_node_get(r, "steps");
    assert_node(steps, CN_NODE_SEQ, 6, 8);
    const cn_node *stages = cn_node_get(r, "stages");
    assert_node(stages, CN_NODE_SEQ, 7, 9);
    assert_int_equal(stages->count, 2);
    assert_node(stages->items[0], CN_NODE_SEQ, 7, 10);
    assert_node(stages->items[1], CN_NODE_SEQ, 7, 18);
    assert_true(stages->items[0] != stages->items[1]);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(stages->items[i]->count, 2);
        assert_scalar(stages->items[i]->items[0], "5", false, 6, 16);
        assert_scalar(stages->items[i]->items[1], "25", false, 6, 19);
    }
    cn_doc_free(&doc);
    cn_diags_free(&d);

    /* a redefined anchor: later aliases get the newest definition */
    cn_diags_init(&d);
    assert_int_equal(load_text(&doc, &d,
                               "- &x 1\n- *x\n- &x [2]\n- *x\n- &y 3\n- *x\n"),
                     CN_OK);
    r = doc.root;
    assert_int_equal(r->count, 6);
    assert_scalar(r->items[1], "1", false, 2, 3);
    assert_node(r->items[3], CN_NODE_SEQ, 4, 3);
    assert_scalar(r->items[3]->items[0], "2", false, 3, 7);
    assert_node(r->items[5], CN_NODE_SEQ, 6, 3);
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

static double best_load_time(const char *text, size_t len, int expect_rc)
{
    double best = 1e9;
    for (int i = 0; i < 2; i++) {
        cn_diags d;
        cn_doc doc;
        cn_diags_init(&d);
        double t0 = now();
        int rc = cn_doc_load_buffer(&doc, "many", text, len, &d);
        double took = now() - t0;
        if (rc != expect_rc) {
            print_error("rc %d, expected %d\n", rc, expect_rc);
            cn_test_print_diags(&d);
            fail();
        }
        cn_doc_free(&doc);
        cn_diags_free(&d);
        if (took < best)
            best = took;
    }
    return best;
}

/* 99,000 anchors then 99,000 aliases of the oldest one (1.7 MB). Looking
 * anchors up in a list took 40 s; it must cost about what plain values do.
 * The bound is a ratio so that it holds under valgrind too. */
static void test_many_anchors(void **state)
{
    (void)state;
    enum { N = 99000 };
    char *text = malloc((size_t)N * 32); /* 17 + 11 bytes an anchor */
    char *plain = malloc((size_t)N * 32);
    assert_non_null(text);
    assert_non_null(plain);
    size_t at = 0, pat = 0;
    for (int i = 0; i < N; i++) {
        at += (size_t)sprintf(text + at, "- &anchor%d x\n", i);
        pat += (size_t)sprintf(plain + pat, "- &anchor%d x\n", i);
    }
    for (int i = 0; i < N; i++) {
        at += (size_t)sprintf(text + at, "- *anchor0\n");
        pat += (size_t)sprintf(plain + pat, "- plain000\n");
    }
    assert_int_equal(at, pat);
    double base = best_load_time(plain, pat, CN_OK);
    double aliases = best_load_time(text, at, CN_OK);
    print_message("      %d anchors: plain %.4f s, aliased %.4f s\n", N, base,
                  aliases);
    assert_true(aliases < 10 * base + 0.05);

    /* and the copies are right */
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "many", text, at, &d), CN_OK);
    assert_int_equal(doc.root->count, 2 * N);
    assert_scalar(doc.root->items[N], "x", false, (unsigned)N + 1, 3);
    assert_scalar(doc.root->items[2 * N - 1], "x", false, 2u * N, 3);
    cn_doc_free(&doc);
    cn_diags_free(&d);
    free(text);
    free(plain);
}

/* The node limit counts written nodes as well as copies. */
static void test_node_limit(void **state)
{
    (void)state;
    size_t len;
    /* a root list and 199,999 items: exactly the limit */
    char *t = repeat("[", "1,", CN_DOC_MAX_NODES - 2, "1]", &len);
    cn_diags d;
    cn_doc doc;
    cn_diags_init(&d);
    assert_int_equal(cn_doc_load_buffer(&doc, "nodes", t, len, &d), CN_OK);
    assert_int_equal(doc.root->count, CN_DOC_MAX_NODES - 1);
    cn_doc_free(&doc);
    cn_diags_free(&d);
    free(t);
    t = repeat("[", "1,", CN_DOC_MAX_NODES - 1, "1]", &len);
    expect_limit(t, len, CN_ELIMIT, 1, 2 * CN_DOC_MAX_NODES,
                 "document has more than 200000 nodes after alias expansion");
    free(t);
}

/* ---- diagnostics and arena ------------------------------------------------- */

static char *print_to_string(const cn_diags *d)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    assert_non_null(f);
    cn_diags_print(d, f);
    assert_int_equal(fclose(f), 0);
    return out;
}

static void test_diags(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    char *out = print_to_string(&d);
    assert_string_equal(out, "");
    free(out);

    cn_diags_add(&d, "f.yaml", 3, 7, "unknown key '%s' in %s", "intervall",
                 "policy");
    cn_diags_add(&d, "f.yaml", 0, 0, "file is empty");
    cn_diags_add(&d, NULL, 1, 1, "no file");
    out = print_to_string(&d);
    /* by file in order of first report, then position */
    assert_string_equal(out, "f.yaml: file is empty\n"
                             "f.yaml:3:7: unknown key 'intervall' in policy\n"
                             "<input>:1:1: no file\n");
    free(out);
    assert_int_equal(cn_diags_find(&d, "file is"), 1);
    assert_int_equal(cn_diags_find(&d, "intervall"), 0);
    assert_int_equal(cn_diags_find(&d, "absent"), -1);
    cn_diags_free(&d);
    assert_int_equal(d.count, 0);
    assert_null(d.items);

    /* capped: the first CN_DIAGS_MAX kept in order, the rest counted */
    cn_diags_init(&d);
    for (unsigned i = 1; i <= CN_DIAGS_MAX + 5; i++)
        cn_diags_add(&d, "f.yaml", i, 2 * i, "problem %u", i);
    assert_int_equal(d.count, CN_DIAGS_MAX);
    assert_int_equal(d.dropped, 5);
    assert_int_equal(cn_diags_total(&d), CN_DIAGS_MAX + 5);
    assert_int_equal(d.items[CN_DIAGS_MAX - 1].line, CN_DIAGS_MAX);
    out = print_to_string(&d);
    assert_true(!strncmp(out, "f.yaml:1:2: problem 1\nf.yaml:2:4: problem 2\n", 44));
    const char *tail = "f.yaml:200:400: problem 200\n"
                       "canary: 5 more problems not shown\n";
    assert_true(strlen(out) > strlen(tail));
    assert_string_equal(out + strlen(out) - strlen(tail), tail);
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, CN_DIAGS_MAX + 1);
    free(out);
    cn_diags_free(&d);

    /* a long message is kept whole */
    cn_diags_init(&d);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cn_diags_add(&d, "f", 1, 1, "%s", big);
    assert_string_equal(d.items[0].message, big);
    cn_diags_free(&d);
}

static void test_arena(void **state)
{
    (void)state;
    cn_arena a;
    cn_arena_init(&a, 0);
    unsigned char *p = cn_arena_alloc(&a, 3);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    assert_int_equal(a.used, 16);
    /* a big block, then small ones still fit in the current chunk */
    unsigned char *big = cn_arena_alloc(&a, 100000);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    for (size_t i = 0; i < 100000; i++)
        assert_true(big[i] == 0);
    unsigned char *q = cn_arena_alloc(&a, 1);
    assert_true(q == p + 16);
    char *s = cn_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_string_equal(cn_arena_strdup(&a, ""), "");
    assert_string_equal(cn_arena_printf(&a, "%s:%d", "x", 42), "x:42");
    cn_arena_free(&a);
    assert_null(a.chunks);
    assert_int_equal(a.used, 0);

    /* the limit counts handed-out bytes, rounded up to the alignment */
    cn_arena_init(&a, 64);
    assert_non_null(cn_arena_alloc(&a, 48));
    assert_null(cn_arena_alloc(&a, 17));
    assert_non_null(cn_arena_alloc(&a, 16));
    assert_null(cn_arena_alloc(&a, 1));
    assert_int_equal(a.used, 64);
    assert_null(cn_arena_alloc(&a, SIZE_MAX));
    assert_null(cn_arena_strndup(&a, "x", SIZE_MAX));
    cn_arena_free(&a);

    cn_arena_init(&a, 0);
    assert_null(cn_arena_alloc(&a, SIZE_MAX - 3)); /* rounding overflows */
    /* no rounding overflow, but the chunk header would wrap the size */
    assert_null(cn_arena_alloc(&a, SIZE_MAX - 40));
    cn_arena_free(&a);
}

/* The name decides first: YAML flow style in a .yaml file is not JSON. */
static void test_json_by_name(void **state)
{
    (void)state;
    cn_diags d;
    cn_diags_init(&d);
    cn_doc doc;
    const char *flow = "{name: web, tiers: [0, 1]}\n";
    assert_int_equal(cn_doc_load_buffer(&doc, "p.yaml", flow, strlen(flow), &d), CN_OK);
    assert_string_equal(cn_node_get(doc.root, "name")->text, "web");
    cn_doc_free(&doc);
    assert_int_equal(cn_doc_load_buffer(&doc, "p.json", flow, strlen(flow), &d), CN_EINVAL);
    assert_int_equal(d.count, 1);
    assert_non_null(strstr(d.items[0].message, "invalid JSON"));
    cn_doc_free(&doc);
    cn_diags_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_by_name),
        cmocka_unit_test(test_positions_yaml),
        cmocka_unit_test(test_positions_json),
        cmocka_unit_test(test_nulls_and_quoting),
        cmocka_unit_test(test_node_get),
        cmocka_unit_test(test_yaml_syntax_errors),
        cmocka_unit_test(test_json_syntax_errors),
        cmocka_unit_test(test_hostile_corpus),
        cmocka_unit_test(test_empty_and_blank),
        cmocka_unit_test(test_binary_bytes),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_mutated_documents),
        cmocka_unit_test_setup_teardown(test_huge_file, temps_setup,
                                        temps_teardown),
        cmocka_unit_test_setup_teardown(test_size_limit_boundary, temps_setup,
                                        temps_teardown),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_nesting_at_limit),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_alias_depth),
        cmocka_unit_test(test_undefined_alias),
        cmocka_unit_test(test_multiple_documents),
        cmocka_unit_test_setup_teardown(test_directory_and_missing, temps_setup,
                                        temps_teardown),
        cmocka_unit_test(test_anchors_expanded),
        cmocka_unit_test(test_many_anchors),
        cmocka_unit_test(test_node_limit),
        cmocka_unit_test(test_diags),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests_name("doc", tests, NULL, NULL);
}
