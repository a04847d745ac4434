/* NAR rendering: walks a castore tree and streams the NAR bytes through a
 * fixed-size buffer to a sink, hashing them as they go (see nar.h). */
#include "nar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"

#define RENDER_BUF_SIZE (512 * 1024)
/* On-disk blobs up to this size are read once into a scratch buffer,
 * verified there and emitted from it: one read, and nothing can change
 * between the check and the output.  Larger ones are verified, then read
 * a second time as they are emitted. */
#define WHOLE_BLOB_MAX (8 * 1024 * 1024)

struct renderer {
        struct cas_blob_service *blobs;
        struct cas_dir_service *dirs;
        nar_write_fn write;
        void *userdata;
        bool hash;
        struct nix_sha256 sha;
        uint64_t size;   /* bytes emitted so far (flushed or buffered) */
        uint8_t *buf;    /* RENDER_BUF_SIZE bytes */
        size_t len;      /* bytes buffered */
        uint8_t *scratch; /* WHOLE_BLOB_MAX bytes, allocated on first use */
};

static int flush(struct renderer *rd) {
        int r;

        if (rd->len == 0)
                return 0;
        if (rd->hash)
                nix_sha256_update(&rd->sha, rd->buf, rd->len);
        if (rd->write) {
                r = rd->write(rd->userdata, rd->buf, rd->len);
                if (r < 0)
                        return r;
        }
        rd->len = 0;
        return 0;
}

/* Hands len bytes to the hash and the sink directly, after what is
 * buffered: no copy through the staging buffer. */
static int emit_direct(struct renderer *rd, const void *data, size_t len) {
        int r;

        r = flush(rd);
        if (r < 0)
                return r;
        if (rd->hash)
                nix_sha256_update(&rd->sha, data, len);
        if (rd->write) {
                r = rd->write(rd->userdata, data, len);
                if (r < 0)
                        return r;
        }
        rd->size += len;
        return 0;
}

