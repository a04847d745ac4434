/* castore cat: write a file's content to stdout, never bytes that fail
 * verification against the file's digest. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "castore/vblob.h"
#include "cli/cli.h"
#include "util/log.h"
#include "util/io.h"

static int write_out(void *userdata, const void *buf, size_t len) {
        return loop_write(*(int *) userdata, buf, len);
}

static int run_cat(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        int r;

        r = cli_begin("cat", argc, argv, "NAME/PATH", 0, &store, &pis);
        if (r < 0)
                return r;
        for (int i = r; i < argc; i++) {
                _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
                _cleanup_(nix_resolved_done) struct nix_resolved res = {};
                const struct cas_node *n = &res.node;
                int out = STDOUT_FILENO;

                r = cli_resolve(store, pis, argv[i], 0, &res);
                if (r < 0)
                        return r;
                if (n->kind == CAS_NODE_DIRECTORY)
                        return log_error_errno(-EISDIR, "%s: Is a directory", argv[i]);
                if (n->kind == CAS_NODE_SYMLINK)
                        return log_error_errno(-ELOOP, "%s: is a symlink to %s", argv[i], n->target);
                r = cas_vblob_open(store->blobs, &n->digest, n->size, &v);
                if (r == -ENOENT)
                        return log_error_errno(r, "%s: blob %s is missing from the store", argv[i],
                                               CAS_DIGEST_B3(&n->digest));
                if (r >= 0)
                        r = cas_vblob_copy(v, 0, n->size, write_out, &out);
                if (r == -EBADMSG)
                        return log_error_errno(r, "%s: blob %s is corrupt (content does not match its digest)",
                                               argv[i], CAS_DIGEST_B3(&n->digest));
                if (r < 0)
                        return cli_failure(log_error_errno(r, "%s: %m", argv[i]));
        }
        return 0;
}

const struct cli_command cli_cmd_cat = {
        .name = "cat",
        .run = run_cat,
        .usage = "NAME/PATH...",
        .help = "write file contents to stdout (verified against their digests)",
        .names_trees = true,
};
