/* Provenance: the log and numstat parsers on literal git output, then the
 * whole path through a real git repository made for the test. */
#define _XOPEN_SOURCE 700 /* nftw, to remove the test repository */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "canary/policy.h"
#include "canary/provenance.h"
#include "canary/status.h"

extern char **environ;

#define RS "\x1e"
#define FS "\x1f"

static const char *const agent_names[] = {"Claude", "Copilot", "Cursor",
                                          "aider", "GPT", "Amazon Q"};
static const cn_strings agents = {(const char **)agent_names,
                                  sizeof agent_names / sizeof agent_names[0]};

static const cn_kind_rule kind_rules[] = {{"*.sql", "migration"},
                                          {"config/**", "config"}};

static void rule_policy(cn_policy *pol)
{
    cn_policy_defaults(pol);
    pol->kind_rules = (cn_kind_rule *)kind_rules;
    pol->kind_rule_count = sizeof kind_rules / sizeof kind_rules[0];
}

static int parse_log(cn_provenance *p, const char *text)
{
    cn_provenance_init(p);
    return cn_provenance_parse_log(p, text, strlen(text), &agents);
}

static void assert_evidence(const cn_ai_evidence *e, const char *commit,
                            const char *subject, const char *trailer,
                            const char *agent)
{
    assert_string_equal(e->commit, commit);
    assert_string_equal(e->subject, subject);
    assert_string_equal(e->trailer, trailer);
    if (agent) {
        assert_non_null(e->agent);
        assert_string_equal(e->agent, agent);
    } else {
        assert_null(e->agent);
    }
}

static void test_log_empty_range(void **state)
{
    (void)state;
    cn_provenance p;
    assert_int_equal(parse_log(&p, ""), CN_OK);
    assert_int_equal(p.commits, 0);
    assert_false(p.ai_assisted);
    assert_int_equal(p.evidence_count, 0);
    assert_null(p.evidence);
    cn_provenance_free(&p);
    assert_int_equal(parse_log(&p, "\n \n"), CN_OK);
    assert_int_equal(p.commits, 0);
    cn_provenance_free(&p);
}

static void test_log_no_trailers(void **state)
{
    (void)state;
    cn_provenance p;
    assert_int_equal(parse_log(&p, "d3a9c80" FS "empty" FS RS "\n"
                                   "5c5b47d" FS "fix: a thing" FS
                                   "Signed-off-by: Ann <ann@x>\n" RS "\n"),
                     CN_OK);
    assert_int_equal(p.commits, 2);
    assert_false(p.ai_assisted);
    assert_int_equal(p.evidence_count, 0);
    cn_provenance_free(&p);
}

static void test_log_agent_coauthors(void **state)
{
    (void)state;
    cn_provenance p;
    assert_int_equal(
        parse_log(&p,
                  "aaaa001" FS "one" FS
                  "Co-Authored-By: Claude Opus 4 <noreply@anthropic.com>\n" RS
                  "\naaaa002" FS "two" FS
                  "Co-authored-by: aider (gpt-4) <aider@aider.chat>\n" RS
                  "\naaaa003" FS "three" FS
                  "Co-authored-by: Cursor <cursoragent@cursor.com>\n" RS
                  "\naaaa004" FS "four" FS
                  "Co-authored-by: Copilot "
                  "<175728472+Copilot@users.noreply.github.com>\n" RS
                  "\naaaa005" FS "five" FS
                  "Co-authored-by: Amazon Q Developer <q@amazon.example>\n" RS
                  "\n"),
        CN_OK);
    assert_int_equal(p.commits, 5);
    assert_true(p.ai_assisted);
    assert_int_equal(p.evidence_count, 5);
    assert_evidence(&p.evidence[0], "aaaa001", "one",
                    "Co-Authored-By: Claude Opus 4 <noreply@anthropic.com>",
                    "Claude");
    /* "aider" and "GPT" are both named; the earlier one wins. */
    assert_evidence(&p.evidence[1], "aaaa002", "two",
                    "Co-authored-by: aider (gpt-4) <aider@aider.chat>",
                    "aider");
    assert_evidence(&p.evidence[2], "aaaa003", "three",
                    "Co-authored-by: Cursor <cursoragent@cursor.com>",
                    "Cursor");
    assert_evidence(&p.evidence[3], "aaaa004", "four",
                    "Co-authored-by: Copilot "
                    "<175728472+Copilot@users.noreply.github.com>",
                    "Copilot");
    assert_evidence(&p.evidence[4], "aaaa005", "five",
                    "Co-authored-by: Amazon Q Developer <q@amazon.example>",
                    "Amazon Q");
    cn_provenance_free(&p);
}

