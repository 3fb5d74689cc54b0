/*
 * http_request.c: one request of the HTTP client, apart from the loop:
 * what may be sent, the curl options that enforce the contract (no
 * redirects, http and https only, a time-out, a capped body), the body
 * buffer, and the words for each way a transfer fails.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/schema.h" /* cn_format_duration */
#include "canary/status.h"
#include "canary/version.h"

/* First allocation for a body of unknown length. */
#define FIRST_CHUNK (16 * 1024)

/* "1 MiB", "64 KiB", "1000 bytes": the cap as a person would write it. */
static void format_size(char *buf, size_t len, size_t n)
{
    if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
        snprintf(buf, len, "%zu MiB", n / (1024 * 1024));
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(buf, len, "%zu KiB", n / 1024);
    else
        snprintf(buf, len, "%zu byte%s", n, n == 1 ? "" : "s");
}

/* ---- checking ------------------------------------------------------------- */

/* The scheme check, and "host:port" for messages. */
static int check_url(const char *url, char *where, size_t wlen, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    if (!u) {
        (void)cn_set_err(err, errlen, 0, "out of memory parsing URL '%s'", url);
        return CN_ENOMEM;
    }
    int rc = CN_EINVAL;
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        (void)cn_set_err(err, errlen, 0, "bad URL '%s': %s", url, curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        (void)cn_set_err(err, errlen, 0, "URL '%s': scheme '%s' is not supported; use http:// or https://",
                url, scheme ? scheme : "");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        (void)cn_set_err(err, errlen, 0, "URL '%s' has no host; write http://HOST:PORT/PATH", url);
        goto out;
    }
    snprintf(where, wlen, "%s:%s", host, port);
    rc = CN_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static bool has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

int cn_http_req_check(const cn_http_request *req, char *where, size_t wlen, char *err,
                      size_t errlen)
{
    if (req->timeout_ms <= 0 || req->timeout_ms > (int64_t)CN_MAX_DURATION_MS) {
        (void)cn_set_err(err, errlen, 0,
                "request to '%s': the time-out must be more than 0 ms and at most a year",
                req->url);
        return CN_EINVAL;
    }
    for (size_t i = 0; i < req->header_count; i++) {
        if (!req->headers[i] || has_line_break(req->headers[i])) {
            (void)cn_set_err(err, errlen, 0, "request to '%s': header '%s' is missing or contains a line break",
                    req->url, req->headers[i] ? req->headers[i] : "(null)");
            return CN_EINVAL;
        }
    }
    if (req->body && req->content_type &&
        (has_line_break(req->content_type) || strlen(req->content_type) > 400)) {
        (void)cn_set_err(err, errlen, 0,
                "request to '%s': content type '%.60s' contains a line break or is too long",
                req->url, req->content_type);
        return CN_EINVAL;
    }
    return check_url(req->url, where, wlen, err, errlen);
}

/* ---- curl options and the body --------------------------------------------- */

/* Appends body bytes; returning less than given makes curl end the
 * transfer with CURLE_WRITE_ERROR, reported as too large when too_large
 * is set and as out of memory otherwise. */
static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    cn_http_req *r = userp;
    size_t n = size * nmemb;
    if (!r->buf) {
        /* A declared length over the cap fails before anything is kept. */
        curl_off_t declared = -1;
        if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                              &declared) == CURLE_OK &&
            declared > 0 && (uint64_t)declared > r->max) {
            r->too_large = true;
            return 0;
        }
        size_t want = declared > 0 ? (size_t)declared : FIRST_CHUNK;
        r->cap = (want < r->max ? want : r->max) + 1;
        r->buf = malloc(r->cap);
        if (!r->buf)
            return 0;
    }
    if (n > r->max - r->len) {
        r->too_large = true;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap * 2 > r->len + n + 1 ? r->cap * 2 : r->len + n + 1;
        if (cap > r->max + 1)
            cap = r->max + 1;
        char *p = realloc(r->buf, cap);
        if (!p)
            return 0;
        r->buf = p;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return n;
}

/* The contract's rules are curl options here, so curl enforces them even
 * in the middle of a transfer. */
