/*
 * proc.h: run the real canary binary from a test and capture what it did.
 *
 * Contract: cn_test_run() runs $CANARY_BIN (or build/canary) with the given
 * arguments in cwd (NULL: the current directory), optionally under
 * $CANARY_WRAPPER (e.g. valgrind), with stdin from /dev/null, and returns
 * its exit code (128+signal when killed, -1 when it could not start).
 * Output is captured into out->out and out->err (NUL-terminated, owned by
 * the caller: cn_test_output_free()).
 */
#ifndef CANARY_TEST_PROC_H
#define CANARY_TEST_PROC_H

#include <stddef.h>

typedef struct cn_test_output {
    char *out;
    char *err;
    int code;
} cn_test_output;

int cn_test_run(cn_test_output *o, const char *cwd, const char *const *args);
void cn_test_output_free(cn_test_output *o);
/* Absolute path of a file in the source tree ($CANARY_SRC, else "."). */
const char *cn_test_src(const char *relative);
/* Writes text to a new file dir/name; returns the path (static buffer). */
const char *cn_test_write(const char *dir, const char *name, const char *text);
/* A fresh temporary directory (mkdtemp); remove it with cn_test_rmtree. */
char *cn_test_tmpdir(void);
void cn_test_rmtree(const char *dir);
/* Number of non-overlapping occurrences of needle in hay. */
size_t cn_test_count(const char *hay, const char *needle);

#endif