static void test_log_human_coauthors(void **state)
{
    (void)state;
    cn_provenance p;
    /* Whole words only, and only the name, never the address. */
    assert_int_equal(
        parse_log(&p, "bbbb001" FS "pair" FS
                      "Co-authored-by: Claudette Smith <c@x>\n"
                      "Co-authored-by: ClaudeBot Fan <f@x>\n"
                      "Co-authored-by: AntiCursor Team <t@x>\n"
                      "Co-authored-by: Dev Person <dev@cursor.com>\n"
                      "Co-authored-by: Amazon Quinn <aq@x>\n"
                      "Co-authored-by: Aiders Club <a@x>\n"
                      "Reviewed-by: Claude Shannon <cs@bell.example>\n"
                      "X-Assisted-by: Claude\n"
                      "Assisted-by-human: Claude\n" RS "\n"),
        CN_OK);
    assert_int_equal(p.commits, 1);
    assert_false(p.ai_assisted);
    assert_int_equal(p.evidence_count, 0);
    cn_provenance_free(&p);
}

static void test_log_word_boundaries(void **state)
{
    (void)state;
    cn_provenance p;
    assert_int_equal(parse_log(&p, "cccc001" FS "s" FS
                                   "Co-authored-by: my-claude-helper <h@x>\n"
                                   "Co-authored-by: CURSOR <c@x>\n" RS),
                     CN_OK);
    assert_int_equal(p.evidence_count, 2);
    assert_string_equal(p.evidence[0].agent, "Claude");
    assert_string_equal(p.evidence[1].agent, "Cursor");
    cn_provenance_free(&p);
}

static void test_log_longer_agent_wins_tie(void **state)
{
    (void)state;
    static const char *const names[] = {"Amazon", "Amazon Q"};
    const cn_strings list = {(const char **)names, 2};
    static const char text[] = "abcd001" FS "s" FS
                               "Co-authored-by: Amazon Q Developer <q@x>\n" RS;
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_parse_log(&p, text, sizeof text - 1, &list),
                     CN_OK);
    assert_int_equal(p.evidence_count, 1);
    assert_string_equal(p.evidence[0].agent, "Amazon Q");
    cn_provenance_free(&p);
}

static void test_log_assisted_generated(void **state)
{
    (void)state;
    cn_provenance p;
    assert_int_equal(
        parse_log(&p, "dddd001" FS "kernel style" FS
                      "Assisted-by: Claude:claude-3-opus coccinelle\n" RS "\n"
                      "dddd002" FS "openstack style" FS
                      "Generated-By: granite-code-8b\n" RS "\n"
                      "dddd003" FS "upper keys" FS
                      "ASSISTED-BY: an internal tool\n" RS "\n"
                      "dddd004" FS "lower key" FS
                      "co-authored-by: claude <noreply@anthropic.com>\n" RS
                      "\n"),
        CN_OK);
    assert_int_equal(p.commits, 4);
    assert_true(p.ai_assisted);
    assert_int_equal(p.evidence_count, 4);
    assert_evidence(&p.evidence[0], "dddd001", "kernel style",
                    "Assisted-by: Claude:claude-3-opus coccinelle", "Claude");
    assert_evidence(&p.evidence[1], "dddd002", "openstack style",
                    "Generated-By: granite-code-8b", NULL);
    assert_evidence(&p.evidence[2], "dddd003", "upper keys",
                    "ASSISTED-BY: an internal tool", NULL);
    /* The agent is reported as the list spells it. */
    assert_evidence(&p.evidence[3], "dddd004", "lower key",
                    "co-authored-by: claude <noreply@anthropic.com>",
                    "Claude");
    cn_provenance_free(&p);
}

