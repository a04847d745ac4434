/* castore verify: re-hash every blob and directory of the store, check
 * that every reference (directory -> blob, directory -> directory, root ->
 * node) resolves, and report each corrupt or missing object. */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/log.h"
#include "util/workqueue.h"

struct digest_vec {
        struct cas_digest *v;
        size_t n, cap;
};

static int vec_push(struct digest_vec *vec, const struct cas_digest *d) {
        if (vec->n == vec->cap) {
                size_t cap = vec->cap ? vec->cap * 2 : 1024;
                struct cas_digest *nv = realloc(vec->v, cap * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                vec->v = nv;
                vec->cap = cap;
        }
        vec->v[vec->n++] = *d;
        return 0;
}

static int digest_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN);
}

static bool vec_has(const struct digest_vec *vec, const struct cas_digest *d) {
        return bsearch(d, vec->v, vec->n, sizeof(*d), digest_cmp) != NULL;
}

/* A reference found in a directory, checked once everything is listed. */
struct ref {
        struct cas_digest from, to;
        uint64_t size;
        bool is_dir;
        char name[CAS_NAME_MAX + 1];
};

struct verify_ctx {
        struct cas_store *store;
        struct digest_vec blobs, good_blobs, dirs;
        struct ref *refs;
        size_t n_refs, cap_refs;
        atomic_uint_fast64_t problems;
        unsigned char *blob_ok; /* per blobs.v[i]: 1 ok, 0 bad; written by one job each */
};

struct blob_job {
        struct verify_ctx *ctx;
        size_t i;
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

static void verify_blob_job(void *arg) {
        struct blob_job *j = arg;
        struct verify_ctx *ctx = j->ctx;
        const struct cas_digest *d = &ctx->blobs.v[j->i];
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
        int r;

        r = cas_blob_open(ctx->store->blobs, d, &rd);
        if (r >= 0)
                r = cas_blob_reader_verify(rd);
        if (r == -EBADMSG)
                problem(ctx, "corrupt blob %s: content does not match its digest", CAS_DIGEST_B3(d));
        else if (r < 0)
                problem(ctx, "unreadable blob %s: %s", CAS_DIGEST_B3(d), strerror(-r));
        ctx->blob_ok[j->i] = r >= 0;
        free(j);
}

static int collect_blob(void *userdata, const struct cas_digest *d) {
        return vec_push(&((struct verify_ctx *) userdata)->blobs, d);
}

static int verify_blobs(struct verify_ctx *ctx) {
        struct workqueue *wq;
        int r;

        r = cas_blob_list(ctx->store->blobs, collect_blob, ctx);
        if (r < 0)
                return log_error_errno(r, "Failed to list blobs: %m");
        ctx->blob_ok = calloc(ctx->blobs.n + 1, 1);
        if (!ctx->blob_ok)
                return -ENOMEM;
        r = workqueue_new(0, 256, &wq);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctx->blobs.n && r >= 0; i++) {
                struct blob_job *j = malloc(sizeof(*j));
                if (!j) {
                        r = -ENOMEM;
                        break;
                }
                *j = (struct blob_job){ ctx, i };
                r = workqueue_push(wq, verify_blob_job, j);
                if (r < 0)
                        free(j);
        }
        workqueue_free(wq);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctx->blobs.n; i++)
                if (ctx->blob_ok[i] && (r = vec_push(&ctx->good_blobs, &ctx->blobs.v[i])) < 0)
                        return r;
        qsort(ctx->good_blobs.v, ctx->good_blobs.n, sizeof(struct cas_digest), digest_cmp);
        return 0;
}

static int add_ref(struct verify_ctx *ctx, const struct cas_digest *from, const struct cas_node *e) {
        if (ctx->n_refs == ctx->cap_refs) {
                size_t cap = ctx->cap_refs ? ctx->cap_refs * 2 : 1024;
                struct ref *nr = realloc(ctx->refs, cap * sizeof(*nr));
                if (!nr)
                        return -ENOMEM;
                ctx->refs = nr;
                ctx->cap_refs = cap;
        }
        struct ref *f = &ctx->refs[ctx->n_refs++];
        f->from = *from;
        f->to = e->digest;
        f->size = e->size;
        f->is_dir = e->kind == CAS_NODE_DIRECTORY;
        memcpy(f->name, e->name, e->name_len);
        f->name[e->name_len] = 0;
        return 0;
}

