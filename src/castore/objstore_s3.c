/* s3://BUCKET/PREFIX object store: objects are S3 objects at
 * PREFIX/<key> in BUCKET, reached with path-style requests
 * (ENDPOINT/BUCKET/PREFIX/KEY) signed with AWS Signature V4.
 *
 * libcurl (7.88) signs (CURLOPT_AWS_SIGV4); this file works around what
 * that signer leaves out: it sends x-amz-content-sha256 (the SHA-256 of
 * the body, which the signer hashes too, since bodies go as
 * CURLOPT_POSTFIELDS), builds query strings already sorted and encoded
 * (the signer takes them as they are), and never needs a value-less query
 * parameter or a ':' in a path (keys are [A-Za-z0-9._-/]).  Multipart
 * upload is not used: castore's objects are chunks of at most 2 MiB and
 * blob indexes of a few hundred KiB, far below S3's 5 GiB single PUT.
 *
 * Connection errors, 5xx and 429 are retried a bounded number of times
 * with exponential backoff, then fail with an error naming the endpoint
 * and bucket; 403 is -EACCES, 404 -ENOENT.  Credentials are handed to
 * libcurl only (never in a URL, message or log line). */
#include "castore/objstore_s3.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/hex.h"
#include "util/http_ack.h"
#include "util/http_errno.h"
#include "util/log.h"
#include "util/macro.h"

#define S3_ATTEMPTS 5
#define S3_BACKOFF_MS 200
#define S3_IDLE_MAX 8
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct objstore_s3 {
        struct cas_objstore base;
        /* immutable after open */
        char *endpoint; /* scheme://host[:port], no trailing '/' */
        char *bucket;
        char *prefix; /* "" or "some/prefix/" */
        char *access_key, *secret_key; /* NULL: unsigned (anonymous) requests */
        char *sigv4;                   /* "aws:amz:REGION:s3" */
        char *where;                   /* "ENDPOINT bucket BUCKET", for messages */

        pthread_mutex_t lock;
        struct http_handle *idle[S3_IDLE_MAX]; /* lock: handles kept for their connections */
        size_t n_idle;           /* lock */
};

/* A response being received. */
struct s3_body {
        char *data;
        size_t len, cap, max;
        bool too_big;
};

static struct objstore_s3 *to_s3(struct cas_objstore *o) {
        return (struct objstore_s3 *) o;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

static struct http_handle *handle_get(struct objstore_s3 *s) {
        struct http_handle *h = NULL;

        pthread_mutex_lock(&s->lock);
        if (s->n_idle > 0)
                h = s->idle[--s->n_idle];
        pthread_mutex_unlock(&s->lock);
        if (h) {
                http_handle_reset(h);
                return h;
        }
        return http_handle_new();
}

static void handle_put(struct objstore_s3 *s, struct http_handle *h) {
        pthread_mutex_lock(&s->lock);
        if (s->n_idle < S3_IDLE_MAX) {
                s->idle[s->n_idle++] = h;
                h = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        http_handle_free(h);
}

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct s3_body *b = userdata;
        size_t n = size * nmemb;

        if (n > b->max - b->len) {
                b->too_big = true;
                return 0;
        }
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + n + 1);
                char *d = realloc(b->data, cap);

                if (!d)
                        return 0;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, ptr, n);
        b->len += n;
        b->data[b->len] = 0;
        return n;
}

static int sha256_hex(const void *data, size_t len, char out[65]) {
        unsigned char md[32];
        unsigned int mdlen = 0;

        if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
                return -EIO;
        hex_encode(md, sizeof(md), out);
        return 0;
}

/* Appends s to out percent-encoded as SigV4 wants: everything but
 * A-Za-z0-9-._~ as %XX (upper case), '/' included. */
static void uri_encode(const char *s, char *out) {
        static const char hex[] = "0123456789ABCDEF";

        out += strlen(out);
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;

                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~')
                        *out++ = (char) c;
                else {
                        *out++ = '%';
                        *out++ = hex[c >> 4];
                        *out++ = hex[c & 15];
                }
        }
        *out = 0;
}

static bool retryable(CURLcode cc, long status) {
        switch (cc) {
        case CURLE_OK:
        case CURLE_HTTP_RETURNED_ERROR:
                return status >= 500 || status == 429;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
                return true;
        default:
                return false;
        }
}

