/* Uploads to a served cache (cache_serve.h): a NAR file is decompressed
 * and ingested on a thread of its own while the client sends it (fed
 * through a socket pair, so memory stays bounded), then kept as pending
 * until the narinfo naming it arrives, is checked against it and
 * registers the path. */
#include "store/cache_serve_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/decompress.h"
#include "store/nixbase32.h"
#include "util/io.h"
#include "util/log.h"

/* Longest upload file name accepted ("<52 chars>.nar.zst" is 60). */
#define UPLOAD_NAME_MAX 200

struct nix_upload {
        struct nix_serve *s;
        char *name;                /* "nar/<name>" */
        const char *method;        /* decompression, by the name's extension */
        struct cas_store_lock *lock;
        int fd;                    /* the ingest thread's end; closed by it */
        int wfd;                   /* the client's bytes go in here */
        pthread_t thread;
        bool has_thread;
        /* written by the ingest thread, read after it was joined */
        struct nix_sha256 sha;
        uint64_t file_size;
        uint8_t file_sha256[NIX_SHA256_LEN];
        struct nar_ingest_result res;
        const char *why;
        int r;
};

static const struct {
        const char *ext, *method;
} methods[] = {
        { ".nar", "none" }, { ".nar.xz", "xz" }, { ".nar.zst", "zstd" }, { ".nar.bz2", "bzip2" }, { ".nar.br", "br" },
};

/* The decompression an upload name asks for, or NULL for a bad name. */
static const char *upload_method(const char *name) {
        size_t len = strlen(name);

        if (len == 0 || len > UPLOAD_NAME_MAX || name[0] == '.')
                return NULL;
        for (size_t i = 0; i < len; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') ||
                      (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '.' ||
                      name[i] == '-' || name[i] == '_'))
                        return NULL;
        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                size_t n = strlen(methods[i].ext);

                if (len > n && strcmp(name + len - n, methods[i].ext) == 0)
                        return methods[i].method;
        }
        return NULL;
}

void nix_pending_free(struct nix_pending *p) {
        if (!p)
                return;
        free(p->res.mem);
        free(p->name);
        cas_store_unlock(p->lock);
        free(p);
}

/* Unlinks and returns the pending NAR called name (under s->lock). */
static struct nix_pending *pending_take_locked(struct nix_serve *s, const char *name) {
        for (struct nix_pending **pp = &s->pending; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->name, name) == 0) {
                        struct nix_pending *p = *pp;

                        *pp = p->next;
                        s->n_pending--;
                        return p;
                }
        return NULL;
}

/* Unlinks the pending NARs older than the age limit, and the oldest while
 * there are more than keep (under s->lock); returns them as a list. */
static struct nix_pending *pending_expire_locked(struct nix_serve *s, size_t keep) {
        time_t now = time(NULL);
        struct nix_pending *dead = NULL, **pp = &s->pending;
        size_t i = 0;

        while (*pp) {
                struct nix_pending *p = *pp;

                if (i >= keep || now - p->when > NIX_SERVE_PENDING_SECONDS) {
                        assert(s->n_pending > 0);
                        *pp = p->next;
                        s->n_pending--;
                        p->next = dead;
                        dead = p;
                } else {
                        pp = &p->next;
                        i++;
                }
        }
        return dead;
}

static void pending_free_list(struct nix_pending *p) {
        while (p) {
                struct nix_pending *next = p->next;

                log_info("Dropping the uploaded %s: no narinfo came for it", p->name);
                nix_pending_free(p);
                p = next;
        }
}

void nix_serve_pending_clear(struct nix_serve *s) {
        struct nix_pending *p;

        pthread_mutex_lock(&s->lock);
        p = pending_expire_locked(s, 0);
        pthread_mutex_unlock(&s->lock);
        pending_free_list(p);
}

void nix_serve_expire(struct nix_serve *s) {
        struct nix_pending *dead;

        pthread_mutex_lock(&s->lock);
        dead = pending_expire_locked(s, NIX_SERVE_PENDING_MAX);
        pthread_mutex_unlock(&s->lock);
        pending_free_list(dead);
}

/* Adds p, replacing one of the same name and making room (frees outside the lock). */
static void pending_add(struct nix_serve *s, struct nix_pending *p) {
        struct nix_pending *old, *dead;

        pthread_mutex_lock(&s->lock);
        old = pending_take_locked(s, p->name);
        dead = pending_expire_locked(s, NIX_SERVE_PENDING_MAX - 1);
        p->next = s->pending;
        s->pending = p;
        s->n_pending++;
        pthread_mutex_unlock(&s->lock);
        nix_pending_free(old);
        pending_free_list(dead);
}

