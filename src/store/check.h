/* The Nix layer of the store checker (castore/check.h): every PathInfo's
 * root node is present, the store paths it references are registered too
 * (Nix's closure rule), and optionally its NAR still renders to the hash
 * and size it records. */
#pragma once

#include <stdbool.h>

#include "castore/check.h"
#include "store/pathinfosvc.h"

enum nix_problem_kind {
        NIX_PROBLEM_PATH_MISSING = CAS_PROBLEM_LAYER_BASE, /* a referenced store path is not registered */
        NIX_PROBLEM_PATH_UNREADABLE,                       /* a referenced store path cannot be read */
        NIX_PROBLEM_NAR_MISMATCH,   /* the NAR renders to another size or SHA-256 than the PathInfo's */
        NIX_PROBLEM_NAR_UNREADABLE, /* the NAR cannot be rendered (error says why) */
};

/* A cas_check_layer: its userdata is a struct nix_check. */
struct nix_check {
        struct nix_pathinfo_service *pathinfos;
        bool nar;             /* also re-render each store path's NAR and compare */
        uint64_t store_paths; /* out: PathInfos checked */
};
int nix_check_layer_run(struct cas_checker *c, void *userdata);

struct nix_check_opts {
        bool repair; /* as cas_check_opts.repair */
        bool nar;    /* as nix_check.nar */
        bool progress; /* as cas_check_opts.progress */
};

struct nix_check_stats {
        struct cas_check_stats cas; /* problems: all of them, the PathInfos' too */
        uint64_t store_paths;
};

/* cas_check_store with the PathInfo layer of pathinfos (which belongs to
 * store).  Problems of a PathInfo's root node are castore kinds with the
 * store path as referrer; the PathInfo's own are NIX_PROBLEM_* with the
 * store path as name.  Returns as cas_check_store. */
int nix_check_store(struct cas_store *store, struct nix_pathinfo_service *pathinfos, const struct nix_check_opts *opts,
                    cas_problem_fn fn, void *userdata, struct nix_check_stats *ret_stats);
