/* The listing of a NAR that binary caches publish as <hash>.ls:
 *   {"version":1,"root":NODE}
 *   NODE = {"type":"regular","size":N[,"executable":true],"narOffset":OFF}
 *        | {"type":"symlink","target":"..."}
 *        | {"type":"directory","entries":{"name":NODE,...}}
 * narOffset is where the file's contents start in the NAR, computed from
 * the tree alone (the NAR grammar, nar.h, fixes every token's size). */
#pragma once

#include <stddef.h>

#include "castore/dirsvc.h"

/* The listing of root's NAR as malloc'ed JSON text in *ret (length in
 * *ret_len).  -ENOENT a missing directory, -ELOOP deeper than
 * NAR_DEPTH_MAX, -ENOMEM, a directory service error. */
int nar_listing_json(struct cas_dir_service *dirs, const struct cas_node *root, char **ret, size_t *ret_len);
