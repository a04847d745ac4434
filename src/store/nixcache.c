/* Copying store paths from a Nix binary cache into castore (nixcache.h).
 * A cache file is read as a stream: the file itself for file://, a socket
 * pair a libcurl thread writes the response into for http(s)://, so a NAR
 * is ingested while it downloads and never held in memory. */
#include "store/nixcache.h"
#include "store/nixcache_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/decompress.h"
#include "store/nar.h"
#include "store/nixbase32.h"
#include "util/http_errno.h"
#include "util/io.h"
#include "util/log.h"
#include "util/ordered_run.h"

/* A cache file being read: the file itself, or the read end of a socket
 * pair that a libcurl thread writes the response body into (so download
 * and ingest overlap and nothing is buffered beyond the socket's). */
struct cache_stream {
        int fd;
        bool has_thread;
        pthread_t thread;
        /* owned by the thread until it is joined */
        CURL *curl;
        int wfd;
        int http_r; /* the transfer's result */
};

static size_t curl_write(char *p, size_t size, size_t n, void *userdata) {
        int fd = *(int *) userdata;
        size_t len = size * n, done = 0;

        while (done < len) {
                /* MSG_NOSIGNAL: a reader that gave up is EPIPE, not SIGPIPE */
                ssize_t k = send(fd, p + done, len - done, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return 0; /* curl aborts the transfer */
                done += (size_t) k;
        }
        return len;
}

static void *http_thread(void *userdata) {
        struct cache_stream *st = userdata;
        long status = 0;
        CURLcode cc;

        cc = curl_easy_perform(st->curl);
        curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(st->curl);
        st->curl = NULL;
        st->http_r = http_errno(cc, status);
        close(st->wfd);
        st->wfd = -1;
        return NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURL *nix_cache_curl_new(const char *url) {
        CURL *curl;

        pthread_once(&curl_once, curl_init);
        curl = curl_easy_init();
        if (!curl)
                return NULL;
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
        /* a server that stops sending: give up after a minute without progress */
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
        return curl;
}

static int http_open(const char *url, struct cache_stream *st) {
        int sv[2], k;

        st->curl = nix_cache_curl_new(url);
        if (!st->curl)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                curl_easy_cleanup(TAKE_PTR(st->curl));
                return negative_errno();
        }
        st->fd = sv[0];
        st->wfd = sv[1];
        curl_easy_setopt(st->curl, CURLOPT_WRITEFUNCTION, curl_write);
        curl_easy_setopt(st->curl, CURLOPT_WRITEDATA, &st->wfd);
        curl_easy_setopt(st->curl, CURLOPT_FAILONERROR, 1L); /* no error page in the stream */
        k = pthread_create(&st->thread, NULL, http_thread, st);
        if (k != 0) {
                curl_easy_cleanup(TAKE_PTR(st->curl));
                close(sv[1]);
                st->wfd = -1;
                return -k;
        }
        st->has_thread = true;
        return 0;
}

/* Opens rel (a path relative to the cache, no leading '/') for reading
 * into *st (zeroed by the caller, fd -1); close it with cache_stream_close
 * whatever this returns.  -ENOENT if the cache has no such file (for
 * HTTP: reported by the read that meets the end). */
static int cache_open(struct nix_cache *c, const char *rel, struct cache_stream *st) {
        _cleanup_free_ char *p = NULL;

        if (strstr(rel, "..") || rel[0] == '/')
                return -EINVAL; /* a narinfo's URL stays inside the cache */
        if (asprintf(&p, "%s/%s", c->base, rel) < 0)
                return -ENOMEM;
        if (c->http)
                return http_open(p, st);
        st->fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        return st->fd < 0 ? negative_errno() : 0;
}

/* Reads up to len bytes: the count, 0 at the end, -errno (for HTTP also
 * the transfer's failure, once its body ended). */
static ssize_t cache_stream_read(struct cache_stream *st, void *buf, size_t len) {
        ssize_t n;

        do
                n = read(st->fd, buf, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if (n == 0 && st->has_thread) {
                pthread_join(st->thread, NULL);
                st->has_thread = false;
                if (st->http_r < 0)
                        return st->http_r;
        }
        return n;
}

static void cache_stream_close(struct cache_stream *st) {
        /* first the read end: a writing thread then fails and ends */
        if (st->fd >= 0)
                close(st->fd);
        st->fd = -1;
        if (st->has_thread)
                pthread_join(st->thread, NULL);
        st->has_thread = false;
}

int nix_cache_read_small(struct nix_cache *c, const char *rel, size_t max, char **ret, size_t *ret_len) {
        _cleanup_(cache_stream_close) struct cache_stream st = { .fd = -1 };
        _cleanup_free_ char *buf = malloc(max + 1);
        size_t len = 0;
        ssize_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        r = cache_open(c, rel, &st);
        if (r < 0)
                return r;
        do {
                n = cache_stream_read(&st, buf + len, max + 1 - len);
                if (n < 0)
                        return (int) n;
                len += (size_t) n;
        } while (n > 0 && len <= max);
        if (len > max)
                return -EFBIG;
        buf[len] = 0;
        *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

const char *nix_cache_url(const struct nix_cache *c) {
        return c->shown;
}

void nix_cache_free(struct nix_cache *c) {
        if (!c)
                return;
        free(c->base);
        free(c->shown);
        free(c);
}

static int check_cache_info(struct nix_cache *c) {
        const char *url = c->shown;
        _cleanup_free_ char *info = NULL;
        const char *sd;
        size_t len;
        int r;

        r = nix_cache_read_small(c, "nix-cache-info", 64 * 1024, &info, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "%s: cannot read nix-cache-info: %m", url);
        c->has_info = true;
        sd = strstr(info, "StoreDir:");
        if (sd && (sd == info || sd[-1] == '\n')) {
                sd += strlen("StoreDir:");
                sd += strspn(sd, " ");
                if (strncmp(sd, NIX_STORE_DIR, NIX_STORE_DIR_LEN) != 0 ||
                    (sd[NIX_STORE_DIR_LEN] != '\n' && sd[NIX_STORE_DIR_LEN] != '\r' && sd[NIX_STORE_DIR_LEN] != 0))
                        return log_error_errno(-EINVAL, "%s: the cache is for another store directory, not "
                                                        NIX_STORE_DIR, url);
        }
        return 0;
}

/* url for messages: without query (it may name a key file) and, for
 * http(s), without "user:password@". */
static char *url_shown(const char *url) {
        char *s = strdup(url), *host, *at;

        if (!s)
                return NULL;
        s[strcspn(s, "?")] = 0;
        host = strstr(s, "://");
        if (!host)
                return s;
        host += 3;
        at = strchr(host, '@');
        if (at && at < host + strcspn(host, "/"))
                memmove(host, at + 1, strlen(at + 1) + 1);
        return s;
}

int nix_cache_open(const char *given, struct nix_cache **ret) {
        _cleanup_(nix_cache_freep) struct nix_cache *c = NULL;
        const char *url;
        size_t len;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->shown = url_shown(given);
        if (!c->shown)
                return -ENOMEM;
        url = c->shown;
        if (strncmp(given, "file://", 7) == 0)
                c->base = strdup(given + 7);
        else if (strncmp(given, "http://", 7) == 0 || strncmp(given, "https://", 8) == 0) {
                c->http = true;
                c->base = strdup(given); /* credentials kept: curl sends them */
        } else
                return log_error_errno(-EINVAL, "%s: not a binary cache URL (file:///DIR, http://, https://)", url);
        if (!c->base)
                return -ENOMEM;
        /* Nix's store parameters (?compression=..., ?trusted=1) mean nothing here */
        c->base[strcspn(c->base, "?")] = 0;
        len = strlen(c->base);
        while (len > 1 && c->base[len - 1] == '/')
                c->base[--len] = 0;
        if (!c->http && c->base[0] != '/')
                return log_error_errno(-EINVAL, "%s: a file:// URL needs an absolute path", url);
        r = check_cache_info(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* Fetches and parses <hash>.narinfo; label names the path in messages. */
static int get_narinfo(struct nix_cache *c, const uint8_t digest[NIX_DIGEST_LEN], const char *label,
                       struct nix_narinfo **ret) {
        _cleanup_free_ char *buf = NULL;
        char rel[NIX_DIGEST_CHARS + sizeof(".narinfo")];
        const char *why = NULL;
        size_t len;
        int r;

        nixbase32_encode(digest, NIX_DIGEST_LEN, rel);
        strcpy(rel + NIX_DIGEST_CHARS, ".narinfo");
        r = nix_cache_read_small(c, rel, NIX_NARINFO_MAX, &buf, &len);
        if (r == -ENOENT)
                return log_error_errno(r, "%s: not in the cache", label);
        if (r == -EFBIG)
                return log_error_errno(-EBADMSG, "%s: narinfo larger than %d bytes", label, NIX_NARINFO_MAX);
        if (r < 0)
                return log_error_errno(r, "%s: cannot fetch its narinfo: %m", label);
        r = nix_narinfo_parse(buf, len, ret, &why);
        if (r == -EBADMSG)
                return log_error_errno(r, "%s: invalid narinfo: %s", label, why);
        if (r < 0)
                return log_error_errno(r, "%s: cannot parse its narinfo: %m", label);
        if (memcmp((*ret)->path.digest, digest, NIX_DIGEST_LEN) != 0) {
                nix_narinfo_free(TAKE_PTR(*ret));
                return log_error_errno(-EBADMSG, "%s: the cache's narinfo describes another path", label);
        }
        return 0;
}

int nix_cache_get_narinfo(struct nix_cache *c, const struct nix_store_path *path, struct nix_narinfo **ret) {
        char abs[NIX_PATH_MAX + 1];
        int r;

        nix_store_path_absolute(path, abs);
        r = get_narinfo(c, path->digest, abs, ret);
        if (r < 0)
                return r;
        if (!nix_store_path_equal(&(*ret)->path, path)) {
                nix_narinfo_free(TAKE_PTR(*ret));
                return log_error_errno(-EBADMSG, "%s: the cache's narinfo describes another path", abs);
        }
        return 0;
}

int nix_cache_get_narinfo_digest(struct nix_cache *c, const uint8_t digest[NIX_DIGEST_LEN], struct nix_narinfo **ret) {
        char label[NIX_STORE_DIR_LEN + 1 + NIX_DIGEST_CHARS + 1];

        memcpy(label, NIX_STORE_DIR "/", NIX_STORE_DIR_LEN + 1);
        nixbase32_encode(digest, NIX_DIGEST_LEN, label + NIX_STORE_DIR_LEN + 1);
        label[sizeof(label) - 1] = 0;
        return get_narinfo(c, digest, label, ret);
}

/* ---- one path ---- */

/* The compressed input: hashed and counted as it is read. */
struct file_reader {
        struct cache_stream *in;
        struct nix_sha256 *sha;
        uint64_t size;
};

static ssize_t file_reader_read(void *userdata, void *buf, size_t len) {
        struct file_reader *f = userdata;
        ssize_t n = cache_stream_read(f->in, buf, len);

        if (n < 0)
                return n;
        nix_sha256_update(f->sha, buf, (size_t) n);
        f->size += (uint64_t) n;
        return n;
}

static int check_signature(const struct nix_narinfo *ni, const struct nix_copy_opts *o, const char *abs) {
        int r;

        if (o->n_keys == 0 && o->no_check_sigs)
                return 0;
        if (o->n_keys == 0)
                return log_error_errno(-EPERM, "%s: no trusted public keys given to check its signature", abs);
        r = nix_narinfo_verify(ni, o->keys, o->n_keys, NULL);
        if (r < 0)
                return log_error_errno(r, "%s: cannot check the signatures: %m", abs);
        if (r == 0)
                return log_error_errno(-EPERM, "%s: no signature by a trusted key (%zu signature(s))", abs,
                                       ni->n_signatures);
        return 0;
}

/* Streams the NAR named by ni through decompression into the store and
 * checks every figure the narinfo gives.  Fills *res (caller frees res->mem). */
static int fetch_nar(struct cas_blob_service *blobs, struct cas_dir_service *dirs, struct nix_cache *c,
                     const struct nix_narinfo *ni, const char *abs, uint64_t *ret_file_bytes,
                     struct nar_ingest_result *res) {
        _cleanup_(nix_decompress_freep) struct nix_decompress *d = NULL;
        _cleanup_(nix_sha256_done) struct nix_sha256 sha = {};
        _cleanup_(cache_stream_close) struct cache_stream in = { .fd = -1 };
        struct file_reader f = { .in = &in, .sha = &sha };
        _cleanup_free_ char *rel = strndup(ni->url, strcspn(ni->url, "?"));
        uint8_t file_sha[NIX_SHA256_LEN];
        int r;

        if (!rel)
                return -ENOMEM;
        r = cache_open(c, rel, &in);
        if (r < 0)
                return log_error_errno(r, "%s: cannot fetch its NAR %s: %m", abs, rel);
        r = nix_sha256_init(&sha);
        if (r < 0)
                return r;
        r = nix_decompress_new(ni->compression, file_reader_read, &f, &d);
        if (r == -EOPNOTSUPP)
                return log_error_errno(r, "%s: unsupported compression \"%s\"", abs, ni->compression);
        if (r < 0)
                return r;
        r = nar_ingest(blobs, dirs, nix_decompress_read, d, 0, res);
        *ret_file_bytes = f.size;
        if (r == -EBADMSG && res->error)
                return log_error_errno(r, "%s: invalid NAR at byte %" PRIu64 ": %s", abs, res->error_offset,
                                       res->error);
        if (r == -EBADMSG)
                return log_error_errno(r, "%s: corrupt or truncated %s stream", abs, ni->compression);
        if (r < 0)
                return log_error_errno(r, "%s: failed to fetch or ingest the NAR %s: %m", abs, rel);
        /* the NAR ended: the compressed file must end there too */
        r = (int) nix_decompress_read(d, file_sha, 1);
        if (r == 0)
                r = nix_sha256_final(&sha, file_sha);
        if (r < 0) {
                free(res->mem);
                return log_error_errno(r, "%s: cannot finish reading %s: %m", abs, rel);
        }
        if ((ni->has_file_size && ni->file_size != f.size) ||
            (ni->has_file_hash && memcmp(ni->file_sha256, file_sha, NIX_SHA256_LEN) != 0))
                r = log_error_errno(-EBADMSG, "%s: %s differs from the narinfo's FileHash/FileSize", abs, rel);
        else if (ni->nar_size != res->nar_size || memcmp(ni->nar_sha256, res->nar_sha256, NIX_SHA256_LEN) != 0)
                r = log_error_errno(-EBADMSG, "%s: the NAR differs from the narinfo's NarHash/NarSize", abs);
        if (r < 0) {
                free(res->mem);
                return r;
        }
        return 0;
}

int nix_cache_fetch_path(struct nix_cache *c, struct cas_blob_service *blobs, struct cas_dir_service *dirs,
                         const struct nix_narinfo *ni, const struct nix_copy_opts *opts, struct nix_pathinfo **ret) {
        struct nar_ingest_result res = {};
        char abs[NIX_PATH_MAX + 1];
        uint64_t file_bytes;
        int r;

        nix_store_path_absolute(&ni->path, abs);
        r = check_signature(ni, opts, abs);
        if (r < 0)
                return r;
        r = fetch_nar(blobs, dirs, c, ni, abs, &file_bytes, &res);
        if (r < 0)
                return r;
        r = nix_narinfo_to_pathinfo(ni, &res.root, res.nar_size, res.nar_sha256, ret);
        free(res.mem);
        if (r < 0)
                return log_error_errno(r, "%s: cannot build its PathInfo: %m", abs);
        return 0;
}

/* ---- the closure: narinfos first, then the NARs in parallel ---- */

/* One path to copy.  Written by one worker, then read by the registering
 * thread once done is set (under copy_state.lock). */
struct copy_item {
        struct nix_narinfo *ni;
        char abs[NIX_PATH_MAX + 1];
        int r; /* fetch_nar's */
        uint64_t file_bytes;
        struct nar_ingest_result res;
};

/* A copy's state; ordered_run does the locking between its threads. */
struct copy_state {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct nix_cache *cache;
        const struct nix_copy_opts *opts;
        struct nix_copy_stats *stats;
        struct nix_path_set seen; /* paths visited (collection: one thread) */
        /* in registration order, references first; an item's result is
         * written by its worker and read after ordered_run hands it over */
        struct copy_item *items;
        size_t n_items;
};

static bool digest_eq(const void *entry, const void *key) {
        return memcmp(entry, key, NIX_DIGEST_LEN) == 0;
}

void nix_path_set_init(struct nix_path_set *s) {
        hashmap_init(&s->map, digest_eq);
}

void nix_path_set_done(struct nix_path_set *s) {
        hashmap_done_free(&s->map);
}

int nix_path_set_add(struct nix_path_set *s, const struct nix_store_path *p) {
        uint64_t h;
        void *d;
        int r;

        memcpy(&h, p->digest, sizeof(h)); /* store path digests are uniform */
        if (hashmap_get(&s->map, h, p->digest))
                return 0;
        d = malloc(NIX_DIGEST_LEN);
        if (!d)
                return -ENOMEM;
        memcpy(d, p->digest, NIX_DIGEST_LEN);
        r = hashmap_put(&s->map, h, d);
        if (r < 0) {
                free(d);
                return r;
        }
        return 1;
}

int nix_path_set_visit(struct nix_path_set *s, const struct nix_store_path *p, unsigned depth,
                       char abs[NIX_PATH_MAX + 1]) {
        nix_store_path_absolute(p, abs);
        if (depth > 4096)
                return log_error_errno(-ELOOP, "%s: reference chain too long", abs);
        return nix_path_set_add(s, p);
}

/* Takes ownership of ni. */
static int add_item(struct copy_state *s, struct nix_narinfo *ni, const char *abs) {
        struct copy_item *t = reallocarray(s->items, s->n_items + 1, sizeof(*t));

        if (!t) {
                nix_narinfo_free(ni);
                return -ENOMEM;
        }
        s->items = t;
        t[s->n_items] = (struct copy_item){ .ni = ni };
        strcpy(t[s->n_items].abs, abs);
        s->n_items++;
        return 0;
}

/* Collects p and (unless no_closure) its references, depth-first, each
 * narinfo fetched and its signature checked: items end up references first. */
static int collect(struct copy_state *s, const struct nix_store_path *p, unsigned depth) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *have = NULL;
        char abs[NIX_PATH_MAX + 1];
        int r;

        r = nix_path_set_visit(&s->seen, p, depth, abs);
        if (r <= 0)
                return r;
        r = nix_pathinfo_get_path(s->pis, p, &have);
        if (r == 0) {
                s->stats->present++;
                if (s->opts->progress)
                        s->opts->progress(s->opts->progress_userdata, p, false, have->nar_size);
                return 0;
        }
        if (r != -ENOENT)
                return log_error_errno(r, "%s: cannot look it up in the store: %m", abs);
        r = nix_cache_get_narinfo(s->cache, p, &ni);
        if (r < 0)
                return r;
        r = check_signature(ni, s->opts, abs);
        if (r < 0)
                return r;
        for (size_t i = 0; !s->opts->no_closure && i < ni->n_references; i++) {
                if (nix_store_path_equal(&ni->references[i], p))
                        continue;
                r = collect(s, &ni->references[i], depth + 1);
                if (r < 0)
                        return r;
        }
        return add_item(s, TAKE_PTR(ni), abs);
}

/* ordered_run's work: fetches and ingests item i's NAR. */
static void fetch_item(void *userdata, size_t i) {
        struct copy_state *s = userdata;
        struct copy_item *it = &s->items[i];

        it->r = fetch_nar(s->store->blobs, s->store->dirs, s->cache, it->ni, it->abs, &it->file_bytes, &it->res);
}

/* ordered_run's finish: registers item i, fetched.  An item that failed
 * stops the copy. */
static int register_item(void *userdata, size_t i) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        struct copy_state *s = userdata;
        struct copy_item *it = &s->items[i];
        int r;

        s->stats->file_bytes += it->file_bytes;
        if (it->r < 0)
                return it->r; /* logged by fetch_nar */
        r = nix_narinfo_to_pathinfo(it->ni, &it->res.root, it->res.nar_size, it->res.nar_sha256, &pi);
        if (r < 0)
                return log_error_errno(r, "%s: cannot build its PathInfo: %m", it->abs);
        r = nix_pathinfo_put(s->pis, pi);
        if (r < 0)
                return log_error_errno(r, "%s: cannot register it: %m", it->abs);
        s->stats->copied++;
        s->stats->nar_bytes += it->res.nar_size;
        if (s->opts->progress)
                s->opts->progress(s->opts->progress_userdata, &it->ni->path, true, it->res.nar_size);
        return 0;
}

/* Fetches the collected items on jobs threads and registers them in
 * order on the calling one. */
static int fetch_and_register(struct copy_state *s, unsigned jobs) {
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        int r;

        /* shared until the last PathInfo names its tree (see cas_store_lock) */
        r = cas_store_lock(s->store, false, true, &lock);
        if (r < 0)
                return log_error_errno(r, "Cannot lock the store: %m");
        return ordered_run(s->n_items, jobs, fetch_item, register_item, s, "a download thread");
}

int nix_copy_from_cache(struct cas_store *store, struct nix_pathinfo_service *pis, struct nix_cache *c,
                        const struct nix_store_path *paths, size_t n_paths, const struct nix_copy_opts *opts,
                        struct nix_copy_stats *ret) {
        struct copy_state s = { .store = store, .pis = pis, .cache = c, .opts = opts, .stats = ret };
        unsigned jobs;
        int r = 0;

        if (!store || !pis || !c || (!paths && n_paths) || !opts || !ret)
                return -EINVAL;
        jobs = opts->jobs == 0 ? NIX_COPY_JOBS_DEFAULT : opts->jobs;
        if (jobs > NIX_COPY_JOBS_MAX)
                return -EINVAL;
        *ret = (struct nix_copy_stats){};
        nix_path_set_init(&s.seen);
        for (size_t i = 0; i < n_paths && r >= 0; i++)
                r = collect(&s, &paths[i], 0);
        if (r >= 0 && s.n_items > 0)
                r = fetch_and_register(&s, jobs);
        for (size_t i = 0; i < s.n_items; i++) {
                if (s.items[i].r >= 0) /* res is zero until fetched */
                        free(s.items[i].res.mem);
                nix_narinfo_free(s.items[i].ni);
        }
        free(s.items);
        nix_path_set_done(&s.seen);
        return r;
}