static void test_log_several_trailers(void **state)
{
    (void)state;
    cn_provenance p;
    assert_int_equal(parse_log(&p, "eeee001" FS "many" FS
                                   "Signed-off-by: Ann <ann@x>\n"
                                   "Co-authored-by: Claude <noreply@anthropic.com>\n"
                                   "Assisted-by: Cursor:gpt-5\n"
                                   "Co-authored-by: Bob <bob@x>\n" RS "\n"
                                   "eeee002" FS "plain" FS RS "\n"),
                     CN_OK);
    assert_int_equal(p.commits, 2);
    assert_true(p.ai_assisted);
    assert_int_equal(p.evidence_count, 2);
    assert_evidence(&p.evidence[0], "eeee001", "many",
                    "Co-authored-by: Claude <noreply@anthropic.com>", "Claude");
    assert_evidence(&p.evidence[1], "eeee001", "many",
                    "Assisted-by: Cursor:gpt-5", "Cursor");
    cn_provenance_free(&p);
}

static void test_log_many_commits_grow(void **state)
{
    (void)state;
    /* More evidence than the first array holds, so it must move. */
    char text[4096];
    size_t len = 0;
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "%07x" FS "c%d" FS "Assisted-by: aider\n" RS
                                "\n",
                                0xa000 + i, i);
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_parse_log(&p, text, len, &agents), CN_OK);
    assert_int_equal(p.commits, 40);
    assert_int_equal(p.evidence_count, 40);
    assert_string_equal(p.evidence[0].commit, "000a000");
    assert_string_equal(p.evidence[39].commit, "000a027");
    assert_string_equal(p.evidence[39].subject, "c39");
    cn_provenance_free(&p);
}

static void test_log_no_agents(void **state)
{
    (void)state;
    const char *text = "ffff001" FS "s" FS
                       "Co-authored-by: Claude <noreply@anthropic.com>\n"
                       "Assisted-by: Claude\n" RS;
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_parse_log(&p, text, strlen(text), NULL),
                     CN_OK);
    assert_int_equal(p.evidence_count, 1);
    assert_evidence(&p.evidence[0], "ffff001", "s", "Assisted-by: Claude",
                    NULL);
    cn_provenance_free(&p);
}

static void test_log_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "abc1234" FS "s" FS,                 /* no record separator */
        "abc1234" FS "s" RS,                 /* two fields */
        "abc1234" RS,                        /* one field */
        "abc1234" FS "s" FS "t" FS "u" RS,   /* four fields */
        "xyz1234" FS "s" FS RS,              /* not hex */
        "ABC1234" FS "s" FS RS,              /* not git's lower-case hex */
        "abc" FS "s" FS RS,                  /* too short */
        FS "s" FS RS,                        /* no hash */
        "abc1234" FS "s" FS RS "junk",       /* text after the last record */
        "abc1234 " FS "s" FS RS,             /* space in the hash */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_provenance p;
        cn_provenance_init(&p);
        assert_int_equal(cn_provenance_parse_log(&p, bad[i], strlen(bad[i]),
                                                 &agents),
                         CN_EINVAL);
        cn_provenance_free(&p);
    }
    /* A NUL inside the hash is just a bad byte. */
    static const char nul[] = "abc\0" "234" FS "s" FS RS;
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_parse_log(&p, nul, sizeof nul - 1, &agents),
                     CN_EINVAL);
    cn_provenance_free(&p);
}

static void test_log_respects_len(void **state)
{
    (void)state;
    /* Bytes past len are not input: here they would be a second commit. */
    static const char text[] = "abc1234" FS "s" FS RS "\n"
                               "abc5678" FS "t" FS "Assisted-by: x\n" RS;
    cn_provenance p;
    cn_provenance_init(&p);
    size_t first = strlen("abc1234" FS "s" FS RS "\n");
    assert_int_equal(cn_provenance_parse_log(&p, text, first, &agents), CN_OK);
    assert_int_equal(p.commits, 1);
    assert_false(p.ai_assisted);
    /* Cut inside the second record: truncated. */
    assert_int_equal(cn_provenance_parse_log(&p, text, sizeof text - 2,
                                             &agents),
                     CN_EINVAL);
    cn_provenance_free(&p);
}

