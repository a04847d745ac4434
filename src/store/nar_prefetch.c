/* NAR read-ahead: a walker thread queues the files in NAR order into a
 * ring of slots, a large file as several segments; workqueue workers fill
 * each slot with verified bytes; the renderer takes the slots in the same
 * order (see nar_prefetch.h). */
#include "store/nar_prefetch.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "castore/outboard.h"
#include "castore/vblob.h"
#include "store/nar.h"
#include "util/log.h"
#include "util/workqueue.h"

#define SLOTS 256
/* Segments of a large file: whole groups, so none is hashed twice. */
#define SEGMENT ((uint64_t) NAR_PREFETCH_FILE_MAX)
_Static_assert(NAR_PREFETCH_FILE_MAX % CAS_GROUP_SIZE == 0, "segments are whole groups");

/* A large file's open blob, shared by its segments' slots; closed by the
 * last one done with it. */
struct shared_blob {
        struct cas_vblob *v;
        unsigned refs; /* atomic */
};

static void shared_put(struct shared_blob *b) {
        if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
                cas_vblob_close(b->v);
                free(b);
        }
}

struct slot {
        struct nar_prefetch *p; /* immutable */
        /* set by the walker before the slot is queued, then read-only */
        struct cas_digest digest;
        uint64_t size;           /* the file node's */
        struct shared_blob *sb;  /* a segment of a large file (one reference), or NULL */
        uint64_t off;            /* the segment: [off, off + len) */
        size_t len;
        bool more;               /* segments of the same file follow */
        /* set by the worker, published by done = true under p->lock */
        uint8_t *data;
        int r;
        const char *why; /* r < 0: what went wrong, for the message */
        bool done;
};

struct nar_prefetch {
        struct cas_blob_service *blobs; /* not owned; immutable */
        struct cas_dir_service *dirs;   /* not owned; immutable */
        struct cas_node root;           /* immutable (copy) */
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

static const char *why_of(int r) {
        return r == -ENOENT    ? "is missing"
               : r == -EBADMSG ? "does not match its digest or size"
                               : "cannot be read";
}

/* Reads [off, off + len) of v, verified, into a new buffer. */
static int read_range(struct cas_vblob *v, uint64_t off, size_t len, uint8_t **ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        ssize_t n;

        if (len == 0) {
                *ret = NULL;
                return 0;
        }
        buf = malloc(len);
        if (!buf)
                return -ENOMEM;
        n = cas_vblob_pread(v, buf, len, off);
        if (n != (ssize_t) len)
                return n < 0 ? (int) n : -EBADMSG;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* A small file: opened (outboard checked) and read whole. */
static int fetch_small(struct nar_prefetch *p, struct slot *s) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        int r = cas_vblob_open(p->blobs, &s->digest, s->size, &v);

        return r < 0 ? r : read_range(v, 0, s->len, &s->data);
}

static void fetch(void *arg) {
        struct slot *s = arg;
        struct nar_prefetch *p = s->p;
        uint8_t *data = NULL;
        bool stop;
        int r;

        pthread_mutex_lock(&p->lock);
        stop = p->stop;
        pthread_mutex_unlock(&p->lock);
        if (stop)
                r = -ECANCELED;
        else if (s->sb)
                r = read_range(s->sb->v, s->off, s->len, &data);
        else
                r = fetch_small(p, s);
        shared_put(TAKE_PTR(s->sb));

        pthread_mutex_lock(&p->lock);
        if (data)
                s->data = data;
        s->r = r;
        s->why = r == -ECANCELED ? "was not read" : why_of(r);
        s->done = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
}

/* Waits for room in the ring and for len more bytes in the budget, and
 * claims the next slot; NULL once stopped.  p->lock held. */
static struct slot *slot_claim_locked(struct nar_prefetch *p, size_t len) {
        struct slot *s;

