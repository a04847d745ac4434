/* NAR read-ahead: a walker thread queues small files in NAR order into a
 * ring of slots; workqueue workers fill each slot with the blob's verified
 * bytes (or, for a large one, its reader with a checked outboard); the
 * renderer takes the slots in the same order (see nar_prefetch.h). */
#include "store/nar_prefetch.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "castore/vblob.h"
#include "store/nar.h"
#include "util/log.h"
#include "util/workqueue.h"

#define SLOTS 256

struct slot {
        struct nar_prefetch *p; /* immutable */
        /* set by the walker before the slot is queued, then read-only */
        struct cas_digest digest;
        uint64_t size; /* the file node's */
        /* set by the worker, published by done = true under p->lock */
        struct nar_fetched got;
        int r;
        const char *why; /* r < 0: what went wrong, for the message */
        bool done;
};

struct nar_prefetch {
        struct cas_blob_service *blobs; /* not owned; immutable */
        struct cas_dir_service *dirs;   /* not owned; immutable */
        struct cas_node root;           /* immutable (copy) */
        bool output;                    /* immutable */
        void *root_mem;
        struct workqueue *wq;
        pthread_t walker;
        bool walker_started;       /* immutable once started */
        pthread_mutex_t lock;
        pthread_cond_t changed;    /* broadcast on any change below; lock */
        struct slot slots[SLOTS];  /* seq % SLOTS for seq in [consumed, produced); lock */
        uint64_t produced;         /* lock */
        uint64_t consumed;         /* lock */
        uint64_t held;             /* bytes of the slots in the ring; lock */
        bool walk_ended;           /* lock */
        bool stop;                 /* lock */
};

/* Opens one blob for verified reads (its outboard checked) and, if it is
 * small, reads its verified bytes into memory; a large one is handed over
 * open, and the renderer's reads verify it group by group.  On error *why
 * says what failed. */
static int fetch_blob(struct nar_prefetch *p, struct slot *s, struct nar_fetched *ret, const char **why) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        ssize_t n;
        int r;

        r = cas_vblob_open(p->blobs, &s->digest, s->size, &v);
        if (r < 0) {
                *why = r == -ENOENT    ? "is missing"
                       : r == -EBADMSG ? "has the wrong size or content"
                                       : "cannot be opened";
                return r;
        }
        if (s->size > NAR_PREFETCH_FILE_MAX) {
                ret->blob = TAKE_PTR(v);
                return 0;
        }
        if (s->size > 0) {
                buf = malloc((size_t) s->size);
                if (!buf)
                        return -ENOMEM;
                n = cas_vblob_pread(v, buf, (size_t) s->size, 0);
                if (n != (ssize_t) s->size) {
                        *why = n == -EBADMSG || n >= 0 ? "does not match its digest" : "cannot be read";
                        return n < 0 ? (int) n : -EBADMSG;
                }
        }
        ret->data = TAKE_PTR(buf);
        return 0;
}

static void fetch(void *arg) {
        struct slot *s = arg;
        struct nar_prefetch *p = s->p;
        const char *why = "was not read";
        struct nar_fetched got = { 0 };
        bool stop;
        int r;

        pthread_mutex_lock(&p->lock);
        stop = p->stop;
        pthread_mutex_unlock(&p->lock);
        r = stop ? -ECANCELED : fetch_blob(p, s, &got, &why);

        pthread_mutex_lock(&p->lock);
        s->got = got;
        s->r = r;
        s->why = why;
        s->done = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
}

/* Bytes a slot holds in memory until taken (large files stay on disk). */
static uint64_t held_bytes(const struct cas_node *n) {
        return n->size <= NAR_PREFETCH_FILE_MAX ? n->size : 0;
}

/* Waits for room in the ring and the byte budget, fills the next slot
 * and queues its read. */
