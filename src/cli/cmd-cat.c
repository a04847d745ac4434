/* castore cat: write a file's content to stdout, never bytes that fail
 * verification against the file's digest. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"
#include "util/io.h"

#define CAT_WHOLE_MAX (64ULL * 1024 * 1024) /* verified in memory up to this size */
#define CAT_CHUNK (1024 * 1024)

/* Small blobs: read, verify, then write.  Large ones: verify a first pass,
 * then stream while hashing again, and fail if the second pass differs. */
static int cat_blob(struct cas_blob_reader *rd, int out) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct cas_hasher h;
        struct cas_digest d;
        uint64_t off = 0;
        size_t chunk = rd->size <= CAT_WHOLE_MAX ? (size_t) rd->size + 1 : CAT_CHUNK;
        int r;

        buf = malloc(chunk);
        if (!buf)
                return -ENOMEM;
        if (rd->size > CAT_WHOLE_MAX) {
                r = cas_blob_reader_verify(rd);
                if (r < 0)
                        return r;
        }
        cas_hasher_init(&h);
        for (;;) {
                ssize_t n = cas_blob_pread_full(rd, buf, chunk, off);
                if (n < 0)
                        return n;
                if (n == 0)
                        break;
                cas_hasher_update(&h, buf, n);
                off += n;
                if (rd->size <= CAT_WHOLE_MAX)
                        continue; /* written after verification below */
                r = loop_write(out, buf, n);
                if (r < 0)
                        return r;
        }
        cas_hasher_final(&h, &d);
        if (off != rd->size || !cas_digest_equal(&d, &rd->digest))
                return -EBADMSG;
        if (rd->size <= CAT_WHOLE_MAX)
                return loop_write(out, buf, off);
        return 0;
}

static int run_cat(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        int r;

        r = cli_begin("cat", argc, argv, "ROOT/PATH", 0, &store);
        if (r < 0)
                return r;
        for (int i = r; i < argc; i++) {
                _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
                _cleanup_free_ void *mem = NULL;
                struct cas_node n;

                r = cli_resolve(store, argv[i], &n, &mem);
                if (r < 0)
                        return r;
                if (n.kind == CAS_NODE_DIRECTORY)
                        return log_error_errno(-EISDIR, "%s: Is a directory", argv[i]);
                if (n.kind == CAS_NODE_SYMLINK)
                        return log_error_errno(-EINVAL, "%s: is a symlink to %s", argv[i], n.target);
                r = cas_blob_open(store->blobs, &n.digest, &rd);
                if (r == -ENOENT)
                        return log_error_errno(r, "%s: blob %s is missing from the store", argv[i],
                                               CAS_DIGEST_B3(&n.digest));
                if (r < 0)
                        return log_error_errno(r, "%s: cannot open blob: %m", argv[i]);
                if (rd->size != n.size)
                        return log_error_errno(-EBADMSG, "%s: blob has %llu bytes, the file node says %llu", argv[i],
                                               (unsigned long long) rd->size, (unsigned long long) n.size);
                r = cat_blob(rd, STDOUT_FILENO);
                if (r == -EBADMSG)
                        return log_error_errno(r, "%s: blob %s is corrupt (content does not match its digest)",
                                               argv[i], CAS_DIGEST_B3(&n.digest));
                if (r < 0)
                        return log_error_errno(r, "%s: %m", argv[i]);
        }
        return 0;
}

const struct cli_command cli_cmd_cat = {
        .name = "cat",
        .run = run_cat,
        .usage = "ROOT/PATH...",
        .help = "write file contents to stdout (verified against their digests)",
};
