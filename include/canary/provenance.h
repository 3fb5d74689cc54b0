/*
 * provenance.h: what a git range changed, and whether AI helped write it.
 *
 * Contract: the parsers are pure: they read the text git printed and fill a
 * cn_provenance whose memory lives in prov->arena (free with
 * cn_provenance_free()). cn_provenance_from_git() is the shell: it runs git
 * through posix_spawn with an argv (never a shell), waits for it, and feeds
 * the parsers. A commit counts as AI-assisted when it carries an
 * `Assisted-by:` or `Generated-by:` trailer (any value), or a
 * `Co-authored-by:` trailer naming one of the known agents (matched
 * case-insensitively as a whole word in the trailer's value).
 */
#ifndef CANARY_PROVENANCE_H
#define CANARY_PROVENANCE_H

#include <stdbool.h>
#include <stddef.h>

#include "canary/arena.h"
#include "canary/policy.h"
#include "canary/schema.h"

/* One trailer that made a commit AI-assisted. */
typedef struct cn_ai_evidence {
    const char *commit;  /* abbreviated hash */
    const char *subject; /* first line of the message */
    const char *trailer; /* the whole trailer line, e.g. "Assisted-by: ..." */
    const char *agent;   /* the agent recognised, or NULL for Assisted-by /
                            Generated-by with an unknown value */
} cn_ai_evidence;

/* One changed file; a rename is listed once, under its new path. */
typedef struct cn_diff_file {
    const char *path;
    unsigned lines; /* added + deleted; 0 for binary files */
} cn_diff_file;

typedef struct cn_kind_count {
    const char *kind;
    unsigned files;
    unsigned lines;
} cn_kind_count;

typedef struct cn_provenance {
    const char *range;
    unsigned commits;
    bool ai_assisted;
    cn_ai_evidence *evidence;
    size_t evidence_count;
    unsigned files;
    unsigned lines; /* added + deleted; binary files count 0 */
    cn_diff_file *diff_files; /* in git's order; kinds derive from these */
    size_t diff_file_count;
    cn_kind_count *kinds; /* in order of first appearance */
    size_t kind_count;
    cn_arena arena;
} cn_provenance;

void cn_provenance_init(cn_provenance *p);
void cn_provenance_free(cn_provenance *p);

/* Parses `git log --format=%h%x1f%s%x1f%(trailers:unfold)%x1e` output
 * (records separated by 0x1e, fields by 0x1f). */
int cn_provenance_parse_log(cn_provenance *p, const char *text, size_t len,
                            const cn_strings *agents);
/* Parses `git diff --numstat -z` output; kinds come from policy's
 * diff.kinds rules (cn_policy_kind_for_path). */
int cn_provenance_parse_numstat(cn_provenance *p, const char *text, size_t len,
                                const cn_policy *policy);
/* Recomputes kinds from diff_files under policy (NULL: every file is
 * "code"), for when the policy that applies is chosen after the diff is
 * known. Returns CN_OK or CN_ENOMEM. */
int cn_provenance_classify(cn_provenance *p, const cn_policy *policy);

/* Runs git in repo_dir over range ("A..B") and fills p. On failure returns
 * CN_ESPAWN / CN_EINVAL with a message in err naming the git command and
 * what git said. */
int cn_provenance_from_git(cn_provenance *p, const char *repo_dir,
                           const char *range, const cn_strings *agents,
                           const cn_policy *policy, char *err, size_t errlen);

#endif