        while (!p->stop &&
               (p->produced - p->consumed == SLOTS || (p->held > 0 && p->held + len > NAR_PREFETCH_BUDGET)))
                pthread_cond_wait(&p->changed, &p->lock);
        if (p->stop)
                return NULL;
        s = &p->slots[p->produced % SLOTS];
        p->held += len;
        p->produced++;
        return s;
}

/* Fills the next slot and queues its read; a slot that cannot be queued
 * (or fails before, r < 0) is published done with that error. */
static int enqueue(struct nar_prefetch *p, const struct slot *tmpl, int r) {
        struct slot *s;

        pthread_mutex_lock(&p->lock);
        s = slot_claim_locked(p, tmpl->len);
        if (!s) {
                pthread_mutex_unlock(&p->lock);
                shared_put(tmpl->sb);
                return -ECANCELED;
        }
        *s = *tmpl;
        s->p = p;
        pthread_mutex_unlock(&p->lock);
        /* never blocks: the queue holds as many jobs as the ring slots */
        if (r >= 0)
                r = workqueue_push(p->wq, fetch, s);
        if (r < 0) {
                shared_put(s->sb);
                pthread_mutex_lock(&p->lock);
                s->sb = NULL;
                s->r = r;
                s->why = why_of(r);
                s->done = true;
                pthread_cond_broadcast(&p->changed);
                pthread_mutex_unlock(&p->lock);
        }
        return r < 0 && r != -ENOENT && r != -EBADMSG ? r : 0;
}

/* A file: one slot, or a large one opened here (its outboard checked
 * once) and queued as segments that share the open blob. */
static int enqueue_file(struct nar_prefetch *p, const struct cas_node *n) {
        struct slot tmpl = { .digest = n->digest, .size = n->size, .len = (size_t) n->size };
        struct shared_blob *sb;
        uint64_t nseg;
        int r;

        if (n->size <= NAR_PREFETCH_FILE_MAX)
                return enqueue(p, &tmpl, 0);
        sb = calloc(1, sizeof(*sb));
        if (!sb)
                return -ENOMEM;
        r = cas_vblob_open(p->blobs, &n->digest, n->size, &sb->v);
        if (r < 0) {
                free(sb);
                tmpl.len = 0;
                return enqueue(p, &tmpl, r);
        }
        nseg = (n->size + SEGMENT - 1) / SEGMENT;
        sb->refs = (unsigned) nseg;
        for (uint64_t i = 0; i < nseg; i++) {
                tmpl.sb = sb;
                tmpl.off = i * SEGMENT;
                tmpl.len = (size_t) MIN(SEGMENT, n->size - tmpl.off);
                tmpl.more = i + 1 < nseg;
                r = enqueue(p, &tmpl, 0);
                if (r < 0) {
                        /* the references of the segments not queued */
                        for (uint64_t k = i + 1; k < nseg; k++)
                                shared_put(sb);
                        return r;
                }
        }
        return 0;
}

/* The renderer's walk, minus the output. */
static int walk(struct nar_prefetch *p, const struct cas_node *n, unsigned depth) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        int r;

        if (n->kind == CAS_NODE_FILE)
                return enqueue_file(p, n);
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
                       unsigned workers, struct nar_prefetch **ret) {
        struct nar_prefetch *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->blobs = blobs;
        p->dirs = dirs;
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
                return log_error_errno(s->r, "Blob %s %s", CAS_DIGEST_B3(&s->digest), s->why);
        return log_error_errno(s->r, "Blob %s %s: %m", CAS_DIGEST_B3(&s->digest), s->why);
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
                return log_error_errno(-EIO, "NAR read-ahead out of step at blob %s", CAS_DIGEST_B3(&n->digest));
        }
        while (!s->done)
                pthread_cond_wait(&p->changed, &p->lock);
        copy = *s;
        s->data = NULL;
        p->consumed++;
        p->held -= copy.len;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);

        if (copy.r < 0)
                return take_error(&copy);
        *ret = (struct nar_fetched){ .data = copy.data, .len = copy.len, .more = copy.more };
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
        for (uint64_t seq = p->consumed; seq < p->produced; seq++)
                free(p->slots[seq % SLOTS].data);
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
        free(p->root_mem);
        free(p);
}