/* numstat text has NULs, so tests give its size (without the literal's
 * own terminator). */
#define NUMSTAT(p, lit, pol) \
    cn_provenance_parse_numstat(p, lit, sizeof(lit) - 1, pol)

static void test_numstat_kinds(void **state)
{
    (void)state;
    cn_policy pol;
    rule_policy(&pol);
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(NUMSTAT(&p,
                             "2\t0\tdb/001.sql\0"
                             "1\t1\tconfig/app.yaml\0"
                             "10\t3\tsrc/x.c\0"
                             "4\t0\tdb/002.sql\0"
                             "5\t5\tconfig/deep/a.yaml\0",
                             &pol),
                     CN_OK);
    assert_int_equal(p.files, 5);
    assert_int_equal(p.lines, 31);
    assert_int_equal(p.kind_count, 3);
    assert_string_equal(p.kinds[0].kind, "migration");
    assert_int_equal(p.kinds[0].files, 2);
    assert_int_equal(p.kinds[0].lines, 6);
    assert_string_equal(p.kinds[1].kind, "config");
    assert_int_equal(p.kinds[1].files, 2);
    assert_int_equal(p.kinds[1].lines, 12);
    assert_string_equal(p.kinds[2].kind, "code");
    assert_int_equal(p.kinds[2].files, 1);
    assert_int_equal(p.kinds[2].lines, 13);
    cn_provenance_free(&p);
    cn_policy_free(&pol);
}

static void test_numstat_binary_and_rename(void **state)
{
    (void)state;
    cn_policy pol;
    rule_policy(&pol);
    cn_provenance p;
    cn_provenance_init(&p);
    /* The rename counts under its new path's kind. */
    assert_int_equal(NUMSTAT(&p,
                             "-\t-\tassets/logo.png\0"
                             "0\t0\t\0src/old.c\0config/new.yaml\0"
                             "3\t1\t\0config/a.yaml\0db/a.sql\0",
                             &pol),
                     CN_OK);
    assert_int_equal(p.files, 3);
    assert_int_equal(p.lines, 4);
    assert_int_equal(p.kind_count, 3);
    assert_string_equal(p.kinds[0].kind, "code");
    assert_int_equal(p.kinds[0].files, 1);
    assert_int_equal(p.kinds[0].lines, 0);
    assert_string_equal(p.kinds[1].kind, "config");
    assert_int_equal(p.kinds[1].files, 1);
    assert_int_equal(p.kinds[1].lines, 0);
    assert_string_equal(p.kinds[2].kind, "migration");
    assert_int_equal(p.kinds[2].files, 1);
    assert_int_equal(p.kinds[2].lines, 4);
    assert_int_equal(p.diff_file_count, 3);
    assert_string_equal(p.diff_files[0].path, "assets/logo.png");
    assert_int_equal(p.diff_files[0].lines, 0);
    assert_string_equal(p.diff_files[1].path, "config/new.yaml");
    assert_string_equal(p.diff_files[2].path, "db/a.sql");
    assert_int_equal(p.diff_files[2].lines, 4);
    cn_provenance_free(&p);
    cn_policy_free(&pol);
}

static void test_classify_again(void **state)
{
    (void)state;
    /* Parsed before the policy is known, classified once it is. */
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(NUMSTAT(&p, "2\t0\tdb/001.sql\0" "1\t1\tsrc/x.c\0"
                                 "3\t0\tconfig/app.yaml\0",
                             NULL),
                     CN_OK);
    assert_int_equal(p.kind_count, 1);
    assert_string_equal(p.kinds[0].kind, "code");
    assert_int_equal(p.kinds[0].files, 3);
    assert_int_equal(p.kinds[0].lines, 7);
    cn_policy pol;
    rule_policy(&pol);
    assert_int_equal(cn_provenance_classify(&p, &pol), CN_OK);
    cn_policy_free(&pol); /* p's kinds must not point into the policy */
    assert_int_equal(p.files, 3);
    assert_int_equal(p.lines, 7);
    assert_int_equal(p.kind_count, 3);
    assert_string_equal(p.kinds[0].kind, "migration");
    assert_int_equal(p.kinds[0].lines, 2);
    assert_string_equal(p.kinds[1].kind, "code");
    assert_int_equal(p.kinds[1].lines, 2);
    assert_string_equal(p.kinds[2].kind, "config");
    assert_int_equal(p.kinds[2].files, 1);
    assert_int_equal(p.kinds[2].lines, 3);
    cn_provenance_free(&p);
}

