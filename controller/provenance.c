/*
 * provenance.c: the diff and the AI provenance of a git range, parsed from
 * what git prints (pure; provenance_git.c runs git). Input is never assumed
 * to be NUL-terminated: every scan is bounded by len.
 */
#include "canary/provenance.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"

#define PROV_RECORD_SEP '\x1e'
#define PROV_FIELD_SEP '\x1f'

void cn_provenance_init(cn_provenance *p)
{
    memset(p, 0, sizeof(*p));
    /* No arena limit: what goes in is bounded by PROV_OUTPUT_MAX. */
    cn_arena_init(&p->arena, 0);
}

void cn_provenance_free(cn_provenance *p)
{
    cn_arena_free(&p->arena);
    cn_provenance_init(p);
}

/* Returns an array with room for one more element of size bytes: items
 * itself while count < *cap, else a copy in a block twice the size (the
 * arena has no realloc; the old block stays until the arena is freed).
 * NULL when the arena cannot grow. */
static void *grow(cn_arena *a, void *items, size_t count, size_t *cap,
                  size_t size)
{
    if (count < *cap)
        return items;
    size_t ncap = *cap ? *cap * 2 : 8;
    if (ncap < *cap || ncap > SIZE_MAX / size)
        return NULL;
    void *n = cn_arena_alloc(a, ncap * size);
    if (!n)
        return NULL;
    if (count)
        memcpy(n, items, count * size);
    *cap = ncap;
    return n;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ASCII only, so that the locale cannot change what matches. */
static int is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int ieq(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lower(word[i]))
            return 0;
    return 1;
}

static void trim(const char **s, size_t *len)
{
    while (*len && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && is_space((*s)[*len - 1]))
        (*len)--;
}

/* Position of the first whole-word, case-insensitive occurrence of word in
 * s, or -1. A word boundary is the edge of s or any non-alphanumeric
 * character, so "Claude" is found in "Claude:claude-3-opus" but not in
 * "Claudette". */
static long find_word(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (n == 0 || n > len)
        return -1;
    for (size_t i = 0; i + n <= len; i++) {
        if (i > 0 && is_alnum(s[i - 1]))
            continue;
        if (i + n < len && is_alnum(s[i + n]))
            continue;
        if (ieq(s + i, n, word))
            return (long)i;
    }
    return -1;
}

/* The agent named earliest in s (the longer name on a tie), or NULL. */
static const char *find_agent(const char *s, size_t len,
                              const cn_strings *agents)
{
    const char *best = NULL;
    long best_at = -1;
    for (size_t i = 0; agents && i < agents->count; i++) {
        const char *a = agents->items[i];
        if (!a)
            continue;
        long at = find_word(s, len, a);
        if (at < 0)
            continue;
        if (!best || at < best_at ||
            (at == best_at && strlen(a) > strlen(best))) {
            best = a;
            best_at = at;
        }
    }
    return best;
}

