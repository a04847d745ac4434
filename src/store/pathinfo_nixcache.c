/* A PathInfo service over a Nix binary cache, fetched on demand
 * (nix+http://, nix+https://, nix+file://, see pathinfosvc.h): a path asked
 * for is looked up in the local PathInfo service first; if it is not
 * there, its narinfo is fetched and its signature checked, its NAR
 * streamed into the store's blob and directory services with every hash
 * checked, and only then is the PathInfo registered locally and returned.
 * Concurrent asks for one path share one download. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/nixbase32.h"
#include "store/nixcache.h"
#include "store/pathinfosvc.h"
#include "util/log.h"

/* One download in progress; its waiters take the encoded result. */
struct flight {
        uint8_t digest[NIX_DIGEST_LEN];
        bool done;
        int r;
        uint8_t *buf; /* the PathInfo, encoded (r == 0) */
        size_t len;
        unsigned refs; /* the downloader and each waiter */
        struct flight *next;
};

struct lazy_pathinfos {
        struct nix_pathinfo_service base;
        /* owned; stateless, shared by threads; NULL until the cache could
         * be reached (set once, under lock) */
        struct nix_cache *cache;
        struct cas_store *store;           /* borrowed: blobs, directories, gc lock */
        struct nix_pathinfo_service *near; /* owned: where fetched paths are registered */
        struct nix_public_key *keys;       /* owned */
        size_t n_keys;
        char *label;                       /* the URL without its query, for messages */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct flight *flights; /* in progress; protected by lock */
};

static struct lazy_pathinfos *to_lazy(struct nix_pathinfo_service *s) {
        return (struct lazy_pathinfos *) s;
}

/* Drops a reference; the last one frees.  Called with s->lock held. */
static void flight_unref(struct lazy_pathinfos *s, struct flight *f) {
        if (--f->refs > 0)
                return;
        for (struct flight **p = &s->flights; *p; p = &(*p)->next)
                if (*p == f) {
                        *p = f->next;
                        break;
                }
        free(f->buf);
        free(f);
}

/* The cache, opened (its nix-cache-info read) the first time it is
 * reachable: a mount started offline still serves what it fetched before. */
static int cache_get(struct lazy_pathinfos *s, struct nix_cache **ret) {
        struct nix_cache *c = NULL;
        int r;

        pthread_mutex_lock(&s->lock);
        *ret = s->cache;
        pthread_mutex_unlock(&s->lock);
        if (*ret)
                return 0;
        r = nix_cache_open(s->label, &c); /* not under the lock: network I/O */
        if (r < 0)
                return r;
        pthread_mutex_lock(&s->lock);
        if (!s->cache)
                s->cache = TAKE_PTR(c);
        *ret = s->cache;
        pthread_mutex_unlock(&s->lock);
        nix_cache_free(c); /* another thread's came first */
        return 0;
}

/* Narinfo, signature, NAR, checks; registered near before it returns.
 * Holds the store's gc lock shared from the first blob written to the
 * registration, as every import does. */
static int download(struct lazy_pathinfos *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        struct nix_copy_opts opts = { .keys = s->keys, .n_keys = s->n_keys };
        struct nix_cache *c;
        int r;

        r = cache_get(s, &c);
        if (r < 0)
                return r;
        r = nix_cache_get_narinfo_digest(c, digest, &ni);
        if (r < 0)
                return r;
        r = cas_store_lock(s->store, false, true, &lock);
        if (r < 0)
                return log_error_errno(r, "%s: cannot lock the store: %m", s->label);
        r = nix_cache_fetch_path(c, s->store->blobs, s->store->dirs, ni, &opts, &pi);
        if (r < 0)
                return r;
        r = nix_pathinfo_put(s->near, pi);
        if (r < 0)
                return log_error_errno(r, "%s: cannot register a fetched path: %m", s->label);
        *ret = TAKE_PTR(pi);
        return 0;
}

/* A failure is ENOENT when the cache has no such path and EIO for
 * everything else a reader could meet (bad signature, bad hash, a
 * network error): the log says which. */
static int lazy_errno(int r) {
        return r == -ENOENT || r == -ENOMEM ? r : -EIO;
}

/* Waits for f (s->lock held) and decodes its result. */
static int wait_flight(struct lazy_pathinfos *s, struct flight *f, struct nix_pathinfo **ret) {
        int r;

        f->refs++;
        while (!f->done)
                pthread_cond_wait(&s->cond, &s->lock);
        r = f->r;
        if (r == 0)
                r = nix_pathinfo_decode(f->buf, f->len, ret, NULL) < 0 ? -EIO : 0;
        flight_unref(s, f);
        return r;
}

static int lead_flight(struct lazy_pathinfos *s, struct flight *f, struct nix_pathinfo **ret) {
        int r;

        pthread_mutex_unlock(&s->lock);
        r = download(s, f->digest, ret);
        if (r == 0 && nix_pathinfo_encode(*ret, &f->buf, &f->len) < 0)
                f->buf = NULL; /* waiters fall back to asking near */
        pthread_mutex_lock(&s->lock);
        f->r = r < 0 ? lazy_errno(r) : f->buf ? 0 : -EAGAIN;
        f->done = true;
        pthread_cond_broadcast(&s->cond);
        flight_unref(s, f);
        return r < 0 ? lazy_errno(r) : 0;
}

