/* Copying store paths from castore to a Nix binary cache (nixcache.h):
 * NARs rendered, compressed and hashed into temporary files on worker
 * threads, then moved (file://) or PUT (http(s)://) into the cache, and
 * the narinfos written in reference order from the calling thread. */
#include "store/nixcache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/compress.h"
#include "store/nar.h"
#include "store/nar_listing.h"
#include "store/nixbase32.h"
#include "store/nixcache_internal.h"
#include "util/hex.h"
#include "util/http_errno.h"
#include "util/io.h"
#include "util/log.h"
#include "util/ordered_run.h"

#define HTTP_ATTEMPTS 4

/* ---- URL parameters ---- */

char *nix_url_decode(const char *s, size_t len) {
        char *d = malloc(len + 1), *o = d;

        if (!d)
                return NULL;
        for (size_t i = 0; i < len; i++) {
                int hi = i + 2 < len ? hex_digit_value(s[i + 1]) : -1;
                int lo = i + 2 < len ? hex_digit_value(s[i + 2]) : -1;

                if (s[i] == '%' && hi >= 0 && lo >= 0) {
                        *o++ = (char) (hi << 4 | lo);
                        i += 2;
                } else
                        *o++ = s[i];
        }
        *o = 0;
        return d;
}

int nix_cache_url_param(const char *url, const char *name, char **ret) {
        const char *q = strchr(url, '?');
        size_t name_len = strlen(name);

        while (q) {
                const char *p = q + 1, *end = p + strcspn(p, "&");
                char *v;

                q = *end ? end : NULL;
                if ((size_t) (end - p) <= name_len || strncmp(p, name, name_len) != 0 || p[name_len] != '=')
                        continue;
                p += name_len + 1;
                v = nix_url_decode(p, (size_t) (end - p));
                if (!v)
                        return -ENOMEM;
                *ret = v;
                return 0;
        }
        return -ENOENT;
}

/* ---- HTTP requests ---- */

/* A request body: memory, or a file read with pread (so a retry rewinds). */
struct body {
        const char *mem;
        int fd;
        uint64_t size, pos;
};

static size_t body_read(char *buf, size_t size, size_t n, void *userdata) {
        struct body *b = userdata;
        size_t len = size * n;
        ssize_t k;

        if (len > b->size - b->pos)
                len = (size_t) (b->size - b->pos);
        if (len == 0)
                return 0;
        if (b->mem) {
                memcpy(buf, b->mem + b->pos, len);
                k = (ssize_t) len;
        } else {
                do
                        k = pread(b->fd, buf, len, (off_t) b->pos);
                while (k < 0 && errno == EINTR);
                if (k <= 0)
                        return CURL_READFUNC_ABORT;
        }
        b->pos += (uint64_t) k;
        return (size_t) k;
}

static size_t discard(char *p, size_t size, size_t n, void *userdata) {
        return size * n;
}

static bool transient(CURLcode cc, long status) {
        switch (cc) {
        case CURLE_OK:
        case CURLE_HTTP_RETURNED_ERROR:
                return status >= 500;
        case CURLE_COULDNT_CONNECT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_OPERATION_TIMEDOUT:
                return true;
        default:
                return false;
        }
}

/* One HEAD (body NULL, ctype NULL) or PUT of c's rel, retried with
 * back-off while the failure looks transient.  0 or -errno; a failure
 * is logged unless it is -ENOENT. */
