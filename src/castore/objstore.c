/* Object stores (objstore.h): the wrappers every backend goes through and
 * the choice of backend by URL. */
#include <errno.h>
#include <string.h>

#include "castore/objstore.h"
#include "castore/objstore_s3.h"
#include "util/log.h"

bool cas_objstore_key_valid(const char *key) {
        bool seg_start = true;

        if (!key || !*key)
                return false;
        for (const char *p = key; *p; p++) {
                if (*p == '/') {
                        if (seg_start)
                                return false; /* empty segment or leading '/' */
                        seg_start = true;
                        continue;
                }
                if (seg_start && *p == '.')
                        return false; /* ".", "..", hidden temporaries */
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '.' || *p == '_' || *p == '-'))
                        return false;
                seg_start = false;
        }
        return !seg_start;
}

static void count(uint64_t *c, uint64_t n) {
        __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

int cas_objstore_put(struct cas_objstore *o, const char *key, const void *data, size_t len) {
        if (!o || !cas_objstore_key_valid(key) || (!data && len))
                return -EINVAL;
        if (!o->ops->put)
                return -EOPNOTSUPP;
        count(&o->n_put, 1);
        return o->ops->put(o, key, data, len);
}

int cas_objstore_get(struct cas_objstore *o, const char *key, size_t max, uint8_t **ret, size_t *ret_len) {
        int r;

        if (!o || !cas_objstore_key_valid(key) || !ret || !ret_len)
                return -EINVAL;
        if (!o->ops->get)
                return -EOPNOTSUPP;
        count(&o->n_get, 1);
        r = o->ops->get(o, key, max, ret, ret_len);
        if (r >= 0)
                count(&o->get_bytes, *ret_len);
        return r;
}

int cas_objstore_head(struct cas_objstore *o, const char *key, uint64_t *ret_size) {
        uint64_t size;

        if (!o || !cas_objstore_key_valid(key))
                return -EINVAL;
        if (!o->ops->head)
                return -EOPNOTSUPP;
        count(&o->n_head, 1);
        return o->ops->head(o, key, ret_size ? ret_size : &size);
}

int cas_objstore_list(struct cas_objstore *o, const char *prefix, cas_objstore_list_cb cb, void *userdata) {
        size_t n = prefix ? strlen(prefix) : 0;

        if (!o || !prefix || !cb || (n > 0 && prefix[n - 1] != '/'))
                return -EINVAL;
        if (!o->ops->list)
                return -EOPNOTSUPP;
        return o->ops->list(o, prefix, cb, userdata);
}

int cas_objstore_remove(struct cas_objstore *o, const char *key) {
        if (!o || !cas_objstore_key_valid(key))
                return -EINVAL;
        if (!o->ops->remove)
                return -EOPNOTSUPP;
        return o->ops->remove(o, key);
}

void cas_objstore_free(struct cas_objstore *o) {
        if (o)
                o->ops->free(o);
}

int cas_objstore_open(const char *url, const char *const *options, struct cas_objstore **ret) {
        if (!url || !ret)
                return -EINVAL;
        if (strncmp(url, "file://", 7) == 0) {
                const char *path = url + 7;

                if (path[0] != '/')
                        return log_error_errno(-EINVAL, "%s: a file object store needs an absolute path "
                                                        "(file:///abs/path)", url);
                if (options && options[0])
                        return log_error_errno(-EINVAL, "%s: option %s is not known for a file object store",
                                               url, options[0]);
                return cas_objstore_file_new(path, ret);
        }
        if (strcmp(url, "memory:///") == 0 || strcmp(url, "memory://") == 0) {
                if (options && options[0])
                        return log_error_errno(-EINVAL, "%s: option %s is not known for a memory object store",
                                               url, options[0]);
                return cas_objstore_memory_new(ret);
        }
        if (strncmp(url, "s3://", 5) == 0)
                return cas_objstore_s3_new(url, options, ret);
        return log_error_errno(-EINVAL, "%s: unknown object store (s3://BUCKET/PREFIX, file:///abs/path, memory:///)",
                               url);
}
