/* The Nix layer of the garbage collector: the PathInfos' root nodes. */
#include "store/gc.h"

#include <errno.h>
#include <stdio.h>

#include "util/log.h"

struct mark_ctx {
        struct cas_gc *g;
        bool failed; /* a mark failed (and said why) */
};

static int mark_pathinfo(void *userdata, const struct nix_pathinfo *pi) {
        struct mark_ctx *x = userdata;
        char path[NIX_PATH_MAX + 1], referrer[NIX_PATH_MAX + 32];
        int r;

        nix_store_path_absolute(&pi->path, path);
        snprintf(referrer, sizeof(referrer), "store path %s", path);
        r = cas_gc_mark_node(x->g, &pi->node, referrer);
        x->failed = r < 0;
        return r;
}

int nix_gc_layer_mark(struct cas_gc *g, void *userdata) {
        struct mark_ctx x = { g, false };
        int r;

        if (!g || !userdata)
                return -EINVAL;
        /* a corrupt record may be a tree's only root: then nothing is swept */
        r = nix_pathinfo_list(userdata, mark_pathinfo, &x);
        if (r < 0 && !x.failed)
                return log_error_errno(r, "Cannot list the store paths, refusing to collect garbage "
                                          "(castore verify tells more): %m");
        return r < 0 ? r : 0;
}

int nix_gc_store(struct cas_store *store, struct nix_pathinfo_service *pathinfos, const struct cas_gc_opts *opts,
                 struct cas_gc_stats *ret_stats) {
        static const struct cas_gc_opts defaults = {};
        struct cas_gc_layer layers[8];
        struct cas_gc_opts o;

        if (!store || !pathinfos || !ret_stats)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (opts->n_layers >= sizeof(layers) / sizeof(layers[0]) || (opts->n_layers > 0 && !opts->layers))
                return -EINVAL;
        o = *opts;
        layers[0] = (struct cas_gc_layer){ nix_gc_layer_mark, pathinfos };
        for (size_t i = 0; i < opts->n_layers; i++)
                layers[i + 1] = opts->layers[i];
        o.layers = layers;
        o.n_layers = opts->n_layers + 1;
        return cas_gc_store(store, &o, ret_stats);
}
