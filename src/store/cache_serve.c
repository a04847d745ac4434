/* Serving a binary cache from castore (cache_serve.h): nix-cache-info,
 * narinfos made from PathInfos and signed on the fly, and NARs found by
 * their hash through an in-memory index. */
#include "store/cache_serve_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/nixbase32.h"
#include "util/log.h"

struct nar_index_entry {
        uint8_t nar_sha256[NIX_SHA256_LEN];
        uint8_t digest[NIX_DIGEST_LEN];
};

static bool index_eq(const void *entry, const void *key) {
        return memcmp(((const struct nar_index_entry *) entry)->nar_sha256, key, NIX_SHA256_LEN) == 0;
}

static uint64_t index_hash(const uint8_t nar_sha256[NIX_SHA256_LEN]) {
        uint64_t h;

        memcpy(&h, nar_sha256, sizeof(h));
        return h;
}

/* Adds or updates an entry of m. */
static int index_put(struct hashmap *m, const uint8_t nar_sha256[NIX_SHA256_LEN], const uint8_t digest[NIX_DIGEST_LEN]) {
        struct nar_index_entry *e = hashmap_get(m, index_hash(nar_sha256), nar_sha256);
        int r;

        if (e) {
                memcpy(e->digest, digest, NIX_DIGEST_LEN);
                return 0;
        }
        e = malloc(sizeof(*e));
        if (!e)
                return -ENOMEM;
        memcpy(e->nar_sha256, nar_sha256, NIX_SHA256_LEN);
        memcpy(e->digest, digest, NIX_DIGEST_LEN);
        r = hashmap_put(m, index_hash(nar_sha256), e);
        if (r < 0)
                free(e);
        return r;
}

int nix_serve_index_add(struct nix_serve *s, const uint8_t nar_sha256[NIX_SHA256_LEN],
                        const uint8_t digest[NIX_DIGEST_LEN]) {
        int r;

        pthread_mutex_lock(&s->lock);
        r = index_put(&s->index, nar_sha256, digest);
        pthread_mutex_unlock(&s->lock);
        return r;
}

static int index_fill(void *userdata, const struct nix_pathinfo *pi) {
        return index_put(userdata, pi->nar_sha256, pi->path.digest);
}

/* Rebuilds the index from a listing of every PathInfo (outside the lock),
 * then swaps it in. */
static int index_rebuild(struct nix_serve *s) {
        struct hashmap m, old;
        int r;

        hashmap_init(&m, index_eq);
        r = nix_pathinfo_list(s->pis, index_fill, &m);
        if (r < 0) {
                hashmap_done_free(&m);
                return log_error_errno(r, "Cannot list the PathInfos to index NAR hashes: %m");
        }
        pthread_mutex_lock(&s->lock);
        old = s->index;
        s->index = m;
        pthread_mutex_unlock(&s->lock);
        hashmap_done_free(&old);
        return 0;
}

/* The digest of the path with this NAR hash: 0, or -ENOENT. */
static int index_find(struct nix_serve *s, const uint8_t nar_sha256[NIX_SHA256_LEN], uint8_t ret[NIX_DIGEST_LEN]) {
        const struct nar_index_entry *e;
        int r = -ENOENT;

        pthread_mutex_lock(&s->lock);
        e = hashmap_get(&s->index, index_hash(nar_sha256), nar_sha256);
        if (e) {
                memcpy(ret, e->digest, NIX_DIGEST_LEN);
                r = 0;
        }
        pthread_mutex_unlock(&s->lock);
        return r;
}

