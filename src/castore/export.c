/* Export of a stored tree to local disk, depth first on the calling
 * thread.  A file is written under a temporary name beside its final one
 * and renamed into place only after its content verified. */
#include "castore/export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/vblob.h"
#include "util/io.h"
#include "util/log.h"
#include "util/progress.h"

#define TMP_TRIES 16 /* temporary names tried before giving up (the tree may hold the first ones) */

struct export_ctx {
        struct cas_store *store;
        struct cas_export_stats stats;
        struct progress progress;
};

static void show_progress(struct export_ctx *ctx, bool final) {
        (final ? progress_done : progress_show)(&ctx->progress, "exporting: %llu files, %llu directories, %.1f MiB",
                                                (unsigned long long) ctx->stats.files,
                                                (unsigned long long) ctx->stats.directories,
                                                ctx->stats.bytes / 1048576.0);
}

static int write_fd(void *userdata, const void *buf, size_t len) {
        return loop_write(*(const int *) userdata, buf, len);
}

/* Copies the content of file node n from blobs into fd, verified: 0 once
 * the bytes written are exactly n->size bytes that hash to n->digest;
 * -EBADMSG if they are not (fd then holds garbage), -ENOENT for a missing
 * blob, or a read or write error.  Only verified bytes reach fd. */
static int copy_verified_blob(struct cas_blob_service *blobs, const struct cas_node *n, int fd) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        int r;

        r = cas_vblob_open(blobs, &n->digest, n->size, &v);
        if (r < 0)
                return r;
        return cas_vblob_copy(v, 0, n->size, write_fd, &fd);
}

/* Creates a new temporary file in dfd: its fd, with its name in ret_name. */
static int open_temporary(int dfd, char ret_name[static 64]) {
        static atomic_uint counter;

        for (int i = 0; i < TMP_TRIES; i++) {
                int fd;

                snprintf(ret_name, 64, ".castore-export.%d.%u", (int) getpid(), atomic_fetch_add(&counter, 1));
                fd = openat(dfd, ret_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd >= 0 || errno != EEXIST)
                        return fd >= 0 ? fd : negative_errno();
        }
        return -EEXIST;
}

/* Renames from to to in dfd unless to exists (-EEXIST). */
static int rename_noreplace(int dfd, const char *from, const char *to) {
        if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return negative_errno();
        /* a file system without RENAME_NOREPLACE: a hard link refuses an
         * existing name as well */
        if (linkat(dfd, from, dfd, to, 0) < 0)
                return negative_errno();
        (void) unlinkat(dfd, from, 0);
        return 0;
}

static int export_file(struct export_ctx *ctx, int dfd, const char *name, const char *path, const struct cas_node *n) {
        _cleanup_close_ int fd = -1;
        mode_t mode = n->executable ? 0755 : 0644;
        char tmp[64];
        int r;

        fd = open_temporary(dfd, tmp);
        if (fd < 0)
                return log_error_errno(fd, "%s: cannot create a temporary file beside it: %m", path);
        r = copy_verified_blob(ctx->store->blobs, n, fd);
        if (r >= 0 && fchmod(fd, mode) < 0) /* the umask must not change the mode */
                r = negative_errno();
        if (r >= 0)
                r = rename_noreplace(dfd, tmp, name);
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                if (r == -ENOENT)
                        return log_error_errno(r, "%s: blob %s is missing from the store", path,
                                               CAS_DIGEST_B3(&n->digest));
                if (r == -EBADMSG)
                        return log_error_errno(r, "%s: blob %s is corrupt", path, CAS_DIGEST_B3(&n->digest));
                return log_error_errno(r, "%s: %m", path);
        }
        ctx->stats.files++;
        ctx->stats.bytes += n->size;
        show_progress(ctx, false);
        return 0;
}

static int export_node(struct export_ctx *ctx, int dfd, const char *name, const char *path, const struct cas_node *n);

static int export_dir(struct export_ctx *ctx, int dfd, const char *name, const char *path, const struct cas_node *n) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        r = cas_dir_get(ctx->store->dirs, &n->digest, &d);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read directory %s: %m", path, CAS_DIGEST_B3(&n->digest));
        if (mkdirat(dfd, name, 0755) < 0)
                return log_error_errno(negative_errno(), "%s: %m", path);
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "%s: %m", path);
        if (fchmod(fd, 0755) < 0)
                return log_error_errno(negative_errno(), "%s: %m", path);
        ctx->stats.directories++;
        for (size_t i = 0; i < d->n_entries; i++) {
                _cleanup_free_ char *sub = NULL;
                const struct cas_node *e = &d->entries[i];

                if (asprintf(&sub, "%s/%s", path, e->name) < 0)
                        return -ENOMEM;
                r = export_node(ctx, fd, e->name, sub, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int export_node(struct export_ctx *ctx, int dfd, const char *name, const char *path, const struct cas_node *n) {
        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
                return export_dir(ctx, dfd, name, path, n);
        case CAS_NODE_FILE:
                return export_file(ctx, dfd, name, path, n);
        case CAS_NODE_SYMLINK:
                if (symlinkat(n->target, dfd, name) < 0)
                        return log_error_errno(negative_errno(), "%s: %m", path);
                ctx->stats.symlinks++;
                return 0;
        }
        return -EINVAL;
}

int cas_export_tree(struct cas_store *store, const struct cas_node *root, const char *dest, unsigned flags,
                    struct cas_export_stats *ret_stats) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_close_ int dfd = -1;
        const char *dir, *base;
        char *slash;
        int r = 0;

        if (!store || !root || !dest || !*dest)
                return -EINVAL;
        /* dest = dir + "/" + base; trailing slashes do not count */
        copy = strdup(dest);
        if (!copy)
                return -ENOMEM;
        for (size_t len = strlen(copy); len > 1 && copy[len - 1] == '/'; len--)
                copy[len - 1] = 0;
        slash = strrchr(copy, '/');
        if (slash) {
                *slash = 0;
                dir = *copy ? copy : "/";
                base = slash + 1;
        } else {
                dir = ".";
                base = copy;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return log_error_errno(negative_errno(), "%s: cannot open its parent directory: %m", dest);
        if (*base == 0 || faccessat(dfd, base, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return log_error_errno(-EEXIST, "%s: already exists (export creates it)", dest);

        struct export_ctx ctx = { .store = store };
        progress_init(&ctx.progress, flags & CAS_EXPORT_PROGRESS);
        r = export_node(&ctx, dfd, base, dest, root);
        show_progress(&ctx, true);
        if (ret_stats)
                *ret_stats = ctx.stats;
        return r;
}
