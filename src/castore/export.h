/* Export: materialises a stored tree on local disk (directories 0755,
 * files 0644 or 0755, symlinks), the reverse of the importer.  No file
 * ever appears under its final name before its whole content verified. */
#pragma once

#include <stdint.h>

#include "castore/store.h"

struct cas_export_stats {
        uint64_t files, directories, symlinks;
        uint64_t bytes; /* file content bytes written */
};

/* Writes the tree of root (a directory, file or symlink node; its name is
 * ignored) to the new path dest, which must not exist (-EEXIST) and whose
 * parent must.  Every file is written under a temporary name in its
 * directory, its content hashed as written, and renamed to its name only
 * once the bytes match the node's digest and size (never replacing an
 * existing file); a mismatch is -EBADMSG and the temporary is removed.
 * Modes are set explicitly, whatever the umask.  Nothing is fsync'ed.
 *
 * On failure (logged, naming the path) the export stops: the directories,
 * symlinks and verified files made so far stay, and no file holds
 * unverified content.  Errors: -EEXIST, -ENOENT (missing blob or
 * directory), -EBADMSG (corrupt blob or directory), file system errors.
 * ret_stats (optional) counts what was written, also on failure. */
enum {
        CAS_EXPORT_PROGRESS = 1 << 0, /* a progress line on stderr (util/progress.h) */
};
int cas_export_tree(struct cas_store *store, const struct cas_node *root, const char *dest, unsigned flags,
                    struct cas_export_stats *ret_stats);
