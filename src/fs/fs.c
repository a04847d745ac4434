/* The read-only filesystem: an inode table keyed by content (identical
 * content shares one inode, whose number derives from the digest), lazy
 * Directory fetches, verified blob readers shared by an inode's handles,
 * and the operations of fs.h. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/hashmap.h"
#include "util/log.h"
#include "util/macro.h"

/* Content below the root never changes: the kernel may cache names and
 * attributes for as long as it likes.  Root names can be added, removed
 * or re-pointed at any time, so they are revalidated every second and
 * unknown root names are never cached. */
#define TIMEOUT_IMMUTABLE (365ULL * 24 * 3600)
#define TIMEOUT_ROOT_ENTRY 1
#define TIMEOUT_ROOT_ATTR 1

/* Times of everything but the root (like a Nix store: 1, not 0, so that
 * tools treating 0 as "unknown" still compare equal). */
#define FIXED_TIME 1

#define BLKSIZE 4096

/* What makes two nodes the same inode. */
struct node_key {
        uint8_t kind;                /* enum cas_node_kind */
        bool executable;             /* files */
        struct cas_digest digest;    /* dirs, files: the content digest; symlinks: BLAKE3(target) */
};

struct fs_inode {
        uint64_t ino;
        uint64_t key_hash;
        struct node_key key;
        uint64_t size;               /* files: bytes; dirs: recursive entry count; symlinks: target length */

        /* All of the following: fs->lock. */
        uint64_t nlookup;            /* references the kernel holds (lookup/readdirplus - forget) */
        uint32_t pins;               /* operations in progress using this inode */
        bool busy;                   /* a Directory fetch or blob open is in progress (fs->cond) */
        bool verified;               /* files: the blob was hashed and matched */
        struct cas_directory *dir;   /* dirs: once fetched; immutable, freed with the inode */
        struct cas_blob_reader *reader; /* files: while used, then idle in fs->idle_* */
        int backing_id;              /* files: passthrough id for reader, or -1 */
        uint32_t opens;              /* files: open handles */
        uint32_t reads;              /* files: fs_read calls using reader */
        bool idle;                   /* files: reader unused, on the idle list */
        struct fs_inode *idle_prev, *idle_next;

        uint16_t target_len;         /* symlinks */
        char target[];               /* symlinks: NUL-terminated */
};

/* A snapshot of the root listing, one per root opendir. */
struct root_snapshot {
        uint64_t fh;
        uint32_t refs;               /* fs->lock: the handle + readdirs in progress */
        size_t n;
        struct cas_node *nodes;      /* sorted by name, unique */
        void **mems;                 /* strings of nodes[i] */
};

/* A blob file that hashed to its digest, identified so that a replaced or
 * modified file is hashed again. */
struct verified_file {
        struct cas_digest digest;
        dev_t dev;
        ino_t ino;
        uint64_t size;
        int64_t mtime_ns, ctime_ns;
};

/* Lock order: fs->lock is the only lock; it is never held across a
 * service call (fetch, open, verify), a callback into the front end, or
 * anything that can block for long. */
struct fs {
        struct cas_blob_service *blobs;
        struct cas_dir_service *dirs;
        struct fs_config cfg;        /* roots array owned */
        const struct fs_backing_ops *backing; /* set at INIT, read-only afterwards */
        void *backing_ctx;
        bool backing_failed;         /* fs->lock: stop trying after a refusal */
        uint64_t start_time;

        pthread_mutex_t lock;
        pthread_cond_t cond;         /* signalled when an inode's busy flag clears */
        struct hashmap by_ino;       /* fs->lock: ino -> struct fs_inode */
        struct hashmap by_key;       /* fs->lock: node_key -> struct fs_inode */
        struct hashmap snapshots;    /* fs->lock: fh -> struct root_snapshot */
        uint64_t next_fh;            /* fs->lock */
        struct fs_inode *root;       /* not in the tables, never freed before fs_free */
        struct fs_inode *idle_head, *idle_tail; /* fs->lock: idle readers, least recently used first */
        size_t n_idle;               /* fs->lock */
        struct hashmap verified;     /* fs->lock: digest -> struct verified_file */
        struct fs_stats stats;       /* fs->lock */
};

/* Readers kept open after their last use, so that reopening a file costs
 * no open(2) (and no new passthrough registration); fs_config.idle_readers
 * overrides it. */
#define IDLE_READERS_DEFAULT 1024
/* Blob files remembered as verified beyond their inodes' lifetime. */
#define VERIFIED_MAX 262144

static bool ino_eq(const void *entry, const void *key) {
        return ((const struct fs_inode *) entry)->ino == *(const uint64_t *) key;
}

static bool key_eq(const void *entry, const void *key) {
        const struct fs_inode *in = entry;
        const struct node_key *k = key;
        return in->key.kind == k->kind && in->key.executable == k->executable &&
               cas_digest_equal(&in->key.digest, &k->digest);
}

static bool verified_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct verified_file *) entry)->digest, key);
}

static bool free_verified(void *entry, void *userdata) {
        free(entry);
        return true;
}

static bool fh_eq(const void *entry, const void *key) {
        return ((const struct root_snapshot *) entry)->fh == *(const uint64_t *) key;
}

static uint64_t le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

static uint64_t key_hash(const struct node_key *k) {
        return hash_u64(le64(k->digest.b) ^ ((uint64_t) k->kind << 1 | k->executable));
}

/* The inode number content gets when nothing collides with it: 64 bits
 * of its digest, mixed with the kind so that an empty file and an empty
 * directory (same digest) differ.  Stable across forgets and mounts. */
static uint64_t ino_candidate(const struct node_key *k) {
        return le64(k->digest.b + 8) ^ hash_u64((uint64_t) k->kind << 1 | k->executable);
}

static uint64_t ino_next(uint64_t ino) {
        return hash_u64(ino + 0x9e3779b97f4a7c15ULL);
}

static bool ino_reserved(uint64_t ino) {
        return ino <= FS_ROOT_INO || ino == UINT64_MAX;
}

