/* Verified blob reads: range reads checked group by group against the
 * blob's outboard, which is itself checked against the blob's digest when
 * the blob is opened.  The state is immutable after open, so reads need no
 * lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/outboard.h"
#include "castore/vblob.h"
#include "util/log.h"

/* Whole groups read and hashed per step when building an outboard or
 * copying: large enough for the SIMD hasher and few syscalls, small enough
 * to stay in L2. */
#define STEP_GROUPS 16
#define STEP_BYTES ((size_t) STEP_GROUPS * CAS_GROUP_SIZE)

struct cas_vblob {
        struct cas_blob_reader *rd; /* size checked against the caller's */
        uint64_t size;
        uint64_t groups;            /* 0: one group or less, verified whole */
        uint8_t *outboard;          /* groups * CAS_CV_LEN trusted bytes */
};

/* Reads exactly len bytes at off: a short read means the stored blob is
 * shorter than its digest says, which is damage (-EBADMSG), not EOF. */
static int read_exact(struct cas_blob_reader *rd, void *buf, size_t len, uint64_t off) {
        ssize_t n = cas_blob_pread_full(rd, buf, len, off);

        if (n < 0)
                return (int) n;
        return (size_t) n == len ? 0 : -EBADMSG;
}

static int outboard_trusted(const struct cas_vblob *v, const uint8_t *ob, size_t len) {
        struct cas_digest root;

        if (len != v->groups * CAS_CV_LEN)
                return -EBADMSG;
        cas_outboard_root(ob, v->groups, &root);
        return cas_digest_equal(&root, &v->rd->digest) ? 0 : -EBADMSG;
}

/* Reads the whole blob once, computing its group CVs; the result is
 * trusted only if they merge into the blob's digest. */
static int outboard_build(struct cas_vblob *v) {
        _cleanup_free_ uint8_t *buf = NULL, *ob = NULL;
        int r;

        buf = malloc(STEP_BYTES);
        ob = malloc(v->groups * CAS_CV_LEN);
        if (!buf || !ob)
                return -ENOMEM;
        for (uint64_t off = 0; off < v->size; off += STEP_BYTES) {
                size_t n = (size_t) MIN((uint64_t) STEP_BYTES, v->size - off);

                r = read_exact(v->rd, buf, n, off);
                if (r < 0)
                        return r;
                cas_group_cvs(buf, n, off >> CAS_GROUP_SHIFT, ob + (off >> CAS_GROUP_SHIFT) * CAS_CV_LEN);
        }
        r = outboard_trusted(v, ob, v->groups * CAS_CV_LEN);
        if (r < 0)
                return r;
        v->outboard = TAKE_PTR(ob);
        return 0;
}

static int outboard_load(struct cas_vblob *v, struct cas_blob_service *s) {
        _cleanup_free_ uint8_t *ob = NULL;
        size_t len = 0;
        int r;

        if (v->rd->outboard && outboard_trusted(v, v->rd->outboard, v->rd->outboard_len) == 0) {
                v->outboard = malloc(v->rd->outboard_len);
                if (!v->outboard)
                        return -ENOMEM;
                memcpy(v->outboard, v->rd->outboard, v->rd->outboard_len);
                return 0;
        }
        r = cas_blob_outboard_get(s, &v->rd->digest, &ob, &len);
        if (r >= 0) {
                if (outboard_trusted(v, ob, len) == 0) {
                        v->outboard = TAKE_PTR(ob);
                        return 0;
                }
                log_warning("blob %s: stored outboard is damaged, rebuilding it", CAS_DIGEST_B3(&v->rd->digest));
        } else if (r != -ENOENT && r != -EOPNOTSUPP)
                return r;
        r = outboard_build(v);
        if (r < 0)
                return r;
        r = cas_blob_outboard_put(s, &v->rd->digest, v->outboard, v->groups * CAS_CV_LEN);
        if (r < 0 && r != -EOPNOTSUPP)
                log_debug_errno(r, "blob %s: cannot store its outboard: %m", CAS_DIGEST_B3(&v->rd->digest));
        return 0;
}