/* The errno of a transfer that failed in libcurl (cc is not CURLE_OK;
 * without CURLOPT_FAILONERROR an HTTP error is CURLE_OK and a status):
 * http_errno's, except that a malformed URL, an unsupported scheme and a
 * write body_write refused stay -EIO here, as they always have, not
 * -EINVAL and -ENOSPC: the endpoint was parsed when the store opened, and
 * a refused write is a failed realloc (an oversized body is -EFBIG before
 * this), not a full disk. */
static int s3_curl_errno(CURLcode cc) {
        switch (cc) {
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_WRITE_ERROR:
                return -EIO;
        default:
                return http_errno(cc, 0);
        }
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* One request: method on key (NULL: the bucket) with an encoded, sorted
 * query (or NULL) and a body (PUT).  The response body goes to out (if
 * not NULL); a HEAD's Content-Length to *ret_size. */
struct s3_req {
        const char *method, *key, *query;
        const void *body;
        size_t len;
        struct s3_body *out;
        uint64_t *ret_size;
};

static int s3_once(struct objstore_s3 *s, const struct s3_req *q, CURLcode *ret_cc, long *ret_status) {
        _cleanup_free_ char *url = NULL;
        struct curl_slist *hdrs = NULL, *t;
        char hash[65], hdr[128];
        struct s3_body *out = q->out;
        struct http_handle *h;
        CURL *c;
        int r;

        if (asprintf(&url, "%s/%s/%s%s%s%s", s->endpoint, s->bucket, q->key ? s->prefix : "", q->key ? q->key : "",
                     q->query ? "?" : "", q->query ? q->query : "") < 0)
                return -ENOMEM;
        r = q->body ? sha256_hex(q->body, q->len, hash) : (strcpy(hash, S3_EMPTY_SHA256), 0);
        if (r < 0)
                return r;
        snprintf(hdr, sizeof(hdr), "x-amz-content-sha256: %s", hash);
        hdrs = curl_slist_append(NULL, hdr);
        t = hdrs && q->body ? curl_slist_append(hdrs, "Content-Type: application/octet-stream") : hdrs;
        h = t ? handle_get(s) : NULL;
        if (!h) {
                curl_slist_free_all(hdrs);
                return -ENOMEM;
        }
        c = h->curl;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
        if (s->access_key) {
                curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
                curl_easy_setopt(c, CURLOPT_USERNAME, s->access_key);
                curl_easy_setopt(c, CURLOPT_PASSWORD, s->secret_key);
        }
        if (strcmp(q->method, "HEAD") == 0)
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        else if (strcmp(q->method, "GET") != 0)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
        if (q->body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) q->len);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->len > 0 ? q->body : "");
        }
        *ret_cc = curl_easy_perform(c);
        *ret_status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
        if (q->ret_size && *ret_cc == CURLE_OK) {
                curl_off_t cl = -1;

                curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
                *q->ret_size = cl >= 0 ? (uint64_t) cl : 0;
        }
        handle_put(s, h);
        curl_slist_free_all(hdrs);
        return out->too_big ? -EFBIG : 0;
}

/* Runs q up to S3_ATTEMPTS times while it fails in a way worth retrying:
 * 0 once it succeeded, 1 if it failed (cc and status say how), or a
 * negative errno of this side. */
static int s3_attempts(struct objstore_s3 *s, const struct s3_req *q, CURLcode *cc, long *status) {
        for (int attempt = 0;; attempt++) {
                int r;

                q->out->len = 0;
                r = s3_once(s, q, cc, status);
                if (r < 0)
                        return r;
                if (*cc == CURLE_OK && *status >= 200 && *status < 300)
                        return 0;
                if (attempt + 1 >= S3_ATTEMPTS || !retryable(*cc, *status))
                        return 1;
                log_debug("s3 %s: %s %s: %s, retrying", s->where, q->method, q->key ? q->key : "/",
                          *cc != CURLE_OK ? curl_easy_strerror(*cc) : "server error");
                sleep_ms((long) S3_BACKOFF_MS << attempt);
        }
}

/* The errno of a failed request, logged (naming the endpoint and bucket)
 * unless it is a plain 404. */
