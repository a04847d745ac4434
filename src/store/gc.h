/* The Nix layer of the garbage collector (castore/gc.h): every registered
 * PathInfo's root node is a root.  A PathInfo's references keep the store
 * paths they name alive only as far as those are registered PathInfos,
 * which are roots themselves. */
#pragma once

#include "castore/gc.h"
#include "store/pathinfosvc.h"

/* A cas_gc_layer: its userdata is the PathInfo service. */
int nix_gc_layer_mark(struct cas_gc *g, void *userdata);

/* cas_gc_store with the PathInfos of pathinfos (which belongs to store)
 * as roots too.  Returns as cas_gc_store; a PathInfo listing that skipped
 * corrupt records refuses the collection (-EBADMSG). */
int nix_gc_store(struct cas_store *store, struct nix_pathinfo_service *pathinfos, const struct cas_gc_opts *opts,
                 struct cas_gc_stats *ret_stats);