static int http_request(struct nix_cache *c, const char *rel, struct body *body, const char *ctype) {
        _cleanup_free_ char *url = NULL;
        struct curl_slist *hdrs = NULL, *t;
        CURLcode cc = CURLE_OK;
        long status = 0;
        int r = 0;

        if (asprintf(&url, "%s/%s", c->base, rel) < 0)
                return -ENOMEM;
        if (ctype) {
                char h[128];

                snprintf(h, sizeof(h), "Content-Type: %s", ctype);
                hdrs = curl_slist_append(NULL, h);
                /* no "Expect: 100-continue" wait before the body */
                t = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
                if (!t) {
                        curl_slist_free_all(hdrs);
                        return -ENOMEM;
                }
        }
        for (unsigned attempt = 0; attempt < HTTP_ATTEMPTS; attempt++) {
                CURL *curl = nix_cache_curl_new(url);

                if (!curl) {
                        curl_slist_free_all(hdrs);
                        return -ENOMEM;
                }
                if (attempt > 0)
                        nanosleep(&(struct timespec){ 0, 250000000L << (attempt - 1) }, NULL);
                curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
                if (body) {
                        body->pos = 0;
                        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
                        curl_easy_setopt(curl, CURLOPT_READFUNCTION, body_read);
                        curl_easy_setopt(curl, CURLOPT_READDATA, body);
                        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) body->size);
                        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
                } else
                        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
                status = 0;
                cc = curl_easy_perform(curl);
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_cleanup(curl);
                r = http_errno(cc, status);
                if (r == 0 || !transient(cc, status))
                        break;
        }
        curl_slist_free_all(hdrs);
        if (r < 0 && r != -ENOENT) {
                if (cc == CURLE_OK || cc == CURLE_HTTP_RETURNED_ERROR)
                        log_error("%s/%s: %s answered HTTP %ld", c->shown, rel, body ? "PUT" : "HEAD", status);
                else
                        log_error("%s/%s: %s", c->shown, rel, curl_easy_strerror(cc));
        }
        return r;
}

/* ---- cache files ---- */

static int fsync_dir(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/* A temporary file in dir (file://: in the cache, renamed into place
 * later) or, with dir NULL, an anonymous one in $TMPDIR (for PUTs). */
static int temp_open(const char *dir, char **ret_path) {
        const char *tmp = getenv("TMPDIR");
        _cleanup_free_ char *p = NULL;
        int fd;

        if (!dir) {
                fd = open(tmp && *tmp ? tmp : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
                if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
                        return fd < 0 ? negative_errno() : fd;
                dir = tmp && *tmp ? tmp : "/tmp";
        }
        if (asprintf(&p, "%s/.tmp-castore-XXXXXX", dir) < 0)
                return -ENOMEM;
        fd = mkostemp(p, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ret_path)
                *ret_path = TAKE_PTR(p);
        else
                unlink(p);
        return fd;
}

/* Makes the temporary file fd (at tmp_path) the cache's rel: readable by
 * all as Nix's files are, synced, renamed, its directory synced. */
static int file_publish(struct nix_cache *c, int fd, const char *tmp_path, const char *rel) {
        _cleanup_free_ char *dst = NULL, *dir = NULL;
        int r;

        if (asprintf(&dst, "%s/%s", c->base, rel) < 0)
                return -ENOMEM;
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp_path, dst) < 0)
                return negative_errno();
        dir = strdup(dst);
        if (!dir)
                return -ENOMEM;
        *strrchr(dir, '/') = 0;
        r = fsync_dir(dir);
        return r;
}

/* Whether the cache has rel: 1, 0, or -errno (logged). */
static int cache_has(struct nix_cache *c, const char *rel) {
        _cleanup_free_ char *p = NULL;
        int r;

        if (c->http) {
                r = http_request(c, rel, NULL, NULL);
                return r == 0 ? 1 : r == -ENOENT ? 0 : r;
        }
        if (asprintf(&p, "%s/%s", c->base, rel) < 0)
                return -ENOMEM;
        if (access(p, F_OK) == 0)
                return 1;
        if (errno == ENOENT)
                return 0;
        return log_error_errno(-errno, "%s: %m", p);
}

/* Stores len bytes of text as the cache's rel (atomically for file://). */
static int cache_put_text(struct nix_cache *c, const char *rel, const char *text, size_t len, const char *ctype) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        struct body b = { .mem = text, .fd = -1, .size = len };
        int r;

        if (c->http)
                return http_request(c, rel, &b, ctype);
        fd = temp_open(c->base, &tmp);
        if (fd < 0)
                return log_error_errno(fd, "%s: cannot create a temporary file: %m", c->shown);
        r = loop_write(fd, text, len);
        if (r >= 0)
                r = file_publish(c, fd, tmp, rel);
        if (r < 0) {
                unlink(tmp);
                return log_error_errno(r, "%s/%s: cannot write it: %m", c->shown, rel);
        }
        return 0;
}

