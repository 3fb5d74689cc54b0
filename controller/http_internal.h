/*
 * http_internal.h: one request of the HTTP client, shared by
 * http_client.c (the loop and curl's multi handle) and http_request.c
 * (checking a request, its curl options, its body, its error text).
 */
#ifndef CANARY_HTTP_INTERNAL_H
#define CANARY_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "canary/http_client.h"

/* Room for "host:port" in messages. */
#define CN_HTTP_WHERE 128

typedef struct cn_http_req cn_http_req;

typedef struct req_list {
    cn_http_req *head, *tail;
    size_t count;
} req_list;

struct cn_http_req {
    cn_http_req *prev, *next;
    req_list *on;
    cn_http *h;
    uint64_t id;
    CURL *easy;
    struct curl_slist *headers;
    cn_http_done done;
    void *ctx;
    int64_t timeout_ms;
    uint64_t started; /* uv_now */
    char *buf;        /* the body so far, NUL-terminated when not NULL */
    size_t len, cap, max;
    bool too_large;
    long status;
    const char *failure; /* NULL or error below */
    char where[CN_HTTP_WHERE]; /* "host:port", for messages */
    char curl_err[CURL_ERROR_SIZE];
    char error[CURL_ERROR_SIZE + 224]; /* what (below) and where */
};

/* CN_OK when req may be started; else CN_EINVAL or CN_ENOMEM with err
 * saying why (scheme, URL, time-out, header). Fills where with the URL's
 * "host:port". */
int cn_http_req_check(const cn_http_request *req, char *where, size_t wlen, char *err,
                      size_t errlen);

/* Sets every curl option of r->easy for req; false when curl refuses one
 * or memory runs out. r->headers, if set, is the caller's to free. */
bool cn_http_req_configure(cn_http_req *r, const cn_http_request *req);

/* Fills r->error and points r->failure at it: why the transfer ended with
 * rc (os_errno from CURLINFO_OS_ERRNO), in words, naming r->where. */
void cn_http_req_describe(cn_http_req *r, CURLcode rc, long os_errno);

#endif
