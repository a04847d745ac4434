/* castore verify: re-hash every blob and directory of the store, check
 * that every reference (directory -> blob, directory -> directory, named
 * root or store path -> node, store path -> referenced store path)
 * resolves with the size it claims, and report each corrupt or missing
 * object.
 *
 * Memory stays proportional to the number of corrupt blobs, not to the
 * size of the store: blobs are hashed by a worker pool as they are listed,
 * and references are looked up in the store as directories are walked. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/nar.h"
#include "util/log.h"
#include "util/workqueue.h"

struct verify_ctx {
        struct cas_store *store;
        struct nix_pathinfo_service *pathinfos;
        bool nar;              /* also re-hash each store path's NAR */
        bool repair;           /* remove blobs whose content is not their digest's */
        struct workqueue *wq;

        /* Blobs found corrupt or unreadable (already reported): a
         * reference to one is not reported again.  Appended by the blob
         * workers under lock; sorted, and read without it, once they are
         * done. */
        pthread_mutex_t lock;
        struct cas_digest *bad;   /* lock */
        size_t n_bad, cap_bad;    /* lock */
        int error;                /* lock: first internal error (ENOMEM) */

        uint64_t n_blobs, n_dirs, n_roots, n_paths; /* main thread */
        atomic_uint_fast64_t problems;
};

struct blob_job {
        struct verify_ctx *ctx;
        struct cas_digest digest;
};

static void problem(struct verify_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct verify_ctx *ctx, const char *fmt, ...) {
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        printf("%s\n", line); /* stdio locks the stream: lines stay whole */
        atomic_fetch_add(&ctx->problems, 1);
}

static int digest_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN);
}

static bool is_bad_blob(const struct verify_ctx *ctx, const struct cas_digest *d) {
        return ctx->n_bad > 0 && bsearch(d, ctx->bad, ctx->n_bad, sizeof(*d), digest_cmp) != NULL;
}

/* ---- blobs ---- */

static void verify_blob_job(void *arg) {
        struct blob_job *j = arg;
        struct verify_ctx *ctx = j->ctx;
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
        int r;

        r = cas_blob_open(ctx->store->blobs, &j->digest, &rd);
        if (r >= 0)
                r = cas_blob_reader_verify(rd);
        if (r == -EBADMSG) {
                problem(ctx, "corrupt blob %s: content does not match its digest", CAS_DIGEST_B3(&j->digest));
                /* A rotted blob keeps its size, so a writer finding it in
                 * place would store nothing: removed, it is stored again by
                 * the next import of a tree that holds it. */
                if (ctx->repair) {
                        int k = cas_blob_remove(ctx->store->blobs, &j->digest);
                        if (k < 0)
                                log_error_errno(k, "Cannot remove corrupt blob %s: %m", CAS_DIGEST_B3(&j->digest));
                        else
                                printf("removed corrupt blob %s\n", CAS_DIGEST_B3(&j->digest));
                }
        } else if (r < 0)
                problem(ctx, "unreadable blob %s: %s", CAS_DIGEST_B3(&j->digest), strerror(-r));
        if (r < 0) {
                pthread_mutex_lock(&ctx->lock);
                if (ctx->n_bad == ctx->cap_bad) {
                        size_t cap = ctx->cap_bad ? 2 * ctx->cap_bad : 64;
                        struct cas_digest *v = reallocarray(ctx->bad, cap, sizeof(*v));

                        if (v) {
                                ctx->bad = v;
                                ctx->cap_bad = cap;
                        }
                }
                if (ctx->n_bad < ctx->cap_bad)
                        ctx->bad[ctx->n_bad++] = j->digest;
                else if (ctx->error == 0)
                        ctx->error = -ENOMEM;
                pthread_mutex_unlock(&ctx->lock);
        }
        free(j);
}

/* Runs in the listing thread: hands each blob to the pool (which blocks
 * while its queue is full, bounding memory). */
static int queue_blob(void *userdata, const struct cas_digest *d) {
        struct verify_ctx *ctx = userdata;
        struct blob_job *j = malloc(sizeof(*j));
        int r;

        if (!j)
                return -ENOMEM;
        *j = (struct blob_job){ ctx, *d };
        r = workqueue_push(ctx->wq, verify_blob_job, j);
        if (r < 0) {
                free(j);
                return r;
        }
        ctx->n_blobs++;
        return 0;
}

