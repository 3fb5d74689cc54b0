#include "canary/provider.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "provider_internal.h"

/* ---- readings ---------------------------------------------------------- */

/* Length of the UTF-8 character at s (at most n bytes there), 0 when the
 * bytes are not one: overlong forms, surrogates and code points past
 * U+10FFFF are refused, as JSON encoders refuse them. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n)
        return 0;
    uint32_t cp = len == 1 ? s[0] : s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Copies src into dst[cap] as described at cn__reading_set; returns true
 * when all of it fit. */
static bool copy_safe(char *dst, size_t cap, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t left = strlen(src), n = 0;
    while (left) {
        size_t len = utf8_char(s, left);
        size_t out = len ? len : 1;
        if (n + out > cap - 1)
            break;
        if (!len)
            dst[n] = '?';
        else if (len == 1 && (s[0] < 0x20 || s[0] == 0x7f))
            dst[n] = ' ';
        else
            memcpy(dst + n, s, len);
        n += out;
        s += out;
        left -= out;
    }
    dst[n] = '\0';
    return left == 0;
}

void cn__reading_set(cn_reading *r, cn_reading_kind kind, const char *fmt, ...)
{
    char raw[512];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (w < 0)
        raw[0] = '\0';
    r->kind = kind;
    r->value = NAN;
    if ((w < 0 || (size_t)w < sizeof raw) && copy_safe(r->detail, sizeof r->detail, raw))
        return;
    copy_safe(r->detail, sizeof r->detail - 3, raw);
    strcat(r->detail, "...");
}

/* "HTTP 503", with the server's reason when the body is JSON carrying one
 * (Prometheus: {"status":"error","errorType":...,"error":...}). An HTML
 * error page says nothing a person could act on from a log line. */
static void http_error(long status, const char *body, size_t len, cn_reading *r)
{
    json_t *doc = len ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "error"));
    const char *type = json_string_value(json_object_get(doc, "errorType"));
    if (msg && type)
        cn__reading_set(r, CN_READING_ERROR, "HTTP %ld: %s: %s", status, type, msg);
    else if (msg)
        cn__reading_set(r, CN_READING_ERROR, "HTTP %ld: %s", status, msg);
    else
        cn__reading_set(r, CN_READING_ERROR, "HTTP %ld", status);
    json_decref(doc);
}

json_t *cn__reply_json(long status, const char *body, size_t len, const char *transport_error,
                       cn_reading *r)
{
    if (transport_error) {
        cn__reading_set(r, CN_READING_ERROR, "%s",
                        *transport_error ? transport_error : "request failed");
        return NULL;
    }
    if (!body)
        len = 0;
    if (status < 200 || status > 299) {
        http_error(status, body, len, r);
        return NULL;
    }
    if (!len) {
        cn__reading_set(r, CN_READING_ERROR, "reply is empty (HTTP %ld), not JSON", status);
        return NULL;
    }
    /* Duplicate keys would make the value depend on the parser; integers
     * are read as reals since a reading is a double anyway, so a counter
     * past 2^63 is a number rather than a parse error. */
    json_error_t e;
    json_t *doc = json_loadb(body, len,
                             JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL,
                             &e);
    if (!doc)
        cn__reading_set(r, CN_READING_ERROR, "reply is not JSON (line %d: %s)", e.line,
                        e.text);
    return doc;
}
