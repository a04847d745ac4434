/* The filesystem's life cycle: creating and freeing it, the start of a
 * kernel session (forgetting what the previous kernel knew, the backing
 * ops for passthrough), and statistics. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fs_internal.h"

static bool fh_eq(const void *entry, const void *key) {
        return ((const struct root_snapshot *) entry)->fh == *(const uint64_t *) key;
}

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
        if (fs->cfg.dir_cache_entries == 0)
                fs->cfg.dir_cache_entries = DIR_CACHE_ENTRIES_DEFAULT;
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
        fs_inodes_init(fs);
        hashmap_init(&fs->snapshots, fh_eq);
        fs->next_fh = 1;
        fs->root = calloc(1, sizeof(*fs->root));
        if (!fs->root) {
                free((void *) fs->cfg.roots);
                free(fs);
                return -ENOMEM;
        }
        *fs->root = (struct fs_inode){ .ino = FS_ROOT_INO, .key = { .kind = CAS_NODE_DIRECTORY } };
        fs->stats.inodes = 1;
        *ret = fs;
        return 0;
}

static bool collect_inode(struct fs_inode *in, void *userdata) {
        struct fs_inode ***p = userdata;
        *(*p)++ = in;
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
        fs_inodes_done(fs);
        struct root_snapshot **snaps = malloc((fs->snapshots.count + 1) * sizeof(*snaps)), **q = snaps;
        if (snaps) {
                hashmap_foreach(&fs->snapshots, collect_snapshot, &q);
                for (struct root_snapshot **i = snaps; i < q; i++)
                        fs_root_snapshot_free(*i);
                free(snaps);
        }
        hashmap_done(&fs->snapshots);
        pthread_mutex_destroy(&fs->lock);
        pthread_cond_destroy(&fs->cond);
        free((void *) fs->cfg.roots);
        free(fs->root);
        free(fs);
}

/* --- sessions --- */

void fs_set_backing(struct fs *fs, const struct fs_backing_ops *ops, void *ctx) {
        pthread_mutex_lock(&fs->lock);
        fs->backing = ops;
        fs->backing_ctx = ops ? ctx : NULL;
        pthread_mutex_unlock(&fs->lock);
}

void fs_session_reset(struct fs *fs) {
        struct fs_inode **all, **p;

        pthread_mutex_lock(&fs->lock);
        all = malloc((fs->by_ino.count + 1) * sizeof(*all));
        if (!all) {
                pthread_mutex_unlock(&fs->lock);
                fs_set_backing(fs, NULL, NULL);
                return;
        }
        p = all;
        fs_itable_foreach(&fs->by_ino, collect_inode, &p);
        struct fs_inode **dead = all;
        for (struct fs_inode **i = all; i < p; i++) {
                (*i)->nlookup = 0;
                if ((*i)->key.kind == CAS_NODE_FILE && (*i)->file)
                        (*i)->file->opens = 0; /* handles of the old kernel: never released */
                struct fs_inode *d = fs_inode_release_locked(fs, *i);
                if (d)
                        *dead++ = d;
        }
        /* root listing snapshots of the old kernel's directory handles */
        struct root_snapshot **snaps = malloc((fs->snapshots.count + 1) * sizeof(*snaps)), **q = snaps, **gone = snaps;
        if (snaps) {
                hashmap_foreach(&fs->snapshots, collect_snapshot, &q);
                for (struct root_snapshot **i = snaps; i < q; i++) {
                        hashmap_remove(&fs->snapshots, hash_u64((*i)->fh), &(*i)->fh);
                        assert((*i)->refs > 0);
                        if (--(*i)->refs == 0)
                                *gone++ = *i;
                }
        }
        pthread_mutex_unlock(&fs->lock);
        /* backing ids of the old session close through its backing ops */
        for (struct fs_inode **i = all; i < dead; i++)
                fs_inode_free(fs, *i);
        for (struct root_snapshot **i = snaps; i < gone; i++)
                fs_root_snapshot_free(*i);
        free(snaps);
        free(all);
        fs_set_backing(fs, NULL, NULL);
}

void fs_get_stats(struct fs *fs, struct fs_stats *ret) {
        pthread_mutex_lock(&fs->lock);
        *ret = fs->stats;
        pthread_mutex_unlock(&fs->lock);
}
