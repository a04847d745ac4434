/* NAR (Nix ARchive): the public calls of the Nix layer's NAR code.
 *   nar_render      a castore tree as the bytes of nix-store --dump
 *                   (nar_render.c; file contents through nar_contents.c)
 *   nar_hash_local  the NAR hash of a local tree (nar_local.c)
 *   nar_ingest      a NAR stream into castore (nar_ingest.c)
 * The two writing walkers share one encoder, nar_writer.h.
 *
 * Format: every token is a string = u64 little-endian length, the bytes,
 * zero padding to a multiple of 8.
 *   nar       = "nix-archive-1" node
 *   node      = "(" "type" ( regular | symlink | directory ) ")"
 *   regular   = "regular" [ "executable" "" ] "contents" <data>
 *   symlink   = "symlink" "target" <target>
 *   directory = "directory" { "entry" "(" "name" <name> "node" node ")" }
 * Directory entries are strictly ascending by name bytes across all kinds,
 * which is the order of struct cas_directory entries. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"
#include "store/nar_writer.h"
#include "store/sha256.h"

/* Most directory levels (the root directory counting as one) rendered or
 * accepted: beyond any real tree (PATH_MAX allows 2048 levels of
 * one-letter names only through *at() calls), small enough to bound
 * recursion. */
#define NAR_DEPTH_MAX 1024

enum {
        NAR_RENDER_NO_SHA256 = 1 << 0, /* skip the NAR hash (ret_sha256 untouched) */
        NAR_RENDER_SERIAL = 1 << 1,    /* no read-ahead threads: read and verify in the caller's */
};

/* Renders the NAR of root (its name is ignored) to write, or only computes
 * its size and SHA-256 if write is NULL.  Memory stays bounded whatever
 * the tree and file sizes: one I/O buffer, the directories on the current
 * path, and the read-ahead (nar_prefetch.h: at most 64 MiB of verified
 * file contents), which reads and BLAKE3-verifies blobs on all cores.
 *
 * Blob integrity (nar_contents.h): no byte of a blob that does not hash to
 * its digest is ever written.  Blobs up to 8 MiB are read once into
 * memory, verified there and emitted from the very bytes hashed.  Larger
 * on-disk blobs are verified in full before their first byte is emitted,
 * then read again as they stream; if the file changed in between (its
 * ctime, or for readers without an fd a second hash, tells) the render
 * fails with -EBADMSG after having written them, so a caller must treat
 * the output of a failed render as garbage (the CLI exits non-zero).
 *
 * Errors: -ENOENT (missing blob or directory), -EBADMSG (blob size differs
 * from the FileNode's, digest mismatch, directory smaller than the node
 * claims), -ELOOP (deeper than NAR_DEPTH_MAX), a sink or service error.
 * Errors are logged. */
int nar_render(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
               unsigned flags, nar_write_fn write, void *userdata, uint64_t *ret_size,
               uint8_t ret_sha256[NIX_SHA256_LEN]);

/* Input source: reads up to len bytes, returns the count, 0 at end of
 * input, or -errno. */
typedef ssize_t (*nar_read_fn)(void *userdata, void *buf, size_t len);

struct nar_ingest_result {
        /* The root node, name empty; a symlink's target lives in mem (free()). */
        struct cas_node root;
        void *mem;
        uint64_t nar_size;
        uint8_t nar_sha256[NIX_SHA256_LEN];
        /* On -EBADMSG: what was wrong (a static string) and the offset in
         * the NAR of the token that broke the rule. */
        const char *error;
        uint64_t error_offset;
};

enum {
        /* Store every blob from the calling thread (by default small files
         * are stored by a pool of one worker per CPU, the parser hashing
         * them first; read is only ever called from the calling thread). */
        NAR_INGEST_SERIAL = 1 << 0,
};

/* Parses a NAR from read and stores its contents: file contents through
 * the blob service (streaming; memory stays bounded whatever the file
 * size), then, once the whole NAR has parsed, directories leaves-first with
 * one cas_dir_put.  Strict: the exact token grammar above, zero padding,
 * names valid castore names (cas_name_check) strictly ascending without
 * duplicates, targets valid (cas_target_check), tokens and names no longer
 * than they can be, nesting at most NAR_DEPTH_MAX, nothing after the end.
 *
 * Returns 0 and fills *ret; -EBADMSG for a malformed or truncated NAR
 * (ret->error says why), a read or store error otherwise.  On failure no
 * directory is stored (blobs already written are harmless orphans) and
 * ret owns nothing. */
int nar_ingest(struct cas_blob_service *blobs, struct cas_dir_service *dirs, nar_read_fn read, void *userdata,
               unsigned flags, struct nar_ingest_result *ret);

/* Computes, in one sequential pass over a local file, symlink or
 * directory tree, the size and SHA-256 of its NAR (what nix-store --add
 * hashes) and the castore root node an import of it yields (name empty; a
 * symlink's target in *ret_mem, free()), storing nothing.  Run next to
 * cas_import_path on the same tree, equal root nodes prove that the NAR
 * hash describes the imported tree.  Special files are left out with
 * skip_special (as the importer does), else -EINVAL naming them.  A tree
 * seen changing while it is read (a file whose size changes, an entry
 * that vanishes or turns into another kind after it was listed) gives
 * -ESTALE; a missing path -ENOENT.  Errors are logged. */
int nar_hash_local(const char *path, bool skip_special, uint64_t *ret_nar_size, uint8_t ret_sha256[NIX_SHA256_LEN],
                   struct cas_node *ret_root, void **ret_mem);