/* Abbreviated hashes are lower-case hex, 4 to 64 digits (SHA-256). */
static int valid_hash(const char *s, size_t len)
{
    if (len < 4 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

typedef struct log_commit {
    const char *hash, *subject;
    size_t hash_len, subject_len;
    const char *hash_copy, *subject_copy; /* copied on first evidence */
} log_commit;

/* Looks at one line of a commit's trailer block and, when it makes the
 * commit AI-assisted, appends an evidence entry. Lines that are not
 * "Key: value" trailers are ignored: %(trailers) may print the odd
 * non-trailer line that sits inside a trailer block. */
static int scan_trailer(cn_provenance *p, size_t *cap, log_commit *c,
                        const char *line, size_t len,
                        const cn_strings *agents)
{
    trim(&line, &len);
    size_t k = 0;
    while (k < len && (is_alnum(line[k]) || line[k] == '-'))
        k++;
    size_t key_len = k;
    while (k < len && (line[k] == ' ' || line[k] == '\t'))
        k++;
    if (key_len == 0 || k >= len || line[k] != ':')
        return CN_OK;
    const char *value = line + k + 1;
    size_t value_len = len - k - 1;
    trim(&value, &value_len);

    const char *agent;
    if (ieq(line, key_len, "assisted-by") ||
        ieq(line, key_len, "generated-by")) {
        /* These keys alone make the commit AI-assisted; the agent is only
         * recorded when it is one we know (kernel style "Claude:model"). */
        agent = find_agent(value, value_len, agents);
    } else if (ieq(line, key_len, "co-authored-by")) {
        /* Only the name counts, not the address: a human at
         * dev@cursor.example is not the Cursor agent. */
        const char *lt = memchr(value, '<', value_len);
        size_t name_len = lt ? (size_t)(lt - value) : value_len;
        agent = find_agent(value, name_len, agents);
        if (!agent)
            return CN_OK;
    } else {
        return CN_OK;
    }

    cn_ai_evidence *ev = grow(&p->arena, p->evidence, p->evidence_count, cap,
                              sizeof(*p->evidence));
    if (!ev)
        return CN_ENOMEM;
    p->evidence = ev;
    if (!c->hash_copy) {
        c->hash_copy = cn_arena_strndup(&p->arena, c->hash, c->hash_len);
        c->subject_copy =
            cn_arena_strndup(&p->arena, c->subject, c->subject_len);
        if (!c->hash_copy || !c->subject_copy)
            return CN_ENOMEM;
    }
    cn_ai_evidence *e = &p->evidence[p->evidence_count];
    e->commit = c->hash_copy;
    e->subject = c->subject_copy;
    e->trailer = cn_arena_strndup(&p->arena, line, len);
    e->agent = agent ? cn_arena_strdup(&p->arena, agent) : NULL;
    if (!e->trailer || (agent && !e->agent))
        return CN_ENOMEM;
    p->evidence_count++;
    return CN_OK;
}

/* Replaces p's commits, ai_assisted and evidence with what text says.
 * Every record must be HASH 0x1f SUBJECT 0x1f TRAILERS 0x1e; whitespace
 * between records (git's newline after each) is skipped. Returns CN_EINVAL
 * on anything else, CN_ENOMEM when the arena cannot grow; p may then hold
 * part of the result and must still be freed. agents may be NULL (no
 * Co-authored-by trailer then counts). */
int cn_provenance_parse_log(cn_provenance *p, const char *text, size_t len,
                            const cn_strings *agents)
{
    if (!p || (!text && len))
        return CN_EINVAL;
    p->commits = 0;
    p->ai_assisted = false;
    p->evidence = NULL;
    p->evidence_count = 0;
    size_t cap = 0;

    size_t i = 0;
    for (;;) {
        while (i < len && is_space(text[i]))
            i++;
        if (i == len)
            break;
        const char *rec = text + i;
        const char *end = memchr(rec, PROV_RECORD_SEP, len - i);
        if (!end)
            return CN_EINVAL; /* truncated, or text after the last record */
        size_t rec_len = (size_t)(end - rec);
        const char *f1 = memchr(rec, PROV_FIELD_SEP, rec_len);
        if (!f1)
            return CN_EINVAL;
        const char *f2 = memchr(f1 + 1, PROV_FIELD_SEP, (size_t)(end - f1 - 1));
        if (!f2 || memchr(f2 + 1, PROV_FIELD_SEP, (size_t)(end - f2 - 1)))
            return CN_EINVAL;

        log_commit c = {.hash = rec,
                        .hash_len = (size_t)(f1 - rec),
                        .subject = f1 + 1,
                        .subject_len = (size_t)(f2 - f1 - 1)};
        if (!valid_hash(c.hash, c.hash_len))
            return CN_EINVAL;
        if (p->commits == UINT_MAX)
            return CN_ELIMIT;
        p->commits++;

        const char *t = f2 + 1;
        while (t < end) {
            const char *nl = memchr(t, '\n', (size_t)(end - t));
            const char *line_end = nl ? nl : end;
            int rc = scan_trailer(p, &cap, &c, t, (size_t)(line_end - t),
                                  agents);
            if (rc != CN_OK)
                return rc;
            t = line_end + 1;
        }
        i = (size_t)(end - text) + 1;
    }
    p->ai_assisted = p->evidence_count > 0;
    return CN_OK;
}

/* Reads "N\t" or "-\t" at text[*i]. *n is the count, *dash whether it was
 * "-" (git's mark for a binary file). */
static int numstat_count(const char *text, size_t len, size_t *i,
                         unsigned *n, int *dash)
{
    size_t k = *i;
    *n = 0;
    *dash = 0;
    if (k < len && text[k] == '-') {
        *dash = 1;
        k++;
    } else {
        size_t start = k;
        while (k < len && text[k] >= '0' && text[k] <= '9') {
            unsigned d = (unsigned)(text[k] - '0');
            if (*n > (UINT_MAX - d) / 10)
                return CN_EINVAL;
            *n = *n * 10 + d;
            k++;
        }
        if (k == start)
            return CN_EINVAL;
    }
    if (k >= len || text[k] != '\t')
        return CN_EINVAL;
    *i = k + 1;
    return CN_OK;
}

/* Reads a non-empty NUL-terminated path at text[*i] and moves *i past its
 * terminator, which must lie inside len. */
static const char *numstat_path(const char *text, size_t len, size_t *i)
{
    if (*i >= len)
        return NULL;
    const char *nul = memchr(text + *i, '\0', len - *i);
    if (!nul || nul == text + *i)
        return NULL;
    const char *path = text + *i;
    *i = (size_t)(nul - text) + 1;
    return path;
}

/* Replaces p's files, lines, diff_files and kinds with what text says.
 * Entries are "ADDED\tDELETED\tPATH\0", "-\t-\tPATH\0" for binary files (0
 * lines), and "ADDED\tDELETED\t\0OLD\0NEW\0" for renames, which count once,
 * under the new path. Kinds come from cn_provenance_classify(). Returns
 * CN_EINVAL on malformed text, CN_ELIMIT if a count overflows, CN_ENOMEM. */
int cn_provenance_parse_numstat(cn_provenance *p, const char *text, size_t len,
                                const cn_policy *policy)
{
    if (!p || (!text && len))
        return CN_EINVAL;
    p->files = 0;
    p->lines = 0;
    p->diff_files = NULL;
    p->diff_file_count = 0;
    p->kinds = NULL;
    p->kind_count = 0;
    size_t cap = 0;

    size_t i = 0;
    while (i < len) {
        unsigned added, deleted;
        int dash_a, dash_d;
        if (numstat_count(text, len, &i, &added, &dash_a) != CN_OK ||
            numstat_count(text, len, &i, &deleted, &dash_d) != CN_OK ||
            dash_a != dash_d)
            return CN_EINVAL;
        if (i < len && text[i] == '\0') {
            i++;
            if (!numstat_path(text, len, &i)) /* old path, not used */
                return CN_EINVAL;
        }
        size_t start = i;
        if (!numstat_path(text, len, &i))
            return CN_EINVAL;

        unsigned lines = added + deleted;
        if (lines < added || p->files == UINT_MAX ||
            p->lines > UINT_MAX - lines)
            return CN_ELIMIT;
        cn_diff_file *df = grow(&p->arena, p->diff_files, p->diff_file_count,
                                &cap, sizeof(*p->diff_files));
        if (!df)
            return CN_ENOMEM;
        p->diff_files = df;
        df[p->diff_file_count].path =
            cn_arena_strndup(&p->arena, text + start, i - 1 - start);
        if (!df[p->diff_file_count].path)
            return CN_ENOMEM;
        df[p->diff_file_count].lines = lines;
        p->diff_file_count++;
        p->files++;
        p->lines += lines;
    }
    return cn_provenance_classify(p, policy);
}

int cn_provenance_classify(cn_provenance *p, const cn_policy *policy)
{
    p->kinds = NULL;
    p->kind_count = 0;
    size_t cap = 0;
    for (size_t f = 0; f < p->diff_file_count; f++) {
        const cn_diff_file *df = &p->diff_files[f];
        const char *kind = policy ? cn_policy_kind_for_path(policy, df->path)
                                  : "code";
        size_t k = 0;
        while (k < p->kind_count && strcmp(p->kinds[k].kind, kind))
            k++;
        if (k == p->kind_count) {
            cn_kind_count *kinds = grow(&p->arena, p->kinds, p->kind_count,
                                        &cap, sizeof(*p->kinds));
            if (!kinds)
                return CN_ENOMEM;
            p->kinds = kinds;
            /* Copied: p must not point into the policy's arena. */
            p->kinds[k].kind = cn_arena_strdup(&p->arena, kind);
            if (!p->kinds[k].kind)
                return CN_ENOMEM;
            p->kind_count++;
        }
        p->kinds[k].files++;
        p->kinds[k].lines += df->lines;
    }
    return CN_OK;
}
