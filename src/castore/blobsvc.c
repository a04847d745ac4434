/* Blob service wrappers: argument checks and -EOPNOTSUPP for missing ops;
 * the digest listing backends share. */
#include "castore/blobsvc.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>

#include "util/hashmap.h"
#include "util/macro.h"

int cas_blob_stat(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size) {
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

int cas_blob_open(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_reader **ret) {
        if (!s || !d || !ret)
                return -EINVAL;
        if (!s->ops->open)
                return -EOPNOTSUPP;
        return s->ops->open(s, d, ret);
}

int cas_blob_put(struct cas_blob_service *s, const void *data, size_t len, unsigned flags,
                 struct cas_digest *ret_digest) {
        if (!s || (!data && len > 0))
                return -EINVAL;
        if (!s->ops->put)
                return -EOPNOTSUPP;
        struct cas_digest d;
        int r = s->ops->put(s, data ? data : "", len, flags, &d);
        if (r >= 0 && ret_digest)
                *ret_digest = d;
        return r;
}

int cas_blob_writer_new(struct cas_blob_service *s, unsigned flags, struct cas_blob_writer **ret) {
        if (!s || !ret)
                return -EINVAL;
        if (!s->ops->writer_new)
                return -EOPNOTSUPP;
        return s->ops->writer_new(s, flags, ret);
}

int cas_blob_sync(struct cas_blob_service *s) {
        if (!s)
                return -EINVAL;
        if (!s->ops->sync)
                return 0; /* a backend without deferred writes has nothing to sync */
        return s->ops->sync(s);
}

int cas_blob_list(struct cas_blob_service *s, cas_blob_list_cb cb, void *userdata) {
        if (!s || !cb)
                return -EINVAL;
        if (!s->ops->list)
                return -EOPNOTSUPP;
        return s->ops->list(s, cb, userdata);
}

struct digest_copy {
        struct cas_digest *v;
        size_t n;
};

static bool digest_copy_one(void *entry, void *userdata) {
        struct digest_copy *c = userdata;

        c->v[c->n++] = *(const struct cas_digest *) entry;
        return true;
}

int cas_blob_list_digest_map(const struct hashmap *map, pthread_rwlock_t *lock, cas_blob_list_cb cb,
                             void *userdata) {
        _cleanup_free_ struct cas_digest *v = NULL;
        struct digest_copy c = {};
        int r;

        pthread_rwlock_rdlock(lock);
        v = malloc(MAX(map->count, (size_t) 1) * sizeof(*v));
        if (v) {
                c.v = v;
                hashmap_foreach(map, digest_copy_one, &c);
        }
        pthread_rwlock_unlock(lock);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < c.n; i++) {
                r = cb(userdata, &v[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cas_blob_remove(struct cas_blob_service *s, const struct cas_digest *d) {
        if (!s || !d)
                return -EINVAL;
        if (!s->ops->remove)
                return -EOPNOTSUPP;
        return s->ops->remove(s, d);
}

int cas_blob_disk_usage(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_bytes) {
        if (!s || !d || !ret_bytes)
                return -EINVAL;
        if (!s->ops->disk_usage)
                return -EOPNOTSUPP;
        return s->ops->disk_usage(s, d, ret_bytes);
}

int cas_blob_outboard_get(struct cas_blob_service *s, const struct cas_digest *d, uint8_t **ret, size_t *ret_len) {
        if (!s || !d || !ret || !ret_len)
                return -EINVAL;
        if (!s->ops->outboard_get)
                return -EOPNOTSUPP;
        return s->ops->outboard_get(s, d, ret, ret_len);
}

int cas_blob_outboard_put(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *ob, size_t len) {
        if (!s || !d || (!ob && len > 0))
                return -EINVAL;
        if (!s->ops->outboard_put)
                return -EOPNOTSUPP;
        return s->ops->outboard_put(s, d, ob, len);
}

void cas_blob_service_free(struct cas_blob_service *s) {
        if (s && s->ops->free)
                s->ops->free(s);
}

ssize_t cas_blob_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        if (!r || (!buf && len > 0))
                return -EINVAL;
        if (!r->ops->pread)
                return -EOPNOTSUPP;
        if (len == 0 || off >= r->size)
                return 0;
        return r->ops->pread(r, buf, len, off);
}

ssize_t cas_blob_pread_full(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        size_t got = 0;

        while (got < len) {
                ssize_t n = cas_blob_pread(r, (uint8_t *) buf + got, len - got, off + got);

                if (n < 0)
                        return n;
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        return (ssize_t) got;
}

void cas_blob_reader_close(struct cas_blob_reader *r) {
        if (r && r->ops->close)
                r->ops->close(r);
}

int cas_blob_write(struct cas_blob_writer *w, const void *buf, size_t len) {
        if (!w || (!buf && len > 0))
                return -EINVAL;
        if (len == 0)
                return 0;
        if (!w->ops->write)
                return -EOPNOTSUPP;
        return w->ops->write(w, buf, len);
}

int cas_blob_commit(struct cas_blob_writer *w, struct cas_digest *ret_digest, uint64_t *ret_size) {
        struct cas_digest d;
        uint64_t size;
        int r;

        if (!w)
                return -EINVAL;
        if (!w->ops->commit) {
                cas_blob_abort(w);
                return -EOPNOTSUPP;
        }
        r = w->ops->commit(w, &d, &size);
        if (r < 0)
                return r;
        if (ret_digest)
                *ret_digest = d;
        if (ret_size)
                *ret_size = size;
        return r;
}

void cas_blob_abort(struct cas_blob_writer *w) {
        if (w && w->ops->abort)
                w->ops->abort(w);
}

bool cas_blob_fd_kernel_verified(int fd) {
        struct statx stx;

        if (fd < 0 || statx(fd, "", AT_EMPTY_PATH, 0, &stx) < 0)
                return false;
        return (stx.stx_attributes_mask & STATX_ATTR_VERITY) && (stx.stx_attributes & STATX_ATTR_VERITY);
}

static int first_blob(void *userdata, const struct cas_digest *d) {
        *(struct cas_digest *) userdata = *d;
        return -ECANCELED;
}

bool cas_blob_service_kernel_verified(struct cas_blob_service *s) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *r = NULL;
        struct cas_digest d;

        if (cas_blob_list(s, first_blob, &d) != -ECANCELED || cas_blob_open(s, &d, &r) < 0)
                return false;
        return cas_blob_fd_kernel_verified(r->fd);
}