int nix_serve_new(struct cas_store *store, struct nix_pathinfo_service *pis, const struct nix_serve_config *cfg,
                  struct nix_serve **ret) {
        struct nix_serve *s;

        if (!store || !pis || !cfg || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->store = store;
        s->pis = pis;
        s->cfg = *cfg;
        pthread_mutex_init(&s->lock, NULL);
        hashmap_init(&s->index, index_eq);
        *ret = s;
        return 0;
}

void nix_serve_free(struct nix_serve *s) {
        if (!s)
                return;
        nix_serve_pending_clear(s);
        hashmap_done_free(&s->index);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int nix_serve_cache_info(struct nix_serve *s, char **ret, size_t *ret_len) {
        int n = asprintf(ret, "StoreDir: " NIX_STORE_DIR "\nWantMassQuery: 1\nPriority: %u\n", s->cfg.priority);

        if (n < 0)
                return -ENOMEM;
        *ret_len = (size_t) n;
        return 0;
}

/* Exactly n nixbase32 characters decoding to a digest of size bytes. */
static int parse_hash32(const char *name, size_t len, uint8_t *ret, size_t size) {
        if (len != nixbase32_encoded_len(size))
                return -EINVAL;
        return nixbase32_decode(name, len, ret, size) == (ssize_t) size ? 0 : -EINVAL;
}

/* The narinfo text of pi as served: our URL, uncompressed, signed. */
static int render_narinfo(struct nix_serve *s, const struct nix_pathinfo *pi, char **ret, size_t *ret_len) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        char url[sizeof("nar/.nar") + 52 + 1];
        int r;

        strcpy(url, "nar/");
        nixbase32_encode(pi->nar_sha256, NIX_SHA256_LEN, url + 4);
        strcat(url, ".nar");
        r = nix_narinfo_from_pathinfo(pi, url, "none", &ni);
        if (r < 0)
                return r;
        ni->has_file_hash = ni->has_file_size = true;
        memcpy(ni->file_sha256, pi->nar_sha256, NIX_SHA256_LEN);
        ni->file_size = pi->nar_size;
        for (size_t i = 0; i < s->cfg.n_sign_keys; i++) {
                r = nix_narinfo_sign(ni, &s->cfg.sign_keys[i]);
                if (r < 0)
                        return log_error_errno(r, "Cannot sign the narinfo of %s: %m", pi->path.name);
        }
        return nix_narinfo_format(ni, ret, ret_len);
}

int nix_serve_narinfo(struct nix_serve *s, const char *name, size_t len, char **ret, size_t *ret_len) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        uint8_t digest[NIX_DIGEST_LEN];
        int r;

        r = parse_hash32(name, len, digest, NIX_DIGEST_LEN);
        if (r < 0)
                return r;
        r = nix_pathinfo_get(s->pis, digest, &pi);
        if (r < 0)
                return r;
        /* a client that read this narinfo asks for its NAR next */
        r = nix_serve_index_add(s, pi->nar_sha256, digest);
        if (r < 0)
                return r;
        return render_narinfo(s, pi, ret, ret_len);
}

/* The PathInfo with this NAR hash, from the index as it is (0, -ENOENT). */
static int lookup_indexed(struct nix_serve *s, const uint8_t nar_sha256[NIX_SHA256_LEN], struct nix_pathinfo **ret) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        uint8_t digest[NIX_DIGEST_LEN];
        int r;

        r = index_find(s, nar_sha256, digest);
        if (r < 0)
                return r;
        r = nix_pathinfo_get(s->pis, digest, &pi);
        if (r < 0)
                return r;
        /* replaced since it was indexed */
        if (memcmp(pi->nar_sha256, nar_sha256, NIX_SHA256_LEN) != 0)
                return -ENOENT;
        *ret = TAKE_PTR(pi);
        return 0;
}

int nix_serve_nar_lookup(struct nix_serve *s, const char *name, struct nix_pathinfo **ret) {
        uint8_t sha[NIX_SHA256_LEN];
        size_t len = strlen(name);
        int r;

        if (len <= 4 || strcmp(name + len - 4, ".nar") != 0)
                return -EINVAL;
        r = parse_hash32(name, len - 4, sha, NIX_SHA256_LEN);
        if (r < 0)
                return r;
        r = lookup_indexed(s, sha, ret);
        if (r != -ENOENT)
                return r;
        r = index_rebuild(s);
        if (r < 0)
                return r;
        return lookup_indexed(s, sha, ret);
}

int nix_serve_nar_open(struct nix_serve *s, const struct nix_pathinfo *pi, uint64_t offset, uint64_t length,
                       struct nar_stream **ret) {
        return nar_stream_open(s->store->blobs, s->store->dirs, &pi->node, offset, length, ret);
}