static int enqueue(struct nar_prefetch *p, const struct cas_node *n) {
        struct slot *s;
        int r;

        pthread_mutex_lock(&p->lock);
        while (!p->stop &&
               (p->produced - p->consumed == SLOTS ||
                (p->held > 0 && p->held + held_bytes(n) > NAR_PREFETCH_BUDGET)))
                pthread_cond_wait(&p->changed, &p->lock);
        if (p->stop) {
                pthread_mutex_unlock(&p->lock);
                return -ECANCELED;
        }
        s = &p->slots[p->produced % SLOTS];
        *s = (struct slot){ .p = p, .digest = n->digest, .size = n->size };
        p->held += held_bytes(n);
        p->produced++;
        pthread_mutex_unlock(&p->lock);

        /* never blocks: the queue holds as many jobs as the ring slots */
        r = workqueue_push(p->wq, fetch, s);
        if (r < 0) {
                pthread_mutex_lock(&p->lock);
                *s = (struct slot){ .p = p, .digest = n->digest, .size = n->size, .r = r, .why = "was not read",
                                    .done = true };
                pthread_cond_broadcast(&p->changed);
                pthread_mutex_unlock(&p->lock);
        }
        return r;
}

/* The renderer's walk, minus the output. */
static int walk(struct nar_prefetch *p, const struct cas_node *n, unsigned depth) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        if (n->kind == CAS_NODE_FILE)
                return enqueue(p, n);
        if (n->kind != CAS_NODE_DIRECTORY)
                return 0;
        if (depth >= NAR_DEPTH_MAX)
                return -ELOOP;
        r = cas_dir_get(p->dirs, &n->digest, &d);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_entries; i++) {
                r = walk(p, &d->entries[i], depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void *walker_main(void *arg) {
        struct nar_prefetch *p = arg;
        int r;

        r = walk(p, &p->root, 0);
        /* the renderer meets the same error itself, or reads the rest alone */
        if (r < 0 && r != -ECANCELED)
                log_debug_errno(r, "NAR read-ahead stopped: %m");
        pthread_mutex_lock(&p->lock);
        p->walk_ended = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int nar_prefetch_start(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                       bool output, unsigned workers, struct nar_prefetch **ret) {
        struct nar_prefetch *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->blobs = blobs;
        p->dirs = dirs;
        p->output = output;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->changed, NULL);
        r = cas_node_copy(root, &p->root, &p->root_mem);
        if (r >= 0)
                r = workqueue_new(workers, SLOTS, &p->wq);
        if (r >= 0) {
                r = -pthread_create(&p->walker, NULL, walker_main, p);
                p->walker_started = r == 0;
        }
        if (r < 0) {
                nar_prefetch_stop(p);
                return r;
        }
        *ret = p;
        return 0;
}

static int take_error(const struct slot *s) {
        if (s->r == -ENOENT || s->r == -EBADMSG)
                return log_error_errno(s->r, "Blob %s %s", CAS_DIGEST_HEX(&s->digest), s->why);
        return log_error_errno(s->r, "Blob %s %s: %m", CAS_DIGEST_HEX(&s->digest), s->why);
}

int nar_prefetch_take(struct nar_prefetch *p, const struct cas_node *n, struct nar_fetched *ret) {
        struct slot *s, copy;

        pthread_mutex_lock(&p->lock);
        while (p->consumed == p->produced && !p->walk_ended)
                pthread_cond_wait(&p->changed, &p->lock);
        if (p->consumed == p->produced) {
                pthread_mutex_unlock(&p->lock);
                return 0;
        }
        s = &p->slots[p->consumed % SLOTS];
        if (!cas_digest_equal(&s->digest, &n->digest) || s->size != n->size) {
                pthread_mutex_unlock(&p->lock);
                return log_error_errno(-EIO, "NAR read-ahead out of step at blob %s", CAS_DIGEST_HEX(&n->digest));
        }
        while (!s->done)
                pthread_cond_wait(&p->changed, &p->lock);
        copy = *s;
        s->got = (struct nar_fetched){ 0 };
        p->consumed++;
        p->held -= held_bytes(n);
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);

        if (copy.r < 0)
                return take_error(&copy);
        *ret = copy.got;
        return 1;
}

void nar_prefetch_stop(struct nar_prefetch *p) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        if (p->walker_started)
                pthread_join(p->walker, NULL);
        workqueue_free(p->wq); /* queued reads see stop and end at once */
        for (uint64_t seq = p->consumed; seq < p->produced; seq++) {
                free(p->slots[seq % SLOTS].got.data);
                cas_vblob_close(p->slots[seq % SLOTS].got.blob);
        }
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
        free(p->root_mem);
        free(p);
}
