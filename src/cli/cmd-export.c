/* castore export: materialise a stored tree on disk (directories 0755,
 * files 0644 or 0755, symlinks), verifying every file's content. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"
#include "util/io.h"

#define EXPORT_CHUNK (1024 * 1024)

struct export_ctx {
        struct cas_store *store;
        uint8_t *buf; /* EXPORT_CHUNK bytes */
        uint64_t files, dirs, symlinks;
};

static int copy_blob(struct export_ctx *ctx, const struct cas_node *n, int fd) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
        struct cas_hasher h;
        struct cas_digest d;
        uint64_t off = 0;
        int r;

        r = cas_blob_open(ctx->store->blobs, &n->digest, &rd);
        if (r < 0)
                return r;
        cas_hasher_init(&h);
        for (;;) {
                ssize_t k = cas_blob_pread(rd, ctx->buf, EXPORT_CHUNK, off);
                if (k < 0)
                        return k;
                if (k == 0)
                        break;
                cas_hasher_update(&h, ctx->buf, k);
                r = loop_write(fd, ctx->buf, k);
                if (r < 0)
                        return r;
                off += k;
        }
        cas_hasher_final(&h, &d);
        if (off != n->size || !cas_digest_equal(&d, &n->digest))
                return -EBADMSG;
        return 0;
}

static int export_file(struct export_ctx *ctx, int dfd, const char *name, const char *path, const struct cas_node *n) {
        _cleanup_close_ int fd = -1;
        mode_t mode = n->executable ? 0755 : 0644;
        int r;

        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return log_error_errno(negative_errno(), "%s: %m", path);
        r = copy_blob(ctx, n, fd);
        if (r < 0) {
                (void) unlinkat(dfd, name, 0);
                if (r == -ENOENT)
                        return log_error_errno(r, "%s: blob %s is missing from the store", path, CAS_DIGEST_B3(&n->digest));
                if (r == -EBADMSG)
                        return log_error_errno(r, "%s: blob %s is corrupt", path, CAS_DIGEST_B3(&n->digest));
                return log_error_errno(r, "%s: %m", path);
        }
        if (fchmod(fd, mode) < 0) /* the umask must not change the mode */
                return log_error_errno(negative_errno(), "%s: %m", path);
        ctx->files++;
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
        ctx->dirs++;
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
                ctx->symlinks++;
                return 0;
        }
        return -EINVAL;
}

static int run_export(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_free_ void *mem = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        struct cas_node n;
        int r;

        r = cli_parse_common_only(argc, argv);
        if (r < 0)
                return r;
        optind = r;
        if (argc - optind != 2)
                return cli_usage_error("export", "expected ROOT[/PATH] DEST");
        const char *dest = argv[optind + 1];
        if (faccessat(AT_FDCWD, dest, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return log_error_errno(-EEXIST, "%s: already exists (export creates it)", dest);
        r = cli_store_open(0, &store);
        if (r < 0)
                return r;
        r = cli_resolve(store, argv[optind], &n, &mem);
        if (r < 0)
                return r;
        buf = malloc(EXPORT_CHUNK);
        if (!buf)
                return -ENOMEM;
        struct export_ctx ctx = { .store = store, .buf = buf };
        r = export_node(&ctx, AT_FDCWD, dest, dest, &n);
        if (r < 0)
                return r;
        log_info("exported %llu files, %llu directories, %llu symlinks to %s", (unsigned long long) ctx.files,
                 (unsigned long long) ctx.dirs, (unsigned long long) ctx.symlinks, dest);
        return 0;
}

const struct cli_command cli_cmd_export = {
        .name = "export",
        .run = run_export,
        .usage = "ROOT[/PATH] DEST",
        .help = "write a stored tree to DEST on disk (content verified)",
};
