/* The index of inodes by number: open addressing with linear probing and
 * backward-shift deletion, one inode pointer a slot (a slot's hash is
 * computed again from its inode's number when needed).  It grows at 70 %
 * load and halves below 1/8, so that the memory a walk took comes back
 * when the kernel forgets.  Large tables are mapped from the system, not
 * malloc'd: freeing a large malloc'd block raises glibc's mmap and trim
 * thresholds (up to 32 MiB), after which the heaps keep what a forget
 * burst frees. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fs/fs_internal.h"

#define MIN_CAPACITY 64
/* Tables of this many bytes or more are mapped. */
#define MAP_BYTES (64u * 1024)

static struct fs_inode **slots_new(size_t cap) {
        size_t bytes = cap * sizeof(struct fs_inode *);
        void *p;

        if (bytes < MAP_BYTES)
                return calloc(cap, sizeof(struct fs_inode *));
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

static void slots_free(struct fs_inode **slots, size_t cap) {
        size_t bytes = cap * sizeof(struct fs_inode *);

        if (bytes < MAP_BYTES)
                free(slots);
        else if (slots)
                munmap(slots, bytes);
}

static size_t home_of(const struct fs_itable *t, uint64_t ino) {
        return hash_u64(ino) & t->mask;
}

void fs_itable_init(struct fs_itable *t) {
        *t = (struct fs_itable){};
}

void fs_itable_done(struct fs_itable *t) {
        slots_free(t->slots, t->slots ? t->mask + 1 : 0);
        *t = (struct fs_itable){};
}

struct fs_inode *fs_itable_get(const struct fs_itable *t, uint64_t ino) {
        if (!t->slots)
                return NULL;
        for (size_t i = home_of(t, ino);; i = (i + 1) & t->mask) {
                struct fs_inode *in = t->slots[i];
                if (!in || in->ino == ino)
                        return in;
        }
}

static void insert_slot(struct fs_itable *t, struct fs_inode *in) {
        size_t i = home_of(t, in->ino);

        while (t->slots[i])
                i = (i + 1) & t->mask;
        t->slots[i] = in;
}

/* Moves every inode into a table of cap slots.  0 or -ENOMEM (the table
 * is unchanged then). */
static int resize(struct fs_itable *t, size_t cap) {
        struct fs_inode **old = t->slots;
        size_t old_cap = old ? t->mask + 1 : 0;
        struct fs_inode **slots = slots_new(cap);

        if (!slots)
                return -ENOMEM;
        t->slots = slots;
        t->mask = cap - 1;
        for (size_t i = 0; i < old_cap; i++)
                if (old[i])
                        insert_slot(t, old[i]);
        slots_free(old, old_cap);
        return 0;
}

int fs_itable_put(struct fs_itable *t, struct fs_inode *in) {
        if (!t->slots || (t->count + 1) * 10 > (t->mask + 1) * 7) {
                int r = resize(t, t->slots ? (t->mask + 1) * 2 : MIN_CAPACITY);
                if (r < 0)
                        return r;
        }
        insert_slot(t, in);
        t->count++;
        return 0;
}

void fs_itable_remove(struct fs_itable *t, const struct fs_inode *in) {
        size_t i, j;

        if (!t->slots)
                return;
        for (i = home_of(t, in->ino); t->slots[i] != in; i = (i + 1) & t->mask)
                if (!t->slots[i])
                        return;
        /* shift back the following inodes of the cluster that may move */
        for (j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
                if (!hash_probe_may_fill(i, j, home_of(t, t->slots[j]->ino)))
                        continue;
                t->slots[i] = t->slots[j];
                i = j;
        }
        t->slots[i] = NULL;
        t->count--;
        /* a failed shrink keeps the larger table: nothing is lost */
        if (t->mask + 1 > MIN_CAPACITY && t->count < (t->mask + 1) / 8)
                (void) resize(t, (t->mask + 1) / 2);
}

void fs_itable_foreach(const struct fs_itable *t, bool (*fn)(struct fs_inode *in, void *userdata), void *userdata) {
        for (size_t i = 0; t->slots && i <= t->mask; i++)
                if (t->slots[i] && !fn(t->slots[i], userdata))
                        return;
}
