/* The inodes' memory: fixed-size slots in chunks mapped from the system,
 * each chunk aligned to its size with a header holding its free list, so
 * that an inode costs its 72 bytes and nothing more, and a chunk whose
 * inodes were all forgotten goes back to the system at once. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "fs/fs_internal.h"

/* At the start of each chunk; all fields: fs->lock (the slab's). */
struct fs_slab_chunk {
        struct fs_slab_chunk *prev, *next; /* on the partial list */
        void *free;                        /* first free slot; each free slot starts with the next */
        uint32_t used;
        bool listed;                       /* on the partial list */
};

#define SLOT_SIZE sizeof(struct fs_inode)
#define FIRST_SLOT ((sizeof(struct fs_slab_chunk) + 15) & ~(size_t) 15)
#define SLOTS_PER_CHUNK ((FS_SLAB_CHUNK - FIRST_SLOT) / SLOT_SIZE)

static_assert(sizeof(struct fs_inode) <= 72, "an inode fits in 72 bytes");

/* Under AddressSanitizer a free slot, but for its link, is poisoned: a use
 * of a forgotten inode is reported as with malloc'd ones. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON_FREE_SLOT(p) ASAN_POISON_MEMORY_REGION((uint8_t *) (p) + sizeof(void *), SLOT_SIZE - sizeof(void *))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON_FREE_SLOT(p) ((void) (p))
#define UNPOISON(p, n) ((void) (p))
#endif
static_assert((FS_SLAB_CHUNK & (FS_SLAB_CHUNK - 1)) == 0, "chunks are a power of two");

static struct fs_slab_chunk *chunk_of(const struct fs_inode *in) {
        return (struct fs_slab_chunk *) ((uintptr_t) in & ~(uintptr_t) (FS_SLAB_CHUNK - 1));
}

static void *slot_next(void *slot) {
        void *next;
        memcpy(&next, slot, sizeof(next));
        return next;
}

static void slot_set_next(void *slot, void *next) {
        memcpy(slot, &next, sizeof(next));
}

/* A chunk aligned to its size: twice the size mapped, the rest unmapped. */
static struct fs_slab_chunk *chunk_map(void) {
        uint8_t *p = mmap(NULL, 2 * FS_SLAB_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uintptr_t start, end;

        if (p == MAP_FAILED)
                return NULL;
        start = ((uintptr_t) p + FS_SLAB_CHUNK - 1) & ~(uintptr_t) (FS_SLAB_CHUNK - 1);
        end = start + FS_SLAB_CHUNK;
        if (start > (uintptr_t) p)
                munmap(p, start - (uintptr_t) p);
        if ((uintptr_t) p + 2 * FS_SLAB_CHUNK > end)
                munmap((void *) end, (uintptr_t) p + 2 * FS_SLAB_CHUNK - end);

        struct fs_slab_chunk *c = (struct fs_slab_chunk *) start;
        uint8_t *slots = (uint8_t *) start + FIRST_SLOT;
        /* fresh anonymous memory is zero: only the links are written */
        for (size_t i = SLOTS_PER_CHUNK; i-- > 0;) {
                slot_set_next(slots + i * SLOT_SIZE, c->free);
                c->free = slots + i * SLOT_SIZE;
                POISON_FREE_SLOT(c->free);
        }
        return c;
}

/* Unpoisoned first: the next mapping at this address starts clean. */
static void chunk_unmap(struct fs_slab_chunk *c) {
        UNPOISON(c, FS_SLAB_CHUNK);
        munmap(c, FS_SLAB_CHUNK);
}

static void partial_add(struct fs_slab *s, struct fs_slab_chunk *c) {
        c->prev = NULL;
        c->next = s->partial;
        if (s->partial)
                s->partial->prev = c;
        s->partial = c;
        c->listed = true;
}

static void partial_remove(struct fs_slab *s, struct fs_slab_chunk *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                s->partial = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        c->listed = false;
}

void fs_slab_init(struct fs_slab *s) {
        *s = (struct fs_slab){};
}

struct fs_inode *fs_slab_alloc(struct fs_slab *s) {
        struct fs_slab_chunk *c = s->partial;
        void *slot;

        if (!c) {
                c = s->spare ? s->spare : chunk_map();
                if (!c)
                        return NULL;
                if (c == s->spare)
                        s->spare = NULL;
                partial_add(s, c);
        }
        slot = c->free;
        c->free = slot_next(slot);
        c->used++;
        if (!c->free)
                partial_remove(s, c);
        UNPOISON(slot, SLOT_SIZE);
        memset(slot, 0, SLOT_SIZE);
        return slot;
}

void fs_slab_free(struct fs_slab *s, struct fs_inode *in) {
        struct fs_slab_chunk *c = chunk_of(in);

        assert(c->used > 0);
        slot_set_next(in, c->free);
        POISON_FREE_SLOT(in);
        c->free = in;
        c->used--;
        if (!c->listed)
                partial_add(s, c);
        if (c->used > 0)
                return;
        partial_remove(s, c);
        if (!s->spare) {
                s->spare = c;
                return;
        }
        chunk_unmap(c);
}

void fs_slab_done(struct fs_slab *s) {
        /* every inode was freed: only the spare chunk is left */
        assert(!s->partial);
        if (s->spare)
                chunk_unmap(s->spare);
        *s = (struct fs_slab){};
}
