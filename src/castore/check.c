/* The store checker.  Blobs are hashed by a worker pool as they are
 * listed; directories and roots are checked as they are listed, each
 * reference looked up in the store, so memory stays proportional to the
 * number of corrupt blobs, not to the size of the store. */
#include "castore/check.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "castore/vblob.h"
#include "util/progress.h"
#include "util/log.h"
#include "util/workqueue.h"

#define QUEUE_CAPACITY 256 /* blob checks in flight */

/* Lock order: report_lock and bad_lock are never held together. */
struct cas_checker {
        struct cas_store *store;    /* immutable */
        bool repair;                /* immutable */
        cas_problem_fn fn;          /* immutable */
        void *userdata;             /* immutable */

        pthread_mutex_t report_lock; /* serialises fn */
        uint64_t problems;           /* report_lock */

        /* Blobs found corrupt or unreadable (already reported): a
         * reference to one is not reported again.  Appended by the blob
         * workers under bad_lock; sorted, and read without it, once they
         * are done. */
        pthread_mutex_t bad_lock;
        struct cas_digest *bad;    /* bad_lock */
        size_t n_bad, cap_bad;     /* bad_lock */
        int error;                 /* bad_lock: first internal error (ENOMEM) */

        struct workqueue *wq;         /* the blob pass only */

        struct cas_check_stats stats; /* the checking thread; problems copied at the end */
        struct progress progress;     /* the checking thread */
};

static void show_progress(struct cas_checker *c) {
        progress_show(&c->progress, "verifying: %llu blobs, %llu directories, %llu roots",
                      (unsigned long long) c->stats.blobs, (unsigned long long) c->stats.directories,
                      (unsigned long long) c->stats.roots);
}

struct blob_job {
        struct cas_checker *c;
        struct cas_digest digest;
};

struct cas_store *cas_checker_store(struct cas_checker *c) {
        return c->store;
}

void cas_check_report(struct cas_checker *c, const struct cas_problem *p, const char *fmt, ...) {
        struct cas_problem q = *p;
        char line[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        q.message = line;
        pthread_mutex_lock(&c->report_lock);
        c->problems++;
        c->fn(c->userdata, &q);
        pthread_mutex_unlock(&c->report_lock);
}

static int digest_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN);
}

static bool is_bad_blob(const struct cas_checker *c, const struct cas_digest *d) {
        return c->n_bad > 0 && bsearch(d, c->bad, c->n_bad, sizeof(*d), digest_cmp) != NULL;
}

/* ---- blobs ---- */

static void remember_bad_blob(struct cas_checker *c, const struct cas_digest *d) {
        pthread_mutex_lock(&c->bad_lock);
        if (c->n_bad == c->cap_bad) {
                size_t cap = c->cap_bad ? 2 * c->cap_bad : 64;
                struct cas_digest *v = reallocarray(c->bad, cap, sizeof(*v));

                if (v) {
                        c->bad = v;
                        c->cap_bad = cap;
                }
        }
        if (c->n_bad < c->cap_bad)
                c->bad[c->n_bad++] = *d;
        else if (c->error == 0)
                c->error = -ENOMEM;
        pthread_mutex_unlock(&c->bad_lock);
}

static void check_blob_job(void *arg) {
        struct blob_job *j = arg;
        struct cas_checker *c = j->c;
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        struct cas_problem p = { .has_digest = true, .digest = j->digest };
        uint64_t size;
        int r;

        /* The size is the stored file's: references are checked against
         * it elsewhere.  A damaged outboard is rebuilt by the open. */
        r = cas_blob_stat(c->store->blobs, &j->digest, &size);
        if (r >= 0)
                r = cas_vblob_open(c->store->blobs, &j->digest, size, &v);
        if (r >= 0)
                r = cas_vblob_check(v);
        if (r == -EBADMSG) {
                p.kind = CAS_PROBLEM_BLOB_CORRUPT;
                if (c->repair) {
                        int k = cas_blob_remove(c->store->blobs, &j->digest);
                        if (k < 0)
                                log_error_errno(k, "Cannot remove corrupt blob %s: %m", CAS_DIGEST_B3(&j->digest));
                        p.repaired = k >= 0;
                }
                cas_check_report(c, &p, "corrupt blob %s: content does not match its digest",
                                 CAS_DIGEST_B3(&j->digest));
        } else if (r < 0) {
                p.kind = CAS_PROBLEM_BLOB_UNREADABLE;
                p.error = r;
                cas_check_report(c, &p, "unreadable blob %s: %s", CAS_DIGEST_B3(&j->digest), strerror(-r));
        }
        if (r < 0)
                remember_bad_blob(c, &j->digest);
        free(j);
}