static void test_numstat_default_and_empty(void **state)
{
    (void)state;
    cn_policy pol;
    cn_policy_defaults(&pol);
    pol.kind_rule_count = 0; /* no kind rules: everything is code */
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(NUMSTAT(&p, "1\t2\tdb/001.sql\0", &pol), CN_OK);
    assert_int_equal(p.files, 1);
    assert_int_equal(p.lines, 3);
    assert_int_equal(p.kind_count, 1);
    assert_string_equal(p.kinds[0].kind, "code");
    /* Parsing again replaces, not adds. */
    assert_int_equal(cn_provenance_parse_numstat(&p, "", 0, &pol), CN_OK);
    assert_int_equal(p.files, 0);
    assert_int_equal(p.lines, 0);
    assert_int_equal(p.kind_count, 0);
    assert_int_equal(NUMSTAT(&p, "7\t0\tconfig/x\0", NULL), CN_OK);
    assert_string_equal(p.kinds[0].kind, "code");
    cn_provenance_free(&p);
    cn_policy_free(&pol);
}

static void test_numstat_many_kinds_grow(void **state)
{
    (void)state;
    /* Ten kinds: more than the first kinds array holds. */
    static cn_kind_rule rules[10];
    static char pats[10][16], names[10][16];
    for (int i = 0; i < 10; i++) {
        snprintf(pats[i], sizeof pats[i], "%d/*", i);
        snprintf(names[i], sizeof names[i], "k%d", i);
        rules[i].pattern = pats[i];
        rules[i].kind = names[i];
    }
    cn_policy pol;
    cn_policy_defaults(&pol);
    pol.kind_rules = rules;
    pol.kind_rule_count = 10;
    char text[512];
    size_t len = 0;
    for (int i = 0; i < 10; i++) {
        len += (size_t)snprintf(text + len, sizeof text - len, "%d\t0\t%d/f",
                                i + 1, i);
        text[len++] = '\0';
    }
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_parse_numstat(&p, text, len, &pol), CN_OK);
    assert_int_equal(p.files, 10);
    assert_int_equal(p.lines, 55);
    assert_int_equal(p.kind_count, 10);
    assert_string_equal(p.kinds[0].kind, "k0");
    assert_string_equal(p.kinds[9].kind, "k9");
    assert_int_equal(p.kinds[9].lines, 10);
    cn_provenance_free(&p);
    cn_policy_free(&pol);
}

static void test_numstat_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
#define BAD(lit) {lit, sizeof(lit) - 1}
        BAD("1\t2\tpath"),                /* no NUL: truncated */
        BAD("1\t2\n"),                    /* newline, not -z output */
        BAD("1\t2\tpath\n"),              /* idem */
        BAD("a\t1\tp\0"),                 /* not a number */
        BAD("\t1\tp\0"),                  /* empty count */
        BAD("1\t\tp\0"),                  /* empty count */
        BAD("1 2\tp\0"),                  /* wrong separator */
        BAD("-\t1\tp\0"),                 /* half binary */
        BAD("1\t-\tp\0"),                 /* half binary */
        BAD("1\t2\t\0\0"),                /* empty path */
        BAD("1\t2\t\0"),                  /* rename, no paths */
        BAD("1\t2\t\0old\0"),             /* rename, no new path */
        BAD("1\t2\t\0old\0\0"),           /* rename, empty new path */
        BAD("1\t2\t\0\0new\0"),           /* rename, empty old path */
        BAD("99999999999\t0\tp\0"),       /* overflows */
        BAD("1\t2\tp\0" "3"),             /* trailing junk */
        BAD("1\t2"),                      /* cut short */
