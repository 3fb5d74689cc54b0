/* The audit chain's two formulas: an event's canonical JSON and its hash
 * (docs/state.md, "Audit chain"). Writing (store_rows.c) and verifying
 * (store_audit.c) both call these, so they cannot drift apart. */
#include "canary/store.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "canary/status.h"
#include "store_internal.h"

/* The length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2, min = 0x80, cp = p[0] & 0x1F;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3, min = 0x800, cp = p[0] & 0x0F;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4, min = 0x10000, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON string of text; a byte that is not part of valid UTF-8 becomes
 * U+FFFD, since JSON cannot carry it (jansson refuses it). */
static json_t *text(const char *t)
{
    json_t *j = json_string(t);
    if (j)
        return j;
    size_t n = strlen(t);
    char *fixed = malloc(3 * n + 1); /* each bad byte grows to 3 */
    if (!fixed)
        return NULL;
    const unsigned char *p = (const unsigned char *)t;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(p + i, n - i);
        if (len) {
            memcpy(fixed + o, p + i, len);
            o += len;
            i += len;
        } else {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    fixed[o] = '\0';
    j = json_string(fixed);
    free(fixed);
    return j;
}

int cn_audit_canonical(const char *rollout, int attempt, int64_t index, int64_t seq,
                       const cn_store_event *ev, char **out)
{
    *out = NULL;
    json_t *data = json_null();
    if (ev->data_json) {
        data = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);
        if (!data)
            return CN_EINVAL;
    }
    int code = cn_audit_canonical_parsed(rollout, attempt, index, seq, ev, data, out);
    json_decref(data);
    return code;
}

int cn_audit_canonical_parsed(const char *rollout, int attempt, int64_t index, int64_t seq,
                              const cn_store_event *ev, json_t *data, char **out)
{
    *out = NULL;
    json_t *o = json_object();
    int bad = !o;
    /* json_object_set_new takes the value even when it fails. */
    if (!bad)
        bad = json_object_set_new(o, "rollout", text(rollout)) ||
              json_object_set_new(o, "attempt", json_integer(attempt)) ||
              json_object_set_new(o, "index", json_integer(index)) ||
              json_object_set_new(o, "seq", json_integer(seq)) ||
              json_object_set_new(o, "time_ms", json_integer(ev->time_ms)) ||
              json_object_set_new(o, "type", text(ev->type)) ||
              json_object_set_new(o, "actor", text(ev->actor)) ||
              json_object_set_new(o, "detail", text(ev->detail)) ||
              json_object_set_new(o, "data", json_incref(data ? data : json_null()));
    if (!bad)
        *out = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII |
                                 JSON_REAL_PRECISION(17));
    json_decref(o);
    return *out ? CN_OK : CN_ENOMEM;
}

int cn_audit_hash(const unsigned char prev[CN_AUDIT_HASH_SIZE], const char *canonical,
                  unsigned char out[CN_AUDIT_HASH_SIZE])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, prev, CN_AUDIT_HASH_SIZE) &&
             EVP_DigestUpdate(ctx, canonical, strlen(canonical)) &&
             EVP_DigestFinal_ex(ctx, out, &len) && len == CN_AUDIT_HASH_SIZE;
    EVP_MD_CTX_free(ctx);
    return ok ? CN_OK : CN_ENOMEM;
}