/* Runs in the listing thread: hands each blob to the pool (which blocks
 * while its queue is full, bounding memory). */
static int queue_blob(void *userdata, const struct cas_digest *d) {
        struct cas_checker *c = userdata;
        struct blob_job *j = malloc(sizeof(*j));
        int r;

        if (!j)
                return -ENOMEM;
        *j = (struct blob_job){ c, *d };
        r = workqueue_push(c->wq, check_blob_job, j);
        if (r < 0) {
                free(j);
                return r;
        }
        c->stats.blobs++;
        show_progress(c);
        return 0;
}

static int check_blobs(struct cas_checker *c, unsigned threads) {
        int r;

        r = workqueue_new(threads, QUEUE_CAPACITY, &c->wq);
        if (r < 0)
                return r;
        r = cas_blob_list(c->store->blobs, queue_blob, c);
        workqueue_free(TAKE_PTR(c->wq)); /* waits for the queued checks */
        if (r == -EOPNOTSUPP) {
                log_notice("The blob service cannot list its blobs: only those referred to are checked");
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to list blobs: %m");
        if (c->error < 0)
                return c->error;
        if (c->n_bad > 1)
                qsort(c->bad, c->n_bad, sizeof(*c->bad), digest_cmp);
        return 0;
}

/* ---- references ---- */

void cas_check_node(struct cas_checker *c, const struct cas_node *n, const char *referrer) {
        struct cas_problem p = { .has_digest = true, .digest = n->digest, .referrer = referrer };
        const char *b3 = CAS_DIGEST_B3(&n->digest);
        uint64_t have;
        int r;

        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
                r = cas_dir_stat(c->store->dirs, &n->digest, &have);
                if (r == -EBADMSG)
                        return; /* its own record is reported */
                if (r == -ENOENT) {
                        p.kind = CAS_PROBLEM_DIR_MISSING;
                        cas_check_report(c, &p, "missing directory %s (%s)", b3, referrer);
                } else if (r < 0) {
                        p.kind = CAS_PROBLEM_DIR_UNREADABLE;
                        p.error = r;
                        cas_check_report(c, &p, "unreadable directory %s (%s): %s", b3, referrer, strerror(-r));
                } else if (!cas_size_ok(n->size, have, 0)) {
                        p.kind = CAS_PROBLEM_DIR_SIZE;
                        cas_check_report(c, &p, "directory %s has %llu entries, %s claims %llu", b3,
                                         (unsigned long long) have, referrer, (unsigned long long) n->size);
                }
                return;
        case CAS_NODE_FILE:
                if (is_bad_blob(c, &n->digest))
                        return; /* reported already */
                r = cas_blob_stat(c->store->blobs, &n->digest, &have);
                if (r == -ENOENT) {
                        p.kind = CAS_PROBLEM_BLOB_MISSING;
                        cas_check_report(c, &p, "missing blob %s (%s)", b3, referrer);
                } else if (r < 0) {
                        p.kind = CAS_PROBLEM_BLOB_UNREADABLE;
                        p.error = r;
                        cas_check_report(c, &p, "unreadable blob %s (%s): %s", b3, referrer, strerror(-r));
                } else if (have != n->size) {
                        p.kind = CAS_PROBLEM_BLOB_SIZE;
                        cas_check_report(c, &p, "blob %s has %llu bytes, %s says %llu", b3,
                                         (unsigned long long) have, referrer, (unsigned long long) n->size);
                }
                return;
        case CAS_NODE_SYMLINK:
                return; /* nothing to resolve; its target was validated by decoding */
        }
}

/* ---- directories ---- */