static void node_key_of(const struct cas_node *n, struct node_key *ret) {
        *ret = (struct node_key){ .kind = n->kind };
        if (n->kind == CAS_NODE_SYMLINK)
                cas_digest_of(n->target, n->target_len, &ret->digest);
        else {
                ret->digest = n->digest;
                ret->executable = n->kind == CAS_NODE_FILE && n->executable;
        }
}

/* The number this key has or would get now.  fs->lock held. */
static uint64_t ino_for_key_locked(struct fs *fs, const struct node_key *k, uint64_t h) {
        struct fs_inode *in = hashmap_get(&fs->by_key, h, k);
        uint64_t ino;

        if (in)
                return in->ino;
        for (ino = ino_candidate(k); ino_reserved(ino) || hashmap_get(&fs->by_ino, hash_u64(ino), &ino);
             ino = ino_next(ino))
                ;
        return ino;
}

/* Finds or creates the inode for node n (key k precomputed) and counts
 * one kernel reference if count.  fs->lock held. */
static int inode_for_node_locked(struct fs *fs, const struct cas_node *n, const struct node_key *k,
                                 struct fs_inode **ret) {
        uint64_t h = key_hash(k);
        struct fs_inode *in = hashmap_get(&fs->by_key, h, k);
        int r;

        if (in) {
                *ret = in;
                return 0;
        }
        size_t extra = n->kind == CAS_NODE_SYMLINK ? n->target_len + 1u : 0;
        in = calloc(1, sizeof(*in) + extra);
        if (!in)
                return -ENOMEM;
        in->ino = ino_for_key_locked(fs, k, h);
        in->key = *k;
        in->key_hash = h;
        in->backing_id = -1;
        if (n->kind == CAS_NODE_SYMLINK) {
                memcpy(in->target, n->target, n->target_len);
                in->target[n->target_len] = 0;
                in->target_len = n->target_len;
                in->size = n->target_len;
        } else
                in->size = n->size;
        r = hashmap_put(&fs->by_ino, hash_u64(in->ino), in);
        if (r < 0) {
                free(in);
                return r;
        }
        r = hashmap_put(&fs->by_key, h, in);
        if (r < 0) {
                hashmap_remove(&fs->by_ino, hash_u64(in->ino), &in->ino);
                free(in);
                return r;
        }
        fs->stats.inodes++;
        *ret = in;
        return 0;
}

static struct fs_inode *inode_get_locked(struct fs *fs, uint64_t ino) {
        if (ino == FS_ROOT_INO)
                return fs->root;
        return hashmap_get(&fs->by_ino, hash_u64(ino), &ino);
}

/* Unlinks in if nothing refers to it any more; returns it for freeing
 * after the lock is dropped, else NULL.  fs->lock held. */
static void idle_remove_locked(struct fs *fs, struct fs_inode *in) {
        if (!in->idle)
                return;
        if (in->idle_prev)
                in->idle_prev->idle_next = in->idle_next;
        else
                fs->idle_head = in->idle_next;
        if (in->idle_next)
                in->idle_next->idle_prev = in->idle_prev;
        else
                fs->idle_tail = in->idle_prev;
        in->idle_prev = in->idle_next = NULL;
        in->idle = false;
        fs->n_idle--;
}

static struct fs_inode *inode_release_locked(struct fs *fs, struct fs_inode *in) {
        if (in == fs->root || in->nlookup > 0 || in->pins > 0 || in->busy || in->opens > 0 || in->reads > 0)
                return NULL;
        idle_remove_locked(fs, in);
        if (in->reader)
                fs->stats.open_files--;
        hashmap_remove(&fs->by_ino, hash_u64(in->ino), &in->ino);
        hashmap_remove(&fs->by_key, in->key_hash, &in->key);
        fs->stats.inodes--;
        if (in->dir)
                fs->stats.dirs_loaded--;
        return in;
}

/* Frees an unlinked inode; fs->lock not held (closing may be a syscall). */
static void inode_free(struct fs *fs, struct fs_inode *in) {
        if (!in)
                return;
        cas_directory_free(in->dir);
        if (in->backing_id >= 0 && fs->backing)
                fs->backing->close(fs->backing_ctx, in->backing_id);
        if (in->reader)
                cas_blob_reader_close(in->reader);
        free(in);
}

/* Pins the inode numbered ino for the duration of an operation. */
static int inode_pin(struct fs *fs, uint64_t ino, struct fs_inode **ret) {
        struct fs_inode *in;

        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (in)
                in->pins++;
        pthread_mutex_unlock(&fs->lock);
        if (!in)
                return -ESTALE;
        *ret = in;
        return 0;
}

static void inode_unpin(struct fs *fs, struct fs_inode *in) {
        struct fs_inode *dead;

        pthread_mutex_lock(&fs->lock);
        in->pins--;
        dead = inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        inode_free(fs, dead);
}

static uint32_t inode_mode(const struct fs_inode *in) {
        switch (in->key.kind) {
        case CAS_NODE_DIRECTORY:
                return S_IFDIR | 0555;
        case CAS_NODE_FILE:
                return S_IFREG | (in->key.executable ? 0555 : 0444);
        default:
                return S_IFLNK | 0444;
        }
}

static uint32_t node_mode(const struct cas_node *n) {
        switch (n->kind) {
        case CAS_NODE_DIRECTORY:
                return S_IFDIR | 0555;
        case CAS_NODE_FILE:
                return S_IFREG | (n->executable ? 0555 : 0444);
        default:
                return S_IFLNK | 0444;
        }
}

static void attr_fill(const struct fs *fs, const struct fs_inode *in, struct fs_attr *a) {
        *a = (struct fs_attr){
                .ino = in->ino,
                .size = in->size,
                .mode = inode_mode(in),
                /* 1 for directories too: the subdirectory count is not known
                 * before the Directory is fetched, and 1 tells tools not to
                 * rely on it (as btrfs does). */
                .nlink = 1,
                .uid = fs->cfg.uid,
                .gid = fs->cfg.gid,
                .blksize = BLKSIZE,
                .time = FIXED_TIME,
        };
        if (in->key.kind == CAS_NODE_FILE)
                a->blocks = (in->size + 511) / 512;
}

