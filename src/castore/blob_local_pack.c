/* Pack files of the local blob backend: small imported blobs appended in
 * arrival order to one file per flush, found through a sorted index file
 * beside it; the in-memory table of all packs; rewriting packs. */
#include <assert.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "castore/blob_local.h"
#include "util/io.h"
#include "util/log.h"

/* On disk, in blobs/packs/:
 *   <id>.pack   the blobs' bytes, back to back, nothing else
 *   <id>.idx    header | entries | trailer, integers little-endian:
 *     header  (32)  "CASPACK\n", u32 version (1), u32 0, u64 count,
 *                   u64 pack size (bytes of <id>.pack the entries cover)
 *     entry   (48)  digest[32], u64 offset, u32 length (1..16384), u32 0;
 *                   sorted by digest, no digest twice
 *     trailer (32)  BLAKE3 of header and entries
 * <id> is the hex of the first 16 bytes of the trailer.  A flush renames
 * the pack, then the index, after a syncfs: an index implies a complete,
 * durable pack.  A pack without an index is ignored (gc removes it). */
#define PACK_MAGIC "CASPACK\n"
#define PACK_VERSION 1
#define PACK_HEADER_LEN 32
#define PACK_ENTRY_LEN 48
#define PACK_TRAILER_LEN CAS_DIGEST_LEN
#define PACK_INDEX_MAX ((size_t) 1 << 30)
#define PACK_NAME_MAX (sizeof(PACKS_DIR) + PACK_ID_LEN + 8) /* "packs/<id>.pack" */
#define WENTRY_CHUNK 4096
/* A directory mtime closer than this to the scan may hide a change made in
 * the same tick of the (coarse) file system clock; while that is so, a miss
 * rescans, at most once per PACKS_RESCAN_NS. */
#define PACKS_RACY_NS 100000000LL
#define PACKS_RESCAN_NS 5000000LL

struct pack_entry {
        struct cas_digest digest;
        uint64_t offset;
        uint32_t length;
        bool dead;         /* packs_lock: removed, rewritten away at the next flush */
        struct pack *pack; /* immutable */
};

/* A published pack.  Freed with its last reference (the table's, and one
 * per lookup reading from it), so a pack gc removes keeps working for a
 * reader that found it before. */
struct pack {
        unsigned refs;               /* atomic */
        int fd;                      /* immutable: the pack file, read with pread */
        char id[PACK_ID_LEN + 1];    /* immutable */
        uint64_t size;               /* immutable */
        size_t n;                    /* immutable */
        struct pack_entry *entries;  /* immutable but for .dead; sorted by digest */
        size_t n_dead;               /* packs_lock */
        bool rewrite;                /* packs_lock: merge it at the next flush */
};

struct wentry {
        struct cas_digest digest;
        uint64_t offset;
        uint32_t length;
};

/* A pack being written: temporary <prefix>.<seq>.  Entries live in fixed
 * chunks so the map's pointers stay valid while it grows. */
struct pack_writer {
        int fd;                      /* immutable; -1: a writer only retiring packs */
        uint64_t seq;                /* immutable */
        uint64_t end;                /* pack_lock: bytes reserved */
        struct wentry **chunks;      /* pack_lock */
        size_t n, n_chunks;          /* pack_lock */
        struct hashmap map;          /* pack_lock: digest -> struct wentry */
        unsigned inflight;           /* pack_lock: reserved ranges not yet written */
        int error;                   /* pack_lock: the first write error */
        /* owned by the flushing thread once detached: */
        bool have_index;
        uint64_t index_seq;
        char id[PACK_ID_LEN + 1];
        struct pack **retire;        /* references on the packs it replaces */
        size_t n_retire;
};

static bool entry_eq(const void *entry, const void *key) {
        return cas_digest_equal(entry, key); /* the digest comes first in both entry types */
}

static void pack_unref(struct pack *p) {
        if (!p)
                return;
        if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return;
        close(p->fd);
        free(p->entries);
        free(p);
}

void blob_local_packs_init(struct blob_local *l) {
        pthread_mutex_init(&l->pack_lock, NULL);
        pthread_cond_init(&l->pack_idle, NULL);
        pthread_mutex_init(&l->scan_lock, NULL);
        pthread_rwlock_init(&l->packs_lock, NULL);
        hashmap_init(&l->pack_map, entry_eq);
}

