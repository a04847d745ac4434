/* objectstore+… blob service (blob_objstore.h): its ops table, its
 * outboards, its URL.  The pieces: blob_objstore_objects.c (chunk and
 * index objects), _read.c, _write.c, _list.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blob_objstore_int.h"
#include "castore/fastcdc.h"
#include "util/hex.h"
#include "util/log.h"

#define PREFIX "objectstore+"

static int objstore_outboard_get(struct cas_blob_service *bs, const struct cas_digest *d, uint8_t **ret,
                                 size_t *ret_len) {
        char key[KEY_MAX];
        int r;

        objstore_key(key, "outboards", d);
        r = cas_objstore_get(to_objstore(bs)->objs, key, OUTBOARD_MAX, ret, ret_len);
        return r == -EFBIG ? -EBADMSG : r;
}

static int objstore_outboard_put(struct cas_blob_service *bs, const struct cas_digest *d, const uint8_t *ob,
                                 size_t len) {
        char key[KEY_MAX];

        objstore_key(key, "outboards", d);
        return cas_objstore_put(to_objstore(bs)->objs, key, ob, len);
}

static void objstore_free(struct cas_blob_service *bs) {
        struct blob_objstore *s = to_objstore(bs);

        cas_objstore_free(s->objs);
        free(s);
}

static const struct cas_blob_ops objstore_ops = {
        .name = "objectstore",
        .remote = true,
        .stat = objstore_stat,
        .open = objstore_open,
        .put = objstore_put,
        .writer_new = objstore_writer_new,
        .list = objstore_list,
        .remove = objstore_remove,
        .outboard_get = objstore_outboard_get,
        .outboard_put = objstore_outboard_put,
        .free = objstore_free,
};

int cas_blob_objstore_new(struct cas_objstore *objs, size_t avg, struct cas_blob_service **ret) {
        struct blob_objstore *s;

        if (!objs || !ret || avg < CAS_FASTCDC_AVG_MIN || avg > CAS_FASTCDC_AVG_MAX) {
                cas_objstore_free(objs);
                return -EINVAL;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                cas_objstore_free(objs);
                return -ENOMEM;
        }
        *s = (struct blob_objstore){ .base.ops = &objstore_ops, .objs = objs, .avg = avg };
        *ret = &s->base;
        return 0;
}

struct cas_objstore *cas_blob_objstore_objects(struct cas_blob_service *s) {
        return s && s->ops == &objstore_ops ? to_objstore(s)->objs : NULL;
}

bool cas_blob_url_is_objstore(const char *url) {
        return url && strncmp(url, PREFIX, strlen(PREFIX)) == 0;
}

char *cas_blob_objstore_file_dir(const char *url) {
        const char *file = PREFIX "file://";

        if (!url || strncmp(url, file, strlen(file)) != 0)
                return NULL;
        url += strlen(file);
        return strndup(url, strcspn(url, "?"));
}

/* Decodes %XX escapes in place: -EINVAL for a bad one. */
static int unescape(char *s) {
        char *out = s;

        for (; *s; s++) {
                if (*s != '%') {
                        *out++ = *s;
                        continue;
                }
                int hi = hex_digit_value(s[1]), lo = hi < 0 ? -1 : hex_digit_value(s[2]);
                if (lo < 0 || (hi == 0 && lo == 0))
                        return -EINVAL;
                *out++ = (char) (hi << 4 | lo);
                s += 2;
        }
        *out = 0;
        return 0;
}

static int parse_avg(const char *url, const char *v, size_t *ret) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-' || n < CAS_FASTCDC_AVG_MIN || n > CAS_FASTCDC_AVG_MAX)
                return log_error_errno(-EINVAL, "%s: avg_chunk_size must be a number of bytes from %u to %u", url,
                                       CAS_FASTCDC_AVG_MIN, CAS_FASTCDC_AVG_MAX);
        *ret = (size_t) n;
        return 0;
}

int cas_blob_objstore_open(const char *url, struct cas_blob_service **ret) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_free_ const char **opts = NULL;
        struct cas_objstore *objs = NULL;
        size_t avg = CAS_FASTCDC_AVG_DEFAULT, n = 0;
        char *query, *save = NULL;
        int r;

        if (!cas_blob_url_is_objstore(url) || !ret)
                return -EINVAL;
        copy = strdup(url + strlen(PREFIX));
        opts = calloc(strlen(url) + 2, sizeof(*opts));
        if (!copy || !opts)
                return -ENOMEM;
        query = strchr(copy, '?');
        if (query)
                *query++ = 0;
        for (char *kv = query ? strtok_r(query, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
                char *v = strchr(kv, '=');

                if (!v || unescape(v + 1) < 0)
                        return log_error_errno(-EINVAL, "%s: option \"%s\" is not key=value", copy, kv);
                *v++ = 0;
                if (strcmp(kv, "avg_chunk_size") == 0) {
                        r = parse_avg(copy, v, &avg);
                        if (r < 0)
                                return r;
                        continue;
                }
                opts[n++] = kv;
                opts[n++] = v;
        }
        r = cas_objstore_open(copy, opts, &objs);
        if (r < 0)
                return r;
        return cas_blob_objstore_new(objs, avg, ret);
}