static void entry_fill(const struct fs *fs, const struct fs_inode *in, bool at_root, struct fs_entry *e) {
        *e = (struct fs_entry){
                .ino = in->ino,
                .entry_valid = { at_root ? TIMEOUT_ROOT_ENTRY : TIMEOUT_IMMUTABLE, 0 },
                .attr_valid = { TIMEOUT_IMMUTABLE, 0 },
        };
        attr_fill(fs, in, &e->attr);
}

/* --- root providers --- */

static int root_service_lookup(void *ctx, const char *name, size_t len, struct cas_node *ret, void **ret_mem) {
        return cas_root_get(ctx, name, len, ret, ret_mem);
}

static int root_service_list(void *ctx, fs_root_list_cb cb, void *userdata) {
        return cas_root_list(ctx, cb, userdata);
}

const struct fs_root_ops fs_root_service_ops = {
        .name = "named roots",
        .lookup = root_service_lookup,
        .list = root_service_list,
};

struct snapshot_builder {
        struct cas_node *nodes;
        void **mems;
        uint32_t *origin;
        size_t n, cap;
        uint32_t provider;
};

static int snapshot_add(void *userdata, const struct cas_node *n) {
        struct snapshot_builder *b = userdata;
        int r;

        if (cas_node_check(n, 0) != CAS_VERR_NONE)
                return 0; /* a provider's bad node: not shown */
        if (b->n == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 64;
                struct cas_node *nodes = realloc(b->nodes, cap * sizeof(*nodes));
                if (!nodes)
                        return -ENOMEM;
                b->nodes = nodes;
                void **mems = realloc(b->mems, cap * sizeof(*mems));
                if (!mems)
                        return -ENOMEM;
                b->mems = mems;
                uint32_t *origin = realloc(b->origin, cap * sizeof(*origin));
                if (!origin)
                        return -ENOMEM;
                b->origin = origin;
                b->cap = cap;
        }
        r = cas_node_copy(n, &b->nodes[b->n], &b->mems[b->n]);
        if (r < 0)
                return r;
        b->origin[b->n++] = b->provider;
        return 0;
}

struct sort_item {
        struct cas_node node;
        void *mem;
        uint32_t origin;
};

static int sort_item_cmp(const void *a, const void *b) {
        const struct sort_item *x = a, *y = b;
        int c = cas_name_compare(x->node.name, x->node.name_len, y->node.name, y->node.name_len);
        if (c != 0)
                return c;
        return x->origin < y->origin ? -1 : x->origin > y->origin;
}

static void snapshot_free(struct root_snapshot *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                free(s->mems[i]);
        free(s->nodes);
        free(s->mems);
        free(s);
}

/* Lists all providers into one sorted, duplicate-free snapshot. */
static int snapshot_take(struct fs *fs, struct root_snapshot **ret) {
        struct snapshot_builder b = {};
        _cleanup_free_ struct sort_item *items = NULL;
        struct root_snapshot *s;
        int r = 0;

        for (size_t p = 0; p < fs->cfg.n_roots && r >= 0; p++) {
                const struct fs_root_provider *rp = &fs->cfg.roots[p];
                b.provider = p;
                if (rp->ops->list)
                        r = rp->ops->list(rp->ctx, snapshot_add, &b);
        }
        if (r >= 0 && b.n > 0 && !(items = malloc(b.n * sizeof(*items))))
                r = -ENOMEM;
        if (r < 0) {
                for (size_t i = 0; i < b.n; i++)
                        free(b.mems[i]);
                free(b.nodes);
                free(b.mems);
                free(b.origin);
                return r;
        }
        for (size_t i = 0; i < b.n; i++)
                items[i] = (struct sort_item){ b.nodes[i], b.mems[i], b.origin[i] };
        if (b.n > 1)
                qsort(items, b.n, sizeof(*items), sort_item_cmp);
        size_t m = 0;
        for (size_t i = 0; i < b.n; i++) {
                if (m > 0 && cas_name_compare(items[i].node.name, items[i].node.name_len, b.nodes[m - 1].name,
                                              b.nodes[m - 1].name_len) == 0) {
                        free(items[i].mem); /* a later provider's duplicate */
                        continue;
                }
                b.nodes[m] = items[i].node;
                b.mems[m] = items[i].mem;
                m++;
        }
        free(b.origin);
        s = calloc(1, sizeof(*s));
        if (!s) {
                for (size_t i = 0; i < m; i++)
                        free(b.mems[i]);
                free(b.nodes);
                free(b.mems);
                return -ENOMEM;
        }
        s->n = m;
        s->nodes = b.nodes;
        s->mems = b.mems;
        *ret = s;
        return 0;
}

static int count_one(void *userdata, const struct cas_node *n) {
        (*(uint64_t *) userdata)++;
        return 0;
}

/* The root's size: the number of roots when listing is allowed (with one
 * provider; duplicates across providers are not subtracted), else 0. */
static uint64_t root_count(struct fs *fs) {
        uint64_t n = 0;

        if (!fs->cfg.list_root)
                return 0;
        for (size_t p = 0; p < fs->cfg.n_roots; p++)
                if (fs->cfg.roots[p].ops->list)
                        (void) fs->cfg.roots[p].ops->list(fs->cfg.roots[p].ctx, count_one, &n);
        return n;
}

/* --- life cycle --- */

int fs_new(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct fs_config *cfg,
           struct fs **ret) {
        struct fs *fs;
        struct timespec ts;

        if (!blobs || !dirs || !cfg || !ret || (cfg->n_roots > 0 && !cfg->roots))
                return -EINVAL;
        for (size_t i = 0; i < cfg->n_roots; i++)
                if (!cfg->roots[i].ops || !cfg->roots[i].ops->lookup)
                        return -EINVAL;
        fs = calloc(1, sizeof(*fs));
        if (!fs)
                return -ENOMEM;
        fs->blobs = blobs;
        fs->dirs = dirs;
        fs->cfg = *cfg;
        if (fs->cfg.idle_readers == 0)
                fs->cfg.idle_readers = IDLE_READERS_DEFAULT;
        if (cfg->n_roots > 0) {
                struct fs_root_provider *roots = malloc(cfg->n_roots * sizeof(*roots));
                if (!roots) {
                        free(fs);
                        return -ENOMEM;
                }
                memcpy(roots, cfg->roots, cfg->n_roots * sizeof(*roots));
                fs->cfg.roots = roots;
        } else
                fs->cfg.roots = NULL;
        clock_gettime(CLOCK_REALTIME, &ts);
        fs->start_time = ts.tv_sec;
        pthread_mutex_init(&fs->lock, NULL);
        pthread_cond_init(&fs->cond, NULL);
        hashmap_init(&fs->by_ino, ino_eq);
        hashmap_init(&fs->by_key, key_eq);
        hashmap_init(&fs->snapshots, fh_eq);
        hashmap_init(&fs->verified, verified_eq);
        fs->next_fh = 1;
        fs->root = calloc(1, sizeof(*fs->root));
        if (!fs->root) {
                free((void *) fs->cfg.roots);
                free(fs);
                return -ENOMEM;
        }
        *fs->root = (struct fs_inode){ .ino = FS_ROOT_INO, .key = { .kind = CAS_NODE_DIRECTORY }, .backing_id = -1 };
        fs->stats.inodes = 1;
        *ret = fs;
        return 0;
}