static int verify_blobs(struct verify_ctx *ctx) {
        int r;

        r = workqueue_new(0, 256, &ctx->wq);
        if (r < 0)
                return r;
        r = cas_blob_list(ctx->store->blobs, queue_blob, ctx);
        workqueue_free(TAKE_PTR(ctx->wq)); /* waits for the queued checks */
        if (r < 0)
                return log_error_errno(r, "Failed to list blobs: %m");
        if (ctx->error < 0)
                return ctx->error;
        if (ctx->n_bad > 1)
                qsort(ctx->bad, ctx->n_bad, sizeof(*ctx->bad), digest_cmp);
        return 0;
}

/* ---- references ---- */

/* Checks that the node a directory entry, root or store path names is
 * present with the size it claims; what says where the node was found. */
static void check_node(struct verify_ctx *ctx, const struct cas_node *n, const char *what) {
        uint64_t have;
        int r;

        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
                r = cas_dir_stat(ctx->store->dirs, &n->digest, &have);
                if (r == -ENOENT)
                        problem(ctx, "missing directory %s (%s)", CAS_DIGEST_B3(&n->digest), what);
                else if (r == -EBADMSG)
                        return; /* its own record is reported */
                else if (r < 0)
                        problem(ctx, "unreadable directory %s (%s): %s", CAS_DIGEST_B3(&n->digest), what,
                                strerror(-r));
                else if (!cas_size_ok(n->size, have, 0))
                        problem(ctx, "directory %s has %llu entries, %s claims %llu", CAS_DIGEST_B3(&n->digest),
                                (unsigned long long) have, what, (unsigned long long) n->size);
                return;
        case CAS_NODE_FILE:
                if (is_bad_blob(ctx, &n->digest))
                        return; /* reported already */
                r = cas_blob_stat(ctx->store->blobs, &n->digest, &have);
                if (r == -ENOENT)
                        problem(ctx, "missing blob %s (%s)", CAS_DIGEST_B3(&n->digest), what);
                else if (r < 0)
                        problem(ctx, "unreadable blob %s (%s): %s", CAS_DIGEST_B3(&n->digest), what, strerror(-r));
                else if (have != n->size)
                        problem(ctx, "blob %s has %llu bytes, %s says %llu", CAS_DIGEST_B3(&n->digest),
                                (unsigned long long) have, what, (unsigned long long) n->size);
                return;
        case CAS_NODE_SYMLINK:
                return; /* nothing to resolve; its target was validated by decoding */
        }
}

/* ---- directories ---- */

static int check_dir(void *userdata, const struct cas_digest *key, const void *data, size_t len) {
        struct verify_ctx *ctx = userdata;
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        _cleanup_free_ uint8_t *canon = NULL;
        enum cas_verr why = CAS_VERR_NONE;
        size_t canon_len;
        uint64_t size;
        int r;

        ctx->n_dirs++;
        r = cas_directory_decode(data, len, 0, &d, &why);
        if (r == -EBADMSG) {
                problem(ctx, "corrupt directory %s: %s", CAS_DIGEST_B3(key), cas_verr_str(why));
                return 0;
        }
        if (r < 0)
                return r;
        if (!cas_digest_equal(&d->digest, key)) {
                problem(ctx, "corrupt directory %s: content hashes to %s", CAS_DIGEST_B3(key),
                        CAS_DIGEST_B3(&d->digest));
                return 0;
        }
        /* Stored records are our own canonical encoding: other bytes that
         * still decode to the same directory (extra fields) are damage. */
        r = cas_directory_encode(d, &canon, &canon_len);
        if (r < 0)
                return r;
        if (canon_len != len || memcmp(canon, data, len) != 0)
                problem(ctx, "corrupt directory %s: stored encoding is not canonical", CAS_DIGEST_B3(key));
        /* the size stored next to the record is what puts check children by */
        r = cas_dir_stat(ctx->store->dirs, key, &size);
        if (r >= 0 && size != d->size)
                problem(ctx, "corrupt directory %s: stored size %llu, its entries count %llu", CAS_DIGEST_B3(key),
                        (unsigned long long) size, (unsigned long long) d->size);

        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];
                char what[CAS_NAME_MAX + 128];

                if (e->kind == CAS_NODE_SYMLINK)
                        continue;
                snprintf(what, sizeof(what), "entry \"%s\" of directory %s", e->name, CAS_DIGEST_B3(key));
                check_node(ctx, e, what);
        }
        return 0;
}

/* ---- named roots and store paths ---- */

static int check_root(void *userdata, const struct cas_node *n) {
        struct verify_ctx *ctx = userdata;
        char what[CAS_NAME_MAX + 32];

        ctx->n_roots++;
        snprintf(what, sizeof(what), "root \"%.*s\"", (int) n->name_len, n->name);
        check_node(ctx, n, what);
        return 0;
}

