/* A write-back PathInfo cache: near (the local store's database) in front
 * of far (a remote daemon).  A PathInfo near lacks is fetched from far
 * (validated by its decoder) and written near; puts and removals go to
 * far, then near; the listing is far's, the complete one. */
#include <errno.h>
#include <stdlib.h>

#include "store/pathinfosvc.h"

struct cache_pathinfos {
        struct nix_pathinfo_service base;
        struct nix_pathinfo_service *near; /* owned */
        struct nix_pathinfo_service *far;  /* owned */
};

static struct cache_pathinfos *to_cache(struct nix_pathinfo_service *s) {
        return (struct cache_pathinfos *) s;
}

static int cache_get(struct nix_pathinfo_service *ps, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        struct cache_pathinfos *s = to_cache(ps);
        int r = nix_pathinfo_get(s->near, digest, ret);
        if (r != -ENOENT)
                return r;
        r = nix_pathinfo_get(s->far, digest, ret);
        if (r < 0)
                return r;
        (void) nix_pathinfo_put(s->near, *ret); /* a cache that cannot keep it still answers */
        return 0;
}

static int cache_put(struct nix_pathinfo_service *ps, const struct nix_pathinfo *pi) {
        struct cache_pathinfos *s = to_cache(ps);
        int r = nix_pathinfo_put(s->far, pi);
        return r < 0 ? r : nix_pathinfo_put(s->near, pi);
}

/* From far first (the authority; a far that cannot remove refuses the
 * whole removal), then near, which may never have held it. */
static int cache_remove(struct nix_pathinfo_service *ps, const uint8_t digest[NIX_DIGEST_LEN]) {
        struct cache_pathinfos *s = to_cache(ps);
        int r = nix_pathinfo_remove(s->far, digest);
        if (r < 0)
                return r;
        r = nix_pathinfo_remove(s->near, digest);
        return r == -ENOENT ? 0 : r;
}

static int cache_list(struct nix_pathinfo_service *ps, nix_pathinfo_list_cb cb, void *userdata) {
        return nix_pathinfo_list(to_cache(ps)->far, cb, userdata);
}

static void cache_free(struct nix_pathinfo_service *ps) {
        struct cache_pathinfos *s = to_cache(ps);
        nix_pathinfo_service_free(s->near);
        nix_pathinfo_service_free(s->far);
        free(s);
}

static const struct nix_pathinfo_ops cache_ops = {
        .name = "cache",
        .get = cache_get,
        .put = cache_put,
        .remove = cache_remove,
        .list = cache_list,
        .free = cache_free,
};

int nix_pathinfo_cache_new(struct nix_pathinfo_service *near, struct nix_pathinfo_service *far,
                           struct nix_pathinfo_service **ret) {
        struct cache_pathinfos *s = calloc(1, sizeof(*s));
        if (!s) {
                nix_pathinfo_service_free(near);
                nix_pathinfo_service_free(far);
                return -ENOMEM;
        }
        s->base.ops = &cache_ops;
        s->near = near;
        s->far = far;
        *ret = &s->base;
        return 0;
}
