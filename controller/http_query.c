#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "canary/http_server.h"
#include "canary/status.h"

static int hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out (room for n + 1 bytes). -1 for a malformed
 * escape or %00. */
static int decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            if (n - i < 3)
                return -1;
            int a = hex(s[i + 1]), b = hex(s[i + 2]);
            if (a < 0 || b < 0 || (a == 0 && b == 0))
                return -1;
            out[o++] = (char)(a * 16 + b);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return 0;
}

int cn_http_query_param(const char *query, const char *name, char **value)
{
    if (value)
        *value = NULL;
    if (!query || !name || !value)
        return CN_EINVAL;
    size_t qlen = strlen(query);
    /* Every part decodes into at most its own length. */
    char *key = malloc(qlen + 1), *val = malloc(qlen + 1);
    if (!key || !val) {
        free(key);
        free(val);
        return CN_ENOMEM;
    }
    int rc = CN_ENOTFOUND;
    bool found = false;
    /* The whole query is checked, so a malformed escape is an error
     * whichever parameter it sits in. */
    for (const char *p = query;;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        if (decode(p, klen, key) != 0 ||
            (eq && decode(eq + 1, len - klen - 1, val) != 0)) {
            rc = CN_EINVAL;
            break;
        }
        if (!eq)
            val[0] = '\0';
        if (!found && len > 0 && strcmp(key, name) == 0) {
            found = true;
            *value = strdup(val);
            rc = *value ? CN_OK : CN_ENOMEM;
            if (rc == CN_ENOMEM)
                break;
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    if (rc != CN_OK) {
        free(*value);
        *value = NULL;
    }
    free(key);
    free(val);
    return rc;
}
