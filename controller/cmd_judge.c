/* `canary judge`: the statistical judge on two files of samples, for
 * operators tuning a metric's judge settings on real data (judge.h does
 * the work; docs/judge.md explains the output). Exit 0 whatever the
 * classification: it is a tool for looking, not a gate. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "canary/diag.h"
#include "canary/judge.h"
#include "canary/schema.h"
#include "canary/status.h"
#include "commands.h"

const cn_command cn_cmd_judge_def = {
    "judge", cn_cmd_judge, "judge canary samples against baseline samples (Mann-Whitney)",
    "usage: canary judge --canary FILE --baseline FILE [--confidence C] [--tolerance T]\n"
    "                    [--direction increase|decrease|either]\n"
    "                    [--effect-size mean_ratio|cles]\n"
    "                    [--allowed-increase X] [--allowed-decrease Y]\n"
    "                    [--critical] [--critical-increase X] [--critical-decrease Y]\n"
    "                    [--nan-strategy remove|replace] [--remove-outliers] [-o text|json]\n"
    "\n"
    "  --canary FILE          the canary's samples: one number per line; blank lines and\n"
    "                         '#' comments are skipped, NaN is a missing value\n"
    "  --baseline FILE        the baseline's samples, the same way\n"
    "  --confidence C         of the interval, between 0 and 1 (default 0.98)\n"
    "  --tolerance T          no-change band around 0: +-T x |estimate| (default 0.25)\n"
    "  --direction D          which change fails: increase, decrease or either (default)\n"
    "  --effect-size E        mean_ratio (default: canary mean / baseline mean) or cles\n"
    "                         (P(canary > baseline)); it must also reach the allowed change\n"
    "  --allowed-increase X   high needs an effect size >= X (default: no change, 1 or 0.5)\n"
    "  --allowed-decrease Y   low needs an effect size <= Y (default: no change)\n"
    "  --critical             judge the metric as critical: say when it fails the whole\n"
    "                         judgement\n"
    "  --critical-increase X  a critical failure needs high with effect size >= X (implies\n"
    "  --critical-decrease Y  --critical), or low with effect size <= Y\n"
    "  --nan-strategy S       remove (default) drops NaN; replace takes NaN as 0\n"
    "  --remove-outliers      drop values outside Tukey's fences (IQR x 3, at least the\n"
    "                         1st-99th percentiles), each sample separately\n"
    "  -o, --output FMT       text (default) or json ({\"u\", \"p_value\", \"estimate\", \"ci\",\n"
    "                         \"effect_size\", \"classification\", \"canary_count\",\n"
    "                         \"baseline_count\"}; null where there was nothing to test)\n"
    "\n"
    "Exit status: 0 judged, whatever the classification; 2 invalid usage or a bad\n"
    "file (FILE:LINE:COLUMN: message); 1 internal failure.\n"};

enum {
    OPT_CANARY = 256, OPT_BASELINE, OPT_CONFIDENCE, OPT_TOLERANCE, OPT_DIRECTION, OPT_EFFECT,
    OPT_ALLOWED_INC, OPT_ALLOWED_DEC, OPT_CRITICAL, OPT_CRITICAL_INC, OPT_CRITICAL_DEC,
    OPT_NAN, OPT_OUTLIERS
};

static const struct option judge_options[] = {
    {"canary", required_argument, NULL, OPT_CANARY},
    {"baseline", required_argument, NULL, OPT_BASELINE},
    {"confidence", required_argument, NULL, OPT_CONFIDENCE},
    {"tolerance", required_argument, NULL, OPT_TOLERANCE},
    {"direction", required_argument, NULL, OPT_DIRECTION},
    {"effect-size", required_argument, NULL, OPT_EFFECT},
    {"allowed-increase", required_argument, NULL, OPT_ALLOWED_INC},
    {"allowed-decrease", required_argument, NULL, OPT_ALLOWED_DEC},
    {"critical", no_argument, NULL, OPT_CRITICAL},
    {"critical-increase", required_argument, NULL, OPT_CRITICAL_INC},
    {"critical-decrease", required_argument, NULL, OPT_CRITICAL_DEC},
    {"nan-strategy", required_argument, NULL, OPT_NAN},
    {"remove-outliers", no_argument, NULL, OPT_OUTLIERS},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* ---- sample files -------------------------------------------------------- */

