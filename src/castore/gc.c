/* The garbage collector: mark from the roots, then sweep directories (one
 * removal of all) and blobs, under the store's lock held exclusive. */
#include "castore/gc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/progress.h"
#include "util/hashmap.h"
#include "util/log.h"

/* ---- a set of digests: a hashmap pointing into fixed-size chunks ---- */

#define SET_CHUNK 4096
/* Packs smaller than this are merged into one when there are several
 * (imports that each flushed a few small files). */
#define PACK_MERGE_BELOW (16u << 20)

struct digest_set {
        struct hashmap map; /* struct cas_digest * into chunks */
        struct cas_digest **chunks;
        size_t n_chunks, count;
};

static bool digest_eq(const void *entry, const void *key) {
        return cas_digest_equal(entry, key);
}

static void set_init(struct digest_set *s) {
        *s = (struct digest_set){};
        hashmap_init(&s->map, digest_eq);
}

static void set_done(struct digest_set *s) {
        for (size_t i = 0; i < s->n_chunks; i++)
                free(s->chunks[i]);
        free(s->chunks);
        hashmap_done(&s->map);
}

static bool set_has(const struct digest_set *s, const struct cas_digest *d) {
        return hashmap_get(&s->map, cas_digest_hash(d), d) != NULL;
}

/* 1 if d was added, 0 if it was there, -ENOMEM. */
static int set_add(struct digest_set *s, const struct cas_digest *d) {
        struct cas_digest *slot;

        if (set_has(s, d))
                return 0;
        if (s->count == s->n_chunks * SET_CHUNK) {
                struct cas_digest **c = reallocarray(s->chunks, s->n_chunks + 1, sizeof(*c));

                if (!c)
                        return -ENOMEM;
                s->chunks = c;
                c[s->n_chunks] = malloc(SET_CHUNK * sizeof(struct cas_digest));
                if (!c[s->n_chunks])
                        return -ENOMEM;
                s->n_chunks++;
        }
        slot = &s->chunks[s->count / SET_CHUNK][s->count % SET_CHUNK];
        *slot = *d;
        if (hashmap_put(&s->map, cas_digest_hash(d), slot) < 0)
                return -ENOMEM;
        s->count++;
        return 1;
}

/* ---- a growing array of digests ---- */

struct digest_vec {
        struct cas_digest *v;
        size_t n, cap;
};

static int vec_push(struct digest_vec *a, const struct cas_digest *d) {
        if (a->n == a->cap) {
                size_t cap = a->cap ? 2 * a->cap : 256;
                struct cas_digest *v = reallocarray(a->v, cap, sizeof(*v));

                if (!v)
                        return -ENOMEM;
                a->v = v;
                a->cap = cap;
        }
        a->v[a->n++] = *d;
        return 0;
}

/* ---- mark ---- */

/* Used by one thread: the collection's. */
struct cas_gc {
        struct cas_store *store;
        bool dry_run;
        struct digest_set dirs, blobs; /* marked */
        struct digest_vec stack;       /* directories marked, not yet read */
        struct digest_vec dead;        /* the sweep's victims */
        uint64_t dead_bytes;
        bool mark_failed;              /* a mark error was logged */
        struct cas_gc_stats stats;
        struct progress progress;
};

struct cas_store *cas_gc_store_of(struct cas_gc *g) {
        return g->store;
}

/* Reads one marked directory and marks its children. */
static int mark_children(struct cas_gc *g, const struct cas_digest *d, const char *referrer) {
        _cleanup_(cas_directory_freep) struct cas_directory *dir = NULL;
        int r;

        r = cas_dir_get(g->store->dirs, d, &dir);
        if (r < 0)
                return log_error_errno(r, "Cannot read directory %s (below %s), refusing to collect garbage "
                                          "(castore verify tells more): %m", CAS_DIGEST_B3(d), referrer);
        for (size_t i = 0; i < dir->n_entries; i++) {
                const struct cas_node *e = &dir->entries[i];

                if (e->kind == CAS_NODE_FILE)
                        r = set_add(&g->blobs, &e->digest);
                else if (e->kind == CAS_NODE_DIRECTORY) {
                        r = set_add(&g->dirs, &e->digest);
                        if (r > 0)
                                r = vec_push(&g->stack, &e->digest);
                } else
                        r = 0;
                if (r < 0)
                        return r;
        }
        progress_show(&g->progress, "collecting garbage: %zu directories, %zu blobs reachable", g->dirs.count,
                      g->blobs.count);
        return 0;
}

int cas_gc_mark_node(struct cas_gc *g, const struct cas_node *n, const char *referrer) {
        int r = 0;

        if (!g || !n || !referrer)
                return -EINVAL;
        g->stats.roots++;
        if (n->kind == CAS_NODE_FILE)
                return set_add(&g->blobs, &n->digest) < 0 ? -ENOMEM : 0;
        if (n->kind != CAS_NODE_DIRECTORY)
                return 0;
        r = set_add(&g->dirs, &n->digest);
        if (r > 0)
                r = vec_push(&g->stack, &n->digest);
        /* depth first; each directory is pushed once, when first marked */
        while (r >= 0 && g->stack.n > 0) {
                struct cas_digest d = g->stack.v[--g->stack.n];

                r = mark_children(g, &d, referrer);
        }
        if (r < 0)
                g->mark_failed = true;
        return r < 0 ? r : 0;
}

static int mark_root(void *userdata, const struct cas_node *n) {
        char referrer[CAS_NAME_MAX + 32];

        snprintf(referrer, sizeof(referrer), "root \"%.*s\"", (int) n->name_len, n->name);
        return cas_gc_mark_node(userdata, n, referrer);
}