static bool collect_inode(void *entry, void *userdata) {
        struct fs_inode ***p = userdata;
        *(*p)++ = entry;
        return true;
}

static bool collect_snapshot(void *entry, void *userdata) {
        struct root_snapshot ***p = userdata;
        *(*p)++ = entry;
        return true;
}

void fs_free(struct fs *fs) {
        if (!fs)
                return;
        /* no operation may be running any more */
        struct fs_inode **all = malloc((fs->by_ino.count + 1) * sizeof(*all)), **p = all;
        if (all) {
                hashmap_foreach(&fs->by_ino, collect_inode, &p);
                for (struct fs_inode **i = all; i < p; i++)
                        inode_free(fs, *i);
                free(all);
        }
        struct root_snapshot **snaps = malloc((fs->snapshots.count + 1) * sizeof(*snaps)), **q = snaps;
        if (snaps) {
                hashmap_foreach(&fs->snapshots, collect_snapshot, &q);
                for (struct root_snapshot **i = snaps; i < q; i++)
                        snapshot_free(*i);
                free(snaps);
        }
        hashmap_done(&fs->by_ino);
        hashmap_done(&fs->by_key);
        hashmap_done(&fs->snapshots);
        hashmap_foreach(&fs->verified, free_verified, NULL);
        hashmap_done(&fs->verified);
        pthread_mutex_destroy(&fs->lock);
        pthread_cond_destroy(&fs->cond);
        free((void *) fs->cfg.roots);
        free(fs->root);
        free(fs);
}

void fs_set_backing(struct fs *fs, const struct fs_backing_ops *ops, void *ctx) {
        pthread_mutex_lock(&fs->lock);
        fs->backing = ops;
        fs->backing_ctx = ctx;
        fs->backing_failed = false;
        pthread_mutex_unlock(&fs->lock);
}

void fs_forget_all(struct fs *fs) {
        struct fs_inode **all, **p;

        pthread_mutex_lock(&fs->lock);
        all = malloc((fs->by_ino.count + 1) * sizeof(*all));
        if (!all) {
                pthread_mutex_unlock(&fs->lock);
                return;
        }
        p = all;
        hashmap_foreach(&fs->by_ino, collect_inode, &p);
        struct fs_inode **dead = all;
        for (struct fs_inode **i = all; i < p; i++) {
                (*i)->nlookup = 0;
                (*i)->opens = 0; /* handles of the old kernel: never released */
                struct fs_inode *d = inode_release_locked(fs, *i);
                if (d)
                        *dead++ = d;
        }
        /* root listing snapshots of the old kernel's directory handles */
        struct root_snapshot **snaps = malloc((fs->snapshots.count + 1) * sizeof(*snaps)), **q = snaps, **gone = snaps;
        if (snaps) {
                hashmap_foreach(&fs->snapshots, collect_snapshot, &q);
                for (struct root_snapshot **i = snaps; i < q; i++) {
                        hashmap_remove(&fs->snapshots, hash_u64((*i)->fh), &(*i)->fh);
                        if (--(*i)->refs == 0)
                                *gone++ = *i;
                }
        }
        pthread_mutex_unlock(&fs->lock);
        for (struct fs_inode **i = all; i < dead; i++)
                inode_free(fs, *i);
        for (struct root_snapshot **i = snaps; i < gone; i++)
                snapshot_free(*i);
        free(snaps);
        free(all);
}

void fs_get_stats(struct fs *fs, struct fs_stats *ret) {
        pthread_mutex_lock(&fs->lock);
        *ret = fs->stats;
        pthread_mutex_unlock(&fs->lock);
}

/* --- directories --- */

/* The Directory of a pinned directory inode, fetched on first use.  One
 * fetch per inode however many threads ask at once; the lock is not held
 * while fetching.  Failures are not remembered (a later attempt retries). */
static int dir_get(struct fs *fs, struct fs_inode *in, const struct cas_directory **ret) {
        struct cas_directory *d = NULL;
        int r;

        pthread_mutex_lock(&fs->lock);
        while (!in->dir && in->busy)
                pthread_cond_wait(&fs->cond, &fs->lock);
        if (in->dir) {
                *ret = in->dir;
                pthread_mutex_unlock(&fs->lock);
                return 0;
        }
        in->busy = true;
        pthread_mutex_unlock(&fs->lock);

        r = cas_dir_get(fs->dirs, &in->key.digest, &d);
        if (r >= 0 && !cas_digest_equal(&d->digest, &in->key.digest)) {
                cas_directory_free(d);
                r = -EBADMSG;
        }

        pthread_mutex_lock(&fs->lock);
        in->busy = false;
        fs->stats.dir_fetches++;
        if (r >= 0) {
                in->dir = d;
                fs->stats.dirs_loaded++;
        }
        pthread_cond_broadcast(&fs->cond);
        pthread_mutex_unlock(&fs->lock);
        if (r < 0)
                return log_warning_errno(-EIO, "Directory %s: %s", CAS_DIGEST_B3(&in->key.digest),
                                         r == -ENOENT ? "not in the store" : strerror(-r));
        *ret = d;
        return 0;
}

struct pin_guard {
        struct fs *fs;
        struct fs_inode *in;
};

