#include "canary/provider.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider_internal.h"

/* Pointers in messages are cut to this many bytes. */
#define SHOWN 60

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* RFC 6901 array index: "0" or digits without a leading zero. An index too
 * large for size_t is simply past the end. */
static bool array_index(const char *tok, size_t n, size_t *idx)
{
    if (!n || (n > 1 && tok[0] == '0'))
        return false;
    *idx = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return false;
        if (*idx > (SIZE_MAX - 9) / 10)
            *idx = SIZE_MAX;
        else
            *idx = *idx * 10 + (size_t)(tok[i] - '0');
    }
    return true;
}

/* The value at ptr in doc, or NULL with r set to why there is none. The
 * loader checks the pointer's syntax; it is checked again here because a
 * template may have produced it. */
static const json_t *resolve(const json_t *doc, const char *ptr, cn_reading *r)
{
    if (*ptr && *ptr != '/') {
        cn__reading_set(r, CN_READING_ERROR, "pointer \"%.*s\" must be empty or start "
                        "with '/'", SHOWN, ptr);
        return NULL;
    }
    char *tok = malloc(strlen(ptr) + 1);
    if (!tok) {
        cn__reading_set(r, CN_READING_ERROR, "out of memory");
        return NULL;
    }
    const json_t *cur = doc, *parent = doc;
    const char *p = ptr, *parent_end = ptr;
    while (cur && *p == '/') {
        parent = cur;
        parent_end = p++;
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            if (*p != '~') {
                tok[n++] = *p;
            } else if (p[1] == '0' || p[1] == '1') {
                tok[n++] = p[1] == '0' ? '~' : '/';
                p++;
            } else {
                cn__reading_set(r, CN_READING_ERROR, "pointer \"%.*s\" has a '~' not "
                                "followed by 0 or 1 (RFC 6901 writes '~' as ~0 and '/' as ~1)",
                                SHOWN, ptr);
                goto fail;
            }
        }
        size_t idx;
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, n);
        } else if (!json_is_array(cur)) {
            cur = NULL;
        } else if (array_index(tok, n, &idx)) {
            cur = json_array_get(cur, idx);
        } else {
            cn__reading_set(r, CN_READING_ERROR, "pointer \"%.*s\": \"%.*s\" is not an "
                            "array index (%s)", SHOWN, ptr, (int)(p - parent_end - 1),
                            parent_end + 1, n == 1 && *tok == '-'
                            ? "'-' means past the end, where nothing is to read"
                            : "decimal digits, no leading zero");
            goto fail;
        }
    }
    free(tok);
    if (!cur && !json_is_object(parent) && !json_is_array(parent))
        cn__reading_set(r, CN_READING_ERROR, "no value at %.*s (%.*s is %s)", SHOWN, ptr,
                        parent_end == ptr ? SHOWN : (int)(parent_end - ptr),
                        parent_end == ptr ? "the document root" : ptr, type_name(parent));
    else if (!cur)
        cn__reading_set(r, CN_READING_ERROR, "no value at %.*s", SHOWN, ptr);
    return cur;

fail:
    free(tok);
    return NULL;
}

cn_reading cn_json_reading(const char *pointer, long status, const char *body, size_t len,
                           const char *transport_error)
{
    cn_reading r;
    memset(&r, 0, sizeof r);
    json_t *doc = cn__reply_json(status, body, len, transport_error, &r);
    if (!doc)
        return r;
    const char *ptr = pointer ? pointer : "";
    const char *at = *ptr ? ptr : "the document root";
    const json_t *v = resolve(doc, ptr, &r);
    if (!v) {
        /* r says why */
    } else if (json_is_number(v)) {
        r.kind = CN_READING_VALUE;
        r.value = json_number_value(v);
    } else if (json_is_null(v)) {
        cn__reading_set(&r, CN_READING_NODATA, "null at %.*s", SHOWN, at);
    } else {
        cn__reading_set(&r, CN_READING_ERROR, "value at %.*s is %s, not a number", SHOWN, at,
                        type_name(v));
    }
    json_decref(doc);
    return r;
}
