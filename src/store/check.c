/* The Nix layer of the store checker: PathInfo -> root node, PathInfo ->
 * referenced store paths, and (optionally) PathInfo -> NAR hash. */
#include "store/check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/nar.h"

struct pathinfo_ctx {
        struct cas_checker *c;
        struct nix_check *nc;
};

static int check_pathinfo(void *userdata, const struct nix_pathinfo *pi) {
        struct pathinfo_ctx *x = userdata;
        struct cas_store *store = cas_checker_store(x->c);
        char path[NIX_PATH_MAX + 1], referrer[NIX_PATH_MAX + 32];
        int r;

        x->nc->store_paths++;
        nix_store_path_absolute(&pi->path, path);
        snprintf(referrer, sizeof(referrer), "store path %s", path);
        cas_check_node(x->c, &pi->node, referrer);

        /* Nix's closure rule: what a valid path refers to is valid too. */
        for (size_t i = 0; i < pi->n_references; i++) {
                _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *ref = NULL;
                char rpath[NIX_PATH_MAX + 1];
                struct cas_problem p = { .name = rpath, .referrer = referrer };

                if (nix_store_path_equal(&pi->references[i], &pi->path))
                        continue; /* a self-reference */
                nix_store_path_absolute(&pi->references[i], rpath);
                r = nix_pathinfo_get_path(x->nc->pathinfos, &pi->references[i], &ref);
                if (r == -ENOENT) {
                        p.kind = NIX_PROBLEM_PATH_MISSING;
                        cas_check_report(x->c, &p, "missing store path %s (referenced by %s)", rpath, path);
                } else if (r < 0 && r != -EBADMSG) { /* a corrupt record is reported by the walk */
                        p.kind = NIX_PROBLEM_PATH_UNREADABLE;
                        p.error = r;
                        cas_check_report(x->c, &p, "unreadable store path %s (referenced by %s): %s", rpath, path,
                                         strerror(-r));
                }
        }

        if (x->nc->nar) {
                struct cas_problem p = { .name = path };
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t size;

                r = nar_render(store->blobs, store->dirs, &pi->node, 0, NULL, NULL, &size, sha);
                if (r < 0) {
                        p.kind = NIX_PROBLEM_NAR_UNREADABLE;
                        p.error = r;
                        cas_check_report(x->c, &p, "cannot hash the NAR of %s: %s", path, strerror(-r));
                } else if (size != pi->nar_size || memcmp(sha, pi->nar_sha256, NIX_SHA256_LEN) != 0) {
                        p.kind = NIX_PROBLEM_NAR_MISMATCH;
                        cas_check_report(x->c, &p,
                                         "store path %s: its NAR differs in size or hash from the registered one",
                                         path);
                }
        }
        return 0;
}

int nix_check_layer_run(struct cas_checker *c, void *userdata) {
        struct pathinfo_ctx x = { c, userdata };

        if (!x.nc || !x.nc->pathinfos)
                return -EINVAL;
        return cas_check_listed(c, nix_pathinfo_list(x.nc->pathinfos, check_pathinfo, &x), "store path");
}

int nix_check_store(struct cas_store *store, struct nix_pathinfo_service *pathinfos, const struct nix_check_opts *opts,
                    cas_problem_fn fn, void *userdata, struct nix_check_stats *ret_stats) {
        static const struct nix_check_opts defaults = {};
        struct nix_check nc = { .pathinfos = pathinfos };
        struct cas_check_layer layer = { nix_check_layer_run, &nc };
        struct cas_check_opts co = { .layers = &layer, .n_layers = 1 };
        int r;

        if (!pathinfos || !ret_stats)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        nc.nar = opts->nar;
        co.repair = opts->repair;
        co.progress = opts->progress;
        r = cas_check_store(store, &co, fn, userdata, &ret_stats->cas);
        ret_stats->store_paths = nc.store_paths;
        return r;
}