static int mkdir_p(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int nix_cache_open_write(const char *url, struct nix_cache **ret) {
        static const char info[] = "StoreDir: " NIX_STORE_DIR "\n";
        _cleanup_(nix_cache_freep) struct nix_cache *c = NULL;
        _cleanup_free_ char *nar = NULL;
        int r;

        r = nix_cache_open(url, &c);
        if (r < 0)
                return r;
        if (!c->http) {
                if (asprintf(&nar, "%s/nar", c->base) < 0)
                        return -ENOMEM;
                r = mkdir_p(nar);
                if (r < 0)
                        return log_error_errno(r, "%s: cannot create the cache directory: %m", c->shown);
        }
        if (!c->has_info) {
                r = cache_put_text(c, "nix-cache-info", info, strlen(info), "text/x-nix-cache-info");
                if (r < 0)
                        return log_error_errno(r, "%s: cannot write nix-cache-info: %m", c->shown);
                c->has_info = true;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- one NAR ---- */

/* The compressed NAR on its way to a temporary file, hashed and counted. */
struct nar_file {
        int fd;
        struct nix_sha256 sha;
        uint64_t size;
};

static int nar_file_write(void *userdata, const void *buf, size_t len) {
        struct nar_file *f = userdata;
        int r = loop_write(f->fd, buf, len);

        if (r < 0)
                return r;
        nix_sha256_update(&f->sha, buf, len);
        f->size += len;
        return 0;
}

/* One path to write.  Filled by one worker, read by the registering
 * thread once done is set (under write_state.lock). */
struct write_item {
        struct nix_pathinfo *pi;
        char abs[NIX_PATH_MAX + 1];
        int r; /* the worker's */
        char url[sizeof("nar/.nar.zst") + 64];
        uint8_t file_sha256[NIX_SHA256_LEN];
        uint64_t file_size;
};

/* Renders it->pi's NAR through the compressor into fd, checks NarHash
 * and NarSize, and fills FileHash, FileSize and the URL. */
static int render_compressed(struct cas_store *store, struct write_item *it, const char *method, int fd) {
        _cleanup_(nix_compress_freep) struct nix_compress *z = NULL;
        struct nar_file f = { .fd = fd };
        uint8_t nar_sha[NIX_SHA256_LEN];
        uint64_t nar_size;
        char b32[64];
        int r;

        r = nix_sha256_init(&f.sha);
        if (r < 0)
                return r;
        r = nix_compress_new(method, nar_file_write, &f, &z);
        if (r >= 0)
                r = nar_render(store->blobs, store->dirs, &it->pi->node, 0, nix_compress_write, z, &nar_size, nar_sha);
        if (r >= 0)
                r = nix_compress_finish(z);
        if (r >= 0)
                r = nix_sha256_final(&f.sha, it->file_sha256);
        else
                nix_sha256_done(&f.sha);
        if (r < 0)
                return log_error_errno(r, "%s: cannot render its NAR: %m", it->abs);
        if (nar_size != it->pi->nar_size || memcmp(nar_sha, it->pi->nar_sha256, NIX_SHA256_LEN) != 0)
                return log_error_errno(-EBADMSG, "%s: the NAR rendered from the store does not match the NarHash "
                                                 "and NarSize registered for it", it->abs);
        it->file_size = f.size;
        nixbase32_encode(it->file_sha256, NIX_SHA256_LEN, b32);
        snprintf(it->url, sizeof(it->url), "nar/%s.nar%s", b32, nix_compress_extension(method));
        return 0;
}

/* Makes the NAR of it and puts it into the cache as it->url. */
static int write_nar(struct cas_store *store, struct nix_cache *c, struct write_item *it, const char *method) {
        _cleanup_free_ char *tmp = NULL, *nar_dir = NULL;
        _cleanup_close_ int fd = -1;
        struct body b = { .fd = -1 };
        int r;

        if (!c->http && asprintf(&nar_dir, "%s/nar", c->base) < 0)
                return -ENOMEM;
        fd = temp_open(nar_dir, c->http ? NULL : &tmp);
        if (fd < 0)
                return log_error_errno(fd, "%s: cannot create a temporary file: %m", it->abs);
        r = render_compressed(store, it, method, fd);
        if (r >= 0 && !c->http) {
                r = file_publish(c, fd, tmp, it->url);
                if (r < 0)
                        log_error_errno(r, "%s/%s: cannot write it: %m", c->shown, it->url);
        }
        if (tmp && r < 0)
                unlink(tmp);
        if (r < 0 || !c->http)
                return r;
        /* as Nix: a NAR of the same FileHash already there is not sent again */
        r = cache_has(c, it->url);
        if (r != 0)
                return r < 0 ? r : 0;
        b.fd = fd;
        b.size = it->file_size;
        return http_request(c, it->url, &b, "application/x-nix-nar");
}

/* The narinfo text of it, signed with every key. */
static int make_narinfo(const struct write_item *it, const struct nix_copy_to_opts *o, const char *method,
                        char **ret, size_t *ret_len) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        int r;

        r = nix_narinfo_from_pathinfo(it->pi, it->url, method, &ni);
        if (r < 0)
                return r;
        ni->has_file_hash = ni->has_file_size = true;
        memcpy(ni->file_sha256, it->file_sha256, NIX_SHA256_LEN);
        ni->file_size = it->file_size;
        for (size_t i = 0; i < o->n_keys; i++) {
                r = nix_narinfo_sign(ni, &o->keys[i]);
                if (r < 0)
                        return r;
        }
        return nix_narinfo_format(ni, ret, ret_len);
}

static void narinfo_name(const struct nix_store_path *p, const char *ext, char ret[NIX_DIGEST_CHARS + 16]) {
        nixbase32_encode(p->digest, NIX_DIGEST_LEN, ret);
        strcpy(ret + NIX_DIGEST_CHARS, ext);
}

/* The optional <hash>.ls listing of it's NAR. */
static int write_listing(struct cas_store *store, struct nix_cache *c, const struct write_item *it) {
        _cleanup_free_ char *json = NULL;
        char rel[NIX_DIGEST_CHARS + 16];
        size_t len;
        int r;

        r = nar_listing_json(store->dirs, &it->pi->node, &json, &len);
        if (r < 0)
                return log_error_errno(r, "%s: cannot list its NAR: %m", it->abs);
        narinfo_name(&it->pi->path, ".ls", rel);
        return cache_put_text(c, rel, json, len, "application/json");
}

/* ---- the closure, then the NARs in parallel ---- */

/* A copy's state; ordered_run does the locking between its threads. */
struct write_state {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct nix_cache *cache;
        const struct nix_copy_to_opts *opts;
        const char *method;
        struct nix_copy_stats *stats;
        struct nix_path_set seen; /* paths visited (collection: one thread) */
        /* in registration order, references first; an item's result is
         * written by its worker and read after ordered_run hands it over */
        struct write_item *items;
        size_t n_items;
};

/* Takes ownership of pi. */
static int add_item(struct write_state *s, struct nix_pathinfo *pi, const char *abs) {
        struct write_item *t = reallocarray(s->items, s->n_items + 1, sizeof(*t));

        if (!t) {
                nix_pathinfo_free(pi);
                return -ENOMEM;
        }
        s->items = t;
        t[s->n_items] = (struct write_item){ .pi = pi };
        strcpy(t[s->n_items].abs, abs);
        s->n_items++;
        return 0;
}

/* Collects p and (unless no_closure) its references, depth-first, from
 * the store: items end up references first.  A path whose narinfo the
 * cache has is counted present. */
static int collect(struct write_state *s, const struct nix_store_path *p, unsigned depth) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        char abs[NIX_PATH_MAX + 1], rel[NIX_DIGEST_CHARS + 16];
        int r;

        r = nix_path_set_visit(&s->seen, p, depth, abs);
        if (r <= 0)
                return r;
        r = nix_pathinfo_get_path(s->pis, p, &pi);
        if (r == -ENOENT)
                return log_error_errno(r, "%s: not registered in the store", abs);
        if (r < 0)
                return log_error_errno(r, "%s: cannot look it up in the store: %m", abs);
        for (size_t i = 0; !s->opts->no_closure && i < pi->n_references; i++) {
                if (nix_store_path_equal(&pi->references[i], p))
                        continue;
                r = collect(s, &pi->references[i], depth + 1);
                if (r < 0)
                        return r;
        }
        narinfo_name(p, ".narinfo", rel);
        r = cache_has(s->cache, rel);
        if (r < 0)
                return log_error_errno(r, "%s: cannot check whether the cache has it: %m", abs);
        if (r > 0) {
                s->stats->present++;
                if (s->opts->progress)
                        s->opts->progress(s->opts->progress_userdata, p, false, pi->nar_size);
                return 0;
        }
        return add_item(s, TAKE_PTR(pi), abs);
}

/* ordered_run's work: renders item i's NAR into the cache (and its
 * listing if asked). */
static void write_one(void *userdata, size_t i) {
        struct write_state *s = userdata;
        struct write_item *it = &s->items[i];

        it->r = write_nar(s->store, s->cache, it, s->method);
        if (it->r >= 0 && s->opts->write_nar_listing)
                it->r = write_listing(s->store, s->cache, it);
}

/* ordered_run's finish: writes item i's narinfo, its NAR written.  An
 * item that failed stops the copy. */
static int register_item(void *userdata, size_t i) {
        _cleanup_free_ char *text = NULL;
        struct write_state *s = userdata;
        struct write_item *it = &s->items[i];
        char rel[NIX_DIGEST_CHARS + 16];
        size_t len;
        int r;

        if (it->r < 0)
                return it->r; /* logged by the worker */
        r = make_narinfo(it, s->opts, s->method, &text, &len);
        if (r < 0)
                return log_error_errno(r, "%s: cannot make its narinfo: %m", it->abs);
        narinfo_name(&it->pi->path, ".narinfo", rel);
        r = cache_put_text(s->cache, rel, text, len, "text/x-nix-narinfo");
        if (r < 0)
                return log_error_errno(r, "%s: cannot write its narinfo: %m", it->abs);
        s->stats->copied++;
        s->stats->nar_bytes += it->pi->nar_size;
        s->stats->file_bytes += it->file_size;
        if (s->opts->progress)
                s->opts->progress(s->opts->progress_userdata, &it->pi->path, true, it->pi->nar_size);
        return 0;
}

int nix_copy_to_cache(struct cas_store *store, struct nix_pathinfo_service *pis, struct nix_cache *c,
                      const struct nix_store_path *paths, size_t n_paths, const struct nix_copy_to_opts *opts,
                      struct nix_copy_stats *ret) {
        struct write_state s = { .store = store, .pis = pis, .cache = c, .opts = opts, .stats = ret };
        unsigned jobs;
        int r = 0;

        if (!store || !pis || !c || (!paths && n_paths) || !opts || !ret)
                return -EINVAL;
        s.method = opts->compression ? opts->compression : "xz";
        if (!nix_compress_method_valid(s.method))
                return -EOPNOTSUPP;
        jobs = opts->jobs == 0 ? NIX_COPY_JOBS_DEFAULT : opts->jobs;
        if (jobs > NIX_COPY_JOBS_MAX)
                return -EINVAL;
        *ret = (struct nix_copy_stats){};
        nix_path_set_init(&s.seen);
        for (size_t i = 0; i < n_paths && r >= 0; i++)
                r = collect(&s, &paths[i], 0);
        if (r >= 0 && s.n_items > 0)
                r = ordered_run(s.n_items, jobs, write_one, register_item, &s, "a thread");
        for (size_t i = 0; i < s.n_items; i++)
                nix_pathinfo_free(s.items[i].pi);
        free(s.items);
        nix_path_set_done(&s.seen);
        return r;
}
