/* The NAR encoder: tokens of the NAR grammar staged in one buffer and
 * flushed to the sink and the SHA-256 (see nar_writer.h). */
#include "store/nar_writer.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

int nar_writer_init(struct nar_writer *w, nar_write_fn write, void *userdata, bool hash) {
        int r;

        *w = (struct nar_writer){ .write = write, .userdata = userdata, .hash = hash };
        w->buf = malloc(NAR_WRITER_BUF_SIZE);
        if (!w->buf)
                return -ENOMEM;
        if (hash) {
                r = nix_sha256_init(&w->sha);
                if (r < 0) {
                        free(w->buf);
                        w->buf = NULL;
                        return r;
                }
        }
        return 0;
}

void nar_writer_free(struct nar_writer *w) {
        if (w->hash)
                nix_sha256_done(&w->sha);
        free(w->buf);
        w->buf = NULL;
}

/* Hands len bytes to the hash and the sink. */
static int output(struct nar_writer *w, const void *data, size_t len) {
        if (w->hash)
                nix_sha256_update(&w->sha, data, len);
        return w->write ? w->write(w->userdata, data, len) : 0;
}

static int flush(struct nar_writer *w) {
        int r;

        if (w->len == 0)
                return 0;
        r = output(w, w->buf, w->len);
        if (r < 0)
                return r;
        w->len = 0;
        return 0;
}

int nar_writer_finish(struct nar_writer *w, uint64_t *ret_size, uint8_t ret_sha256[NIX_SHA256_LEN]) {
        uint8_t sha[NIX_SHA256_LEN];
        int r;

        r = flush(w);
        if (r >= 0 && w->hash) {
                r = nix_sha256_final(&w->sha, sha);
                if (r >= 0 && ret_sha256)
                        memcpy(ret_sha256, sha, NIX_SHA256_LEN);
        }
        if (r >= 0 && ret_size)
                *ret_size = w->size;
        nar_writer_free(w);
        return r;
}

/* Raw bytes: copied into the buffer, or for a span at least as large as
 * the buffer, flushed past it without a copy. */
static int emit(struct nar_writer *w, const void *data, size_t len) {
        const uint8_t *p = data;
        int r;

        if (len >= NAR_WRITER_BUF_SIZE) {
                r = flush(w);
                if (r >= 0)
                        r = output(w, data, len);
                if (r >= 0)
                        w->size += len;
                return r;
        }
        while (len > 0) {
                size_t n = MIN(len, NAR_WRITER_BUF_SIZE - w->len);

                memcpy(w->buf + w->len, p, n);
                w->len += n;
                w->size += n;
                p += n;
                len -= n;
                if (w->len == NAR_WRITER_BUF_SIZE) {
                        r = flush(w);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int emit_u64(struct nar_writer *w, uint64_t v) {
        uint8_t le[8];

        for (int i = 0; i < 8; i++)
                le[i] = (uint8_t) (v >> (8 * i));
        return emit(w, le, sizeof(le));
}

static int emit_padding(struct nar_writer *w, uint64_t len) {
        static const uint8_t zero[8];

        return emit(w, zero, (8 - len % 8) % 8);
}

/* A string token: length, bytes, padding. */
static int emit_bytes(struct nar_writer *w, const void *s, size_t len) {
        int r = emit_u64(w, len);

        if (r >= 0)
                r = emit(w, s, len);
        if (r >= 0)
                r = emit_padding(w, len);
        return r;
}

#define emit_str(w, s) emit_bytes((w), (s), sizeof(s) - 1)

/* "(" "type" <type> */
static int node_begin(struct nar_writer *w, const char *type, size_t len) {
        int r = emit_str(w, "(");

        if (r >= 0)
                r = emit_str(w, "type");
        if (r >= 0)
                r = emit_bytes(w, type, len);
        return r;
}

int nar_write_magic(struct nar_writer *w) {
        return emit_str(w, "nix-archive-1");
}

int nar_write_file_begin(struct nar_writer *w, bool executable, uint64_t size) {
        int r;

        if (w->contents_left > 0)
                return log_error_errno(-EIO, "NAR writer: a file begins inside another one");
        r = node_begin(w, "regular", strlen("regular"));
        if (r >= 0 && executable) {
                r = emit_str(w, "executable");
                if (r >= 0)
                        r = emit_str(w, "");
        }
        if (r >= 0)
                r = emit_str(w, "contents");
        if (r >= 0)
                r = emit_u64(w, size);
        if (r >= 0) {
                w->contents_left = size;
                w->contents_size = size;
        }
        return r;
}

int nar_write_contents(struct nar_writer *w, const void *data, size_t len) {
        int r;

        if (len > w->contents_left)
                return log_error_errno(-EIO, "NAR writer: more contents than the file's size");
        r = emit(w, data, len);
        if (r >= 0)
                w->contents_left -= len;
        return r;
}

int nar_write_reserve(struct nar_writer *w, uint8_t **ret, size_t *ret_len) {
        int r;

        if (w->contents_left == 0)
                return log_error_errno(-EIO, "NAR writer: no contents owed");
        if (w->len == NAR_WRITER_BUF_SIZE) {
                r = flush(w);
                if (r < 0)
                        return r;
        }
        *ret = w->buf + w->len;
        *ret_len = (size_t) MIN((uint64_t) (NAR_WRITER_BUF_SIZE - w->len), w->contents_left);
        return 0;
}

void nar_write_commit(struct nar_writer *w, size_t n) {
        /* the caller filled at most what nar_write_reserve offered */
        assert(n <= NAR_WRITER_BUF_SIZE - w->len && n <= w->contents_left);
        w->len += n;
        w->size += n;
        w->contents_left -= n;
}

int nar_write_file_end(struct nar_writer *w) {
        int r;

        if (w->contents_left > 0)
                return log_error_errno(-EIO, "NAR writer: file ends %llu bytes short",
                                       (unsigned long long) w->contents_left);
        r = emit_padding(w, w->contents_size);
        if (r >= 0)
                r = emit_str(w, ")");
        return r;
}

int nar_write_symlink(struct nar_writer *w, const char *target, size_t len) {
        int r = node_begin(w, "symlink", strlen("symlink"));

        if (r >= 0)
                r = emit_str(w, "target");
        if (r >= 0)
                r = emit_bytes(w, target, len);
        if (r >= 0)
                r = emit_str(w, ")");
        return r;
}

int nar_write_directory_begin(struct nar_writer *w) {
        return node_begin(w, "directory", strlen("directory"));
}

int nar_write_entry_begin(struct nar_writer *w, const char *name, size_t len) {
        int r = emit_str(w, "entry");

        if (r >= 0)
                r = emit_str(w, "(");
        if (r >= 0)
                r = emit_str(w, "name");
        if (r >= 0)
                r = emit_bytes(w, name, len);
        if (r >= 0)
                r = emit_str(w, "node");
        return r;
}

int nar_write_entry_end(struct nar_writer *w) {
        return emit_str(w, ")");
}

int nar_write_directory_end(struct nar_writer *w) {
        return emit_str(w, ")");
}
