/* memory:/// object store: objects in a hash map under a rwlock, for
 * tests and fuzzing (snix's object_store offers the same URL).  A get
 * copies the object out, so a put may replace or a remove free it at any
 * time. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "castore/objstore.h"
#include "util/hashmap.h"

struct mem_object {
        size_t len;
        uint8_t *data;
        char key[]; /* NUL-terminated */
};

struct objstore_memory {
        struct cas_objstore base;
        pthread_rwlock_t lock;
        struct hashmap objects; /* lock; struct mem_object *, owned */
};

static struct objstore_memory *to_mem(struct cas_objstore *o) {
        return (struct objstore_memory *) o;
}

static bool object_eq(const void *entry, const void *key) {
        return strcmp(((const struct mem_object *) entry)->key, key) == 0;
}

static void object_free(struct mem_object *obj) {
        if (obj) {
                free(obj->data);
                free(obj);
        }
}

static int mem_put(struct cas_objstore *o, const char *key, const void *data, size_t len) {
        struct objstore_memory *m = to_mem(o);
        size_t klen = strlen(key);
        struct mem_object *obj = malloc(sizeof(*obj) + klen + 1), *old;
        uint64_t h = hash_bytes(key, klen);
        int r;

        if (!obj)
                return -ENOMEM;
        obj->len = len;
        obj->data = malloc(len ? len : 1);
        if (!obj->data) {
                free(obj);
                return -ENOMEM;
        }
        memcpy(obj->data, data, len);
        memcpy(obj->key, key, klen + 1);
        pthread_rwlock_wrlock(&m->lock);
        old = hashmap_remove(&m->objects, h, key);
        r = hashmap_put(&m->objects, h, obj);
        if (r < 0 && old && hashmap_put(&m->objects, h, old) >= 0)
                old = NULL; /* put back: the store is as before */
        pthread_rwlock_unlock(&m->lock);
        object_free(old);
        if (r < 0)
                object_free(obj);
        return r;
}

static int mem_get(struct cas_objstore *o, const char *key, size_t max, uint8_t **ret, size_t *ret_len) {
        struct objstore_memory *m = to_mem(o);
        struct mem_object *obj;
        uint8_t *copy = NULL;
        size_t len = 0;
        int r = 0;

        pthread_rwlock_rdlock(&m->lock);
        obj = hashmap_get(&m->objects, hash_bytes(key, strlen(key)), key);
        if (!obj)
                r = -ENOENT;
        else if (obj->len > max)
                r = -EFBIG;
        else if (!(copy = malloc(obj->len ? obj->len : 1)))
                r = -ENOMEM;
        else {
                memcpy(copy, obj->data, obj->len);
                len = obj->len;
        }
        pthread_rwlock_unlock(&m->lock);
        if (r < 0)
                return r;
        *ret = copy;
        *ret_len = len;
        return 0;
}

static int mem_head(struct cas_objstore *o, const char *key, uint64_t *ret_size) {
        struct objstore_memory *m = to_mem(o);
        struct mem_object *obj;
        int r = 0;

        pthread_rwlock_rdlock(&m->lock);
        obj = hashmap_get(&m->objects, hash_bytes(key, strlen(key)), key);
        if (obj)
                *ret_size = obj->len;
        else
                r = -ENOENT;
        pthread_rwlock_unlock(&m->lock);
        return r;
}

struct key_list {
        const char *prefix;
        size_t prefix_len;
        char **v;
        size_t n, cap;
        int error;
};

static bool collect_key(void *entry, void *userdata) {
        struct key_list *l = userdata;
        const char *key = ((struct mem_object *) entry)->key;

        if (strncmp(key, l->prefix, l->prefix_len) != 0)
                return true;
        if (l->n == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 64;
                char **v = reallocarray(l->v, cap, sizeof(*v));

                if (!v) {
                        l->error = -ENOMEM;
                        return false;
                }
                l->v = v;
                l->cap = cap;
        }
        if (!(l->v[l->n] = strdup(key))) {
                l->error = -ENOMEM;
                return false;
        }
        l->n++;
        return true;
}

/* The keys are copied out first: cb runs with no lock held. */
static int mem_list(struct cas_objstore *o, const char *prefix, cas_objstore_list_cb cb, void *userdata) {
        struct objstore_memory *m = to_mem(o);
        struct key_list l = { .prefix = prefix, .prefix_len = strlen(prefix) };
        int r;

        pthread_rwlock_rdlock(&m->lock);
        hashmap_foreach(&m->objects, collect_key, &l);
        pthread_rwlock_unlock(&m->lock);
        r = l.error;
        for (size_t i = 0; i < l.n; i++) {
                if (r >= 0)
                        r = cb(userdata, l.v[i]);
                free(l.v[i]);
        }
        free(l.v);
        return r;
}

static int mem_remove(struct cas_objstore *o, const char *key) {
        struct objstore_memory *m = to_mem(o);
        struct mem_object *obj;

        pthread_rwlock_wrlock(&m->lock);
        obj = hashmap_remove(&m->objects, hash_bytes(key, strlen(key)), key);
        pthread_rwlock_unlock(&m->lock);
        if (!obj)
                return -ENOENT;
        object_free(obj);
        return 0;
}

static bool free_one(void *entry, void *userdata) {
        struct mem_object *obj = entry;

        free(obj->data);
        return true;
}

static void mem_free(struct cas_objstore *o) {
        struct objstore_memory *m = to_mem(o);

        hashmap_foreach(&m->objects, free_one, NULL);
        hashmap_done_free(&m->objects);
        pthread_rwlock_destroy(&m->lock);
        free(m);
}

static const struct cas_objstore_ops memory_ops = {
        .name = "memory",
        .put = mem_put,
        .get = mem_get,
        .head = mem_head,
        .list = mem_list,
        .remove = mem_remove,
        .free = mem_free,
};

int cas_objstore_memory_new(struct cas_objstore **ret) {
        struct objstore_memory *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->base.ops = &memory_ops;
        pthread_rwlock_init(&m->lock, NULL);
        hashmap_init(&m->objects, object_eq);
        *ret = &m->base;
        return 0;
}