static void pin_guard_release(struct pin_guard *g) {
        if (g->in)
                inode_unpin(g->fs, g->in);
}
#define _cleanup_unpin_ _cleanup_(pin_guard_release)

/* --- operations --- */

static int root_lookup(struct fs *fs, const char *name, size_t len, struct fs_entry *ret) {
        struct cas_node n;
        _cleanup_free_ void *mem = NULL;
        struct node_key k;
        struct fs_inode *in;
        int r = -ENOENT;

        if (cas_name_check(name, len) != CAS_VERR_NONE)
                return -ENOENT;
        for (size_t p = 0; p < fs->cfg.n_roots; p++) {
                const struct fs_root_provider *rp = &fs->cfg.roots[p];
                r = rp->ops->lookup(rp->ctx, name, len, &n, &mem);
                if (r != -ENOENT)
                        break;
        }
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return log_warning_errno(-EIO, "Root lookup failed: %s", strerror(-r));
        /* the provider must answer for exactly this name */
        if (n.name_len != len || memcmp(n.name, name, len) != 0 || cas_node_check(&n, 0) != CAS_VERR_NONE)
                return -ENOENT;
        node_key_of(&n, &k);
        pthread_mutex_lock(&fs->lock);
        r = inode_for_node_locked(fs, &n, &k, &in);
        if (r >= 0) {
                in->nlookup++;
                entry_fill(fs, in, true, ret);
        }
        pthread_mutex_unlock(&fs->lock);
        return r;
}

int fs_lookup(struct fs *fs, uint64_t parent, const char *name, size_t len, struct fs_entry *ret) {
        _cleanup_unpin_ struct pin_guard g = { fs, NULL };
        const struct cas_directory *d;
        const struct cas_node *n;
        struct node_key k;
        struct fs_inode *in;
        int r;

        if (!fs || !name || !ret)
                return -EINVAL;
        if (parent == FS_ROOT_INO)
                return root_lookup(fs, name, len, ret);
        r = inode_pin(fs, parent, &g.in);
        if (r < 0)
                return r;
        if (g.in->key.kind != CAS_NODE_DIRECTORY)
                return -ENOTDIR;
        if (len > CAS_NAME_MAX)
                return -ENAMETOOLONG;
        r = dir_get(fs, g.in, &d);
        if (r < 0)
                return r;
        n = cas_directory_find(d, name, len);
        if (!n) {
                /* immutable directory: the name stays absent */
                *ret = (struct fs_entry){ .ino = 0, .entry_valid = { TIMEOUT_IMMUTABLE, 0 } };
                return 0;
        }
        node_key_of(n, &k);
        pthread_mutex_lock(&fs->lock);
        r = inode_for_node_locked(fs, n, &k, &in);
        if (r >= 0) {
                in->nlookup++;
                entry_fill(fs, in, false, ret);
        }
        pthread_mutex_unlock(&fs->lock);
        return r;
}

void fs_forget(struct fs *fs, uint64_t ino, uint64_t n) {
        struct fs_inode *in, *dead = NULL;

        if (!fs || ino == FS_ROOT_INO)
                return;
        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (in) {
                in->nlookup = n >= in->nlookup ? 0 : in->nlookup - n;
                dead = inode_release_locked(fs, in);
        }
        pthread_mutex_unlock(&fs->lock);
        inode_free(fs, dead);
}

int fs_getattr(struct fs *fs, uint64_t ino, struct fs_attr *ret, struct fs_timeout *ret_valid) {
        struct fs_inode *in;

        if (!fs || !ret)
                return -EINVAL;
        if (ino == FS_ROOT_INO) {
                *ret = (struct fs_attr){
                        .ino = FS_ROOT_INO,
                        .size = root_count(fs),
                        .mode = S_IFDIR | 0555,
                        .nlink = 1,
                        .uid = fs->cfg.uid,
                        .gid = fs->cfg.gid,
                        .blksize = BLKSIZE,
                        .time = fs->start_time,
                };
                if (ret_valid)
                        *ret_valid = (struct fs_timeout){ TIMEOUT_ROOT_ATTR, 0 };
                return 0;
        }
        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (in)
                attr_fill(fs, in, ret);
        pthread_mutex_unlock(&fs->lock);
        if (!in)
                return -ESTALE;
        if (ret_valid)
                *ret_valid = (struct fs_timeout){ TIMEOUT_IMMUTABLE, 0 };
        return 0;
}

int fs_readlink(struct fs *fs, uint64_t ino, char *buf, size_t size) {
        struct fs_inode *in;
        int r;

        if (!fs || !buf)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (!in)
                r = -ESTALE;
        else if (in->key.kind != CAS_NODE_SYMLINK)
                r = -EINVAL;
        else if (in->target_len > size)
                r = -ERANGE;
        else {
                memcpy(buf, in->target, in->target_len);
                r = in->target_len;
        }
        pthread_mutex_unlock(&fs->lock);
        return r;
}

int fs_opendir(struct fs *fs, uint64_t ino, struct fs_open *ret) {
        _cleanup_unpin_ struct pin_guard g = { fs, NULL };
        const struct cas_directory *d;
        struct root_snapshot *s;
        int r;

        if (!fs || !ret)
                return -EINVAL;
        *ret = (struct fs_open){ .backing_id = -1 };
        if (ino == FS_ROOT_INO) {
                if (!fs->cfg.list_root)
                        return -EPERM;
                r = snapshot_take(fs, &s);
                if (r < 0)
                        return log_warning_errno(-EIO, "Listing roots failed: %s", strerror(-r));
                pthread_mutex_lock(&fs->lock);
                s->fh = fs->next_fh++;
                s->refs = 1;
                r = hashmap_put(&fs->snapshots, hash_u64(s->fh), s);
                pthread_mutex_unlock(&fs->lock);
                if (r < 0) {
                        snapshot_free(s);
                        return r;
                }
                ret->fh = s->fh;
                return 0;
        }
        r = inode_pin(fs, ino, &g.in);
        if (r < 0)
                return r;
        if (g.in->key.kind != CAS_NODE_DIRECTORY)
                return -ENOTDIR;
        /* fetch now: a missing Directory fails opendir rather than the first read */
        r = dir_get(fs, g.in, &d);
        if (r < 0)
                return r;
        ret->keep_cache = true;
        ret->cache_dir = true;
        return 0;
}

