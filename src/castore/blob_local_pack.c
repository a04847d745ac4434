/* Reading the local blob backend's pack files: loading their indexes, the
 * table of published packs, rescans of blobs/packs/,
 * lookups, stat and the packed blob's reader. */
#include <assert.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "castore/blob_local_pack.h"
#include "util/io.h"
#include "util/log.h"

#define PACK_INDEX_MAX ((size_t) 1 << 30)
/* A directory mtime closer than this to the scan may hide a change made in
 * the same tick of the (coarse) file system clock; while that is so, a miss
 * rescans, at most once per PACKS_RESCAN_NS. */
#define PACKS_RACY_NS 100000000LL
#define PACKS_RESCAN_NS 5000000LL

void blob_local_pack_unref(struct pack *p) {
        if (!p)
                return;
        if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return;
        if (p->fd >= 0)
                close(p->fd);
        if (p->index)
                munmap((void *) p->index, p->index_len);
        free(p->dead);
        free(p);
}

void blob_local_packs_init(struct blob_local *l) {
        pthread_mutex_init(&l->pack_lock, NULL);
        pthread_cond_init(&l->pack_idle, NULL);
        pthread_mutex_init(&l->scan_lock, NULL);
        pthread_rwlock_init(&l->packs_lock, NULL);
        l->pack_map = (struct pack_map){};
}

void blob_local_packs_done(struct blob_local *l) {
        assert(!l->wpack);
        for (size_t i = 0; i < l->n_packs; i++)
                blob_local_pack_unref(l->packs[i]);
        free(l->packs);
        pack_map_done(&l->pack_map);
        pthread_mutex_destroy(&l->pack_lock);
        pthread_cond_destroy(&l->pack_idle);
        pthread_mutex_destroy(&l->scan_lock);
        pthread_rwlock_destroy(&l->packs_lock);
}

/* ---- loading an index ---- */

/* An entry's length and place in a pack of size bytes, and its outboard:
 * none, or that of its length (never one in version 1). */
static bool entry_valid(const struct pack_entry *pe, uint32_t version, uint64_t size) {
        uint64_t max = version == 1 ? PACK_VERSION_V1_BLOB_MAX : PACK_BLOB_MAX;

        if (pe->length == 0 || pe->length > max || pe->offset > size ||
            (uint64_t) pe->length + pe->ob_len > size - pe->offset)
                return false;
        return pe->ob_len == 0 || (version != 1 && pe->ob_len == cas_outboard_len(pe->length));
}

/* Checks p's mapped index (of at least a header and a trailer) and takes
 * its count and pack size. */
static int index_check(struct pack *p) {
        const uint8_t *buf = p->index;
        size_t len = p->index_len;
        struct cas_digest sum;
        uint64_t count;
        uint32_t version;

        if (memcmp(buf, PACK_MAGIC, 8) != 0)
                return log_error_errno(-EBADMSG, "Pack index %s.idx has no pack index header", p->id);
        version = le32toh(*(const uint32_t *) (buf + 8));
        if (version != 1 && version != PACK_VERSION)
                return log_error_errno(-EBADMSG, "Pack index %s.idx has unknown version %" PRIu32, p->id, version);
        memcpy(&count, buf + 16, 8);
        count = le64toh(count);
        memcpy(&p->size, buf + 24, 8);
        p->size = le64toh(p->size);
        if (count > (len - PACK_HEADER_LEN - PACK_TRAILER_LEN) / PACK_ENTRY_LEN ||
            len != PACK_HEADER_LEN + count * PACK_ENTRY_LEN + PACK_TRAILER_LEN)
                return log_error_errno(-EBADMSG, "Pack index %s.idx is truncated or has trailing bytes", p->id);
        cas_digest_of(buf, len - PACK_TRAILER_LEN, &sum);
        if (memcmp(sum.b, buf + len - PACK_TRAILER_LEN, CAS_DIGEST_LEN) != 0)
                return log_error_errno(-EBADMSG, "Pack index %s.idx fails its checksum", p->id);

        p->n = count;
        for (size_t i = 0; i < count; i++) {
                struct pack_entry pe = pack_entry_at(p, i);

                if (!entry_valid(&pe, version, p->size))
                        return log_error_errno(-EBADMSG, "Pack index %s.idx has an entry out of range", p->id);
                if (i > 0 && memcmp(pack_digest_at(p, i - 1), pack_digest_at(p, i), CAS_DIGEST_LEN) >= 0)
                        return log_error_errno(-EBADMSG, "Pack index %s.idx is not sorted", p->id);
        }
        return 0;
}