/* A line holds one number and perhaps a comment; longer is not a sample. */
#define LINE_MAX_BYTES 256

typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static int push(samples *s, double v)
{
    if (s->n == s->cap) {
        size_t grown = s->cap ? 2 * s->cap : 256;
        double *more = realloc(s->v, grown * sizeof *more);
        if (!more)
            return CN_ENOMEM;
        s->v = more;
        s->cap = grown;
    }
    s->v[s->n++] = v;
    return CN_OK;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One line: nothing, a comment, or a number (or NaN) and perhaps a
 * comment. Problems go to d at the column where they start. */
static int parse_line(const char *path, unsigned line, char *text, samples *s, cn_diags *d)
{
    char *p = text;
    while (blank(*p))
        p++;
    if (!*p || *p == '#')
        return CN_OK;
    char *start = p;
    while (*p && !blank(*p) && *p != '#')
        p++;
    char saved = *p;
    *p = '\0';
    unsigned col = (unsigned)(start - text) + 1;
    double v;
    bool ok = true;
    if (!strcasecmp(start, "nan"))
        v = NAN;
    else if (cn_text_number(start, &v)) {
        cn_diags_add(d, path, line, col,
                     "'%s' is not a finite number (write a decimal such as 0.25 or 1e-3, or "
                     "NaN for a missing value)",
                     start);
        ok = false;
    }
    *p = saved;
    while (blank(*p))
        p++;
    if (*p && *p != '#') {
        int len = 0;
        while (p[len] && !blank(p[len]) && len < 20)
            len++;
        cn_diags_add(d, path, line, (unsigned)(p - text) + 1,
                     "one number per line: unexpected '%.*s' after it", len, p);
        return CN_OK;
    }
    if (!ok)
        return CN_OK;
    if (s->n == CN_JUDGE_MAX_SAMPLES) {
        cn_diags_add(d, path, line, col, "more than %u values: the judge takes no more",
                     CN_JUDGE_MAX_SAMPLES);
        return CN_ELIMIT;
    }
    return push(s, v);
}

/* Reads path into *s; every problem goes to d. CN_ENOMEM is the only
 * status that is not about the file. */
static int read_samples(const char *path, samples *s, cn_diags *d)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cn_diags_add(d, path, 0, 0, "cannot open: %s", strerror(errno));
        return CN_EIO;
    }
    char text[LINE_MAX_BYTES + 2];
    unsigned line = 0;
    int rc = CN_OK;
    size_t before = cn_diags_total(d);
    while (!rc && fgets(text, sizeof text, f)) {
        line++;
        size_t len = strlen(text);
        if (len == sizeof text - 1 && text[len - 1] != '\n') {
            cn_diags_add(d, path, line, LINE_MAX_BYTES + 1,
                         "line longer than %d characters: one number per line",
                         LINE_MAX_BYTES);
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        rc = parse_line(path, line, text, s, d);
    }
    if (ferror(f)) {
        cn_diags_add(d, path, 0, 0, "cannot read: %s", strerror(errno));
        rc = CN_EIO;
    }
    fclose(f);
    if (!rc && cn_diags_total(d) > before)
        rc = CN_EINVAL;
    return rc;
}

/* ---- output -------------------------------------------------------------- */