static int check_dir(void *userdata, const struct cas_digest *key, const void *data, size_t len) {
        struct verify_ctx *ctx = userdata;
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        enum cas_verr why = CAS_VERR_NONE;
        int r;

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
        r = vec_push(&ctx->dirs, key);
        for (size_t i = 0; i < d->n_entries && r >= 0; i++)
                if (d->entries[i].kind != CAS_NODE_SYMLINK)
                        r = add_ref(ctx, key, &d->entries[i]);
        return r;
}

static void check_blob_ref(struct verify_ctx *ctx, const struct cas_digest *d, uint64_t size, const char *what) {
        uint64_t have;

        if (!vec_has(&ctx->good_blobs, d)) {
                if (cas_blob_stat(ctx->store->blobs, d, &have) < 0)
                        problem(ctx, "missing blob %s (%s)", CAS_DIGEST_B3(d), what);
                return; /* a corrupt one is already reported */
        }
        if (cas_blob_stat(ctx->store->blobs, d, &have) >= 0 && have != size)
                problem(ctx, "blob %s has %llu bytes, %s says %llu", CAS_DIGEST_B3(d), (unsigned long long) have,
                        what, (unsigned long long) size);
}

static void check_refs(struct verify_ctx *ctx) {
        qsort(ctx->dirs.v, ctx->dirs.n, sizeof(struct cas_digest), digest_cmp);
        for (size_t i = 0; i < ctx->n_refs; i++) {
                const struct ref *f = &ctx->refs[i];
                char what[CAS_NAME_MAX + 128];

                snprintf(what, sizeof(what), "entry \"%s\" of directory %s", f->name, CAS_DIGEST_B3(&f->from));
                if (f->is_dir) {
                        if (!vec_has(&ctx->dirs, &f->to))
                                problem(ctx, "missing directory %s (%s)", CAS_DIGEST_B3(&f->to), what);
                } else
                        check_blob_ref(ctx, &f->to, f->size, what);
        }
}

static int check_root(void *userdata, const struct cas_node *n) {
        struct verify_ctx *ctx = userdata;
        char what[CAS_NAME_MAX + 32];

        snprintf(what, sizeof(what), "root \"%s\"", n->name);
        if (n->kind == CAS_NODE_DIRECTORY && !vec_has(&ctx->dirs, &n->digest))
                problem(ctx, "missing directory %s (%s)", CAS_DIGEST_B3(&n->digest), what);
        else if (n->kind == CAS_NODE_FILE)
                check_blob_ref(ctx, &n->digest, n->size, what);
        return 0;
}

static int run_verify(int argc, char **argv) {
        _cleanup_(cas_store_freep) struct cas_store *store = NULL;
        struct verify_ctx ctx = {};
        int r;

        r = cli_parse_common_only(argc, argv);
        if (r < 0)
                return r;
        optind = r;
        if (optind != argc)
                return cli_usage_error("verify", "no arguments expected");
        r = cli_store_open(0, &store);
        if (r < 0)
                return r;
        ctx.store = store;
        r = verify_blobs(&ctx);
        if (r >= 0) {
                r = cas_dir_list(store->dirs, check_dir, &ctx);
                if (r < 0)
                        log_error_errno(r, "Failed to list directories: %m");
        }
        if (r >= 0) {
                check_refs(&ctx);
                r = cas_root_list(store->roots, check_root, &ctx);
                if (r < 0)
                        log_error_errno(r, "Failed to list roots: %m");
        }
        fflush(stdout);
        if (r >= 0) {
                uint64_t p = atomic_load(&ctx.problems);
                log_notice("checked %zu blobs, %zu directories: %llu problem%s", ctx.blobs.n, ctx.dirs.n,
                           (unsigned long long) p, p == 1 ? "" : "s");
                if (p > 0)
                        r = -EBADMSG;
        }
        free(ctx.blobs.v);
        free(ctx.good_blobs.v);
        free(ctx.dirs.v);
        free(ctx.refs);
        free(ctx.blob_ok);
        return r;
}

const struct cli_command cli_cmd_verify = {
        .name = "verify",
        .run = run_verify,
        .usage = "",
        .help = "re-hash every blob and directory, check every reference; exit 1 on any problem",
};