static int mark(struct cas_gc *g, const struct cas_gc_opts *opts) {
        int r;

        r = cas_root_list(g->store->roots, mark_root, g);
        if (r < 0 && !g->mark_failed)
                return log_error_errno(r, "Cannot list the named roots, refusing to collect garbage: %m");
        if (r < 0)
                return r;
        for (size_t i = 0; i < opts->n_layers; i++) {
                r = opts->layers[i].mark(g, opts->layers[i].userdata);
                if (r < 0)
                        return r;
        }
        g->stats.live_directories = g->dirs.count;
        g->stats.live_blobs = g->blobs.count;
        return 0;
}

/* ---- sweep ---- */

static int collect_dead_dir(void *userdata, const struct cas_digest *d, const void *data, size_t len) {
        struct cas_gc *g = userdata;

        (void) data;
        if (set_has(&g->dirs, d))
                return 0;
        g->dead_bytes += len;
        return vec_push(&g->dead, d);
}

/* All unreachable directories in one removal (one LMDB transaction): a
 * crash leaves all of them or none, never a parent without its child. */
static int sweep_dirs(struct cas_gc *g) {
        int r;

        g->dead.n = 0;
        g->dead_bytes = 0;
        r = cas_dir_list(g->store->dirs, collect_dead_dir, g);
        if (r == -EBADMSG) /* records that are not a directory's: no root reached them */
                log_warning("Corrupt directory records were skipped (logged above); castore verify reports them");
        else if (r < 0)
                return log_error_errno(r, "Cannot list directories: %m");
        if (!g->dry_run && g->dead.n > 0) {
                r = cas_dir_remove(g->store->dirs, g->dead.v, g->dead.n);
                if (r < 0)
                        return log_error_errno(r, "Cannot remove %zu unreachable directories: %m", g->dead.n);
        }
        g->stats.directories = g->dead.n;
        g->stats.directory_bytes = g->dead_bytes;
        return 0;
}

static int collect_dead_blob(void *userdata, const struct cas_digest *d) {
        struct cas_gc *g = userdata;

        return set_has(&g->blobs, d) ? 0 : vec_push(&g->dead, d);
}

static int sweep_blobs(struct cas_gc *g) {
        int r;

        g->dead.n = 0;
        r = cas_blob_list(g->store->blobs, collect_dead_blob, g);
        if (r < 0)
                return log_error_errno(r, "Cannot list blobs: %m");
        for (size_t i = 0; i < g->dead.n; i++) {
                const struct cas_digest *d = &g->dead.v[i];
                uint64_t size;

                r = cas_blob_stat(g->store->blobs, d, &size);
                if (r >= 0 && !g->dry_run)
                        r = cas_blob_remove(g->store->blobs, d);
                if (r == -ENOENT)
                        continue; /* gone meanwhile (a repair) */
                if (r < 0)
                        return log_error_errno(r, "Cannot remove blob %s: %m", CAS_DIGEST_B3(d));
                g->stats.blobs++;
                g->stats.blob_bytes += size;
        }
        return 0;
}

static int sweep(struct cas_gc *g) {
        int r;

        r = sweep_dirs(g);
        if (r >= 0)
                r = sweep_blobs(g);
        if (r >= 0) {
                /* the blobs removed from packs are only marked: rewrite
                 * those packs now, under our exclusive lock */
                r = cas_blob_local_repack(g->store->blobs, PACK_MERGE_BELOW, g->dry_run, &g->stats.packs);
                if (r == -EOPNOTSUPP)
                        r = 0;
                else if (r < 0)
                        log_error_errno(r, "Cannot rewrite the packs holding removed blobs: %m");
        }
        if (r >= 0) {
                r = cas_blob_local_reclaim(g->store->blobs, g->dry_run, &g->stats.temporaries,
                                           &g->stats.temporary_bytes);
                if (r == -EOPNOTSUPP)
                        r = 0; /* no temporaries to speak of */
        }
        return r;
}

static int lock_exclusive(struct cas_store *store, struct cas_store_lock **ret) {
        int r;

        r = cas_store_lock(store, true, false, ret);
        if (r == -EBUSY) {
                log_notice("Waiting for the imports running into the store to finish...");
                r = cas_store_lock(store, true, true, ret);
        }
        if (r < 0)
                return log_error_errno(r, "Cannot lock the store: %m");
        return 0;
}

int cas_gc_store(struct cas_store *store, const struct cas_gc_opts *opts, struct cas_gc_stats *ret_stats) {
        static const struct cas_gc_opts defaults = {};
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        struct cas_gc g;
        int r;

        if (!store || !ret_stats)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        if (opts->n_layers > 0 && !opts->layers)
                return -EINVAL;
        g = (struct cas_gc){ .store = store, .dry_run = opts->dry_run };
        set_init(&g.dirs);
        set_init(&g.blobs);

        progress_init(&g.progress, opts->progress);
        r = lock_exclusive(store, &lock);
        if (r >= 0)
                r = mark(&g, opts);
        if (r >= 0)
                r = sweep(&g);
        progress_done(&g.progress, "collected garbage: %zu directories, %zu blobs reachable; %llu directories, "
                      "%llu blobs %s", g.dirs.count, g.blobs.count, (unsigned long long) g.stats.directories,
                      (unsigned long long) g.stats.blobs, g.dry_run ? "unreachable" : "removed");

        *ret_stats = g.stats;
        free(g.stack.v);
        free(g.dead.v);
        set_done(&g.dirs);
        set_done(&g.blobs);
        return r;
}
