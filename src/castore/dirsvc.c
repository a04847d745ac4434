/* Directory service wrappers, the put-time child check shared by backends,
 * and the recursive walk (breadth first, each digest once). */
#include "castore/dirsvc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"

int cas_dir_get(struct cas_dir_service *s, const struct cas_digest *d, struct cas_directory **ret) {
        if (!s || !d || !ret)
                return -EINVAL;
        if (!s->ops->get)
                return -EOPNOTSUPP;
        return s->ops->get(s, d, ret);
}

int cas_dir_stat(struct cas_dir_service *s, const struct cas_digest *d, uint64_t *ret_size) {
        if (!s || !d)
                return -EINVAL;
        if (!s->ops->stat)
                return -EOPNOTSUPP;
        uint64_t size;
        int r = s->ops->stat(s, d, &size);
        if (r >= 0 && ret_size)
                *ret_size = size;
        return r;
}

int cas_dir_put(struct cas_dir_service *s, struct cas_directory *const *dirs, size_t n, unsigned flags,
                enum cas_verr *ret_why) {
        enum cas_verr why = CAS_VERR_NONE;
        int r;

        if (!s || (!dirs && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!dirs[i])
                        return -EINVAL;
        if (!s->ops->put)
                return -EOPNOTSUPP;
        r = n == 0 ? 0 : s->ops->put(s, dirs, n, flags, &why);
        if (ret_why)
                *ret_why = r == -EBADMSG ? why : CAS_VERR_NONE;
        return r;
}

int cas_dir_list(struct cas_dir_service *s, cas_dir_list_cb cb, void *userdata) {
        if (!s || !cb)
                return -EINVAL;
        if (!s->ops->list)
                return -EOPNOTSUPP;
        return s->ops->list(s, cb, userdata);
}

int cas_dir_remove(struct cas_dir_service *s, const struct cas_digest *digests, size_t n) {
        if (!s || (!digests && n > 0))
                return -EINVAL;
        if (!s->ops->remove)
                return -EOPNOTSUPP;
        return n == 0 ? 0 : s->ops->remove(s, digests, n);
}

void cas_dir_release_memory(struct cas_dir_service *s) {
        if (s && s->ops->release_memory)
                s->ops->release_memory(s);
}

void cas_dir_service_free(struct cas_dir_service *s) {
        if (s && s->ops->free)
                s->ops->free(s);
}

int cas_dir_check_children(const struct cas_directory *d, unsigned flags, cas_dir_child_size_fn child_size,
                           void *userdata, enum cas_verr *ret_why) {
        enum cas_verr why = CAS_VERR_NONE;
        int r = 0;

        if (!d || !child_size)
                return -EINVAL;
        for (size_t i = 0; i < d->n_entries && r >= 0; i++) {
                const struct cas_node *e = &d->entries[i];
                uint64_t size;

                if (e->kind != CAS_NODE_DIRECTORY)
                        continue;
                r = child_size(userdata, &e->digest, &size);
                if (r == -ENOENT) {
                        why = CAS_VERR_MISSING_CHILD;
                        r = -EBADMSG;
                } else if (r >= 0 && !cas_size_ok(e->size, size, flags)) {
                        why = CAS_VERR_SIZE_MISMATCH;
                        r = -EBADMSG;
                }
        }
        if (ret_why)
                *ret_why = why;
        return r < 0 ? r : 0;
}

/* ---- recursive walk ----
 * Every digest seen is appended to a list of fixed-size chunks (stable
 * addresses, so the visited set can point at them); the list doubles as
 * the BFS queue: items [head, count) are still to be fetched. */

#define WALK_CHUNK 512

struct walk {
        struct cas_digest **chunks;
        size_t n_chunks, count, head;
        struct hashmap seen; /* struct cas_digest * into chunks */
};

static bool digest_eq(const void *entry, const void *key) {
        return cas_digest_equal(entry, key);
}

static struct cas_digest *walk_item(struct walk *w, size_t i) {
        return &w->chunks[i / WALK_CHUNK][i % WALK_CHUNK];
}

/* Queues d unless seen before.  0 or -ENOMEM. */
static int walk_push(struct walk *w, const struct cas_digest *d) {
        struct cas_digest *slot;

        if (hashmap_get(&w->seen, cas_digest_hash(d), d))
                return 0;
        if (w->count == w->n_chunks * WALK_CHUNK) {
                struct cas_digest **c = realloc(w->chunks, (w->n_chunks + 1) * sizeof(*c));

                if (!c)
                        return -ENOMEM;
                w->chunks = c;
                c[w->n_chunks] = malloc(WALK_CHUNK * sizeof(struct cas_digest));
                if (!c[w->n_chunks])
                        return -ENOMEM;
                w->n_chunks++;
        }
        slot = walk_item(w, w->count);
        *slot = *d;
        if (hashmap_put(&w->seen, cas_digest_hash(d), slot) < 0)
                return -ENOMEM;
        w->count++;
        return 0;
}

static void walk_done(struct walk *w) {
        for (size_t i = 0; i < w->n_chunks; i++)
                free(w->chunks[i]);
        free(w->chunks);
        hashmap_done(&w->seen);
}

/* Breadth first: a directory is delivered after the parent that first
 * reached it (and so after the root), never twice.  In a tree this is
 * "parents before children"; in a DAG a directory shared by a shallow and
 * a deep parent can come before the deep one, as with tvix. */
int cas_dir_get_recursive(struct cas_dir_service *s, const struct cas_digest *root, cas_dir_walk_cb cb,
                          void *userdata) {
        struct walk w = {};
        int r;

        if (!s || !root || !cb)
                return -EINVAL;
        if (s->ops->get_recursive)
                return s->ops->get_recursive(s, root, cb, userdata);
        if (!s->ops->get)
                return -EOPNOTSUPP;
        hashmap_init(&w.seen, digest_eq);
        r = walk_push(&w, root);
        while (r >= 0 && w.head < w.count) {
                struct cas_directory *d = NULL;

                r = s->ops->get(s, walk_item(&w, w.head++), &d);
                if (r < 0)
                        break;
                r = cb(userdata, d);
                for (size_t i = 0; r >= 0 && i < d->n_entries; i++)
                        if (d->entries[i].kind == CAS_NODE_DIRECTORY)
                                r = walk_push(&w, &d->entries[i].digest);
                cas_directory_free(d);
        }
        walk_done(&w);
        return r < 0 ? r : 0;
}