int nix_serve_upload_pending(struct nix_serve *s, const char *name, uint64_t *ret_file_size) {
        _cleanup_free_ char *full = NULL;
        int r = 0;

        if (asprintf(&full, "nar/%s", name) < 0)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        for (struct nix_pending *p = s->pending; p; p = p->next)
                if (strcmp(p->name, full) == 0) {
                        if (ret_file_size)
                                *ret_file_size = p->file_size;
                        r = 1;
                        break;
                }
        pthread_mutex_unlock(&s->lock);
        return r;
}

/* ---- receiving a NAR file ---- */

static ssize_t upload_read(void *userdata, void *buf, size_t len) {
        struct nix_upload *u = userdata;
        ssize_t n;

        do
                n = read(u->fd, buf, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        nix_sha256_update(&u->sha, buf, (size_t) n);
        u->file_size += (uint64_t) n;
        return n;
}

/* After the NAR: the compressed stream must end, and the file with it. */
static int upload_drain(struct nix_upload *u, struct nix_decompress *d) {
        uint8_t b[4096];
        ssize_t n;

        n = nix_decompress_read(d, b, 1);
        if (n != 0) {
                u->why = n > 0 ? "data after the end of the NAR" : "corrupt compressed stream after the NAR";
                return n < 0 ? (int) n : -EBADMSG;
        }
        n = upload_read(u, b, sizeof(b));
        if (n != 0) {
                u->why = "data after the end of the compressed stream";
                return n < 0 ? (int) n : -EBADMSG;
        }
        return nix_sha256_final(&u->sha, u->file_sha256);
}

static int upload_ingest(struct nix_upload *u) {
        _cleanup_(nix_decompress_freep) struct nix_decompress *d = NULL;
        int r;

        r = nix_decompress_new(u->method, upload_read, u, &d);
        if (r < 0)
                return r;
        r = nar_ingest(u->s->store->blobs, u->s->store->dirs, nix_decompress_read, d, 0, &u->res);
        if (r == -EBADMSG)
                u->why = u->res.error ? u->res.error : "corrupt or truncated compressed stream";
        if (r < 0)
                return r;
        r = upload_drain(u, d);
        if (r < 0) {
                free(TAKE_PTR(u->res.mem));
                return r;
        }
        return 0;
}

static void *ingest_thread(void *userdata) {
        struct nix_upload *u = userdata;

        u->r = upload_ingest(u);
        /* the client's further bytes fail with EPIPE */
        close(u->fd);
        u->fd = -1;
        return NULL;
}

void nix_upload_free(struct nix_upload *u) {
        if (!u)
                return;
        if (u->wfd >= 0)
                close(u->wfd); /* the ingest sees a truncated file and ends */
        if (u->has_thread)
                pthread_join(u->thread, NULL);
        else if (u->fd >= 0)
                close(u->fd);
        if (u->has_thread && u->r >= 0)
                free(u->res.mem);
        nix_sha256_done(&u->sha);
        cas_store_unlock(u->lock);
        free(u->name);
        free(u);
}

int nix_serve_upload_begin(struct nix_serve *s, const char *name, struct nix_upload **ret) {
        _cleanup_(nix_upload_freep) struct nix_upload *u = NULL;
        int sv[2], k, r;

        if (!s->cfg.allow_uploads)
                return -EPERM;
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        *u = (struct nix_upload){ .s = s, .fd = -1, .wfd = -1, .method = upload_method(name) };
        if (!u->method)
                return -EINVAL;
        if (asprintf(&u->name, "nar/%s", name) < 0) {
                u->name = NULL;
                return -ENOMEM;
        }
        r = nix_sha256_init(&u->sha);
        if (r < 0)
                return r;
        /* until its narinfo names it, nothing else keeps the tree from the collector */
        r = cas_store_lock(s->store, false, true, &u->lock);
        if (r < 0)
                return log_error_errno(r, "Cannot lock the store: %m");
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        u->fd = sv[0];
        u->wfd = sv[1];
        k = pthread_create(&u->thread, NULL, ingest_thread, u);
        if (k != 0)
                return -k;
        u->has_thread = true;
        *ret = TAKE_PTR(u);
        return 0;
}

int nix_upload_write(struct nix_upload *u, const void *buf, size_t len) {
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t k = send(u->wfd, p, len, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno(); /* EPIPE: the ingest stopped (its error says why) */
                p += k;
                len -= (size_t) k;
        }
        return 0;
}

int nix_upload_finish(struct nix_upload *u, const char **ret_why) {
        _cleanup_(nix_upload_freep) _unused_ struct nix_upload *owned = u; /* freed on every return */
        struct nix_pending *p;

        *ret_why = NULL;
        close(TAKE_FD(u->wfd));
        pthread_join(u->thread, NULL);
        u->has_thread = false;
        if (u->r < 0) {
                *ret_why = u->why;
                if (u->why)
                        return log_warning_errno(u->r, "Upload %s refused: %s", u->name, u->why);
                return log_warning_errno(u->r, "Upload %s failed: %m", u->name);
        }
        p = calloc(1, sizeof(*p));
        if (!p) {
                free(u->res.mem);
                return -ENOMEM;
        }
        p->name = TAKE_PTR(u->name);
        p->when = time(NULL);
        memcpy(p->file_sha256, u->file_sha256, NIX_SHA256_LEN);
        p->file_size = u->file_size;
        p->res = u->res;
        p->lock = TAKE_PTR(u->lock);
        log_debug("Upload %s: %" PRIu64 " bytes, NAR of %" PRIu64 " bytes, pending", p->name, p->file_size,
                  p->res.nar_size);
        pending_add(u->s, p);
        return 0;
}

/* ---- binding a narinfo ---- */

/* The checks a narinfo must pass against its pending NAR: 0 or -errno
 * with *why. */
static int bind_check(struct nix_serve *s, const struct nix_narinfo *ni, const struct nix_pending *p,
                      const char **why) {
        int r;

        if ((ni->has_file_size && ni->file_size != p->file_size) ||
            (ni->has_file_hash && memcmp(ni->file_sha256, p->file_sha256, NIX_SHA256_LEN) != 0))
                return *why = "FileHash/FileSize differ from the uploaded file", -EBADMSG;
        if (ni->nar_size != p->res.nar_size || memcmp(ni->nar_sha256, p->res.nar_sha256, NIX_SHA256_LEN) != 0)
                return *why = "NarHash/NarSize differ from the uploaded NAR", -EBADMSG;
        for (size_t i = 0; i < ni->n_references; i++) {
                _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *ref = NULL;

                if (nix_store_path_equal(&ni->references[i], &ni->path))
                        continue;
                r = nix_pathinfo_get_path(s->pis, &ni->references[i], &ref);
                if (r == -ENOENT)
                        return *why = "a reference is not registered here (upload references first)", -ENOENT;
                if (r < 0)
                        return *why = "cannot look up a reference", r;
        }
        if (s->cfg.n_upload_keys > 0) {
                r = nix_narinfo_verify(ni, s->cfg.upload_keys, s->cfg.n_upload_keys, NULL);
                if (r < 0)
                        return *why = "cannot check the signatures", r;
                if (r == 0)
                        return *why = "no signature by a trusted upload key", -EPERM;
        }
        return 0;
}

/* Registers the path of ni with p's tree. */
static int bind_register(struct nix_serve *s, const struct nix_narinfo *ni, const struct nix_pending *p,
                         const char **why) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        int r;

        r = nix_narinfo_to_pathinfo(ni, &p->res.root, p->res.nar_size, p->res.nar_sha256, &pi);
        if (r < 0)
                return *why = "cannot build its PathInfo", r;
        r = nix_pathinfo_put(s->pis, pi);
        if (r < 0)
                return *why = "cannot register it", r;
        (void) nix_serve_index_add(s, pi->nar_sha256, pi->path.digest);
        return 0;
}

