/* The NAR encoder: the one place that writes the NAR token grammar (nar.h
 * has the format).  A walker calls it node by node; it stages the bytes in
 * a fixed buffer and flushes them to a sink and/or a SHA-256. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "store/sha256.h"

/* Output sink: consumes all len bytes or returns -errno (which aborts the
 * walk and is returned by it). */
typedef int (*nar_write_fn)(void *userdata, const void *buf, size_t len);

/* One NAR being written.  Not thread-safe: one walker owns it.  The
 * fields are private to nar_writer.c. */
struct nar_writer {
        nar_write_fn write; /* NULL: no output (size and hash only) */
        void *userdata;
        bool hash;          /* SHA-256 of every byte written */
        struct nix_sha256 sha;
        uint64_t size;      /* bytes written so far (flushed or buffered) */
        uint8_t *buf;       /* NAR_WRITER_BUF_SIZE bytes */
        size_t len;         /* bytes buffered */
        uint64_t contents_left; /* contents still owed by the open regular file */
        uint64_t contents_size; /* its declared size, for the padding */
};

#define NAR_WRITER_BUF_SIZE (512 * 1024)

/* Sets w up to write to write(userdata) (NULL: nowhere) and to hash with
 * SHA-256 if hash.  0, or -ENOMEM / an OpenSSL failure (then w needs no
 * cleanup).  Every initialised writer ends with nar_writer_finish or
 * nar_writer_free. */
int nar_writer_init(struct nar_writer *w, nar_write_fn write, void *userdata, bool hash);

/* Flushes what is buffered and frees w.  *ret_size (optional) gets the NAR
 * size, ret_sha256 (optional, needs hash) its SHA-256.  A sink error is
 * returned; w is freed either way. */
int nar_writer_finish(struct nar_writer *w, uint64_t *ret_size, uint8_t ret_sha256[NIX_SHA256_LEN]);

/* Frees w without flushing (after an error). */
void nar_writer_free(struct nar_writer *w);

/* ---- the grammar, in the order a walker meets it ----
 * Each returns 0 or the sink's -errno; nothing is validated here (the
 * walkers check names and targets): the encoder writes what it is given. */

/* "nix-archive-1": once, before the root node. */
int nar_write_magic(struct nar_writer *w);

/* "(" "type" "regular" ["executable" ""] "contents" <size>: then exactly
 * size bytes of contents (nar_write_contents or _reserve/_commit), then
 * nar_write_file_end. */
int nar_write_file_begin(struct nar_writer *w, bool executable, uint64_t size);

/* len bytes of the open file's contents; -EIO if they exceed its size.
 * Large spans go to the sink directly, without a copy. */
int nar_write_contents(struct nar_writer *w, const void *data, size_t len);

/* Zero-copy contents: *ret points into the buffer with room for *ret_len
 * (> 0) bytes, at most the contents still owed (which must be > 0).  Fill
 * some of it, then nar_write_commit the count filled. */
int nar_write_reserve(struct nar_writer *w, uint8_t **ret, size_t *ret_len);
void nar_write_commit(struct nar_writer *w, size_t n);

/* The padding and ")" of the open file; -EIO if contents are still owed. */
int nar_write_file_end(struct nar_writer *w);

/* "(" "type" "symlink" "target" <target> ")" */
int nar_write_symlink(struct nar_writer *w, const char *target, size_t len);

/* "(" "type" "directory", then its entries in ascending name order, each
 * nar_write_entry_begin, the child node, nar_write_entry_end, and last
 * nar_write_directory_end. */
int nar_write_directory_begin(struct nar_writer *w);
/* "entry" "(" "name" <name> "node" */
int nar_write_entry_begin(struct nar_writer *w, const char *name, size_t len);
/* ")" closing the entry */
int nar_write_entry_end(struct nar_writer *w);
/* ")" closing the directory node */
int nar_write_directory_end(struct nar_writer *w);
