/*
 * status.h: the status codes every canary function returns.
 *
 * Contract: functions return CN_OK (0) on success or a negative CN_E* code.
 * Details a person needs (which file, which key, what to do) travel
 * separately, in a cn_diags list or an error buffer the caller provides;
 * the code only tells the caller what kind of failure it was.
 */
#ifndef CANARY_STATUS_H
#define CANARY_STATUS_H

#include <stddef.h>

enum {
    CN_OK = 0,
    CN_EINVAL = -1,  /* input is invalid; diagnostics say where and why */
    CN_ENOMEM = -2,  /* out of memory */
    CN_EIO = -3,     /* reading or writing a file or pipe failed */
    CN_ELIMIT = -4,  /* input exceeds a safety limit (size, depth, nodes) */
    CN_ESPAWN = -5,  /* a child process could not be started or failed */
    CN_ENOTFOUND = -6, /* a named thing (file, service, policy) does not exist */
    CN_EEXIST = -7,   /* the thing to create exists already (a rollout id) */
    CN_ESTORE = -8,   /* the state database failed or is not ours */
    CN_EBUSY = -9     /* someone else holds it (a rollout's lease) */
};

/* A short, static, lower-case description of a status code. */
const char *cn_strerror(int status);

#if defined(__GNUC__)
#define CN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CN_PRINTF(f, a)
#endif

/* Formats a message into the caller's error buffer (err may be NULL or
 * errlen 0: nothing is written) and returns code, so a failure reads
 * `return cn_set_err(err, errlen, CN_EINVAL, "...", ...);`. */
int cn_set_err(char *err, size_t errlen, int code, const char *fmt, ...) CN_PRINTF(4, 5);

#endif