static int s3_failure(struct objstore_s3 *s, const struct s3_req *q, CURLcode cc, long status, const char *code) {
        const char *key = q->key ? q->key : "/", *sp = code[0] ? " " : "";
        const char *again = retryable(cc, status) ? " (after retries)" : "";

        int r;

        if (cc != CURLE_OK)
                return log_error_errno(s3_curl_errno(cc), "s3 %s: %s %s: %s%s", s->where, q->method, key,
                                       curl_easy_strerror(cc), again);
        /* an HTTP answer other than 2xx (s3_attempts returned those) */
        r = http_errno(cc, status);
        assert(r < 0);
        if (r == -ENOENT) /* 404, 410 */
                return r;
        if (r == -EACCES) /* 403 */
                return log_error_errno(r, "s3 %s: %s %s: access denied (HTTP 403%s%s): check the "
                                          "credentials (aws_access_key_id, aws_secret_access_key) and "
                                          "the bucket's permissions",
                                       s->where, q->method, key, sp, code);
        return log_error_errno(r, "s3 %s: %s %s: HTTP %ld%s%s%s", s->where, q->method, key, status, sp, code,
                               again);
}

/* One request with retries; the error logged names the endpoint and
 * bucket. */
static int s3_request(struct objstore_s3 *s, const struct s3_req *req) {
        struct s3_body local = { .max = 64 * 1024 };
        struct s3_req q = *req;
        CURLcode cc = CURLE_OK;
        long status = 0;
        char code[64] = "";
        int r;

        if (!q.out)
                q.out = &local;
        r = s3_attempts(s, &q, &cc, &status);
        if (r > 0) {
                if (q.out->data)
                        (void) s3_xml_error_code(q.out->data, q.out->len, code, sizeof(code));
                r = s3_failure(s, &q, cc, status, code);
        }
        free(local.data);
        return r;
}

static int s3_put(struct cas_objstore *o, const char *key, const void *data, size_t len) {
        struct s3_body out = { .max = 64 * 1024 };
        struct s3_req q = { .method = "PUT", .key = key, .body = data ? data : "", .len = len, .out = &out };
        int r = s3_request(to_s3(o), &q);

        free(out.data);
        return r;
}

static int s3_get(struct cas_objstore *o, const char *key, size_t max, uint8_t **ret, size_t *ret_len) {
        struct s3_body out = { .max = max };
        struct s3_req q = { .method = "GET", .key = key, .out = &out };
        int r = s3_request(to_s3(o), &q);

        if (r < 0) {
                free(out.data);
                return r;
        }
        if (!out.data) {
                out.data = malloc(1);
                if (!out.data)
                        return -ENOMEM;
        }
        *ret = (uint8_t *) out.data;
        *ret_len = out.len;
        return 0;
}

static int s3_head(struct cas_objstore *o, const char *key, uint64_t *ret_size) {
        struct s3_req q = { .method = "HEAD", .key = key, .ret_size = ret_size };

        return s3_request(to_s3(o), &q);
}

static int s3_remove(struct cas_objstore *o, const char *key) {
        struct objstore_s3 *s = to_s3(o);
        struct s3_req q = { .method = "DELETE", .key = key };
        uint64_t size;
        int r;

        /* S3 answers 204 whether or not the object was there */
        r = s3_head(o, key, &size);
        if (r < 0)
                return r;
        return s3_request(s, &q);
}

struct list_ctx {
        struct objstore_s3 *s;
        cas_objstore_list_cb cb;
        void *userdata;
};

static int list_key(void *userdata, const char *key) {
        struct list_ctx *l = userdata;
        size_t n = strlen(l->s->prefix);

        if (strncmp(key, l->s->prefix, n) != 0)
                return log_error_errno(-EBADMSG, "s3 %s: the listing returned a key outside the prefix",
                                       l->s->where);
        return l->cb(l->userdata, key + n);
}