static int emit(struct renderer *rd, const void *data, size_t len) {
        const uint8_t *p = data;
        int r;

        if (len >= RENDER_BUF_SIZE)
                return emit_direct(rd, data, len);
        while (len > 0) {
                size_t n = MIN(len, RENDER_BUF_SIZE - rd->len);

                memcpy(rd->buf + rd->len, p, n);
                rd->len += n;
                rd->size += n;
                p += n;
                len -= n;
                if (rd->len == RENDER_BUF_SIZE) {
                        r = flush(rd);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int emit_u64(struct renderer *rd, uint64_t v) {
        uint8_t le[8];

        for (int i = 0; i < 8; i++)
                le[i] = (uint8_t) (v >> (8 * i));
        return emit(rd, le, sizeof(le));
}

static int emit_padding(struct renderer *rd, uint64_t len) {
        static const uint8_t zero[8];

        return emit(rd, zero, (8 - len % 8) % 8);
}

static int emit_bytes(struct renderer *rd, const void *s, size_t len) {
        int r = emit_u64(rd, len);

        if (r >= 0)
                r = emit(rd, s, len);
        if (r >= 0)
                r = emit_padding(rd, len);
        return r;
}

#define emit_str(rd, s) emit_bytes((rd), (s), sizeof(s) - 1)

/* Emits bytes of a blob held in memory: verified first, then copied from
 * the same bytes. */
static int emit_verified(struct renderer *rd, const struct cas_digest *want, const uint8_t *data, size_t len) {
        struct cas_digest d;

        cas_digest_of(data, len, &d);
        if (!cas_digest_equal(&d, want))
                return log_error_errno(-EBADMSG, "Blob %s does not match its digest", CAS_DIGEST_HEX(want));
        return emit(rd, data, len);
}

/* Reads a small on-disk blob whole into the scratch buffer. */
static int read_whole(struct renderer *rd, struct cas_blob_reader *b) {
        size_t got = 0;

        if (!rd->scratch) {
                rd->scratch = malloc(WHOLE_BLOB_MAX);
                if (!rd->scratch)
                        return -ENOMEM;
        }
        while (got < b->size) {
                ssize_t n = cas_blob_pread(b, rd->scratch + got, (size_t) b->size - got, got);

                if (n < 0)
                        return log_error_errno((int) n, "Failed to read blob %s: %m", CAS_DIGEST_HEX(&b->digest));
                if (n == 0)
                        return log_error_errno(-EBADMSG, "Blob %s is shorter than its size %" PRIu64,
                                               CAS_DIGEST_HEX(&b->digest), b->size);
                got += (size_t) n;
        }
        return 0;
}

/* Streams a blob read with pread through the buffer, hashing what is read.
 * The caller has verified it already when output escapes; hashing again
 * catches a file that changed between the two reads. */
static int emit_streamed_blob(struct renderer *rd, struct cas_blob_reader *b) {
        struct cas_hasher h;
        struct cas_digest d;
        uint64_t off = 0;
        int r;

        cas_hasher_init(&h);
        while (off < b->size) {
                size_t want;
                ssize_t n;

                if (rd->len == RENDER_BUF_SIZE) {
                        r = flush(rd);
                        if (r < 0)
                                return r;
                }
                want = (size_t) MIN((uint64_t) (RENDER_BUF_SIZE - rd->len), b->size - off);
                n = cas_blob_pread(b, rd->buf + rd->len, want, off);
                if (n < 0)
                        return log_error_errno((int) n, "Failed to read blob %s: %m", CAS_DIGEST_HEX(&b->digest));
                if (n == 0)
                        return log_error_errno(-EBADMSG, "Blob %s is shorter than its size %" PRIu64,
                                               CAS_DIGEST_HEX(&b->digest), b->size);
                cas_hasher_update(&h, rd->buf + rd->len, (size_t) n);
                rd->len += (size_t) n;
                rd->size += (uint64_t) n;
                off += (uint64_t) n;
        }
        cas_hasher_final(&h, &d);
        if (!cas_digest_equal(&d, &b->digest))
                return log_error_errno(-EBADMSG, "Blob %s changed or does not match its digest",
                                       CAS_DIGEST_HEX(&b->digest));
        return 0;
}

static int render_file(struct renderer *rd, const struct cas_node *n) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *b = NULL;
        int r;

        r = cas_blob_open(rd->blobs, &n->digest, &b);
        if (r == -ENOENT)
                return log_error_errno(r, "Blob %s is missing", CAS_DIGEST_HEX(&n->digest));
        if (r < 0)
                return log_error_errno(r, "Failed to open blob %s: %m", CAS_DIGEST_HEX(&n->digest));
        if (b->size != n->size)
                return log_error_errno(-EBADMSG, "Blob %s has %" PRIu64 " bytes, the file node says %" PRIu64,
                                       CAS_DIGEST_HEX(&n->digest), b->size, n->size);
        if (!b->data && rd->write && b->size > WHOLE_BLOB_MAX) {
                /* verify before any byte of it can escape */
                r = cas_blob_reader_verify(b);
                if (r < 0)
                        return log_error_errno(r, "Blob %s does not verify: %m", CAS_DIGEST_HEX(&n->digest));
        } else if (!b->data && rd->write) {
                r = read_whole(rd, b);
                if (r < 0)
                        return r;
        }

        r = emit_str(rd, "regular");
        if (r >= 0 && n->executable) {
                r = emit_str(rd, "executable");
                if (r >= 0)
                        r = emit_str(rd, "");
        }
        if (r >= 0)
                r = emit_str(rd, "contents");
        if (r >= 0)
                r = emit_u64(rd, n->size);
        if (r < 0)
                return r;
        if (b->data)
                r = emit_verified(rd, &b->digest, b->data, (size_t) b->size);
        else if (rd->write && b->size <= WHOLE_BLOB_MAX)
                r = emit_verified(rd, &b->digest, rd->scratch, (size_t) b->size);
        else
                r = emit_streamed_blob(rd, b);
        if (r < 0)
                return r;
        return emit_padding(rd, n->size);
}

static int render_node(struct renderer *rd, const struct cas_node *n, unsigned depth);

static int render_directory(struct renderer *rd, const struct cas_node *n, unsigned depth) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        if (depth >= NAR_DEPTH_MAX)
                return log_error_errno(-ELOOP, "Directories nested deeper than %d levels", NAR_DEPTH_MAX);
        r = cas_dir_get(rd->dirs, &n->digest, &d);
        if (r == -ENOENT)
                return log_error_errno(r, "Directory %s is missing", CAS_DIGEST_HEX(&n->digest));
        if (r < 0)
                return log_error_errno(r, "Failed to get directory %s: %m", CAS_DIGEST_HEX(&n->digest));
        if (!cas_size_ok(n->size, d->size, 0))
                return log_error_errno(-EBADMSG, "Directory %s has %" PRIu64 " entries, its node claims %" PRIu64,
                                       CAS_DIGEST_HEX(&n->digest), d->size, n->size);

        r = emit_str(rd, "directory");
        for (size_t i = 0; r >= 0 && i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];

                r = emit_str(rd, "entry");
                if (r >= 0)
                        r = emit_str(rd, "(");
                if (r >= 0)
                        r = emit_str(rd, "name");
                if (r >= 0)
                        r = emit_bytes(rd, e->name, e->name_len);
                if (r >= 0)
                        r = emit_str(rd, "node");
                if (r >= 0)
                        r = render_node(rd, e, depth + 1);
                if (r >= 0)
                        r = emit_str(rd, ")");
        }
        return r;
}

