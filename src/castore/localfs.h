/* Reading local trees the way castore ingests them: regular files opened
 * without following symlinks, symlink targets checked against the node
 * rules, directory names listed, special files named.  Shared by the
 * importer and by the Nix layer's hashing of local trees. */
#pragma once

#include <stddef.h>
#include <sys/stat.h>

/* Opens dfd/name for reading (O_NOATIME when allowed, never following a
 * symlink) and fstat()s it.  The fd, -EAGAIN if it is no longer a regular
 * file, or -errno. */
int cas_local_open_file(int dfd, const char *name, struct stat *ret_st);

/* Reads a symlink target: *ret is malloc'ed and NUL-terminated.
 * -ENAMETOOLONG for an empty target or one over CAS_TARGET_MAX bytes. */
int cas_local_readlink(int dfd, const char *name, char **ret, size_t *ret_len);

/* Lists the names in directory dfd except "." and "..", in no particular
 * order: *ret is an array of *ret_n malloc'ed strings
 * (cas_local_names_free).  dfd itself is not consumed or moved. */
int cas_local_list(int dfd, char ***ret, size_t *ret_n);
void cas_local_names_free(char **names, size_t n);

/* "fifo", "socket", "character device", ... for messages. */
const char *cas_local_kind(mode_t mode);