static void writer_free(struct pack_writer *w) {
        if (!w)
                return;
        if (w->fd >= 0)
                close(w->fd);
        for (size_t i = 0; i < w->n_chunks; i++)
                free(w->chunks[i]);
        free(w->chunks);
        hashmap_done(&w->map);
        for (size_t i = 0; i < w->n_retire; i++)
                pack_unref(w->retire[i]);
        free(w->retire);
        free(w);
}

void blob_local_packs_done(struct blob_local *l) {
        assert(!l->wpack);
        for (size_t i = 0; i < l->n_packs; i++)
                pack_unref(l->packs[i]);
        free(l->packs);
        hashmap_done(&l->pack_map);
        pthread_mutex_destroy(&l->pack_lock);
        pthread_cond_destroy(&l->pack_idle);
        pthread_mutex_destroy(&l->scan_lock);
        pthread_rwlock_destroy(&l->packs_lock);
}

/* ---- loading an index ---- */

static int entry_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN); /* the digest comes first */
}

/* Parses and checks index bytes; the entries point at p. */
static int index_parse(const uint8_t *buf, size_t len, struct pack *p) {
        struct cas_digest sum;
        uint64_t count;

        if (len < PACK_HEADER_LEN + PACK_TRAILER_LEN)
                return log_error_errno(-EBADMSG, "Pack index %s.idx is truncated (%zu bytes)", p->id, len);
        if (memcmp(buf, PACK_MAGIC, 8) != 0)
                return log_error_errno(-EBADMSG, "Pack index %s.idx has no pack index header", p->id);
        if (le32toh(*(const uint32_t *) (buf + 8)) != PACK_VERSION)
                return log_error_errno(-EBADMSG, "Pack index %s.idx has unknown version %" PRIu32, p->id,
                                       le32toh(*(const uint32_t *) (buf + 8)));
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

        p->entries = calloc(count ? count : 1, sizeof(*p->entries));
        if (!p->entries)
                return -ENOMEM;
        p->n = count;
        for (size_t i = 0; i < count; i++) {
                const uint8_t *e = buf + PACK_HEADER_LEN + i * PACK_ENTRY_LEN;
                struct pack_entry *pe = &p->entries[i];
                uint64_t off;
                uint32_t length;

                memcpy(pe->digest.b, e, CAS_DIGEST_LEN);
                memcpy(&off, e + 32, 8);
                memcpy(&length, e + 40, 4);
                pe->offset = le64toh(off);
                pe->length = le32toh(length);
                pe->pack = p;
                if (pe->length == 0 || pe->length > PACK_BLOB_MAX || pe->offset > p->size ||
                    pe->length > p->size - pe->offset)
                        return log_error_errno(-EBADMSG, "Pack index %s.idx has an entry out of range", p->id);
                if (i > 0 && entry_cmp(&p->entries[i - 1], pe) >= 0)
                        return log_error_errno(-EBADMSG, "Pack index %s.idx is not sorted", p->id);
        }
        return 0;
}

/* Loads packs/<id>.idx and opens packs/<id>.pack: a new pack with one
 * reference, or -errno (logged; the caller ignores that pack). */