static json_t *number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int print_json(const cn_judge_result *r)
{
    json_t *o = json_object();
    json_t *ci = json_array();
    int bad = !o || !ci;
    bad |= json_array_append_new(ci, number_or_null(r->ci_low));
    bad |= json_array_append_new(ci, number_or_null(r->ci_high));
    bad |= json_object_set_new(o, "u", number_or_null(r->u));
    bad |= json_object_set_new(o, "p_value", number_or_null(r->p_value));
    bad |= json_object_set_new(o, "estimate", number_or_null(r->estimate));
    bad |= json_object_set_new(o, "ci", ci);
    bad |= json_object_set_new(o, "effect_size", number_or_null(r->effect_size));
    bad |= json_object_set_new(o, "classification",
                               json_string(cn_judge_class_name(r->classification)));
    bad |= json_object_set_new(o, "canary_count", json_integer((json_int_t)r->canary_count));
    bad |= json_object_set_new(o, "baseline_count",
                               json_integer((json_int_t)r->baseline_count));
    if (!bad)
        bad = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (bad) {
        fprintf(stderr, "canary judge: could not write the JSON result (out of memory?)\n");
        return CN_EXIT_INTERNAL;
    }
    fputc('\n', stdout);
    return CN_EXIT_OK;
}

static void number(const char *label, double v)
{
    if (isnan(v))
        printf("%-15s -\n", label);
    else
        printf("%-15s %.6g\n", label, v);
}

static void print_text(const cn_judge_config *c, const cn_judge_result *r)
{
    printf("%-15s canary %zu", "values", r->canary_count);
    if (r->canary_dropped)
        printf(" (%zu dropped)", r->canary_dropped);
    printf(", baseline %zu", r->baseline_count);
    if (r->baseline_dropped)
        printf(" (%zu dropped)", r->baseline_dropped);
    putchar('\n');
    number("u", r->u);
    number("p_value", r->p_value);
    number("estimate", r->estimate);
    if (r->tested)
        printf("%-15s %.6g %.6g (%g%%)\n", "ci", r->ci_low, r->ci_high, c->confidence * 100);
    else
        printf("%-15s - -\n", "ci");
    if (isnan(r->effect_size))
        printf("%-15s - (%s)\n", "effect_size", cn_effect_measure_name(c->effect));
    else
        printf("%-15s %.6g (%s)\n", "effect_size", r->effect_size,
               cn_effect_measure_name(c->effect));
    printf("%-15s %s%s\n", "classification", cn_judge_class_name(r->classification),
           r->critical_failure ? " (critical failure)" : "");
    printf("%-15s %s\n", "why", r->reason);
}

/* ---- flags --------------------------------------------------------------- */

static int number_flag(const cn_command *cmd, const char *flag, const char *arg, double *out)
{
    if (cn_text_number(arg, out))
        return cn_usage_error(cmd, "--%s takes a number, got '%s'", flag, arg);
    return CN_EXIT_OK;
}

static int choice_flag(const cn_command *cmd, const char *flag, const char *arg,
                       const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(arg, names[i])) {
            *out = i;
            return CN_EXIT_OK;
        }
    if (names[2])
        return cn_usage_error(cmd, "--%s takes %s, %s or %s, got '%s'", flag, names[0],
                              names[1], names[2], arg);
    return cn_usage_error(cmd, "--%s takes %s or %s, got '%s'", flag, names[0], names[1], arg);
}