bool fs_backing_enabled(struct fs *fs) {
        bool on;

        pthread_mutex_lock(&fs->lock);
        on = fs->backing && !fs->backing_failed;
        pthread_mutex_unlock(&fs->lock);
        return on;
}

bool fs_dir_handles_needed(const struct fs *fs) {
        return fs->cfg.list_root;
}

static void snapshot_put(struct fs *fs, struct root_snapshot *s) {
        bool last;

        pthread_mutex_lock(&fs->lock);
        last = --s->refs == 0;
        pthread_mutex_unlock(&fs->lock);
        if (last)
                snapshot_free(s);
}

int fs_releasedir(struct fs *fs, uint64_t ino, uint64_t fh) {
        struct root_snapshot *s = NULL;
        bool last = false;

        if (!fs)
                return -EINVAL;
        if (ino != FS_ROOT_INO)
                return 0;
        pthread_mutex_lock(&fs->lock);
        s = hashmap_remove(&fs->snapshots, hash_u64(fh), &fh);
        if (s)
                last = --s->refs == 0;
        pthread_mutex_unlock(&fs->lock);
        if (!s)
                return -EBADF;
        if (last)
                snapshot_free(s);
        return 0;
}

/* Emits the entries nodes[off..n) through cb. */
static int readdir_nodes(struct fs *fs, const struct cas_node *nodes, size_t n, uint64_t off, bool plus,
                         bool at_root, fs_dirent_cb cb, void *userdata) {
        for (uint64_t i = off; i < n; i++) {
                const struct cas_node *c = &nodes[i];
                struct fs_entry e;
                struct node_key k;
                struct fs_inode *in;
                uint64_t ino;
                int r = 0;

                node_key_of(c, &k);
                pthread_mutex_lock(&fs->lock);
                if (plus) {
                        r = inode_for_node_locked(fs, c, &k, &in);
                        if (r >= 0) {
                                in->nlookup++;
                                entry_fill(fs, in, at_root, &e);
                        }
                        ino = r >= 0 ? in->ino : 0;
                } else
                        ino = ino_for_key_locked(fs, &k, key_hash(&k));
                pthread_mutex_unlock(&fs->lock);
                if (r < 0)
                        return r;
                r = cb(userdata, c->name, c->name_len, node_mode(c), ino, i + 1, plus ? &e : NULL);
                if (r <= 0) {
                        if (plus)
                                fs_forget(fs, ino, 1);
                        return r;
                }
        }
        return 0;
}

int fs_readdir(struct fs *fs, uint64_t ino, uint64_t fh, uint64_t off, bool plus, fs_dirent_cb cb,
               void *userdata) {
        _cleanup_unpin_ struct pin_guard g = { fs, NULL };
        const struct cas_directory *d;
        int r;

        if (!fs || !cb)
                return -EINVAL;
        if (ino == FS_ROOT_INO) {
                struct root_snapshot *s;

                if (!fs->cfg.list_root)
                        return -EPERM;
                pthread_mutex_lock(&fs->lock);
                s = hashmap_get(&fs->snapshots, hash_u64(fh), &fh);
                if (s)
                        s->refs++;
                pthread_mutex_unlock(&fs->lock);
                if (!s)
                        return -EBADF;
                r = off < s->n ? readdir_nodes(fs, s->nodes, s->n, off, plus, true, cb, userdata) : 0;
                snapshot_put(fs, s);
                return r < 0 ? r : 0;
        }
        r = inode_pin(fs, ino, &g.in);
        if (r < 0)
                return r;
        if (g.in->key.kind != CAS_NODE_DIRECTORY)
                return -ENOTDIR;
        r = dir_get(fs, g.in, &d);
        if (r < 0)
                return r;
        if (off >= d->n_entries)
                return 0;
        r = readdir_nodes(fs, d->entries, d->n_entries, off, plus, false, cb, userdata);
        return r < 0 ? r : 0;
}

/* --- files --- */

static bool verified_match(const struct verified_file *v, const struct stat *st) {
        return v->dev == st->st_dev && v->ino == st->st_ino && v->size == (uint64_t) st->st_size &&
               v->mtime_ns == timespec_ns(st->st_mtim) &&
               v->ctime_ns == timespec_ns(st->st_ctim);
}

/* Has this blob file been hashed before, unchanged since?  A file that
 * was rewritten or replaced has a new ctime or inode number. */
static bool verified_lookup(struct fs *fs, const struct cas_digest *d, const struct stat *st) {
        struct verified_file *v;
        bool hit;

        pthread_mutex_lock(&fs->lock);
        v = hashmap_get(&fs->verified, le64(d->b), d);
        hit = v && verified_match(v, st);
        pthread_mutex_unlock(&fs->lock);
        return hit;
}

static void verified_add(struct fs *fs, const struct cas_digest *d, const struct stat *st) {
        struct verified_file *v, *old;

        v = malloc(sizeof(*v));
        if (!v)
                return;
        *v = (struct verified_file){
                .digest = *d,
                .dev = st->st_dev,
                .ino = st->st_ino,
                .size = st->st_size,
                .mtime_ns = timespec_ns(st->st_mtim),
                .ctime_ns = timespec_ns(st->st_ctim),
        };
        pthread_mutex_lock(&fs->lock);
        old = hashmap_remove(&fs->verified, le64(d->b), d);
        if (!old && fs->verified.count >= VERIFIED_MAX) {
                /* bounded memory: start over (files are hashed again) */
                hashmap_foreach(&fs->verified, free_verified, NULL);
                hashmap_done(&fs->verified);
                hashmap_init(&fs->verified, verified_eq);
        }
        if (hashmap_put(&fs->verified, le64(d->b), v) < 0)
                free(TAKE_PTR(v));
        pthread_mutex_unlock(&fs->lock);
        free(old);
}

/* Opens the blob of a pinned file inode and checks it: hashed unless this
 * inode or an unchanged file of the same digest was hashed before.  With
 * want_backing, registers it for passthrough when that is enabled. */