#undef BAD
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_provenance p;
        cn_provenance_init(&p);
        assert_int_equal(cn_provenance_parse_numstat(&p, bad[i].text,
                                                     bad[i].len, NULL),
                         CN_EINVAL);
        cn_provenance_free(&p);
    }
    /* Counts that fit one by one but not summed, within a file or across. */
    cn_provenance p;
    cn_provenance_init(&p);
    assert_int_equal(NUMSTAT(&p, "4000000000\t4000000000\ta\0", NULL),
                     CN_ELIMIT);
    assert_int_equal(NUMSTAT(&p, "4000000000\t0\ta\0" "4000000000\t0\tb\0",
                             NULL),
                     CN_ELIMIT);
    /* Only len bytes are input: the NUL after "path" is outside it. */
    static const char cut[] = "1\t2\tpath\0";
    assert_int_equal(cn_provenance_parse_numstat(&p, cut, sizeof cut - 2,
                                                 NULL),
                     CN_EINVAL);
    cn_provenance_free(&p);
}

static void test_range_validation(void **state)
{
    (void)state;
    static const struct {
        const char *range, *msg;
    } bad[] = {
        {"", "--git-range: empty range; expected A..B"},
        {"main", "--git-range 'main': expected A..B"},
        {"main...topic", "--git-range 'main...topic': symmetric ranges "
                         "(A...B) are not supported; use A..B"},
        {"a..b..c", "--git-range 'a..b..c': expected A..B"},
        {"..main", "--git-range '..main': both sides of A..B must be given"},
        {"main..", "--git-range 'main..': both sides of A..B must be given"},
        {"-x..main", "--git-range '-x..main': a revision may not start "
                     "with '-'"},
        {"main..--output=/tmp/x", "--git-range 'main..--output=/tmp/x': a "
                                  "revision may not start with '-'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_provenance p;
        cn_provenance_init(&p);
        char err[256] = "";
        /* A directory that is not a repository: validation comes first. */
        assert_int_equal(cn_provenance_from_git(&p, "/nonexistent",
                                                bad[i].range, &agents, NULL,
                                                err, sizeof err),
                         CN_EINVAL);
        assert_string_equal(err, bad[i].msg);
        cn_provenance_free(&p);
    }
}

/* ---- a real repository ---- */

/* Runs argv with stdin from /dev/null; the first outcap-1 bytes of stdout
 * go to out (NUL-terminated) when out is given. Returns the exit status,
 * or -1 if the program could not run. */
static int run(const char *const argv[], char *out, size_t outcap)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv,
                         environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (e) {
        close(fds[0]);
        return -1;
    }
    size_t len = 0;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        size_t keep = out && len + 1 < outcap ? outcap - 1 - len : 0;
        if (keep > (size_t)n)
            keep = (size_t)n;
        if (keep)
            memcpy(out + len, buf, keep);
        len += keep;
    }
    close(fds[0]);
    if (out && outcap)
        out[len] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct repo {
    char tmp[64];  /* HOME, with the git configuration */
    char dir[96];  /* tmp/repo, the repository */
    int created;
} repo;