/* Maps the index file ifd (named name) into p. */
static int index_map(int ifd, const char *name, struct pack *p) {
        struct stat st;
        void *m;

        if (fstat(ifd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return log_error_errno(-EBADMSG, "Pack index %s is not a regular file", name);
        if (st.st_size < PACK_HEADER_LEN + PACK_TRAILER_LEN || (uint64_t) st.st_size > PACK_INDEX_MAX)
                return log_error_errno(-EBADMSG, "Pack index %s is truncated or too large (%jd bytes)", name,
                                       (intmax_t) st.st_size);
        m = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, ifd, 0);
        if (m == MAP_FAILED)
                return log_error_errno(negative_errno(), "Cannot map pack index %s: %m", name);
        p->index = m;
        p->index_len = (size_t) st.st_size;
        return 0;
}

/* Maps packs/<id>.idx and opens packs/<id>.pack: a new pack with one
 * reference, or -errno (logged; the caller ignores that pack). */
static int pack_load(int packs_fd, const char *id, struct pack **ret) {
        char name[PACK_ID_LEN + 8];
        _cleanup_close_ int ifd = -1, pfd = -1;
        struct pack *p;
        struct stat st;
        int r;

        snprintf(name, sizeof(name), "%s.idx", id);
        ifd = openat(packs_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (ifd < 0)
                return negative_errno(); /* removed meanwhile */
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->refs = 1;
        p->fd = -1;
        memcpy(p->id, id, PACK_ID_LEN + 1);
        r = index_map(ifd, name, p);
        if (r >= 0)
                r = index_check(p);
        if (r >= 0) {
                snprintf(name, sizeof(name), "%s.pack", id);
                pfd = openat(packs_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (pfd < 0)
                        r = log_error_errno(negative_errno(), "Cannot open pack %s: %m", name);
                else if (fstat(pfd, &st) < 0)
                        r = negative_errno();
                else if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size < p->size)
                        r = log_error_errno(-EBADMSG, "Pack %s is shorter than its index says, ignoring it", name);
        }
        if (r < 0) {
                blob_local_pack_unref(p);
                return r;
        }
        /* a cold read of a tree walks the pack forward: read ahead */
        (void) posix_fadvise(pfd, 0, 0, POSIX_FADV_SEQUENTIAL);
        p->fd = TAKE_FD(pfd);
        *ret = p;
        return 0;
}

/* ---- the table of published packs ---- */

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int64_t ts_ns(const struct timespec *t) {
        return (int64_t) t->tv_sec * 1000000000LL + t->tv_nsec;
}

static int64_t now_ns(clockid_t clock) {
        struct timespec t;

        clock_gettime(clock, &t);
        return ts_ns(&t);
}

/* One rescan's findings: the index ids in blobs/packs/, sorted (an id
 * emptied is loaded already), the packs loaded from the new ones, and the
 * table's packs whose index is gone. */
struct rescan {
        char **ids;
        size_t n_ids, cap_ids;
        struct pack **fresh; /* references, until the table takes them */
        size_t n_fresh;
        struct pack **gone;  /* the table's */
        size_t n_gone;
};

static void rescan_free(struct rescan *s) {
        for (size_t i = 0; i < s->n_fresh; i++)
                blob_local_pack_unref(s->fresh[i]);
        free(s->fresh);
        for (size_t i = 0; i < s->n_ids; i++)
                free(s->ids[i]);
        free(s->ids);
        free(s->gone);
}

/* Records the mtime of blobs/packs/ (packs_fd; -1: there is none) before
 * the walk, since a pack added during the walk changes it again. */
static int record_mtime(struct blob_local *l, int packs_fd) {
        struct stat st;

        if (packs_fd < 0) {
                l->packs_mtime = (struct timespec){};
                l->packs_racy = false;
                return 0;
        }
        if (fstat(packs_fd, &st) < 0)
                return negative_errno();
        l->packs_mtime = st.st_mtim;
        l->packs_racy = now_ns(CLOCK_REALTIME) - ts_ns(&st.st_mtim) < PACKS_RACY_NS;
        return 0;
}

/* A directory stream on a duplicate of fd, or -errno. */
static int open_dir(int fd, DIR **ret) {
        int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
        int r;

        if (!dir) {
                r = negative_errno();
                if (dup_fd >= 0)
                        close(dup_fd);
                return r;
        }
        *ret = dir;
        return 0;
}

/* Adds the id of each index in dir to s->ids. */
static int list_index_ids(DIR *dir, struct rescan *s) {
        struct dirent *de;

        while ((errno = 0, de = readdir(dir))) {
                size_t len = strlen(de->d_name);

                if (len != PACK_ID_LEN + 4 || strcmp(de->d_name + PACK_ID_LEN, ".idx") != 0 ||
                    !is_pack_id(de->d_name, PACK_ID_LEN))
                        continue;
                if (s->n_ids == s->cap_ids) {
                        char **v = reallocarray(s->ids, s->cap_ids = s->cap_ids ? 2 * s->cap_ids : 64, sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                        s->ids = v;
                }
                if (!(s->ids[s->n_ids] = strndup(de->d_name, PACK_ID_LEN)))
                        return -ENOMEM;
                s->n_ids++;
        }
        return errno != 0 ? negative_errno() : 0;
}

/* Sorts the ids, empties those of the packs loaded already and collects
 * the loaded packs whose index is gone.  Only rescans (serialised by
 * scan_lock) change the table's membership, so the pointers stay valid
 * after the lock is dropped. */
static int sort_out_loaded(struct blob_local *l, struct rescan *s) {
        if (s->n_ids > 0)
                qsort(s->ids, s->n_ids, sizeof(*s->ids), name_cmp);
        s->fresh = calloc(s->n_ids ? s->n_ids : 1, sizeof(*s->fresh));
        pthread_rwlock_rdlock(&l->packs_lock);
        s->gone = calloc(l->n_packs ? l->n_packs : 1, sizeof(*s->gone));
        if (s->fresh && s->gone)
                for (size_t i = 0; i < l->n_packs; i++) {
                        char *id = l->packs[i]->id, **hit = NULL;

                        if (s->n_ids > 0)
                                hit = bsearch(&id, s->ids, s->n_ids, sizeof(*s->ids), name_cmp);
                        if (hit)
                                (*hit)[0] = 0; /* loaded already */
                        else
                                s->gone[s->n_gone++] = l->packs[i];
                }
        pthread_rwlock_unlock(&l->packs_lock);
        return s->fresh && s->gone ? 0 : -ENOMEM;
}

/* Loads the packs of the new ids into s->fresh: the I/O, without
 * packs_lock.  A pack that fails to load is logged and left out. */
static void load_new(int packs_fd, struct rescan *s) {
        for (size_t i = 0; i < s->n_ids; i++) {
                struct pack *p = NULL;
                int k;

                if (!s->ids[i][0])
                        continue;
                k = pack_load(packs_fd, s->ids[i], &p);
                if (k >= 0)
                        s->fresh[s->n_fresh++] = p;
                else if (k != -ENOENT)
                        log_warning("Ignoring pack %s: its blobs are missing (castore verify lists what needs them)",
                                    s->ids[i]);
        }
}

/* Drops the gone packs from the table.  With packs_lock exclusive. */
static void table_drop_gone(struct blob_local *l, const struct rescan *s) {
        size_t kept = 0;

        for (size_t i = 0; i < l->n_packs; i++) {
                bool drop = false;

                for (size_t j = 0; j < s->n_gone && !drop; j++)
                        drop = l->packs[i] == s->gone[j];
                if (drop)
                        blob_local_pack_unref(l->packs[i]);
                else
                        l->packs[kept++] = l->packs[i];
        }
        l->n_packs = kept;
}

/* Hands the fresh packs' references to the table, and their entries to
 * the map unless it is rebuilt anyway.  With packs_lock exclusive. */
static int table_add_fresh(struct blob_local *l, struct rescan *s) {
        struct pack **v = reallocarray(l->packs, l->n_packs + s->n_fresh, sizeof(*v));
        size_t first = l->n_packs;

        if (!v)
                return -ENOMEM;
        l->packs = v;
        memcpy(v + l->n_packs, s->fresh, s->n_fresh * sizeof(*v));
        l->n_packs += s->n_fresh;
        s->n_fresh = 0;
        return s->n_gone == 0 ? pack_map_add(l, first) : 0;
}

/* Swaps the rescan's result into the table and the map. */
static int table_update(struct blob_local *l, struct rescan *s) {
        int r = 0;

        pthread_rwlock_wrlock(&l->packs_lock);
        if (s->n_gone > 0)
                table_drop_gone(l, s);
        if (s->n_fresh > 0)
                r = table_add_fresh(l, s);
        if (s->n_gone > 0 || r < 0) {
                int k = pack_map_rebuild(l);
                if (r >= 0)
                        r = k;
        }
        pthread_rwlock_unlock(&l->packs_lock);
        return r;
}

/* Brings the table in line with blobs/packs/: loads new indexes, drops
 * packs whose index is gone.  With scan_lock held. */
static int rescan_locked(struct blob_local *l) {
        _cleanup_close_ int packs_fd = -1;
        struct rescan s = {};
        DIR *dir;
        int r;

        packs_fd = openat(l->blobs_fd, PACKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (packs_fd < 0 && errno != ENOENT)
                return log_error_errno(negative_errno(), "Cannot open the pack directory: %m");
        r = record_mtime(l, packs_fd);
        if (r < 0)
                return r;
        if (packs_fd >= 0) {
                r = open_dir(packs_fd, &dir);
                if (r < 0)
                        return r;
                r = list_index_ids(dir, &s);
                closedir(dir);
        }
        l->packs_scanned = true;
        clock_gettime(CLOCK_MONOTONIC, &l->packs_scan_time);
        if (r >= 0)
                r = sort_out_loaded(l, &s);
        if (r >= 0) {
                load_new(packs_fd, &s);
                r = table_update(l, &s);
        }
        if (r < 0)
                l->packs_scanned = false; /* the next lookup that misses tries again */
        rescan_free(&s);
        return r;
}

/* Rescans if never done or if blobs/packs/ changed: 1 if it rescanned,
 * 0 if not, -errno. */
int blob_local_packs_rescan(struct blob_local *l, bool force) {
        struct stat st;
        int r = 0;

        pthread_mutex_lock(&l->scan_lock);
        if (!force && l->packs_scanned) {
                if (fstatat(l->blobs_fd, PACKS_DIR, &st, 0) < 0)
                        st.st_mtim = (struct timespec){};
                if (st.st_mtim.tv_sec == l->packs_mtime.tv_sec && st.st_mtim.tv_nsec == l->packs_mtime.tv_nsec &&
                    (!l->packs_racy || now_ns(CLOCK_MONOTONIC) - ts_ns(&l->packs_scan_time) < PACKS_RESCAN_NS))
                        goto out;
        }
        r = rescan_locked(l);
        if (r >= 0)
                r = 1;
out:
        pthread_mutex_unlock(&l->scan_lock);
        return r;
}

/* The live entry of d and a reference on its pack, or NULL. */
static struct pack *lookup_ref(struct blob_local *l, const struct cas_digest *d, struct pack_entry *ret) {
        struct pack *p;
        size_t i;

        pthread_rwlock_rdlock(&l->packs_lock);
        p = pack_map_find(l, d, &i);
        if (p) {
                __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
                *ret = pack_entry_at(p, i);
        }
        pthread_rwlock_unlock(&l->packs_lock);
        return p;
}

/* lookup_ref, with one rescan on a miss if allowed and needed.  Looks
 * again even if this thread did not rescan: it may have waited for the
 * rescan of another that missed at the same time (the first one). */
static struct pack *find(struct blob_local *l, const struct cas_digest *d, bool rescan, struct pack_entry *ret) {
        struct pack *p = lookup_ref(l, d, ret);

        if (!p && rescan && blob_local_packs_rescan(l, false) >= 0)
                p = lookup_ref(l, d, ret);
        return p;
}

/* A packed blob's length, and the bytes it takes in its pack with its
 * outboard. */
static int find_sizes(struct blob_local *l, const struct cas_digest *d, bool rescan, uint64_t *ret_length,
                      uint64_t *ret_bytes) {
        struct pack_entry e;
        struct pack *p = find(l, d, rescan, &e);

        if (!p)
                return -ENOENT;
        *ret_length = e.length;
        *ret_bytes = (uint64_t) e.length + e.ob_len;
        blob_local_pack_unref(p);
        return 0;
}

int blob_local_pack_stat(struct blob_local *l, const struct cas_digest *d, bool rescan, uint64_t *ret_size) {
        uint64_t bytes;

        return find_sizes(l, d, rescan, ret_size, &bytes);
}

int blob_local_pack_bytes(struct blob_local *l, const struct cas_digest *d, bool rescan, uint64_t *ret_bytes) {
        uint64_t length;

        return find_sizes(l, d, rescan, &length, ret_bytes);
}

int blob_local_pack_outboard(struct blob_local *l, const struct cas_digest *d, uint8_t **ret, size_t *ret_len) {
        struct pack_entry e;
        struct pack *p = find(l, d, false, &e);
        _cleanup_free_ uint8_t *ob = NULL;
        int r = 0;

        if (!p)
                return -ENOENT;
        if (e.ob_len == 0)
                r = -ENOENT;
        else if (!(ob = malloc(e.ob_len)))
                r = -ENOMEM;
        else
                r = pread_full(p->fd, ob, e.ob_len, e.offset + e.length);
        if (r < 0 && r != -ENOENT && r != -ENOMEM)
                log_warning_errno(r, "Cannot read the outboard of blob %s from pack %s: %m", CAS_DIGEST_HEX(d), p->id);
        blob_local_pack_unref(p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ob);
        *ret_len = e.ob_len;
        return 0;
}

/* A packed blob's reader: positional reads of its range of the pack file,
 * which the reader's reference keeps open (also after a rewrite removed
 * the file).  Nothing is held in memory, so idle readers cost little. */
struct pack_reader {
        struct cas_blob_reader base;
        struct pack *pack; /* a reference */
        uint64_t offset;   /* of the blob in the pack */
};

static ssize_t pack_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        struct pack_reader *pr = (struct pack_reader *) r;
        ssize_t n;

        if (off >= r->size)
                return 0;
        len = (size_t) MIN((uint64_t) len, r->size - off);
        do
                n = pread(pr->pack->fd, buf, len, (off_t) (pr->offset + off));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return log_warning_errno(negative_errno(), "Cannot read blob %s from pack %s: %m",
                                         CAS_DIGEST_HEX(&r->digest), pr->pack->id);
        /* a pack shorter than its index says: the verified reader reports
         * the missing bytes as damage */
        return n;
}

static void pack_reader_close(struct cas_blob_reader *r) {
        struct pack_reader *pr = (struct pack_reader *) r;

        blob_local_pack_unref(pr->pack);
        free(pr);
}

static const struct cas_blob_reader_ops pack_reader_ops = {
        .pread = pack_pread,
        .close = pack_reader_close,
};

int blob_local_pack_open(struct blob_local *l, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct pack_entry e;
        struct pack *p = find(l, d, true, &e);
        struct pack_reader *pr;

        if (!p)
                return -ENOENT;
        pr = calloc(1, sizeof(*pr));
        if (!pr) {
                blob_local_pack_unref(p);
                return -ENOMEM;
        }
        *pr = (struct pack_reader){
                .base = { .ops = &pack_reader_ops, .digest = *d, .size = e.length, .fd = -1 },
                .pack = p, /* find's reference, now the reader's */
                .offset = e.offset,
        };
        *ret = &pr->base;
        return 0;
}