static int file_open_reader(struct fs *fs, struct fs_inode *in, bool want_backing,
                            struct cas_blob_reader **ret_reader, int *ret_backing) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *reader = NULL;
        const struct fs_backing_ops *backing;
        bool verified, try_backing, have_stat = false;
        struct stat st;
        int r, id = -1;

        pthread_mutex_lock(&fs->lock);
        verified = in->verified;
        backing = fs->backing;
        try_backing = want_backing && backing && !fs->backing_failed;
        pthread_mutex_unlock(&fs->lock);

        r = cas_blob_open(fs->blobs, &in->key.digest, &reader);
        if (r < 0)
                return log_warning_errno(-EIO, "Blob %s: %s", CAS_DIGEST_B3(&in->key.digest),
                                         r == -ENOENT ? "not in the store" : strerror(-r));
        if (reader->size != in->size)
                return log_warning_errno(-EIO, "Blob %s has %llu bytes, its file node says %llu",
                                         CAS_DIGEST_B3(&in->key.digest), (unsigned long long) reader->size,
                                         (unsigned long long) in->size);
        if (reader->fd >= 0 && fstat(reader->fd, &st) == 0)
                have_stat = true;
        if (!verified && have_stat && verified_lookup(fs, &in->key.digest, &st))
                verified = true;
        if (!verified) {
                r = cas_blob_reader_verify(reader);
                pthread_mutex_lock(&fs->lock);
                fs->stats.blob_verifies++;
                pthread_mutex_unlock(&fs->lock);
                if (r < 0)
                        return log_warning_errno(-EIO, "Blob %s: %s", CAS_DIGEST_B3(&in->key.digest),
                                                 r == -EBADMSG ? "content does not match its digest"
                                                               : strerror(-r));
                if (have_stat)
                        verified_add(fs, &in->key.digest, &st);
        }
        if (try_backing && reader->fd >= 0) {
                id = backing->open(fs->backing_ctx, reader->fd);
                if (id < 0) {
                        pthread_mutex_lock(&fs->lock);
                        if (!fs->backing_failed)
                                log_warning("Passthrough refused (%s); serving reads through the daemon",
                                            strerror(-id));
                        fs->backing_failed = true;
                        pthread_mutex_unlock(&fs->lock);
                        id = -1;
                }
        }
        *ret_reader = TAKE_PTR(reader);
        *ret_backing = id;
        return 0;
}

/* Makes sure a pinned file inode has a reader, opening it without the
 * lock if needed (one opener, others wait).  Called and returns with
 * fs->lock held; the reader is off the idle list on success. */
static int reader_get_locked(struct fs *fs, struct fs_inode *in, bool want_backing) {
        struct cas_blob_reader *reader = NULL;
        int r, id = -1;

        while (!in->reader && in->busy)
                pthread_cond_wait(&fs->cond, &fs->lock);
        if (in->reader) {
                idle_remove_locked(fs, in);
                return 0;
        }
        in->busy = true;
        pthread_mutex_unlock(&fs->lock);
        r = file_open_reader(fs, in, want_backing, &reader, &id);
        pthread_mutex_lock(&fs->lock);
        in->busy = false;
        if (r >= 0) {
                in->reader = reader;
                in->backing_id = id;
                in->verified = true;
                fs->stats.open_files++;
        }
        pthread_cond_broadcast(&fs->cond);
        return r;
}

/* The reader of in is no longer used by anyone: it goes to the idle list;
 * returns the least recently used idle inode whose reader must be closed
 * (after the lock is dropped, with reader_close), or NULL.  fs->lock held. */
static struct fs_inode *reader_unused_locked(struct fs *fs, struct fs_inode *in,
                                             struct cas_blob_reader **ret_reader, int *ret_backing) {
        struct fs_inode *victim;

        *ret_reader = NULL;
        *ret_backing = -1;
        if (in->opens > 0 || in->reads > 0 || !in->reader || in->idle)
                return NULL;
        in->idle = true;
        in->idle_prev = fs->idle_tail;
        in->idle_next = NULL;
        if (fs->idle_tail)
                fs->idle_tail->idle_next = in;
        else
                fs->idle_head = in;
        fs->idle_tail = in;
        fs->n_idle++;
        if (fs->n_idle <= fs->cfg.idle_readers)
                return NULL;
        victim = fs->idle_head;
        idle_remove_locked(fs, victim);
        *ret_reader = TAKE_PTR(victim->reader);
        *ret_backing = victim->backing_id;
        victim->backing_id = -1;
        /* What was hashed is the file this reader had open; the next reader
         * may open another one (the blob file replaced meanwhile), which
         * the verified-file cache recognises by its stat if unchanged. */
        victim->verified = false;
        fs->stats.open_files--;
        return victim;
}

static void reader_close(struct fs *fs, struct cas_blob_reader *reader, int backing_id) {
        if (backing_id >= 0 && fs->backing)
                fs->backing->close(fs->backing_ctx, backing_id);
        cas_blob_reader_close(reader);
}

int fs_open(struct fs *fs, uint64_t ino, int flags, struct fs_open *ret) {
        struct fs_inode *in, *dead;
        int r;

        if (!fs || !ret)
                return -EINVAL;
        *ret = (struct fs_open){ .backing_id = -1 };
        if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT)))
                return -EROFS;
        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (!in) {
                pthread_mutex_unlock(&fs->lock);
                return -ESTALE;
        }
        if (in->key.kind != CAS_NODE_FILE) {
                pthread_mutex_unlock(&fs->lock);
                return in->key.kind == CAS_NODE_DIRECTORY ? -EISDIR : -ELOOP;
        }
        in->pins++;
        r = reader_get_locked(fs, in, true);
        if (r >= 0) {
                in->opens++;
                ret->fh = in->ino;
                ret->keep_cache = true;
                ret->backing_id = in->backing_id;
        }
        in->pins--;
        dead = inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        inode_free(fs, dead);
        return r;
}

int fs_release(struct fs *fs, uint64_t ino, uint64_t fh) {
        struct cas_blob_reader *reader = NULL;
        struct fs_inode *in, *dead = NULL;
        int r = 0, id = -1;

        if (!fs)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (!in || in->key.kind != CAS_NODE_FILE || in->opens == 0 || fh != in->ino)
                r = -EBADF;
        else {
                in->opens--;
                reader_unused_locked(fs, in, &reader, &id);
                dead = inode_release_locked(fs, in);
        }
        pthread_mutex_unlock(&fs->lock);
        if (reader)
                reader_close(fs, reader, id);
        inode_free(fs, dead);
        return r;
}