static void write_file(const repo *r, const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", r->dir, rel);
    char *slash = strrchr(path, '/');
    if (slash > path + strlen(r->dir)) {
        *slash = '\0';
        mkdir(path, 0755); /* one level is enough here */
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* GIT(r, "commit", "-q", ...) runs git in r's directory and must succeed. */
#define GIT(r, ...) git_argv(r, (const char *[]){__VA_ARGS__, NULL})

static void git_argv(const repo *r, const char *args[])
{
    const char *argv[16] = {"git", "-C", r->dir, "-c", "commit.gpgsign=false"};
    size_t n = 5;
    for (size_t i = 0; args[i]; i++) {
        assert_true(n + 1 < sizeof argv / sizeof argv[0]);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    assert_int_equal(run(argv, NULL, 0), 0);
}

static void short_hash(const repo *r, const char *rev, char *out, size_t cap)
{
    const char *argv[] = {"git", "-C", r->dir, "rev-parse", "--short", rev,
                          NULL};
    assert_int_equal(run(argv, out, cap), 0);
    out[strcspn(out, "\n")] = '\0';
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The repository lives from setup to teardown, so a failed assertion in
 * the test still removes it. */
static int repo_setup(void **state)
{
    static repo r;
    memset(&r, 0, sizeof r);
    snprintf(r.tmp, sizeof r.tmp, "/tmp/canary-prov-XXXXXX");
    if (!mkdtemp(r.tmp))
        return -1;
    r.created = 1;
    *state = &r;
    snprintf(r.dir, sizeof r.dir, "%s/repo", r.tmp);
    return mkdir(r.dir, 0700);
}

static int repo_teardown(void **state)
{
    repo *r = *state;
    if (r && r->created)
        return nftw(r->tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0
                                                                          : -1;
    return 0;
}

static void test_git_repository(void **state)
{
    const repo *rp = *state;
    repo r = *rp;
    const char *version[] = {"git", "--version", NULL};
    if (run(version, NULL, 0) != 0)
        skip();
    /* Nothing from the user's or the system's git configuration. */
    setenv("HOME", r.tmp, 1);
    setenv("XDG_CONFIG_HOME", r.tmp, 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_AUTHOR_NAME", "Ann", 1);
    setenv("GIT_AUTHOR_EMAIL", "ann@example.com", 1);
    setenv("GIT_COMMITTER_NAME", "Ann", 1);
    setenv("GIT_COMMITTER_EMAIL", "ann@example.com", 1);
    setenv("LC_ALL", "C", 1); /* git's messages in English */

    /* Settings that would change what the parsers see, were the flags
     * cn_provenance_from_git passes missing. */
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%s/.gitconfig", r.tmp);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("[diff]\n\trenames = false\n[color]\n\tui = always\n", f);
    assert_int_equal(fclose(f), 0);

    GIT(&r, "init", "-q", "-b", "main");
    write_file(&r, "src/x.c", "int x;\nint y;\n");
    write_file(&r, "docs/readme.md", "hello\n");
    GIT(&r, "add", "-A");
    GIT(&r, "commit", "-q", "-m", "initial");
    GIT(&r, "tag", "base");

    write_file(&r, "db/001.sql", "create table t (a int);\n"
                                 "insert into t values (1);\n"
                                 "insert into t values (2);\n");
    GIT(&r, "add", "-A");
    GIT(&r, "commit", "-q", "-m", "add migration", "-m", "body text", "-m",
        "Co-authored-by: Claude <noreply@anthropic.com>");

    write_file(&r, "config/app.yaml", "a: 1\nb: 2\n");
    GIT(&r, "add", "-A");
    GIT(&r, "commit", "-q", "-m", "tune config");

    write_file(&r, "src/x.c", "int x;\nint z;\n");
    GIT(&r, "add", "-A");
    GIT(&r, "commit", "-q", "-m", "fix x", "-m",
        "Signed-off-by: Ann <ann@example.com>\n"
        "Assisted-by: aider:gpt-4o");

    GIT(&r, "mv", "docs/readme.md", "docs/README.md");
    GIT(&r, "commit", "-q", "-m", "rename readme", "-m",
        "Co-authored-by: Claudette Smith <c@example.com>");

    char h_migration[64], h_fix[64];
    short_hash(&r, "main~3", h_migration, sizeof h_migration);
    short_hash(&r, "main~1", h_fix, sizeof h_fix);

    cn_policy pol;
    rule_policy(&pol);
    cn_provenance p;
    cn_provenance_init(&p);
    char err[512] = "";
    int rc = cn_provenance_from_git(&p, r.dir, "base..main", &agents, &pol,
                                    err, sizeof err);
    assert_string_equal(err, "");
    assert_int_equal(rc, CN_OK);
    assert_string_equal(p.range, "base..main");
    assert_int_equal(p.commits, 4);
    assert_true(p.ai_assisted);
    assert_int_equal(p.evidence_count, 2);
    /* git log lists the newest commit first. */
    assert_evidence(&p.evidence[0], h_fix, "fix x", "Assisted-by: aider:gpt-4o",
                    "aider");
    assert_evidence(&p.evidence[1], h_migration, "add migration",
                    "Co-authored-by: Claude <noreply@anthropic.com>",
                    "Claude");
    /* config/app.yaml +2, db/001.sql +3, docs/readme.md -> README.md 0,
     * src/x.c +1 -1; in git's path order. */
    assert_int_equal(p.files, 4);
    assert_int_equal(p.lines, 7);
    assert_int_equal(p.kind_count, 3);
    assert_string_equal(p.kinds[0].kind, "config");
    assert_int_equal(p.kinds[0].files, 1);
    assert_int_equal(p.kinds[0].lines, 2);
    assert_string_equal(p.kinds[1].kind, "migration");
    assert_int_equal(p.kinds[1].files, 1);
    assert_int_equal(p.kinds[1].lines, 3);
    assert_string_equal(p.kinds[2].kind, "code");
    assert_int_equal(p.kinds[2].files, 2);
    assert_int_equal(p.kinds[2].lines, 2);
    cn_provenance_free(&p);

    /* An empty range. */
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_from_git(&p, r.dir, "main..main", &agents,
                                            &pol, err, sizeof err),
                     CN_OK);
    assert_int_equal(p.commits, 0);
    assert_false(p.ai_assisted);
    assert_int_equal(p.files, 0);
    assert_int_equal(p.kind_count, 0);
    cn_provenance_free(&p);

    /* A revision git does not know: git's own words. */
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_from_git(&p, r.dir, "main..nope", &agents,
                                            &pol, err, sizeof err),
                     CN_ESPAWN);
    const char *prefix = "git log 'main..nope' failed: fatal: ";
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_non_null(strstr(err, "nope"));
    assert_null(strchr(err, '\n'));
    cn_provenance_free(&p);

    /* Not a repository. */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/src", r.dir);
    setenv("GIT_CEILING_DIRECTORIES", r.dir, 1);
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_from_git(&p, sub, "a..b", &agents, &pol,
                                            err, sizeof err),
                     CN_ESPAWN);
    assert_non_null(strstr(err, "git log 'a..b' failed: fatal: not a git "
                                "repository"));
    cn_provenance_free(&p);
    unsetenv("GIT_CEILING_DIRECTORIES");

    /* No git on PATH. */
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", r.tmp, 1);
    cn_provenance_init(&p);
    assert_int_equal(cn_provenance_from_git(&p, r.dir, "base..main", &agents,
                                            &pol, err, sizeof err),
                     CN_ESPAWN);
    /* posix_spawnp reports ENOENT, or (valgrind, some libcs) the child
     * exits 127: both must read as git missing. */
    if (strcmp(err, "cannot run git: exit status 127 (not found?); "
                    "install git or drop --git-range") != 0)
        assert_string_equal(err, "cannot run git: No such file or directory; "
                                 "install git or drop --git-range");
    cn_provenance_free(&p);
    if (path)
        setenv("PATH", path, 1);
    else
        unsetenv("PATH");
    free(path);

    cn_policy_free(&pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_empty_range),
        cmocka_unit_test(test_log_no_trailers),
        cmocka_unit_test(test_log_agent_coauthors),
        cmocka_unit_test(test_log_human_coauthors),
        cmocka_unit_test(test_log_word_boundaries),
        cmocka_unit_test(test_log_longer_agent_wins_tie),
        cmocka_unit_test(test_log_assisted_generated),
        cmocka_unit_test(test_log_several_trailers),
        cmocka_unit_test(test_log_many_commits_grow),
        cmocka_unit_test(test_log_no_agents),
        cmocka_unit_test(test_log_malformed),
        cmocka_unit_test(test_log_respects_len),
        cmocka_unit_test(test_numstat_kinds),
        cmocka_unit_test(test_numstat_binary_and_rename),
        cmocka_unit_test(test_classify_again),
        cmocka_unit_test(test_numstat_default_and_empty),
        cmocka_unit_test(test_numstat_many_kinds_grow),
        cmocka_unit_test(test_numstat_malformed),
        cmocka_unit_test(test_range_validation),
        cmocka_unit_test_setup_teardown(test_git_repository, repo_setup,
                                        repo_teardown),
    };
    return cmocka_run_group_tests_name("provenance", tests, NULL, NULL);
}