static int flag(const cn_command *cmd, int c, const char *arg, cn_judge_config *cfg)
{
    static const char *const directions[] = {"either", "increase", "decrease", NULL};
    static const char *const effects[] = {"mean_ratio", "cles", NULL};
    static const char *const nans[] = {"remove", "replace", NULL};
    int choice = 0, rc = CN_EXIT_OK;
    switch (c) {
    case OPT_CONFIDENCE:
        rc = number_flag(cmd, "confidence", arg, &cfg->confidence);
        if (!rc && !(cfg->confidence > 0 && cfg->confidence < 1))
            rc = cn_usage_error(cmd, "--confidence must lie between 0 and 1, got '%s'", arg);
        return rc;
    case OPT_TOLERANCE:
        rc = number_flag(cmd, "tolerance", arg, &cfg->tolerance);
        if (!rc && cfg->tolerance < 0)
            rc = cn_usage_error(cmd, "--tolerance must be 0 or more, got '%s'", arg);
        return rc;
    case OPT_DIRECTION:
        rc = choice_flag(cmd, "direction", arg, directions, &choice);
        cfg->direction = (cn_direction)choice;
        return rc;
    case OPT_EFFECT:
        rc = choice_flag(cmd, "effect-size", arg, effects, &choice);
        cfg->effect = (cn_effect_measure)choice;
        return rc;
    case OPT_NAN:
        rc = choice_flag(cmd, "nan-strategy", arg, nans, &choice);
        cfg->nan_strategy = (cn_nan_strategy)choice;
        return rc;
    case OPT_ALLOWED_INC: return number_flag(cmd, "allowed-increase", arg, &cfg->allowed_increase);
    case OPT_ALLOWED_DEC: return number_flag(cmd, "allowed-decrease", arg, &cfg->allowed_decrease);
    case OPT_CRITICAL_INC:
        cfg->critical = true;
        return number_flag(cmd, "critical-increase", arg, &cfg->critical_increase);
    case OPT_CRITICAL_DEC:
        cfg->critical = true;
        return number_flag(cmd, "critical-decrease", arg, &cfg->critical_decrease);
    case OPT_CRITICAL: cfg->critical = true; return CN_EXIT_OK;
    case OPT_OUTLIERS: cfg->remove_outliers = true; return CN_EXIT_OK;
    default: return cn_usage_error(cmd, "unknown flag");
    }
}

/* ---- the command --------------------------------------------------------- */

static int judge(const char *canary, const char *baseline, const cn_judge_config *cfg,
                 bool json)
{
    samples x = {0}, y = {0};
    cn_diags d;
    cn_diags_init(&d);
    int rx = read_samples(canary, &x, &d);
    int ry = read_samples(baseline, &y, &d);
    int exit_code = CN_EXIT_OK;
    if (rx == CN_ENOMEM || ry == CN_ENOMEM) {
        fprintf(stderr, "canary judge: out of memory reading the samples\n");
        exit_code = CN_EXIT_INTERNAL;
    } else if (rx || ry) {
        cn_diags_print(&d, stderr);
        exit_code = CN_EXIT_INVALID;
    } else {
        cn_judge_result r;
        int rc = cn_judge_metric(cfg, x.v, x.n, y.v, y.n, &r);
        if (rc == CN_ENOMEM) {
            fprintf(stderr, "canary judge: %s\n", r.reason);
            exit_code = CN_EXIT_INTERNAL;
        } else if (rc) {
            fprintf(stderr, "canary judge: %s\n", r.reason);
            exit_code = CN_EXIT_INVALID;
        } else if (json) {
            exit_code = print_json(&r);
        } else {
            print_text(cfg, &r);
        }
    }
    cn_diags_free(&d);
    free(x.v);
    free(y.v);
    return exit_code;
}

int cn_cmd_judge(int argc, char **argv)
{
    const cn_command *cmd = &cn_cmd_judge_def;
    cn_judge_config cfg = cn_judge_defaults();
    const char *canary = NULL, *baseline = NULL;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", judge_options, NULL)) != -1) {
        switch (c) {
        case OPT_CANARY: canary = optarg; break;
        case OPT_BASELINE: baseline = optarg; break;
        case 'o':
            if (cn_output_flag(cmd, optarg, &json))
                return CN_EXIT_INVALID;
            break;
        case 'h': return cn_print_help(cmd);
        case ':': return cn_usage_error(cmd, "'%s' needs a value", cn_bad_option(argv));
        case '?': return cn_usage_error(cmd, "unknown flag '%s'", cn_bad_option(argv));
        default:
            if (flag(cmd, c, optarg, &cfg))
                return CN_EXIT_INVALID;
        }
    }
    if (optind < argc)
        return cn_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!canary || !baseline)
        return cn_usage_error(cmd, "give both --canary FILE and --baseline FILE");
    return judge(canary, baseline, &cfg, json);
}