static int check_pathinfo(void *userdata, const struct nix_pathinfo *pi) {
        struct verify_ctx *ctx = userdata;
        char path[NIX_PATH_MAX + 1], what[NIX_PATH_MAX + 32];
        int r;

        ctx->n_paths++;
        nix_store_path_absolute(&pi->path, path);
        snprintf(what, sizeof(what), "store path %s", path);
        check_node(ctx, &pi->node, what);

        /* Nix's closure rule: what a valid path refers to is valid too. */
        for (size_t i = 0; i < pi->n_references; i++) {
                _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *ref = NULL;
                char rpath[NIX_PATH_MAX + 1];

                if (nix_store_path_equal(&pi->references[i], &pi->path))
                        continue; /* a self-reference */
                nix_store_path_absolute(&pi->references[i], rpath);
                r = nix_pathinfo_get_path(ctx->pathinfos, &pi->references[i], &ref);
                if (r == -ENOENT)
                        problem(ctx, "missing store path %s (referenced by %s)", rpath, path);
                else if (r < 0 && r != -EBADMSG) /* a corrupt record is reported by the walk */
                        problem(ctx, "unreadable store path %s (referenced by %s): %s", rpath, path, strerror(-r));
        }

        if (ctx->nar) {
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t size;

                r = nar_render(ctx->store->blobs, ctx->store->dirs, &pi->node, 0, NULL, NULL, &size, sha);
                if (r < 0)
                        problem(ctx, "cannot hash the NAR of %s: %s", path, strerror(-r));
                else if (size != pi->nar_size || memcmp(sha, pi->nar_sha256, NIX_SHA256_LEN) != 0)
                        problem(ctx, "store path %s: its NAR differs in size or hash from the registered one", path);
        }
        return 0;
}

/* A list that skipped corrupt records (logged as it went) fails with
 * -EBADMSG once done: one problem line; anything else stops verify. */
static int listed(struct verify_ctx *ctx, int r, const char *what) {
        if (r == -EBADMSG) {
                problem(ctx, "corrupt records in the %s database (logged above)", what);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to list %s: %m", what);
        return 0;
}

static int run_verify(int argc, char **argv) {
        static const struct option opts[] = {
                CLI_COMMON_LONGOPTS,
                { "nar", no_argument, NULL, 'n' },
                { "repair", no_argument, NULL, 'r' },
                {},
        };
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct verify_ctx ctx = {};
        int opt, r;

        optind = 0;
        while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, opts, NULL)) >= 0) {
                if (cli_common_option(opt, optarg))
                        continue;
                if (opt == 'n')
                        ctx.nar = true;
                else if (opt == 'r')
                        ctx.repair = true;
                else
                        return -EINVAL;
        }
        if (optind != argc)
                return cli_usage_error("verify", "no arguments expected");
        /* LMDB read-only: works on a store being imported into; only
         * --repair writes (it removes blob files) */
        r = cli_store_open(CAS_STORE_READONLY, &store);
        if (r < 0)
                return r;
        r = nix_pathinfo_open_store(store, &pis);
        if (r < 0)
                return log_error_errno(r, "Failed to open the PathInfo database: %m");
        ctx.store = store;
        ctx.pathinfos = pis;
        pthread_mutex_init(&ctx.lock, NULL);

        r = verify_blobs(&ctx);
        if (r >= 0)
                r = listed(&ctx, cas_dir_list(store->dirs, check_dir, &ctx), "directory");
        if (r >= 0)
                r = listed(&ctx, cas_root_list(store->roots, check_root, &ctx), "named root");
        if (r >= 0)
                r = listed(&ctx, nix_pathinfo_list(pis, check_pathinfo, &ctx), "store path");
        fflush(stdout);
        if (r >= 0) {
                uint64_t p = atomic_load(&ctx.problems);
                log_notice("checked %llu blobs, %llu directories, %llu roots, %llu store paths: %llu problem%s",
                           (unsigned long long) ctx.n_blobs, (unsigned long long) ctx.n_dirs,
                           (unsigned long long) ctx.n_roots, (unsigned long long) ctx.n_paths,
                           (unsigned long long) p, p == 1 ? "" : "s");
                if (p > 0)
                        r = -EBADMSG;
        }
        free(ctx.bad);
        pthread_mutex_destroy(&ctx.lock);
        return r;
}

const struct cli_command cli_cmd_verify = {
        .name = "verify",
        .run = run_verify,
        .usage = "[--nar] [--repair]",
        .help = "re-hash every blob and directory, check every reference (--nar: and each store path's NAR; "
                "--repair: remove corrupt blobs, for a re-import to store again); exit 1 on any problem",
};