static int lazy_get(struct nix_pathinfo_service *ps, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        struct lazy_pathinfos *s = to_lazy(ps);
        struct flight *f;
        int r;

        r = nix_pathinfo_get(s->near, digest, ret);
        if (r != -ENOENT)
                return r;
        pthread_mutex_lock(&s->lock);
        for (f = s->flights; f; f = f->next)
                if (memcmp(f->digest, digest, NIX_DIGEST_LEN) == 0)
                        break;
        if (f) {
                r = wait_flight(s, f, ret);
                pthread_mutex_unlock(&s->lock);
                return r == -EAGAIN ? nix_pathinfo_get(s->near, digest, ret) : r;
        }
        f = calloc(1, sizeof(*f));
        if (!f) {
                pthread_mutex_unlock(&s->lock);
                return -ENOMEM;
        }
        memcpy(f->digest, digest, NIX_DIGEST_LEN);
        f->refs = 1;
        f->next = s->flights;
        s->flights = f;
        r = lead_flight(s, f, ret);
        pthread_mutex_unlock(&s->lock);
        return r;
}

static int lazy_put(struct nix_pathinfo_service *ps, const struct nix_pathinfo *pi) {
        return log_error_errno(-EROFS, "%s: a binary cache is read from, not written to, here", to_lazy(ps)->label);
}

/* Forgets a fetched path locally (the cache keeps it). */
static int lazy_remove(struct nix_pathinfo_service *ps, const uint8_t digest[NIX_DIGEST_LEN]) {
        return nix_pathinfo_remove(to_lazy(ps)->near, digest);
}

/* What has been fetched so far: a binary cache cannot be listed. */
static int lazy_list(struct nix_pathinfo_service *ps, nix_pathinfo_list_cb cb, void *userdata) {
        return nix_pathinfo_list(to_lazy(ps)->near, cb, userdata);
}

static void lazy_free(struct nix_pathinfo_service *ps) {
        struct lazy_pathinfos *s = to_lazy(ps);

        nix_pathinfo_service_free(s->near);
        nix_cache_free(s->cache);
        free(s->keys);
        free(s->label);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
}

static const struct nix_pathinfo_ops lazy_ops = {
        .name = "nix binary cache",
        .get = lazy_get,
        .put = lazy_put,
        .remove = lazy_remove,
        .list = lazy_list,
        .free = lazy_free,
};

bool nix_pathinfo_url_is_cache(const char *url) {
        return url && (strncmp(url, "nix+http://", 11) == 0 || strncmp(url, "nix+https://", 12) == 0 ||
                       strncmp(url, "nix+file://", 11) == 0);
}

/* Reads the query: trusted-public-keys (required), nothing else. */
static int parse_query(struct lazy_pathinfos *s, const char *url, const char *q) {
        while (q && *q) {
                size_t len = strcspn(q, "&");
                const char *k = "trusted-public-keys=";
                const char *bad = NULL;
                _cleanup_free_ char *v = NULL;
                int r;

                if (len > strlen(k) && strncmp(q, k, strlen(k)) == 0) {
                        v = nix_url_decode(q + strlen(k), len - strlen(k));
                        if (!v)
                                return -ENOMEM;
                        free(s->keys);
                        s->keys = NULL;
                        r = nix_public_keys_parse(v, &s->keys, &s->n_keys, &bad);
                        if (r == -EINVAL)
                                return log_error_errno(r, "%s: bad trusted public key \"%.*s\"", s->label,
                                                       (int) strcspn(bad, " \t\n"), bad);
                        if (r < 0)
                                return r;
                } else if (len > 0)
                        return log_error_errno(-EINVAL, "%s: unknown option \"%.*s\" (only trusted-public-keys)",
                                               s->label, (int) len, q);
                q += len + (q[len] == '&');
        }
        if (s->n_keys == 0)
                return log_error_errno(-EINVAL, "%s: trusted-public-keys=NAME:KEY is required: castore registers "
                                                "no path it could not check", url);
        return 0;
}

int nix_pathinfo_nixcache_new(const char *url, struct cas_store *store, struct nix_pathinfo_service *near,
                              struct nix_pathinfo_service **ret) {
        struct lazy_pathinfos *s = calloc(1, sizeof(*s));
        const char *q;
        int r;

        if (!s) {
                nix_pathinfo_service_free(near);
                return -ENOMEM;
        }
        s->base.ops = &lazy_ops;
        s->store = store;
        s->near = near;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        if (!nix_pathinfo_url_is_cache(url) || !near || !store) {
                lazy_free(&s->base);
                return -EINVAL;
        }
        q = strchr(url, '?');
        s->label = strndup(url + 4, q ? (size_t) (q - url - 4) : strlen(url + 4));
        r = s->label ? parse_query(s, url, q ? q + 1 : NULL) : -ENOMEM;
        if (r >= 0) {
                r = nix_cache_open(s->label, &s->cache);
                if (r < 0 && r != -EINVAL && r != -ENOMEM) {
                        log_warning("%s: not reachable now; paths not fetched before are looked for there "
                                    "when asked for", s->label);
                        r = 0;
                }
        }
        if (r < 0) {
                lazy_free(&s->base);
                return r;
        }
        *ret = &s->base;
        return 0;
}