static int s3_list(struct cas_objstore *o, const char *prefix, cas_objstore_list_cb cb, void *userdata) {
        struct objstore_s3 *s = to_s3(o);
        struct list_ctx l = { .s = s, .cb = cb, .userdata = userdata };
        _cleanup_free_ char *full = NULL, *token = NULL;

        if (asprintf(&full, "%s%s", s->prefix, prefix) < 0)
                return -ENOMEM;
        for (;;) {
                _cleanup_free_ char *query = NULL;
                struct s3_body out = { .max = 64 * 1024 * 1024 };
                struct s3_req q = { .method = "GET", .out = &out };
                bool truncated = false;
                char *next = NULL;
                int r;

                /* the parameters in SigV4's canonical (sorted) order */
                query = calloc(1, 64 + 3 * (strlen(full) + (token ? strlen(token) : 0)));
                if (!query)
                        return -ENOMEM;
                if (token) {
                        strcat(query, "continuation-token=");
                        uri_encode(token, query);
                        strcat(query, "&");
                }
                strcat(query, "list-type=2&prefix=");
                uri_encode(full, query);
                q.query = query;
                r = s3_request(s, &q);
                if (r >= 0) {
                        r = s3_xml_list_page(out.data ? out.data : "", out.len, list_key, &l, &truncated, &next);
                        if (r == -EBADMSG)
                                log_error_errno(r, "s3 %s: a listing page is not a ListObjectsV2 result", s->where);
                }
                free(out.data);
                if (r < 0)
                        return r;
                free(token);
                token = next;
                if (!truncated)
                        return 0;
        }
}

static void s3_free(struct cas_objstore *o) {
        struct objstore_s3 *s = to_s3(o);

        for (size_t i = 0; i < s->n_idle; i++)
                http_handle_free(s->idle[i]);
        pthread_mutex_destroy(&s->lock);
        free(s->endpoint);
        free(s->bucket);
        free(s->prefix);
        free(s->access_key);
        if (s->secret_key)
                explicit_bzero(s->secret_key, strlen(s->secret_key));
        free(s->secret_key);
        free(s->sigv4);
        free(s->where);
        free(s);
}

static const struct cas_objstore_ops s3_ops = {
        .name = "s3",
        .put = s3_put,
        .get = s3_get,
        .head = s3_head,
        .list = s3_list,
        .remove = s3_remove,
        .free = s3_free,
};

static void s3_freep(struct objstore_s3 **s) {
        if (*s)
                s3_free(&(*s)->base);
}

/* The settings an S3 store is opened with, options over environment. */
struct s3_settings {
        const char *endpoint, *access_key, *secret_key, *region, *allow_http;
};

static int settings_parse(const char *url, const char *const *options, struct s3_settings *st) {
        *st = (struct s3_settings) {
                .endpoint = getenv("AWS_ENDPOINT_URL"),
                .access_key = getenv("AWS_ACCESS_KEY_ID"),
                .secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
                .region = getenv("AWS_REGION"),
                .allow_http = getenv("AWS_ALLOW_HTTP"),
        };
        if (!st->region || !*st->region)
                st->region = getenv("AWS_DEFAULT_REGION");
        for (size_t i = 0; options && options[i]; i += 2) {
                const char *k = options[i], *v = options[i + 1];

                if (!v)
                        return -EINVAL;
                if (strcmp(k, "aws_endpoint_url") == 0 || strcmp(k, "endpoint") == 0)
                        st->endpoint = v;
                else if (strcmp(k, "aws_access_key_id") == 0 || strcmp(k, "access_key_id") == 0)
                        st->access_key = v;
                else if (strcmp(k, "aws_secret_access_key") == 0 || strcmp(k, "secret_access_key") == 0)
                        st->secret_key = v;
                else if (strcmp(k, "aws_region") == 0 || strcmp(k, "region") == 0)
                        st->region = v;
                else if (strcmp(k, "aws_allow_http") == 0 || strcmp(k, "allow_http") == 0)
                        st->allow_http = v;
                else
                        return log_error_errno(-EINVAL, "%s: option %s is not known for an S3 object store "
                                                        "(aws_endpoint_url, aws_access_key_id, "
                                                        "aws_secret_access_key, aws_region, aws_allow_http)",
                                               url, k);
        }
        if (!st->region || !*st->region)
                st->region = "us-east-1";
        if (st->access_key && !*st->access_key)
                st->access_key = NULL;
        if (!st->access_key != !(st->secret_key && *st->secret_key))
                return log_error_errno(-EINVAL, "%s: give both aws_access_key_id and aws_secret_access_key, "
                                                "or neither (anonymous requests)", url);
        if (st->allow_http && strcmp(st->allow_http, "true") != 0 && strcmp(st->allow_http, "false") != 0)
                return log_error_errno(-EINVAL, "%s: aws_allow_http must be true or false", url);
        return 0;
}

