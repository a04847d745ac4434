/* NAR rendering: walks a castore tree in NAR order and hands each node to
 * the NAR writer; file contents come verified through nar_contents.h. */
#include "store/nar.h"

#include <errno.h>
#include <inttypes.h>

#include "util/log.h"
#include "store/nar_contents.h"

struct renderer {
        struct cas_dir_service *dirs;
        struct nar_writer w;
        struct nar_contents *contents;
};

static int render_node(struct renderer *rd, const struct cas_node *n, unsigned depth);

static int render_file(struct renderer *rd, const struct cas_node *n) {
        int r;

        r = nar_write_file_begin(&rd->w, n->executable, n->size);
        if (r >= 0)
                r = nar_contents_write(rd->contents, n, &rd->w);
        if (r >= 0)
                r = nar_write_file_end(&rd->w);
        return r;
}

static int render_directory(struct renderer *rd, const struct cas_node *n, unsigned depth) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        if (depth >= NAR_DEPTH_MAX)
                return log_error_errno(-ELOOP, "Directories nested deeper than %d levels", NAR_DEPTH_MAX);
        r = cas_dir_get(rd->dirs, &n->digest, &d);
        if (r == -ENOENT)
                return log_error_errno(r, "Directory %s is missing", CAS_DIGEST_B3(&n->digest));
        if (r < 0)
                return log_error_errno(r, "Failed to get directory %s: %m", CAS_DIGEST_B3(&n->digest));
        if (!cas_size_ok(n->size, d->size, 0))
                return log_error_errno(-EBADMSG, "Directory %s has %" PRIu64 " entries, its node claims %" PRIu64,
                                       CAS_DIGEST_B3(&n->digest), d->size, n->size);

        /* cas_directory entries are in NAR order: bytewise by name across kinds */
        r = nar_write_directory_begin(&rd->w);
        for (size_t i = 0; r >= 0 && i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];

                r = nar_write_entry_begin(&rd->w, e->name, e->name_len);
                if (r >= 0)
                        r = render_node(rd, e, depth + 1);
                if (r >= 0)
                        r = nar_write_entry_end(&rd->w);
        }
        if (r >= 0)
                r = nar_write_directory_end(&rd->w);
        return r;
}

static int render_node(struct renderer *rd, const struct cas_node *n, unsigned depth) {
        switch (n->kind) {
        case CAS_NODE_FILE:
                return render_file(rd, n);
        case CAS_NODE_SYMLINK:
                return nar_write_symlink(&rd->w, n->target, n->target_len);
        case CAS_NODE_DIRECTORY:
                return render_directory(rd, n, depth);
        default:
                return log_error_errno(-EINVAL, "Node of unknown kind %d", (int) n->kind);
        }
}

int nar_render(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
               unsigned flags, nar_write_fn write, void *userdata, uint64_t *ret_size,
               uint8_t ret_sha256[NIX_SHA256_LEN]) {
        struct renderer rd = { .dirs = dirs };
        bool hash = !(flags & NAR_RENDER_NO_SHA256);
        int r;

        if (!blobs || !dirs || !root)
                return -EINVAL;
        if (root->kind == CAS_NODE_SYMLINK && cas_target_check(root->target, root->target_len) != CAS_VERR_NONE)
                return log_error_errno(-EBADMSG, "Invalid symlink target in root node");
        r = nar_writer_init(&rd.w, write, userdata, hash);
        if (r < 0)
                return r;
        r = nar_contents_new(blobs, dirs, root, flags & NAR_RENDER_SERIAL, &rd.contents);
        if (r < 0) {
                nar_writer_free(&rd.w);
                return r;
        }
        r = nar_write_magic(&rd.w);
        if (r >= 0)
                r = render_node(&rd, root, 0);
        nar_contents_free(rd.contents);
        if (r < 0) {
                nar_writer_free(&rd.w);
                return r;
        }
        return nar_writer_finish(&rd.w, ret_size, hash ? ret_sha256 : NULL);
}
