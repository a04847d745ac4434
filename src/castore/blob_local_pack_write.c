/* Writing packs for the local blob backend: appending put blobs to the pack
 * being written, removal and merge marking, gc's reclaim of crash leftovers,
 * and the flush (copy of live blobs, the index, publishing). */
#include <assert.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "castore/blob_local_pack.h"
#include "util/io.h"
#include "util/log.h"

#define PACK_NAME_MAX (sizeof(PACKS_DIR) + PACK_ID_LEN + 8) /* "packs/<id>.pack" */
#define WENTRY_CHUNK 4096

/* A pack being written: temporary <prefix>.<seq>.  Entries live in fixed
 * chunks so the map's pointers stay valid while it grows. */
struct pack_writer {
        int fd;                      /* immutable; -1: a writer only retiring packs */
        uint64_t seq;                /* immutable */
        uint64_t end;                /* pack_lock: bytes reserved */
        struct pack_entry **chunks;      /* pack_lock */
        size_t n, n_chunks;          /* pack_lock */
        struct hashmap map;          /* pack_lock: digest -> struct pack_entry */
        unsigned inflight;           /* pack_lock: reserved ranges not yet written */
        int error;                   /* pack_lock: the first write error */
        /* owned by the flushing thread once detached: */
        bool have_index;
        uint64_t index_seq;
        char id[PACK_ID_LEN + 1];
        struct pack **retire;        /* references on the packs it replaces */
        size_t n_retire;
};

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
                blob_local_pack_unref(w->retire[i]);
        free(w->retire);
        free(w);
}

static void writer_discard(struct blob_local *l, struct pack_writer *w) {
        if (w->fd >= 0)
                blob_local_unlink_tmp(l, w->seq);
        if (w->have_index)
                blob_local_unlink_tmp(l, w->index_seq);
        writer_free(w);
}

/* ---- writing ---- */

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

/* Writes len bytes at off, then ob_len at off + len. */
static int pack_pwrite(int fd, uint64_t off, const void *data, size_t len, const uint8_t *ob, size_t ob_len) {
        struct iovec iov[2] = { { (void *) data, len }, { (void *) ob, ob_len } };
        size_t total = len + ob_len, done = 0;

        while (done < total) {
                ssize_t n = pwritev(fd, iov, ob_len ? 2 : 1, (off_t) (off + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? negative_errno() : -EIO;
                done += (size_t) n;
                for (size_t k = 0; k < 2; k++) { /* skip what was written */
                        size_t step = MIN((size_t) n, iov[k].iov_len);

                        iov[k].iov_base = (uint8_t *) iov[k].iov_base + step;
                        iov[k].iov_len -= step;
                        n -= (ssize_t) step;
                }
        }
        return 0;
}

int blob_local_pack_put(struct blob_local *l, const struct cas_digest *d, const void *data, size_t len,
                        const uint8_t *ob, size_t ob_len) {
        struct pack_writer *w, *spare = NULL;
        struct pack_entry *e;
        uint64_t off;
        bool due;
        int r;

        if (len == 0 || len > PACK_BLOB_MAX || (ob_len != 0 && ob_len != cas_outboard_len(len)))
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
                struct pack_entry **c = reallocarray(w->chunks, w->n_chunks + 1, sizeof(*c));

                if (c)
                        w->chunks = c;
                if (!c || !(c[w->n_chunks] = malloc(WENTRY_CHUNK * sizeof(struct pack_entry)))) {
                        pthread_mutex_unlock(&l->pack_lock);
                        spare_drop(l, spare);
                        return -ENOMEM;
                }
                w->n_chunks++;
        }
        e = &w->chunks[w->n / WENTRY_CHUNK][w->n % WENTRY_CHUNK];
        *e = (struct pack_entry){ *d, w->end, (uint32_t) len, (uint32_t) ob_len };
        if (hashmap_put(&w->map, cas_digest_hash(d), e) < 0) {
                pthread_mutex_unlock(&l->pack_lock);
                spare_drop(l, spare);
                return -ENOMEM;
        }
        w->n++;
        off = w->end;
        w->end += len + ob_len;
        w->inflight++;
        due = w->end >= PACK_BYTES_MAX || w->n >= __atomic_load_n(&l->flush_at, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&l->pack_lock);
        spare_drop(l, spare);

        /* the write, outside the lock; a flush waits for it */
        r = pack_pwrite(w->fd, off, data, len, ob, ob_len);
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

int blob_local_pack_list(struct blob_local *l, cas_blob_list_cb cb, void *userdata) {
        int r = blob_local_packs_rescan(l, false);

        if (r < 0)
                return r;
        return pack_map_list(l, cb, userdata);
}

/* The map keeps the slots of removed entries: a lookup skips them.  Every
 * copy is marked, or (out of memory) none. */
int blob_local_pack_remove(struct blob_local *l, const struct cas_digest *d) {
        int r = -ENOENT;

        (void) blob_local_packs_rescan(l, false);
        pthread_rwlock_wrlock(&l->packs_lock);
        for (size_t k = 0; k < l->n_packs; k++) {
                struct pack *p = l->packs[k];

                if (!p->dead && pack_find(p, d) >= 0 && !(p->dead = calloc((p->n + 7) / 8, 1))) {
                        pthread_rwlock_unlock(&l->packs_lock);
                        return -ENOMEM;
                }
        }
        for (size_t k = 0; k < l->n_packs; k++) {
                struct pack *p = l->packs[k];
                ssize_t i = pack_find(p, d);

                if (i < 0 || pack_is_dead(p, (size_t) i))
                        continue;
                p->dead[i / 8] |= (uint8_t) (1u << (i % 8));
                p->n_dead++;
                r = 0;
        }
        pthread_rwlock_unlock(&l->packs_lock);
        return r;
}

size_t blob_local_pack_mark_merge(struct blob_local *l, uint64_t below, bool dry_run) {
        size_t small = 0, marked = 0;

        (void) blob_local_packs_rescan(l, false);
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
                struct pack_entry e = pack_entry_at(p, i);
                struct cas_outboard_builder b;
                struct cas_digest d;
                _cleanup_free_ uint8_t *ob = NULL;
                size_t ob_len;
                bool dead;
                ssize_t n;
                int r;

                pthread_rwlock_rdlock(&l->packs_lock);
                dead = pack_is_dead(p, i);
                pthread_rwlock_unlock(&l->packs_lock);
                if (dead)
                        continue;
                n = pread(p->fd, buf, e.length, (off_t) e.offset);
                if (n < 0)
                        return log_error_errno(negative_errno(), "Cannot read pack %s: %m", p->id);
                /* digest and a fresh outboard in one pass (a pack of
                 * version 1 had none) */
                cas_outboard_builder_init(&b);
                cas_outboard_builder_update(&b, buf, (size_t) n);
                r = cas_outboard_builder_final(&b, &d, &ob, &ob_len);
                if (r < 0)
                        return r;
                if ((size_t) n != e.length || !cas_digest_equal(&d, &e.digest)) {
                        log_warning("Blob %s in pack %s is damaged, dropping it", CAS_DIGEST_HEX(&e.digest), p->id);
                        continue;
                }
                r = blob_local_pack_put(l, &e.digest, buf, e.length, ob, ob_len);
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
        _cleanup_free_ struct pack_entry *v = NULL;
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
                u32 = htole32(v[i].ob_len);
                memcpy(e + 44, &u32, 4);
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
                        blob_local_pack_unref(retire[i]);
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
        if (blob_local_packs_rescan(l, true) < 0)
                log_warning("Cannot reload the pack directory");
}