static void corrupt_dir(struct cas_checker *c, const struct cas_digest *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void corrupt_dir(struct cas_checker *c, const struct cas_digest *key, const char *fmt, ...) {
        struct cas_problem p = { .kind = CAS_PROBLEM_DIR_CORRUPT, .has_digest = true, .digest = *key };
        char why[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        cas_check_report(c, &p, "corrupt directory %s: %s", CAS_DIGEST_B3(key), why);
}

static int check_dir(void *userdata, const struct cas_digest *key, const void *data, size_t len) {
        struct cas_checker *c = userdata;
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        _cleanup_free_ uint8_t *canon = NULL;
        enum cas_verr why = CAS_VERR_NONE;
        size_t canon_len;
        uint64_t size;
        int r;

        c->stats.directories++;
        show_progress(c);
        r = cas_directory_decode(data, len, 0, &d, &why);
        if (r == -EBADMSG) {
                corrupt_dir(c, key, "%s", cas_verr_str(why));
                return 0;
        }
        if (r < 0)
                return r;
        if (!cas_digest_equal(&d->digest, key)) {
                corrupt_dir(c, key, "content hashes to %s", CAS_DIGEST_B3(&d->digest));
                return 0;
        }
        /* Stored records are our own canonical encoding: other bytes that
         * still decode to the same directory (extra fields) are damage. */
        r = cas_directory_encode(d, &canon, &canon_len);
        if (r < 0)
                return r;
        if (canon_len != len || memcmp(canon, data, len) != 0)
                corrupt_dir(c, key, "stored encoding is not canonical");
        /* the size stored next to the record is what puts check children by */
        r = cas_dir_stat(c->store->dirs, key, &size);
        if (r >= 0 && size != d->size)
                corrupt_dir(c, key, "stored size %llu, its entries count %llu", (unsigned long long) size,
                            (unsigned long long) d->size);

        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];
                char referrer[CAS_NAME_MAX + 128];

                if (e->kind == CAS_NODE_SYMLINK)
                        continue;
                snprintf(referrer, sizeof(referrer), "entry \"%s\" of directory %s", e->name, CAS_DIGEST_B3(key));
                cas_check_node(c, e, referrer);
        }
        return 0;
}

/* ---- named roots ---- */

static int check_root(void *userdata, const struct cas_node *n) {
        struct cas_checker *c = userdata;
        char referrer[CAS_NAME_MAX + 32];

        c->stats.roots++;
        show_progress(c);
        snprintf(referrer, sizeof(referrer), "root \"%.*s\"", (int) n->name_len, n->name);
        cas_check_node(c, n, referrer);
        return 0;
}

int cas_check_listed(struct cas_checker *c, int r, const char *what) {
        if (r == -EOPNOTSUPP) {
                log_notice("The %s service cannot list: only what is referred to is checked", what);
                return 0;
        }
        if (r == -EBADMSG) {
                struct cas_problem p = { .kind = CAS_PROBLEM_CORRUPT_RECORDS, .name = what };

                cas_check_report(c, &p, "corrupt records in the %s database (logged above)", what);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to list %s: %m", what);
        return 0;
}

int cas_check_store(struct cas_store *store, const struct cas_check_opts *opts, cas_problem_fn fn, void *userdata,
                    struct cas_check_stats *ret_stats) {
        static const struct cas_check_opts defaults = {};
        struct cas_checker c = {};
        int r;

        if (!store || !fn || !ret_stats)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (opts->n_layers > 0 && !opts->layers)
                return -EINVAL;
        c = (struct cas_checker){ .store = store, .repair = opts->repair, .fn = fn, .userdata = userdata };
        progress_init(&c.progress, opts->progress);
        pthread_mutex_init(&c.report_lock, NULL);
        pthread_mutex_init(&c.bad_lock, NULL);

        r = check_blobs(&c, opts->threads);
        if (r >= 0)
                r = cas_check_listed(&c, cas_dir_list(store->dirs, check_dir, &c), "directory");
        if (r >= 0)
                r = cas_check_listed(&c, cas_root_list(store->roots, check_root, &c), "named root");
        for (size_t i = 0; r >= 0 && i < opts->n_layers; i++)
                r = opts->layers[i].run(&c, opts->layers[i].userdata);

        c.stats.problems = c.problems;
        progress_done(&c.progress, "verified: %llu blobs, %llu directories, %llu roots",
                      (unsigned long long) c.stats.blobs, (unsigned long long) c.stats.directories,
                      (unsigned long long) c.stats.roots);
        *ret_stats = c.stats;
        free(c.bad);
        pthread_mutex_destroy(&c.bad_lock);
        pthread_mutex_destroy(&c.report_lock);
        return r < 0 ? r : 0;
}