static int render_node(struct renderer *rd, const struct cas_node *n, unsigned depth) {
        int r;

        r = emit_str(rd, "(");
        if (r >= 0)
                r = emit_str(rd, "type");
        if (r < 0)
                return r;
        switch (n->kind) {
        case CAS_NODE_FILE:
                r = render_file(rd, n);
                break;
        case CAS_NODE_SYMLINK:
                r = emit_str(rd, "symlink");
                if (r >= 0)
                        r = emit_str(rd, "target");
                if (r >= 0)
                        r = emit_bytes(rd, n->target, n->target_len);
                break;
        case CAS_NODE_DIRECTORY:
                r = render_directory(rd, n, depth);
                break;
        default:
                return log_error_errno(-EINVAL, "Node of unknown kind %d", (int) n->kind);
        }
        if (r < 0)
                return r;
        return emit_str(rd, ")");
}

int nar_render(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
               unsigned flags, nar_write_fn write, void *userdata, uint64_t *ret_size,
               uint8_t ret_sha256[NIX_SHA256_LEN]) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ uint8_t *scratch = NULL;
        struct renderer rd = {
                .blobs = blobs,
                .dirs = dirs,
                .write = write,
                .userdata = userdata,
                .hash = !(flags & NAR_RENDER_NO_SHA256),
        };
        uint8_t sha[NIX_SHA256_LEN];
        int r;

        if (!blobs || !dirs || !root)
                return -EINVAL;
        if (root->kind == CAS_NODE_SYMLINK && cas_target_check(root->target, root->target_len) != CAS_VERR_NONE)
                return log_error_errno(-EBADMSG, "Invalid symlink target in root node");
        buf = malloc(RENDER_BUF_SIZE);
        if (!buf)
                return -ENOMEM;
        rd.buf = buf;
        if (rd.hash) {
                r = nix_sha256_init(&rd.sha);
                if (r < 0)
                        return r;
        }
        r = emit_str(&rd, "nix-archive-1");
        if (r >= 0)
                r = render_node(&rd, root, 0);
        scratch = rd.scratch;
        if (r >= 0)
                r = flush(&rd);
        if (rd.hash) {
                if (r >= 0)
                        r = nix_sha256_final(&rd.sha, sha);
                else
                        nix_sha256_done(&rd.sha);
        }
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = rd.size;
        if (rd.hash && ret_sha256)
                memcpy(ret_sha256, sha, NIX_SHA256_LEN);
        return 0;
}