static int pack_load(int packs_fd, const char *id, struct pack **ret) {
        char name[PACK_ID_LEN + 8];
        _cleanup_close_ int ifd = -1, pfd = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        struct pack *p;
        struct stat st;
        size_t len;
        int r;

        snprintf(name, sizeof(name), "%s.idx", id);
        ifd = openat(packs_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (ifd < 0)
                return negative_errno(); /* removed meanwhile */
        r = read_file_fd(ifd, PACK_INDEX_MAX, &buf, &len);
        if (r < 0)
                return log_error_errno(r, "Cannot read pack index %s: %m", name);
        snprintf(name, sizeof(name), "%s.pack", id);
        pfd = openat(packs_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (pfd < 0)
                return log_error_errno(negative_errno(), "Cannot open pack %s: %m", name);
        if (fstat(pfd, &st) < 0)
                return negative_errno();

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->refs = 1;
        p->fd = -1;
        memcpy(p->id, id, PACK_ID_LEN + 1);
        r = index_parse(buf, len, p);
        if (r >= 0 && (!S_ISREG(st.st_mode) || (uint64_t) st.st_size < p->size))
                r = log_error_errno(-EBADMSG, "Pack %s is shorter than its index says, ignoring it", name);
        if (r < 0) {
                free(p->entries);
                free(p);
                return r;
        }
        /* a cold read of a tree walks the pack forward: read ahead */
        (void) posix_fadvise(pfd, 0, 0, POSIX_FADV_SEQUENTIAL);
        p->fd = TAKE_FD(pfd);
        *ret = p;
        return 0;
}

static bool is_pack_id(const char *s, size_t n) {
        if (n != PACK_ID_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* ---- the table of published packs ---- */

/* With packs_lock exclusive. */
static int map_add_pack(struct blob_local *l, struct pack *p) {
        for (size_t i = 0; i < p->n; i++) {
                struct pack_entry *e = &p->entries[i];
                uint64_t h = cas_digest_hash(&e->digest);

                if (e->dead || hashmap_get(&l->pack_map, h, &e->digest))
                        continue;
                if (hashmap_put(&l->pack_map, h, e) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int map_rebuild(struct blob_local *l) {
        int r = 0;

        hashmap_done(&l->pack_map);
        hashmap_init(&l->pack_map, entry_eq);
        for (size_t i = 0; i < l->n_packs && r >= 0; i++)
                r = map_add_pack(l, l->packs[i]);
        return r;
}

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

/* Brings the table in line with blobs/packs/: loads new indexes, drops
 * packs whose index is gone.  With scan_lock held. */
static int rescan_locked(struct blob_local *l) {
        _cleanup_close_ int packs_fd = -1;
        char **names = NULL;
        struct pack **fresh = NULL, **gone = NULL;
        size_t n_names = 0, cap = 0, n_fresh = 0, n_gone = 0;
        struct stat st;
        DIR *dir = NULL;
        struct dirent *de;
        int r = 0, fd;

        packs_fd = openat(l->blobs_fd, PACKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (packs_fd < 0 && errno != ENOENT)
                return log_error_errno(negative_errno(), "Cannot open the pack directory: %m");
        if (packs_fd >= 0) {
                /* the mtime first: a pack added during the walk changes it again */
                if (fstat(packs_fd, &st) < 0)
                        return negative_errno();
                l->packs_mtime = st.st_mtim;
                l->packs_racy = now_ns(CLOCK_REALTIME) - ts_ns(&st.st_mtim) < PACKS_RACY_NS;
                fd = fcntl(packs_fd, F_DUPFD_CLOEXEC, 3);
                dir = fd >= 0 ? fdopendir(fd) : NULL;
                if (!dir) {
                        r = negative_errno();
                        if (fd >= 0)
                                close(fd);
                        return r;
                }
                while ((errno = 0, de = readdir(dir))) {
                        size_t len = strlen(de->d_name);

                        if (len != PACK_ID_LEN + 4 || strcmp(de->d_name + PACK_ID_LEN, ".idx") != 0 ||
                            !is_pack_id(de->d_name, PACK_ID_LEN))
                                continue;
                        if (n_names == cap) {
                                char **v = reallocarray(names, cap = cap ? 2 * cap : 64, sizeof(*v));
                                if (!v) {
                                        r = -ENOMEM;
                                        break;
                                }
                                names = v;
                        }
                        if (!(names[n_names] = strndup(de->d_name, PACK_ID_LEN))) {
                                r = -ENOMEM;
                                break;
                        }
                        n_names++;
                }
                if (r >= 0 && errno != 0)
                        r = negative_errno();
                closedir(dir);
        } else {
                l->packs_mtime = (struct timespec){};
                l->packs_racy = false;
        }
        l->packs_scanned = true;
        clock_gettime(CLOCK_MONOTONIC, &l->packs_scan_time);
        if (r < 0)
                goto out;
        if (n_names > 0)
                qsort(names, n_names, sizeof(*names), name_cmp);

        /* Which packs are loaded already, which are gone.  Only rescans
         * (serialised by scan_lock) change the table's membership, so the
         * pointers stay valid after the lock is dropped. */
        fresh = calloc(n_names ? n_names : 1, sizeof(*fresh));
        pthread_rwlock_rdlock(&l->packs_lock);
        gone = calloc(l->n_packs ? l->n_packs : 1, sizeof(*gone));
        if (fresh && gone)
                for (size_t i = 0; i < l->n_packs; i++) {
                        char *id = l->packs[i]->id, **hit = NULL;

                        if (n_names > 0)
                                hit = bsearch(&id, names, n_names, sizeof(*names), name_cmp);
                        if (hit)
                                (*hit)[0] = 0; /* loaded already */
                        else
                                gone[n_gone++] = l->packs[i];
                }
        pthread_rwlock_unlock(&l->packs_lock);
        if (!fresh || !gone) {
                r = -ENOMEM;
                goto out;
        }
        /* the I/O, without packs_lock */
        for (size_t i = 0; i < n_names; i++) {
                struct pack *p = NULL;

                int k;

                if (!names[i][0])
                        continue;
                k = pack_load(packs_fd, names[i], &p);
                if (k >= 0)
                        fresh[n_fresh++] = p;
                else if (k != -ENOENT)
                        log_warning("Ignoring pack %s: its blobs are missing (castore verify lists what needs them)",
                                    names[i]);
        }

        pthread_rwlock_wrlock(&l->packs_lock);
        if (n_gone > 0) {
                size_t kept = 0;

                for (size_t i = 0; i < l->n_packs; i++) {
                        bool drop = false;

                        for (size_t j = 0; j < n_gone && !drop; j++)
                                drop = l->packs[i] == gone[j];
                        if (drop)
                                pack_unref(l->packs[i]);
                        else
                                l->packs[kept++] = l->packs[i];
                }
                l->n_packs = kept;
        }
        if (n_fresh > 0) {
                struct pack **v = reallocarray(l->packs, l->n_packs + n_fresh, sizeof(*v));

                if (v) {
                        l->packs = v;
                        memcpy(v + l->n_packs, fresh, n_fresh * sizeof(*v));
                        l->n_packs += n_fresh;
                        if (n_gone == 0)
                                for (size_t i = 0; i < n_fresh && r >= 0; i++)
                                        r = map_add_pack(l, fresh[i]);
                        n_fresh = 0;
                } else
                        r = -ENOMEM;
        }
        if (n_gone > 0 || r < 0) {
                int k = map_rebuild(l);
                if (r >= 0)
                        r = k;
        }
        pthread_rwlock_unlock(&l->packs_lock);
out:
        for (size_t i = 0; i < n_fresh; i++)
                pack_unref(fresh[i]);
        free(fresh);
        for (size_t i = 0; i < n_names; i++)
                free(names[i]);
        free(names);
        free(gone);
        return r;
}

/* Rescans if never done or if blobs/packs/ changed: 1 if it rescanned,
 * 0 if not, -errno. */
static int rescan_if_changed(struct blob_local *l, bool force) {
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

/* The live entry of d with a reference on its pack, or NULL. */
static struct pack_entry *lookup_ref(struct blob_local *l, const struct cas_digest *d) {
        struct pack_entry *e;

        pthread_rwlock_rdlock(&l->packs_lock);
        e = hashmap_get(&l->pack_map, cas_digest_hash(d), d);
        if (e)
                __atomic_add_fetch(&e->pack->refs, 1, __ATOMIC_RELAXED);
        pthread_rwlock_unlock(&l->packs_lock);
        return e;
}

/* lookup_ref, with one rescan on a miss if allowed and needed.  Looks
 * again even if this thread did not rescan: it may have waited for the
 * rescan of another that missed at the same time (the first one). */
static struct pack_entry *find(struct blob_local *l, const struct cas_digest *d, bool rescan) {
        struct pack_entry *e = lookup_ref(l, d);

        if (!e && rescan && rescan_if_changed(l, false) >= 0)
                e = lookup_ref(l, d);
        return e;
}

int blob_local_pack_stat(struct blob_local *l, const struct cas_digest *d, bool rescan, uint64_t *ret_size) {
        struct pack_entry *e = find(l, d, rescan);

        if (!e)
                return -ENOENT;
        *ret_size = e->length;
        pack_unref(e->pack);
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

        pack_unref(pr->pack);
        free(pr);
}

static const struct cas_blob_reader_ops pack_reader_ops = {
        .pread = pack_pread,
        .close = pack_reader_close,
};

int blob_local_pack_open(struct blob_local *l, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct pack_entry *e = find(l, d, true);
        struct pack_reader *pr;

        if (!e)
                return -ENOENT;
        pr = calloc(1, sizeof(*pr));
        if (!pr) {
                pack_unref(e->pack);
                return -ENOMEM;
        }
        *pr = (struct pack_reader){
                .base = { .ops = &pack_reader_ops, .digest = *d, .size = e->length, .fd = -1 },
                .pack = e->pack, /* find's reference, now the reader's */
                .offset = e->offset,
        };
        *ret = &pr->base;
        return 0;
}

/* ---- writing ---- */

static void writer_discard(struct blob_local *l, struct pack_writer *w);

bool blob_local_pack_pending(struct blob_local *l, const struct cas_digest *d) {
        bool found;

        pthread_mutex_lock(&l->pack_lock);
        found = l->wpack && hashmap_get(&l->wpack->map, cas_digest_hash(d), d);
        pthread_mutex_unlock(&l->pack_lock);
        return found;
}

/* with_file: creates the temporary too (else a writer that only retires
 * packs). */
static int writer_new(struct blob_local *l, bool with_file, struct pack_writer **ret) {
        struct pack_writer *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->fd = -1;
        hashmap_init(&w->map, entry_eq);
        if (with_file) {
                r = blob_local_ensure_writable(l);
                if (r >= 0)
                        r = w->fd = blob_local_tmp_create(l, &w->seq);
                if (r < 0) {
                        writer_free(w);
                        return r;
                }
        }
        *ret = w;
        return 0;
}

static void spare_drop(struct blob_local *l, struct pack_writer *spare) {
        if (spare)
                writer_discard(l, spare);
}

int blob_local_pack_put(struct blob_local *l, const struct cas_digest *d, const void *data, size_t len) {
        struct pack_writer *w, *spare = NULL;
        struct wentry *e;
        uint64_t off;
        bool due;
        int r;

        if (len == 0 || len > PACK_BLOB_MAX)
                return -EINVAL;
        pthread_mutex_lock(&l->pack_lock);
        while (!l->wpack) {
                /* create the temporary outside the lock */
                pthread_mutex_unlock(&l->pack_lock);
                r = writer_new(l, true, &spare);
                if (r < 0)
                        return log_error_errno(r, "Cannot create a pack: %m");
                pthread_mutex_lock(&l->pack_lock);
                if (!l->wpack)
                        l->wpack = TAKE_PTR(spare);
        }
        w = l->wpack;
        if (hashmap_get(&w->map, cas_digest_hash(d), d)) {
                pthread_mutex_unlock(&l->pack_lock);
                spare_drop(l, spare);
                return 0;
        }
        if (w->n == w->n_chunks * WENTRY_CHUNK) {
                struct wentry **c = reallocarray(w->chunks, w->n_chunks + 1, sizeof(*c));

                if (c)
                        w->chunks = c;
                if (!c || !(c[w->n_chunks] = malloc(WENTRY_CHUNK * sizeof(struct wentry)))) {
                        pthread_mutex_unlock(&l->pack_lock);
                        spare_drop(l, spare);
                        return -ENOMEM;
                }
                w->n_chunks++;
        }
        e = &w->chunks[w->n / WENTRY_CHUNK][w->n % WENTRY_CHUNK];
        *e = (struct wentry){ *d, w->end, (uint32_t) len };
        if (hashmap_put(&w->map, cas_digest_hash(d), e) < 0) {
                pthread_mutex_unlock(&l->pack_lock);
                spare_drop(l, spare);
                return -ENOMEM;
        }
        w->n++;
        off = w->end;
        w->end += len;
        w->inflight++;
        due = w->end >= PACK_BYTES_MAX || w->n >= __atomic_load_n(&l->flush_at, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&l->pack_lock);
        spare_drop(l, spare);

        /* the write, outside the lock; a flush waits for it */
        r = 0;
        for (size_t done = 0; done < len;) {
                ssize_t n = pwrite(w->fd, (const uint8_t *) data + done, len - done, (off_t) (off + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? negative_errno() : -EIO;
                        break;
                }
                done += n;
        }
        pthread_mutex_lock(&l->pack_lock);
        if (r < 0 && w->error >= 0)
                w->error = r;
        assert(w->inflight > 0);
        if (--w->inflight == 0)
                pthread_cond_broadcast(&l->pack_idle);
        pthread_mutex_unlock(&l->pack_lock);
        if (r < 0)
                return log_error_errno(r, "Cannot write blob %s to a pack: %m", CAS_DIGEST_HEX(d));
        return due ? 1 : 0;
}

/* ---- listing and removal ---- */

struct list_ctx {
        struct cas_digest *v;
        size_t n;
};

static bool list_one(void *entry, void *userdata) {
        struct list_ctx *c = userdata;

        c->v[c->n++] = ((struct pack_entry *) entry)->digest;
        return true;
}

int blob_local_pack_list(struct blob_local *l, cas_blob_list_cb cb, void *userdata) {
        _cleanup_free_ struct cas_digest *v = NULL;
        struct list_ctx c = {};
        int r;

        r = rescan_if_changed(l, false);
        if (r < 0)
                return r;
        pthread_rwlock_rdlock(&l->packs_lock);
        v = malloc((l->pack_map.count ? l->pack_map.count : 1) * sizeof(*v));
        if (v) {
                c.v = v;
                hashmap_foreach(&l->pack_map, list_one, &c);
        }
        pthread_rwlock_unlock(&l->packs_lock);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < c.n; i++) {
                r = cb(userdata, &v[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int blob_local_pack_remove(struct blob_local *l, const struct cas_digest *d) {
        int r = -ENOENT;

        (void) rescan_if_changed(l, false);
        pthread_rwlock_wrlock(&l->packs_lock);
        (void) hashmap_remove(&l->pack_map, cas_digest_hash(d), d);
        for (size_t i = 0; i < l->n_packs; i++) {
                struct pack *p = l->packs[i];
                struct pack_entry *e = bsearch(d, p->entries, p->n, sizeof(*p->entries), entry_cmp);

                if (!e || e->dead)
                        continue;
                e->dead = true;
                p->n_dead++;
                r = 0;
        }
        pthread_rwlock_unlock(&l->packs_lock);
        return r;
}

size_t blob_local_pack_mark_merge(struct blob_local *l, uint64_t below, bool dry_run) {
        size_t small = 0, marked = 0;

        (void) rescan_if_changed(l, false);
        pthread_rwlock_wrlock(&l->packs_lock);
        for (size_t i = 0; i < l->n_packs; i++)
                if (l->packs[i]->size < below)
                        small++;
        for (size_t i = 0; i < l->n_packs; i++) {
                struct pack *p = l->packs[i];
                bool merge = small >= 2 && p->size < below;

                if (merge && !dry_run)
                        p->rewrite = true;
                if (merge || p->rewrite || p->n_dead > 0)
                        marked++;
        }
        pthread_rwlock_unlock(&l->packs_lock);
        return marked;
}

void blob_local_pack_reclaim(struct blob_local *l, bool dry_run, uint64_t *files, uint64_t *bytes) {
        int fd = openat(l->blobs_fd, PACKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!dir) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        while ((de = readdir(dir))) {
                size_t len = strlen(de->d_name);
                bool is_idx, is_pack;
                char other[PACK_ID_LEN + 8];
                struct stat st;

                is_idx = len == PACK_ID_LEN + 4 && strcmp(de->d_name + PACK_ID_LEN, ".idx") == 0;
                is_pack = len == PACK_ID_LEN + 5 && strcmp(de->d_name + PACK_ID_LEN, ".pack") == 0;
                if ((!is_idx && !is_pack) || !is_pack_id(de->d_name, PACK_ID_LEN))
                        continue;
                snprintf(other, sizeof(other), "%.*s.%s", PACK_ID_LEN, de->d_name, is_idx ? "pack" : "idx");
                if (faccessat(dirfd(dir), other, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
                        continue;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (!dry_run && unlinkat(dirfd(dir), de->d_name, 0) < 0)
                        continue;
                (*files)++;
                *bytes += st.st_size;
        }
        closedir(dir);
}

/* ---- the flush ---- */

/* Copies the live blobs of p into the pack being written, checking each
 * against its digest: a damaged one is dropped (and logged). */
static int pack_copy_live(struct blob_local *l, struct pack *p) {
        _cleanup_free_ uint8_t *buf = malloc(PACK_BLOB_MAX);

        if (!buf)
                return -ENOMEM;

        for (size_t i = 0; i < p->n; i++) {
                struct pack_entry *e = &p->entries[i];
                struct cas_digest d;
                bool dead;
                ssize_t n;
                int r;

                pthread_rwlock_rdlock(&l->packs_lock);
                dead = e->dead;
                pthread_rwlock_unlock(&l->packs_lock);
                if (dead)
                        continue;
                n = pread(p->fd, buf, e->length, (off_t) e->offset);
                if (n < 0)
                        return log_error_errno(negative_errno(), "Cannot read pack %s: %m", p->id);
                cas_digest_of(buf, (size_t) n, &d);
                if ((size_t) n != e->length || !cas_digest_equal(&d, &e->digest)) {
                        log_warning("Blob %s in pack %s is damaged, dropping it", CAS_DIGEST_HEX(&e->digest),
                                    p->id);
                        continue;
                }
                r = blob_local_pack_put(l, &e->digest, buf, e->length);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int wentry_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN);
}

/* Writes w's index as a temporary and names w after it. */
static int write_index(struct blob_local *l, struct pack_writer *w) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ struct wentry *v = NULL;
        size_t len = PACK_HEADER_LEN + w->n * PACK_ENTRY_LEN + PACK_TRAILER_LEN;
        struct cas_digest sum;
        char hex[CAS_DIGEST_HEX_LEN + 1];
        uint32_t u32;
        uint64_t u64;
        int fd, r;

        v = malloc(w->n * sizeof(*v));
        buf = calloc(1, len);
        if (!v || !buf)
                return -ENOMEM;
        for (size_t i = 0; i < w->n; i++)
                v[i] = w->chunks[i / WENTRY_CHUNK][i % WENTRY_CHUNK];
        qsort(v, w->n, sizeof(*v), wentry_cmp);

        memcpy(buf, PACK_MAGIC, 8);
        u32 = htole32(PACK_VERSION);
        memcpy(buf + 8, &u32, 4);
        u64 = htole64(w->n);
        memcpy(buf + 16, &u64, 8);
        u64 = htole64(w->end);
        memcpy(buf + 24, &u64, 8);
        for (size_t i = 0; i < w->n; i++) {
                uint8_t *e = buf + PACK_HEADER_LEN + i * PACK_ENTRY_LEN;

                memcpy(e, v[i].digest.b, CAS_DIGEST_LEN);
                u64 = htole64(v[i].offset);
                memcpy(e + 32, &u64, 8);
                u32 = htole32(v[i].length);
                memcpy(e + 40, &u32, 4);
        }
        cas_digest_of(buf, len - PACK_TRAILER_LEN, &sum);
        memcpy(buf + len - PACK_TRAILER_LEN, sum.b, CAS_DIGEST_LEN);
        cas_digest_to_hex(&sum, hex);
        memcpy(w->id, hex, PACK_ID_LEN);
        w->id[PACK_ID_LEN] = 0;

        fd = blob_local_tmp_create(l, &w->index_seq);
        if (fd < 0)
                return fd;
        w->have_index = true;
        r = loop_write(fd, buf, len);
        if (close(fd) < 0 && r >= 0 && errno != EINTR)
                r = negative_errno();
        return r;
}

static void writer_discard(struct blob_local *l, struct pack_writer *w) {
        if (w->fd >= 0)
                blob_local_unlink_tmp(l, w->seq);
        if (w->have_index)
                blob_local_unlink_tmp(l, w->index_seq);
        writer_free(w);
}

int blob_local_pack_prepare(struct blob_local *l, struct pack_writer **ret) {
        _cleanup_free_ struct pack **retire = NULL;
        size_t n_retire = 0;
        struct pack_writer *w;
        int r = 0;

        /* the packs to rewrite, referenced */
        pthread_rwlock_rdlock(&l->packs_lock);
        retire = calloc(l->n_packs ? l->n_packs : 1, sizeof(*retire));
        if (retire)
                for (size_t i = 0; i < l->n_packs; i++)
                        if (l->packs[i]->rewrite || l->packs[i]->n_dead > 0) {
                                retire[n_retire] = l->packs[i];
                                __atomic_add_fetch(&retire[n_retire++]->refs, 1, __ATOMIC_RELAXED);
                        }
        pthread_rwlock_unlock(&l->packs_lock);
        if (!retire)
                return -ENOMEM;
        for (size_t i = 0; i < n_retire && r >= 0; i++)
                r = pack_copy_live(l, retire[i]);

        pthread_mutex_lock(&l->pack_lock);
        w = TAKE_PTR(l->wpack);
        while (w && w->inflight > 0)
                pthread_cond_wait(&l->pack_idle, &l->pack_lock);
        pthread_mutex_unlock(&l->pack_lock);

        if (r >= 0 && !w && n_retire > 0)
                r = writer_new(l, false, &w);
        if (!w) {
                for (size_t i = 0; i < n_retire; i++)
                        pack_unref(retire[i]);
                *ret = NULL;
                return r;
        }
        w->retire = TAKE_PTR(retire);
        w->n_retire = n_retire;
        if (r >= 0 && w->error < 0)
                r = w->error;
        if (r >= 0 && w->n > 0)
                r = write_index(l, w);
        if (r < 0) {
                log_error_errno(r, "Cannot write a pack: %m");
                writer_discard(l, w);
                *ret = NULL;
                return r;
        }
        *ret = w;
        return 0;
}

int blob_local_pack_publish(struct blob_local *l, struct pack_writer *w) {
        char from[TMP_NAME_MAX], to[PACK_NAME_MAX];
        int r;

        if (w->n == 0)
                return 0;
        if (mkdirat(l->blobs_fd, PACKS_DIR, 0775) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "Cannot create the pack directory: %m");
        blob_local_tmp_name(l, w->seq, from);
        snprintf(to, sizeof(to), PACKS_DIR "/%s.pack", w->id);
        if (renameat(l->tmp_fd, from, l->blobs_fd, to) < 0)
                return log_error_errno(negative_errno(), "Cannot move pack %s into place: %m", w->id);
        close(w->fd);
        w->fd = -1; /* renamed: an orphan .pack is for gc now */
        blob_local_tmp_name(l, w->index_seq, from);
        snprintf(to, sizeof(to), PACKS_DIR "/%s.idx", w->id);
        if (renameat(l->tmp_fd, from, l->blobs_fd, to) < 0) {
                r = log_error_errno(negative_errno(), "Cannot move pack index %s into place: %m", w->id);
                return r;
        }
        w->have_index = false;
        return 0;
}

void blob_local_pack_finish(struct blob_local *l, struct pack_writer *w, bool ok) {
        if (!w)
                return;
        if (!ok) {
                writer_discard(l, w);
                return;
        }
        for (size_t i = 0; i < w->n_retire; i++) {
                char name[PACK_NAME_MAX];

                /* A rewrite that changed nothing (a merged pack whose
                 * partners held only dead or duplicate blobs) has the same
                 * index, hence the same name: the file is the new pack. */
                if (w->n > 0 && strcmp(w->retire[i]->id, w->id) == 0)
                        continue;
                snprintf(name, sizeof(name), PACKS_DIR "/%s.idx", w->retire[i]->id);
                if (unlinkat(l->blobs_fd, name, 0) < 0 && errno != ENOENT) {
                        log_warning_errno(negative_errno(), "Cannot remove pack index %s: %m", name);
                        continue;
                }
                snprintf(name, sizeof(name), PACKS_DIR "/%s.pack", w->retire[i]->id);
                if (unlinkat(l->blobs_fd, name, 0) < 0 && errno != ENOENT)
                        log_warning_errno(negative_errno(), "Cannot remove pack %s: %m", name);
        }
        writer_free(w);
        if (rescan_if_changed(l, true) < 0)
                log_warning("Cannot reload the pack directory");
}