bool cn_http_req_configure(cn_http_req *r, const cn_http_request *req)
{
    CURL *e = r->easy;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK;
#if CURL_AT_LEAST_VERSION(7, 85, 0)
    ok = ok && curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
    ok = ok && curl_easy_setopt(e, CURLOPT_PROTOCOLS,
                                (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) == CURLE_OK;
#endif
    ok = ok && curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_err) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max) == CURLE_OK;
    ok = ok && curl_easy_setopt(e, CURLOPT_USERAGENT, "canary/" CANARY_VERSION) == CURLE_OK;
    if (!ok)
        return false;

    struct curl_slist *l = NULL;
    for (size_t i = 0; i < req->header_count; i++) {
        struct curl_slist *n = curl_slist_append(l, req->headers[i]);
        if (!n)
            goto fail;
        l = n;
    }
    if (req->body) {
        char ct[512];
        snprintf(ct, sizeof ct, "Content-Type: %s",
                 req->content_type ? req->content_type : "application/json");
        struct curl_slist *n = curl_slist_append(l, ct);
        if (!n)
            goto fail;
        l = n;
        /* curl would otherwise wait up to a second for "100 Continue"
         * before sending a body over 1 KiB. */
        n = curl_slist_append(l, "Expect:");
        if (!n)
            goto fail;
        l = n;
        size_t blen = strlen(req->body);
        if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body) != CURLE_OK)
            goto fail;
    }
    r->headers = l;
    if (l && curl_easy_setopt(e, CURLOPT_HTTPHEADER, l) != CURLE_OK)
        return false;
    return true;
fail:
    curl_slist_free_all(l);
    return false;
}

/* ---- errors -------------------------------------------------------------- */

/* The failure in words, naming where: what a person reading a rollout's
 * log needs to tell a dead server from a slow or broken one. */
void cn_http_req_describe(cn_http_req *r, CURLcode rc, long os_errno)
{
    char what[CURL_ERROR_SIZE + 64];
    size_t n = strlen(r->curl_err);
    while (n && (r->curl_err[n - 1] == '\n' || r->curl_err[n - 1] == '\r'))
        r->curl_err[--n] = '\0';
    const char *detail = n ? r->curl_err : curl_easy_strerror(rc);

    if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        char cap[32];
        format_size(cap, sizeof cap, r->max);
        snprintf(what, sizeof what, "reply larger than %s", cap);
    } else if (rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED) {
        snprintf(what, sizeof what, "connection refused");
    } else if (rc == CURLE_COULDNT_CONNECT) {
        snprintf(what, sizeof what, "could not connect: %s",
                 os_errno ? strerror((int)os_errno) : detail);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        char dur[32];
        cn_format_duration(dur, sizeof dur, r->timeout_ms);
        snprintf(what, sizeof what, "timed out after %s", dur);
    } else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
        snprintf(what, sizeof what, "could not resolve the host name");
    } else if (rc == CURLE_PARTIAL_FILE) {
        snprintf(what, sizeof what,
                 "reply truncated: the server closed the connection mid-body");
    } else if (rc == CURLE_GOT_NOTHING) {
        snprintf(what, sizeof what,
                 "empty reply: the server closed the connection without answering");
    } else if (rc == CURLE_WEIRD_SERVER_REPLY || rc == CURLE_UNSUPPORTED_PROTOCOL ||
               rc == CURLE_BAD_CONTENT_ENCODING) {
        snprintf(what, sizeof what, "malformed reply: %s", detail);
    } else if (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR) {
        snprintf(what, sizeof what, "connection failed: %s", detail);
    } else if (rc == CURLE_OUT_OF_MEMORY ||
               (rc == CURLE_WRITE_ERROR && !r->too_large)) {
        snprintf(what, sizeof what, "out of memory while receiving the reply");
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
               rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM) {
        snprintf(what, sizeof what, "TLS failed: %s", detail);
    } else {
        snprintf(what, sizeof what, "request failed: %s", detail);
    }
    snprintf(r->error, sizeof r->error, "%s (%s)", what, r->where);
    r->failure = r->error;
}
