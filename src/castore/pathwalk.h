/* Resolving a relative path below a node through the directory service,
 * without following symlinks (like lstat).  Used for ROOT/sub/path
 * arguments and by the Nix layer for STOREPATH/sub/path. */
#pragma once

#include "castore/dirsvc.h"

/* Walks subpath ("a/b/c"; empty components and "." are skipped) from
 * start.  *ret is the node reached (named by the last component, or start
 * itself for an empty path); its strings live in *ret_mem (free()).
 * -ENOENT if a component is missing, -ENOTDIR if a non-directory has to be
 * traversed, -EINVAL for "..", or the directory service's error. */
int cas_walk_path(struct cas_dir_service *dirs, const struct cas_node *start, const char *subpath,
                  struct cas_node *ret, void **ret_mem);