/* Ends one use of in's reader counted by fs_read: the reader goes idle if
 * nothing else uses it, the inode goes if nothing refers to it. */
static void read_end(struct fs *fs, struct fs_inode *in) {
        struct cas_blob_reader *to_close;
        struct fs_inode *dead;
        int id;

        pthread_mutex_lock(&fs->lock);
        in->reads--;
        reader_unused_locked(fs, in, &to_close, &id);
        dead = inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        if (to_close)
                reader_close(fs, to_close, id);
        inode_free(fs, dead);
}

int fs_read(struct fs *fs, uint64_t ino, uint64_t fh, uint64_t off, size_t size, void *buf,
            struct fs_read_result *ret) {
        struct cas_blob_reader *reader;
        struct fs_inode *in, *dead;
        int r = 0;

        if (!fs || !ret || (size > 0 && !buf))
                return -EINVAL;
        *ret = (struct fs_read_result){ .fd = -1 };
        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        /* fh 0: a front end that does not open files (zero-message open);
         * the blob is then opened and checked on the first read */
        if (!in || in->key.kind != CAS_NODE_FILE || (fh != 0 && (fh != in->ino || in->opens == 0))) {
                pthread_mutex_unlock(&fs->lock);
                return -EBADF;
        }
        in->pins++;
        r = reader_get_locked(fs, in, false);
        in->pins--;
        if (r < 0) {
                dead = inode_release_locked(fs, in);
                pthread_mutex_unlock(&fs->lock);
                inode_free(fs, dead);
                return r;
        }
        in->reads++;
        reader = in->reader;
        pthread_mutex_unlock(&fs->lock);

        if (off < reader->size && size > 0) {
                size_t len = (size_t) MIN((uint64_t) size, reader->size - off);
                if (reader->fd >= 0) {
                        ret->fd = reader->fd;
                        ret->off = off;
                        ret->len = len;
                } else {
                        ssize_t n = cas_blob_pread(reader, buf, len, off);
                        if (n < 0 || (size_t) n != len)
                                r = log_warning_errno(-EIO, "Reading blob %s failed: %s",
                                                      CAS_DIGEST_B3(&in->key.digest),
                                                      n < 0 ? strerror((int) -n) : "short read");
                        else
                                ret->len = len;
                }
        }

        if (ret->fd >= 0) {
                /* the caller reads from the descriptor after we return: the
                 * reader stays in use (not idle, so never closed) until
                 * fs_read_done */
                ret->hold = in;
                return 0;
        }
        read_end(fs, in);
        return r;
}

void fs_read_done(struct fs *fs, struct fs_read_result *res) {
        if (!fs || !res || !res->hold)
                return;
        read_end(fs, TAKE_PTR(res->hold));
}

int fs_statfs(struct fs *fs, uint64_t ino, struct fs_statfs *ret) {
        if (!fs || !ret)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        *ret = (struct fs_statfs){
                .bsize = BLKSIZE,
                .frsize = BLKSIZE,
                .namelen = CAS_NAME_MAX,
                .files = fs->stats.inodes,
        };
        pthread_mutex_unlock(&fs->lock);
        return 0;
}

/* The one xattr an inode has: its name and value, or false. */
static bool xattr_of(const struct fs_inode *in, const char **ret_name, char value[static CAS_DIGEST_B3_LEN + 1]) {
        if (in->ino == FS_ROOT_INO)
                return false;
        if (in->key.kind == CAS_NODE_FILE)
                *ret_name = FS_XATTR_BLOB_DIGEST;
        else if (in->key.kind == CAS_NODE_DIRECTORY)
                *ret_name = FS_XATTR_DIRECTORY_DIGEST;
        else
                return false;
        cas_digest_to_b3(&in->key.digest, value);
        return true;
}

static int xattr_lookup(struct fs *fs, uint64_t ino, const char **ret_name, char *value, bool *ret_has) {
        struct fs_inode *in;

        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (in)
                *ret_has = xattr_of(in, ret_name, value);
        pthread_mutex_unlock(&fs->lock);
        return in ? 0 : -ESTALE;
}

ssize_t fs_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf, size_t size) {
        char value[CAS_DIGEST_B3_LEN + 1];
        const char *xname = NULL;
        bool has = false;
        int r;

        if (!fs || !name || (size > 0 && !buf))
                return -EINVAL;
        r = xattr_lookup(fs, ino, &xname, value, &has);
        if (r < 0)
                return r;
        if (!has || strcmp(name, xname) != 0)
                return -ENODATA;
        if (size == 0)
                return CAS_DIGEST_B3_LEN;
        if (size < CAS_DIGEST_B3_LEN)
                return -ERANGE;
        memcpy(buf, value, CAS_DIGEST_B3_LEN);
        return CAS_DIGEST_B3_LEN;
}

ssize_t fs_listxattr(struct fs *fs, uint64_t ino, void *buf, size_t size) {
        char value[CAS_DIGEST_B3_LEN + 1];
        const char *xname = NULL;
        bool has = false;
        size_t len;
        int r;

        if (!fs || (size > 0 && !buf))
                return -EINVAL;
        r = xattr_lookup(fs, ino, &xname, value, &has);
        if (r < 0)
                return r;
        if (!has)
                return 0;
        len = strlen(xname) + 1;
        if (size == 0)
                return len;
        if (size < len)
                return -ERANGE;
        memcpy(buf, xname, len);
        return len;
}

int fs_access(struct fs *fs, uint64_t ino, int mask) {
        struct fs_inode *in;
        int r = 0;

        if (!fs)
                return -EINVAL;
        if (mask & W_OK)
                return -EROFS;
        pthread_mutex_lock(&fs->lock);
        in = inode_get_locked(fs, ino);
        if (!in)
                r = -ESTALE;
        else if ((mask & X_OK) && in->key.kind == CAS_NODE_FILE && !in->key.executable)
                r = -EACCES;
        pthread_mutex_unlock(&fs->lock);
        return r;
}
