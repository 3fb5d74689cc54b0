#include "canary/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *cn_strerror(int status)
{
    switch (status) {
    case CN_OK: return "success";
    case CN_EINVAL: return "invalid input";
    case CN_ENOMEM: return "out of memory";
    case CN_EIO: return "input/output error";
    case CN_ELIMIT: return "input exceeds a safety limit";
    case CN_ESPAWN: return "child process failed";
    case CN_ENOTFOUND: return "not found";
    case CN_EEXIST: return "already exists";
    case CN_ESTORE: return "state database error";
    case CN_EBUSY: return "held by another process";
    default: return "unknown error";
    }
}

int cn_set_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
