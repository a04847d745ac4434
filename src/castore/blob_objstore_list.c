/* Listing and removal in the object-store blob service: the blobs are the
 * indexes and the chunks no index names, found by a full scan (one GET per
 * index). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blob_objstore_int.h"
#include "util/log.h"

/* The digest a key of kind/b3/<4 hex>/<64 hex> names, or -EINVAL (a
 * foreign object, skipped). */
static int key_digest(const char *key, struct cas_digest *ret) {
        const char *name = strrchr(key, '/');
        char want[KEY_MAX];

        if (!name || strlen(name + 1) != CAS_DIGEST_HEX_LEN || cas_digest_parse(name + 1, ret) < 0)
                return -EINVAL;
        objstore_key(want, "x", ret);
        return strcmp(strchr(want, '/'), strchr(strchr(key, '/'), '/')) == 0 ? 0 : -EINVAL;
}

struct digest_set {
        struct cas_digest *v;
        size_t n, cap;
};

static int set_add(struct digest_set *set, const struct cas_digest *d) {
        if (set->n == set->cap) {
                size_t cap = set->cap ? 2 * set->cap : 256;
                struct cas_digest *v = reallocarray(set->v, cap, sizeof(*v));

                if (!v)
                        return -ENOMEM;
                set->v = v;
                set->cap = cap;
        }
        set->v[set->n++] = *d;
        return 0;
}

static int digest_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN);
}

static bool set_has(const struct digest_set *set, const struct cas_digest *d) {
        return set->n > 0 && bsearch(d, set->v, set->n, sizeof(*d), digest_cmp);
}

struct scan {
        struct blob_objstore *s;
        struct digest_set blobs, used; /* indexed blobs, chunks their indexes name */
};

static int scan_index(void *userdata, const char *key) {
        struct scan *sc = userdata;
        _cleanup_free_ struct chunk_ref *v = NULL;
        struct cas_digest d;
        uint64_t size;
        size_t n;
        int r;

        if (key_digest(key, &d) < 0)
                return 0;
        r = objstore_index_get(sc->s, &d, &v, &n, &size);
        if (r == -ENOENT || r == -EBADMSG)
                return 0; /* removed meanwhile, or damaged: names nothing */
        if (r < 0)
                return r;
        r = set_add(&sc->blobs, &d);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = set_add(&sc->used, &v[i].digest);
        return r;
}

/* Reads every index: which blobs have one, which chunks they name. */
static int scan_indexes(struct blob_objstore *s, struct scan *ret) {
        *ret = (struct scan){ .s = s };
        int r = cas_objstore_list(s->objs, "blobs/b3/", scan_index, ret);

        if (r < 0) {
                free(ret->blobs.v);
                free(ret->used.v);
                return r;
        }
        if (ret->used.n > 0)
                qsort(ret->used.v, ret->used.n, sizeof(struct cas_digest), digest_cmp);
        if (ret->blobs.n > 0)
                qsort(ret->blobs.v, ret->blobs.n, sizeof(struct cas_digest), digest_cmp);
        return 0;
}

struct list_ctx {
        struct scan scan;
        struct digest_set single; /* chunks no index names: single-chunk blobs */
};

static int list_chunk(void *userdata, const char *key) {
        struct list_ctx *c = userdata;
        struct cas_digest d;

        if (key_digest(key, &d) < 0 || set_has(&c->scan.used, &d) || set_has(&c->scan.blobs, &d))
                return 0; /* a piece of a blob, or a blob listed by its index */
        return set_add(&c->single, &d);
}

/* The blobs are the indexes and the chunks no index names (a chunk that is
 * both a whole blob and a piece of another is listed as neither: nothing
 * lists it for removal).  A full scan: one GET per index. */
int objstore_list(struct cas_blob_service *bs, cas_blob_list_cb cb, void *userdata) {
        struct blob_objstore *s = to_objstore(bs);
        struct list_ctx c = {};
        int r;

        r = scan_indexes(s, &c.scan);
        if (r < 0)
                return r;
        r = cas_objstore_list(s->objs, "chunks/b3/", list_chunk, &c);
        for (size_t i = 0; r >= 0 && i < c.scan.blobs.n; i++)
                r = cb(userdata, &c.scan.blobs.v[i]);
        for (size_t i = 0; r >= 0 && i < c.single.n; i++)
                r = cb(userdata, &c.single.v[i]);
        free(c.scan.blobs.v);
        free(c.scan.used.v);
        free(c.single.v);
        return r;
}

/* Removes chunk d unless an index names it (then it stays, as a piece of
 * that blob).  A full scan of the indexes. */
static int remove_chunk_unless_used(struct blob_objstore *s, const struct cas_digest *d, const char *key) {
        struct scan sc;
        int r = scan_indexes(s, &sc);

        if (r < 0)
                return r;
        bool used = set_has(&sc.used, d);
        free(sc.blobs.v);
        free(sc.used.v);
        if (used) {
                log_debug("blob %s: its chunk is kept, a piece of another blob", CAS_DIGEST_B3(d));
                return 0;
        }
        r = cas_objstore_remove(s->objs, key);
        return r == -ENOENT ? 0 : r;
}

/* A blob loses its index and outboard, and its chunk if it is a
 * single-chunk blob (see remove_chunk_unless_used).  The chunks of a
 * larger blob stay until they are listed (named by no index) and removed
 * in turn. */
int objstore_remove(struct cas_blob_service *bs, const struct cas_digest *d) {
        struct blob_objstore *s = to_objstore(bs);
        char key[KEY_MAX];
        int r, found = 0;

        objstore_key(key, "blobs", d);
        r = cas_objstore_remove(s->objs, key);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r >= 0) {
                found = 1;
                objstore_key(key, "outboards", d);
                r = cas_objstore_remove(s->objs, key);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        objstore_key(key, "chunks", d);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r == -ENOENT)
                return found ? 0 : -ENOENT;
        if (r < 0)
                return r;
        return remove_chunk_unless_used(s, d, key);
}