static int upload_narinfo(struct nix_serve *s, const char *name, size_t name_len, const char *buf, size_t len,
                          const char **why) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        _cleanup_free_ char *url = NULL;
        uint8_t digest[NIX_DIGEST_LEN];
        struct nix_pending *p;
        int r;

        if (name_len != NIX_DIGEST_CHARS || nixbase32_decode(name, name_len, digest, NIX_DIGEST_LEN) != NIX_DIGEST_LEN)
                return *why = "not a store path hash", -EINVAL;
        r = nix_narinfo_parse(buf, len, &ni, why);
        if (r < 0)
                return r;
        if (memcmp(ni->path.digest, digest, NIX_DIGEST_LEN) != 0)
                return *why = "the narinfo names another store path", -EBADMSG;
        url = strndup(ni->url, strcspn(ni->url, "?"));
        if (!url)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        p = pending_take_locked(s, url);
        pthread_mutex_unlock(&s->lock);
        if (!p)
                return *why = "its NAR was never uploaded (or expired)", -ENOENT;
        r = bind_check(s, ni, p, why);
        if (r >= 0)
                r = bind_register(s, ni, p, why);
        if (r < 0) {
                pending_add(s, p); /* the right narinfo may still come */
                return r;
        }
        nix_pending_free(p);
        return 0;
}

int nix_serve_upload_narinfo(struct nix_serve *s, const char *name, size_t name_len, const char *buf, size_t len,
                             const char **ret_why) {
        int r;

        *ret_why = NULL;
        if (!s->cfg.allow_uploads)
                return *ret_why = "uploads are not allowed", -EPERM;
        r = upload_narinfo(s, name, name_len, buf, len, ret_why);
        if (r < 0)
                return log_warning_errno(r, "Narinfo upload for %.*s refused: %s", (int) name_len, name,
                                         *ret_why ? *ret_why : "error");
        log_info("Registered %.*s from an upload", (int) name_len, name);
        return 0;
}