/* Checks and copies the endpoint (default: AWS's for the region). */
static int endpoint_set(struct objstore_s3 *s, const char *url, const struct s3_settings *st) {
        bool http = st->endpoint && strncmp(st->endpoint, "http://", 7) == 0;
        size_t n;

        if (!st->endpoint) {
                if (asprintf(&s->endpoint, "https://s3.%s.amazonaws.com", st->region) < 0)
                        return -ENOMEM;
                return 0;
        }
        if (!http && strncmp(st->endpoint, "https://", 8) != 0)
                return log_error_errno(-EINVAL, "%s: aws_endpoint_url must start with http:// or https://", url);
        if (http && !(st->allow_http && strcmp(st->allow_http, "true") == 0))
                return log_error_errno(-EINVAL, "%s: the endpoint is plain http; set aws_allow_http=true to allow it",
                                       url);
        if (strchr(st->endpoint, '@') || strchr(st->endpoint, '?'))
                return log_error_errno(-EINVAL, "%s: aws_endpoint_url must be scheme://host[:port] "
                                                "(no credentials or query in it)", url);
        s->endpoint = strdup(st->endpoint);
        if (!s->endpoint)
                return -ENOMEM;
        n = strlen(s->endpoint);
        while (n > 0 && s->endpoint[n - 1] == '/')
                s->endpoint[--n] = 0;
        return 0;
}

static bool bucket_valid(const char *b) {
        size_t n = strlen(b);

        if (n < 3 || n > 63)
                return false;
        for (const char *c = b; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
                        return false;
        return true;
}

/* Splits "s3://BUCKET[/PREFIX]" into the bucket and "PREFIX/" (or ""). */
static int bucket_set(struct objstore_s3 *s, const char *url) {
        const char *b = url + 5, *slash = strchr(b, '/');
        size_t pl;

        s->bucket = slash ? strndup(b, (size_t) (slash - b)) : strdup(b);
        if (!s->bucket)
                return -ENOMEM;
        if (!bucket_valid(s->bucket))
                return log_error_errno(-EINVAL, "%s: the bucket name must be 3 to 63 of [a-z0-9.-]", url);
        s->prefix = strdup(slash ? slash + 1 : "");
        if (!s->prefix)
                return -ENOMEM;
        pl = strlen(s->prefix);
        while (pl > 0 && s->prefix[pl - 1] == '/')
                s->prefix[--pl] = 0;
        if (pl > 0 && !cas_objstore_key_valid(s->prefix))
                return log_error_errno(-EINVAL, "%s: the prefix must be [A-Za-z0-9._-] segments separated by '/'",
                                       url);
        if (pl > 0) {
                char *p = realloc(s->prefix, pl + 2);

                if (!p)
                        return -ENOMEM;
                strcpy(p + pl, "/");
                s->prefix = p;
        }
        return 0;
}

int cas_objstore_s3_new(const char *url, const char *const *options, struct cas_objstore **ret) {
        _cleanup_(s3_freep) struct objstore_s3 *s = NULL;
        struct s3_settings st;
        int r;

        if (!url || strncmp(url, "s3://", 5) != 0 || !ret)
                return -EINVAL;
        r = settings_parse(url, options, &st);
        if (r < 0)
                return r;
        pthread_once(&curl_once, curl_init_once);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base.ops = &s3_ops;
        pthread_mutex_init(&s->lock, NULL);
        r = bucket_set(s, url);
        if (r < 0)
                return r;
        r = endpoint_set(s, url, &st);
        if (r < 0)
                return r;
        if (st.access_key) {
                s->access_key = strdup(st.access_key);
                s->secret_key = strdup(st.secret_key);
                if (!s->access_key || !s->secret_key)
                        return -ENOMEM;
        }
        if (asprintf(&s->sigv4, "aws:amz:%s:s3", st.region) < 0 ||
            asprintf(&s->where, "%s bucket %s", s->endpoint, s->bucket) < 0)
                return -ENOMEM;
        *ret = &TAKE_PTR(s)->base;
        return 0;
}
