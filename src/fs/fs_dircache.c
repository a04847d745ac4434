/* Fetched Directories kept in memory: a least-recently-used list bounded
 * by the number of entries, so that the memory a walk needs does not grow
 * with every directory the kernel still knows.  A dropped Directory is
 * fetched again when next needed (the kernel caches names, attributes and
 * listings, so that is rare).  Only unpinned inodes lose theirs. */
#include <errno.h>
#include <stdlib.h>

#include "castore/directory.h"
#include "fs/fs_internal.h"

/* What a cached Directory counts against the bound: its entries, and one
 * for itself (empty directories cost memory too). */
static size_t cost(const struct fs_dir *c) {
        return c->dir->n_entries + 1;
}

static void lru_append(struct fs *fs, struct fs_dir *c) {
        c->prev = fs->dirs_tail;
        c->next = NULL;
        if (fs->dirs_tail)
                fs->dirs_tail->next = c;
        else
                fs->dirs_head = c;
        fs->dirs_tail = c;
}

static void lru_remove(struct fs *fs, struct fs_dir *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                fs->dirs_head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                fs->dirs_tail = c->prev;
        c->prev = c->next = NULL;
}

void fs_dircache_unlink_locked(struct fs *fs, struct fs_dir *c) {
        lru_remove(fs, c);
        assert(fs->dir_entries >= cost(c) && fs->stats.dirs_loaded > 0);
        fs->dir_entries -= cost(c);
        fs->stats.dirs_loaded--;
}

const struct cas_directory *fs_dircache_get_locked(struct fs *fs, struct fs_inode *in) {
        struct fs_dir *c = in->dir;

        if (!c)
                return NULL;
        if (c != fs->dirs_tail) {
                /* most recently used last */
                lru_remove(fs, c);
                lru_append(fs, c);
        }
        return c->dir;
}

/* Drops least recently used Directories of unpinned inodes until the
 * cache fits; returns them chained through next. */
static struct fs_dir *evict_locked(struct fs *fs) {
        struct fs_dir *gone = NULL, *c = fs->dirs_head, *next;

        for (; c && fs->dir_entries > fs->cfg.dir_cache_entries; c = next) {
                next = c->next;
                if (c->in->pins > 0 || c->in->busy)
                        continue;
                fs_dircache_unlink_locked(fs, c);
                c->in->dir = NULL;
                c->next = gone;
                gone = c;
        }
        return gone;
}

int fs_dircache_add_locked(struct fs *fs, struct fs_inode *in, struct cas_directory *d, struct fs_dir **ret_evicted) {
        struct fs_dir *c = malloc(sizeof(*c));

        *ret_evicted = NULL;
        if (!c)
                return -ENOMEM;
        *c = (struct fs_dir){ .dir = d, .in = in };
        lru_append(fs, c);
        in->dir = c;
        fs->dir_entries += cost(c);
        fs->stats.dirs_loaded++;
        *ret_evicted = evict_locked(fs);
        return 0;
}

size_t fs_dircache_free(struct fs_dir *c) {
        size_t bytes = 0;

        while (c) {
                struct fs_dir *next = c->next;
                /* one allocation: the entries and their names (16 bytes
                 * a name, about) */
                bytes += sizeof(*c) + sizeof(*c->dir) + c->dir->n_entries * (sizeof(struct cas_node) + 16);
                cas_directory_free(c->dir);
                free(c);
                c = next;
        }
        return bytes;
}