int cas_vblob_open(struct cas_blob_service *s, const struct cas_digest *d, uint64_t size, struct cas_vblob **ret) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        int r;

        if (!s || !d || !ret)
                return -EINVAL;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        r = cas_blob_open(s, d, &v->rd);
        if (r < 0)
                return r;
        if (v->rd->size != size)
                return -EBADMSG;
        v->size = size;
        v->groups = cas_outboard_groups(size);
        if (v->groups > 0) {
                r = outboard_load(v, s);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

/* A blob of one group or less: read and hash all of it for any read. */
static ssize_t pread_small(struct cas_vblob *v, void *buf, size_t len, uint64_t off) {
        uint8_t whole[CAS_GROUP_SIZE];
        struct cas_digest d;
        int r;

        r = read_exact(v->rd, whole, (size_t) v->size, 0);
        if (r < 0)
                return r;
        cas_digest_of(whole, (size_t) v->size, &d);
        if (!cas_digest_equal(&d, &v->rd->digest))
                return -EBADMSG;
        memcpy(buf, whole + off, len);
        return (ssize_t) len;
}

/* Reads n whole groups starting at group g into buf and checks them. */
static int groups_read(struct cas_vblob *v, uint8_t *buf, size_t n_bytes, uint64_t g) {
        int r = read_exact(v->rd, buf, n_bytes, g << CAS_GROUP_SHIFT);

        if (r < 0)
                return r;
        return cas_groups_verify(buf, n_bytes, g, v->outboard + g * CAS_CV_LEN);
}

/* Bytes of the run of groups starting at pos (group-aligned) that lie
 * wholly inside [pos, end): these are read straight into the caller's
 * buffer.  0 if the first group sticks out. */
static size_t whole_run(const struct cas_vblob *v, uint64_t pos, uint64_t end) {
        if (end == v->size)
                return (size_t) (end - pos);
        return (size_t) ((end - pos) & ~(uint64_t) (CAS_GROUP_SIZE - 1));
}

ssize_t cas_vblob_pread(struct cas_vblob *v, void *buf, size_t len, uint64_t off) {
        uint8_t *out = buf;
        uint64_t pos, end;
        int r;

        if (!v || (!buf && len > 0))
                return -EINVAL;
        if (off >= v->size || len == 0)
                return 0;
        len = (size_t) MIN((uint64_t) len, v->size - off);
        if (v->rd->verified) {
                r = read_exact(v->rd, buf, len, off);
                return r < 0 ? r : (ssize_t) len;
        }
        if (v->groups == 0)
                return pread_small(v, buf, len, off);
        end = off + len;
        for (pos = off; pos < end;) {
                uint64_t g = pos >> CAS_GROUP_SHIFT, gstart = g << CAS_GROUP_SHIFT;
                size_t run = pos == gstart ? whole_run(v, pos, end) : 0;

                if (run > 0) {
                        r = groups_read(v, out + (pos - off), run, g);
                        if (r < 0)
                                return r;
                        pos += run;
                } else {
                        uint8_t group[CAS_GROUP_SIZE];
                        size_t glen = cas_group_len(v->size, g);
                        size_t take = (size_t) (MIN(end, gstart + glen) - pos);

                        r = groups_read(v, group, glen, g);
                        if (r < 0)
                                return r;
                        memcpy(out + (pos - off), group + (pos - gstart), take);
                        pos += take;
                }
        }
        return (ssize_t) len;
}

int cas_vblob_copy(struct cas_vblob *v, uint64_t off, uint64_t len, cas_vblob_sink sink, void *userdata) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t end;
        int r;

        if (!v || !sink)
                return -EINVAL;
        if (off >= v->size || len == 0)
                return 0;
        end = off + MIN(len, v->size - off);
        buf = malloc(MIN((uint64_t) STEP_BYTES, end - off));
        if (!buf)
                return -ENOMEM;
        while (off < end) {
                /* Steps end on group boundaries, so only the first and
                 * last can cut a group. */
                uint64_t step_end = MIN(end, ((off >> CAS_GROUP_SHIFT) + STEP_GROUPS) << CAS_GROUP_SHIFT);
                ssize_t n = cas_vblob_pread(v, buf, (size_t) (step_end - off), off);

                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -EBADMSG;
                r = sink(userdata, buf, (size_t) n);
                if (r < 0)
                        return r;
                off += (uint64_t) n;
        }
        return 0;
}

int cas_vblob_check(struct cas_vblob *v) {
        uint8_t extra;
        ssize_t n;

        if (!v)
                return -EINVAL;
        if (v->groups == 0) {
                uint8_t small[CAS_GROUP_SIZE];

                n = pread_small(v, small, (size_t) v->size, 0);
                if (n < 0)
                        return (int) n;
        } else {
                _cleanup_free_ uint8_t *buf = malloc(STEP_BYTES);

                if (!buf)
                        return -ENOMEM;
                for (uint64_t off = 0; off < v->size; off += STEP_BYTES) {
                        int r = groups_read(v, buf, (size_t) MIN((uint64_t) STEP_BYTES, v->size - off),
                                            off >> CAS_GROUP_SHIFT);
                        if (r < 0)
                                return r;
                }
        }
        /* Ask the backend directly: the wrapper clamps reads at the size. */
        n = v->rd->ops->pread(v->rd, &extra, 1, v->size);
        if (n < 0)
                return (int) n;
        return n > 0 ? -EBADMSG : 0;
}

uint64_t cas_vblob_size(const struct cas_vblob *v) {
        return v ? v->size : 0;
}

struct cas_blob_reader *cas_vblob_reader(struct cas_vblob *v) {
        return v ? v->rd : NULL;
}

const uint8_t *cas_vblob_outboard(const struct cas_vblob *v, size_t *ret_len) {
        if (ret_len)
                *ret_len = v ? (size_t) (v->groups * CAS_CV_LEN) : 0;
        return v ? v->outboard : NULL;
}

void cas_vblob_close(struct cas_vblob *v) {
        if (!v)
                return;
        cas_blob_reader_close(v->rd);
        free(v->outboard);
        free(v);
}
