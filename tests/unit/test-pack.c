/* Unit tests for the local blob store's pack files: packed put, open, stat,
 * list and disk usage; dedup within and across packs; other instances
 * seeing packs; removal and repacking; damage caught and refused; the
 * temporaries of a dead writer cleaned; the digest map's growth. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "castore/blobsvc.h"
#include "castore/outboard.h"
#include "castore/vblob.h"
#include "test.h"

#define PACKED (CAS_BLOB_DEFER_SYNC | CAS_BLOB_PACK)

static char tmp_root[256];
static int counter;
static char blobs_dir[512], tmp_dir[512];

static struct cas_blob_service *open_store(void) {
        struct cas_blob_service *s;

        CHECK_OK(cas_blob_local_new(blobs_dir, tmp_dir, &s));
        return s;
}

static struct cas_blob_service *new_store(void) {
        char dir[300];

        snprintf(dir, sizeof(dir), "%s/store%d", tmp_root, counter++);
        CHECK_OK(mkdir(dir, 0755));
        snprintf(blobs_dir, sizeof(blobs_dir), "%s/blobs", dir);
        snprintf(tmp_dir, sizeof(tmp_dir), "%s/tmp", dir);
        return open_store();
}

/* Blob i: 100 + 37 * i bytes of a pattern depending on i and seed. */
static size_t blob_make(unsigned i, unsigned seed, uint8_t *buf) {
        size_t len = 100 + 37 * (size_t) i;

        for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t) (k * 7 + i * 13 + seed);
        return len;
}

/* Files in dir whose name ends with suffix ("" for all). */
static int count_files(const char *dir, const char *suffix) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name), sl = strlen(suffix);

                if (de->d_name[0] == '.' || len < sl || strcmp(de->d_name + len - sl, suffix) != 0)
                        continue;
                n++;
        }
        closedir(d);
        return n;
}

static int count_packs(const char *suffix) {
        char dir[600];

        snprintf(dir, sizeof(dir), "%s/packs", blobs_dir);
        return count_files(dir, suffix);
}

/* The path of the first file in blobs/packs/ ending with suffix. */
static void first_pack_file(const char *suffix, char *ret, size_t size) {
        char dir[600];
        DIR *d;
        struct dirent *de;

        snprintf(dir, sizeof(dir), "%s/packs", blobs_dir);
        d = opendir(dir);
        CHECK(d != NULL);
        ret[0] = 0;
        while (d && (de = readdir(d))) {
                size_t len = strlen(de->d_name), sl = strlen(suffix);

                if (len > sl && strcmp(de->d_name + len - sl, suffix) == 0) {
                        snprintf(ret, size, "%s/%s", dir, de->d_name);
                        break;
                }
        }
        if (d)
                closedir(d);
        CHECK(ret[0] != 0);
}

/* Loose blob files (not outboards) in the 256 shards. */
static int count_loose(void) {
        int n = 0;

        for (int i = 0; i < 256; i++) {
                char dir[600];

                snprintf(dir, sizeof(dir), "%s/%02x", blobs_dir, i);
                n += count_files(dir, "") - count_files(dir, ".ob");
        }
        return n;
}

/* The blob reads back (verified) as these bytes. */
static int read_back(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *want, size_t len) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        _cleanup_free_ uint8_t *buf = malloc(len + 1);
        ssize_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        r = cas_vblob_open(s, d, len, &v);
        if (r < 0)
                return r;
        n = cas_vblob_pread(v, buf, len + 1, 0);
        if (n < 0)
                return (int) n;
        return (size_t) n == len && memcmp(buf, want, len) == 0 ? 0 : -EBADMSG;
}

struct listed {
        struct cas_digest *want;
        size_t n_want, seen, other;
};

static int list_cb(void *userdata, const struct cas_digest *d) {
        struct listed *l = userdata;

        for (size_t i = 0; i < l->n_want; i++)
                if (cas_digest_equal(&l->want[i], d)) {
                        l->seen++;
                        return 0;
                }
        l->other++;
        return 0;
}

/* ---- tests ---- */

static void test_put_open_stat_list(void) {
        struct cas_blob_service *s = new_store();
        struct cas_blob_reader *r;
        struct cas_digest d[20], big, unpacked, empty;
        static uint8_t buf[(1 << 20) + 1], buf2[70000];
        uint64_t size, bytes;
        struct listed l = { .want = d, .n_want = 20 };

        for (unsigned i = 0; i < 20; i++)
                CHECK_OK(cas_blob_put(s, buf, blob_make(i, 0, buf), PACKED, &d[i]));
        /* over 1 MiB, without DEFER_SYNC, empty: loose */
        memset(buf, 'b', sizeof(buf));
        CHECK_OK(cas_blob_put(s, buf, (1 << 20) + 1, PACKED, &big));
        CHECK_OK(cas_blob_put(s, buf, 500, CAS_BLOB_PACK, &unpacked));
        CHECK_OK(cas_blob_put(s, buf, 0, PACKED, &empty));
        CHECK_EQ(count_packs(".idx"), 0); /* nothing published before the sync */
        CHECK_OK(cas_blob_sync(s));
        CHECK_EQ(count_packs(".idx"), 1);
        CHECK_EQ(count_packs(".pack"), 1);
        CHECK_EQ(count_loose(), 3);
        CHECK_EQ(count_files(tmp_dir, "") , 1); /* the lock file */

        for (unsigned i = 0; i < 20; i++) {
                size_t len = blob_make(i, 0, buf);

                CHECK_OK(cas_blob_stat(s, &d[i], &size));
                CHECK_EQ(size, len);
                CHECK_OK(cas_blob_disk_usage(s, &d[i], &bytes));
                CHECK_EQ(bytes, len);
                CHECK_OK(cas_blob_open(s, &d[i], &r));
                CHECK_EQ(r->fd, -1); /* never handed to the kernel */
                CHECK(r->data == NULL); /* read from the pack file, not held */
                CHECK(!r->verified);
                CHECK_EQ(r->size, len);
                CHECK_EQ(cas_blob_pread_full(r, buf2, sizeof(buf2), 0), (ssize_t) len);
                CHECK(memcmp(buf2, buf, len) == 0);
                CHECK_EQ(cas_blob_pread(r, buf2, sizeof(buf2), len), 0);
                CHECK_EQ(cas_blob_pread_full(r, buf2, 10, len - 10), 10);
                CHECK(memcmp(buf2, buf + len - 10, 10) == 0);
                cas_blob_reader_close(r);
                CHECK_OK(read_back(s, &d[i], buf, len));
        }
        CHECK_OK(cas_blob_list(s, list_cb, &l));
        CHECK_EQ(l.seen, 20);
        CHECK_EQ(l.other, 3);
        cas_blob_service_free(s);
}

static void test_dedup(void) {
        struct cas_blob_service *s = new_store();
        struct cas_digest a, b;
        uint8_t buf[20000];
        size_t len = blob_make(3, 1, buf);
        struct stat st;
        char pack[1200];

        CHECK_OK(cas_blob_put(s, buf, len, PACKED, &a));
        CHECK_OK(cas_blob_put(s, buf, len, PACKED, &b)); /* in the pack being written */
        CHECK(cas_digest_equal(&a, &b));
        CHECK_OK(cas_blob_sync(s));
        first_pack_file(".pack", pack, sizeof(pack));
        CHECK_OK(stat(pack, &st));
        CHECK_EQ((size_t) st.st_size, len);
        /* across packs, and across instances */
        CHECK_OK(cas_blob_put(s, buf, len, PACKED, &b));
        CHECK_OK(cas_blob_sync(s));
        cas_blob_service_free(s);
        s = open_store();
        CHECK_OK(cas_blob_put(s, buf, len, PACKED, &b));
        CHECK_OK(cas_blob_sync(s));
        CHECK_EQ(count_packs(".pack"), 1);
        CHECK_EQ(count_loose(), 0);
        /* a loose copy also counts */
        len = blob_make(4, 1, buf);
        CHECK_OK(cas_blob_put(s, buf, len, 0, &a));
        CHECK_OK(cas_blob_put(s, buf, len, PACKED, &b));
        CHECK_OK(cas_blob_sync(s));
        CHECK_EQ(count_packs(".pack"), 1);
        cas_blob_service_free(s);
}

static void test_reopen_and_second_instance(void) {
        struct cas_blob_service *s = new_store(), *s2;
        struct cas_digest d, e;
        uint8_t buf[20000];
        size_t len = blob_make(5, 2, buf);
        uint64_t size;

        CHECK_OK(cas_blob_put(s, buf, len, PACKED, &d));
        CHECK_OK(cas_blob_sync(s));
        cas_blob_service_free(s);
        s = open_store();
        CHECK_OK(read_back(s, &d, buf, len));

        /* s2 has scanned (a miss) before s writes another pack */
        s2 = open_store();
        len = blob_make(6, 2, buf);
        cas_digest_of(buf, len, &e);
        CHECK_EQ(cas_blob_stat(s2, &e, &size), -ENOENT);
        CHECK_OK(cas_blob_put(s, buf, len, PACKED, &e));
        CHECK_EQ(cas_blob_stat(s2, &e, &size), -ENOENT); /* not before the sync */
        CHECK_OK(cas_blob_sync(s));
        CHECK_OK(cas_blob_stat(s2, &e, &size));
        CHECK_EQ(size, len);
        CHECK_OK(read_back(s2, &e, buf, len));
        cas_blob_service_free(s2);
        cas_blob_service_free(s);
}

/* A pack published in the same tick of the file system's clock as another
 * process's scan leaves the directory's mtime as that scan saw it: that
 * process must look again all the same.  The tick is simulated by putting
 * the mtime back. */
static void test_same_mtime(void) {
        struct cas_blob_service *s = new_store(), *s2;
        struct cas_digest d, e;
        uint8_t buf[20000];
        char packs[600];
        struct stat st;
        uint64_t size;

        CHECK_OK(cas_blob_put(s, buf, blob_make(1, 10, buf), PACKED, &d));
        CHECK_OK(cas_blob_sync(s));
        snprintf(packs, sizeof(packs), "%s/packs", blobs_dir);
        CHECK_OK(utimensat(AT_FDCWD, packs, (struct timespec[2]){ { 0, UTIME_OMIT }, { 0, UTIME_NOW } }, 0));
        CHECK_OK(stat(packs, &st));
        s2 = open_store();
        cas_digest_of(buf, blob_make(2, 10, buf), &e);
        CHECK_EQ(cas_blob_stat(s2, &e, &size), -ENOENT); /* scans */
        CHECK_OK(cas_blob_put(s, buf, blob_make(2, 10, buf), PACKED, &e));
        CHECK_OK(cas_blob_sync(s));
        CHECK_OK(utimensat(AT_FDCWD, packs, (struct timespec[2]){ { 0, UTIME_OMIT }, st.st_mtim }, 0));
        usleep(10000); /* past the rate limit of such rescans (5 ms) */
        CHECK_OK(cas_blob_stat(s2, &e, &size));
        CHECK_OK(read_back(s2, &e, buf, blob_make(2, 10, buf)));
        cas_blob_service_free(s2);
        cas_blob_service_free(s);
}

struct looker {
        struct cas_blob_service *s;
        pthread_barrier_t *go;
        struct cas_digest d;
        int r;
};

static void *look(void *arg) {
        struct looker *k = arg;
        uint64_t size;

        pthread_barrier_wait(k->go);
        k->r = cas_blob_stat(k->s, &k->d, &size);
        return NULL;
}

/* Threads missing at once in a fresh instance: the first scans, the others
 * wait for it and must find their blob too. */
static void test_first_lookups(void) {
        struct cas_blob_service *s = new_store();
        struct looker k[8];
        pthread_t t[8];
        pthread_barrier_t go;
        uint8_t buf[20000];

        for (unsigned round = 0; round < 20; round++) {
                for (unsigned i = 0; i < 8; i++)
                        CHECK_OK(cas_blob_put(s, buf, blob_make(i, 11 + round, buf), PACKED, &k[i].d));
                CHECK_OK(cas_blob_sync(s));
        }
        cas_blob_service_free(s);
        for (unsigned round = 0; round < 20; round++) {
                s = open_store();
                pthread_barrier_init(&go, NULL, 8);
                for (unsigned i = 0; i < 8; i++) {
                        k[i].s = s;
                        k[i].go = &go;
                        cas_digest_of(buf, blob_make(i, 11 + round, buf), &k[i].d);
                        CHECK_OK(pthread_create(&t[i], NULL, look, &k[i]));
                }
                for (unsigned i = 0; i < 8; i++) {
                        CHECK_OK(pthread_join(t[i], NULL));
                        CHECK_OK(k[i].r);
                }
                pthread_barrier_destroy(&go);
                cas_blob_service_free(s);
        }
}

static void test_remove_repack(void) {
        struct cas_blob_service *s = new_store(), *other;
        struct cas_digest d[10];
        uint8_t buf[20000];
        uint64_t size, packs;
        struct listed l = { .want = d, .n_want = 10 };
        char old[1200], now[1200];

        for (unsigned i = 0; i < 10; i++)
                CHECK_OK(cas_blob_put(s, buf, blob_make(i, 3, buf), PACKED, &d[i]));
        CHECK_OK(cas_blob_sync(s));
        first_pack_file(".idx", old, sizeof(old));
        /* another process reading the pack keeps reading it after the repack */
        other = open_store();
        CHECK_OK(cas_blob_stat(other, &d[0], &size));

        CHECK_OK(cas_blob_remove(s, &d[3]));
        CHECK_OK(cas_blob_remove(s, &d[7]));
        CHECK_EQ(cas_blob_remove(s, &d[7]), -ENOENT);
        CHECK_EQ(cas_blob_stat(s, &d[3], &size), -ENOENT);
        CHECK_EQ(cas_blob_open(s, &d[7], &(struct cas_blob_reader *){ NULL }), -ENOENT);
        CHECK_OK(cas_blob_list(s, list_cb, &l));
        CHECK_EQ(l.seen, 8);
        CHECK_OK(cas_blob_sync(s)); /* rewrites the pack */
        CHECK_EQ(count_packs(".idx"), 1);
        CHECK_EQ(count_packs(".pack"), 1);
        first_pack_file(".idx", now, sizeof(now));
        CHECK(strcmp(old, now) != 0);
        for (unsigned i = 0; i < 10; i++) {
                size_t len = blob_make(i, 3, buf);

                if (i == 3 || i == 7)
                        continue;
                CHECK_OK(read_back(s, &d[i], buf, len));
                CHECK_OK(read_back(other, &d[i], buf, len));
        }
        cas_blob_service_free(other);
        cas_blob_service_free(s);
        s = open_store();
        CHECK_EQ(cas_blob_stat(s, &d[3], &size), -ENOENT);
        CHECK_EQ(cas_blob_stat(s, &d[7], &size), -ENOENT);
        CHECK_OK(cas_blob_stat(s, &d[8], &size));

        /* merging: three small packs become one */
        for (unsigned k = 0; k < 2; k++) {
                struct cas_digest e;

                CHECK_OK(cas_blob_put(s, buf, blob_make(k, 4, buf), PACKED, &e));
                CHECK_OK(cas_blob_sync(s));
        }
        CHECK_EQ(count_packs(".idx"), 3);
        CHECK_OK(cas_blob_local_repack(s, 1 << 20, true, &packs));
        CHECK_EQ(packs, 3);
        CHECK_EQ(count_packs(".idx"), 3); /* dry run */
        CHECK_OK(cas_blob_local_repack(s, 1 << 20, false, &packs));
        CHECK_EQ(packs, 3);
        CHECK_EQ(count_packs(".idx"), 1);
        for (unsigned i = 0; i < 10; i++)
                if (i != 3 && i != 7)
                        CHECK_OK(read_back(s, &d[i], buf, blob_make(i, 3, buf)));
        for (unsigned k = 0; k < 2; k++) {
                struct cas_digest e;
                size_t len = blob_make(k, 4, buf);

                cas_digest_of(buf, len, &e);
                CHECK_OK(read_back(s, &e, buf, len));
        }
        CHECK_OK(cas_blob_local_repack(s, 1 << 20, false, &packs));
        CHECK_EQ(packs, 0); /* one small pack is left alone */
        cas_blob_service_free(s);
}

static int digest_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN);
}

/* A rewrite whose result is byte for byte a pack it replaces (same index,
 * same name: blobs already stored in digest order, merged with a pack
 * whose blobs are all removed) must not remove that pack. */
static void test_repack_same_name(void) {
        struct cas_blob_service *s = new_store();
        struct { struct cas_digest d; unsigned i; } v[8];
        struct cas_digest z;
        uint8_t buf[20000];
        uint64_t packs, size;

        for (unsigned i = 0; i < 8; i++) {
                cas_digest_of(buf, blob_make(i, 8, buf), &v[i].d);
                v[i].i = i;
        }
        qsort(v, 8, sizeof(v[0]), digest_cmp);
        for (unsigned k = 0; k < 8; k++)
                CHECK_OK(cas_blob_put(s, buf, blob_make(v[k].i, 8, buf), PACKED, &v[k].d));
        CHECK_OK(cas_blob_sync(s));
        CHECK_OK(cas_blob_put(s, buf, blob_make(9, 9, buf), PACKED, &z));
        CHECK_OK(cas_blob_sync(s));
        CHECK_OK(cas_blob_remove(s, &z));
        CHECK_OK(cas_blob_local_repack(s, 1 << 20, false, &packs));
        CHECK_EQ(packs, 2);
        CHECK_EQ(count_packs(".idx"), 1);
        CHECK_EQ(count_packs(".pack"), 1);
        CHECK_EQ(cas_blob_stat(s, &z, &size), -ENOENT);
        for (unsigned k = 0; k < 8; k++)
                CHECK_OK(read_back(s, &v[k].d, buf, blob_make(v[k].i, 8, buf)));
        cas_blob_service_free(s);
        s = open_store();
        for (unsigned k = 0; k < 8; k++)
                CHECK_OK(read_back(s, &v[k].d, buf, blob_make(v[k].i, 8, buf)));
        cas_blob_service_free(s);
}

static void flip_byte(const char *path, off_t off) {
        uint8_t c;
        int fd;

        CHECK_OK(chmod(path, 0644));
        fd = open(path, O_RDWR);
        CHECK(fd >= 0);
        CHECK_EQ(pread(fd, &c, 1, off), 1);
        c ^= 0x40;
        CHECK_EQ(pwrite(fd, &c, 1, off), 1);
        close(fd);
}

static void test_damaged_pack(void) {
        struct cas_blob_service *s = new_store();
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        struct cas_digest d[3];
        uint8_t buf[20000];
        uint64_t size;
        char pack[1200];

        for (unsigned i = 0; i < 3; i++)
                CHECK_OK(cas_blob_put(s, buf, blob_make(i, 5, buf), PACKED, &d[i]));
        CHECK_OK(cas_blob_sync(s));
        cas_blob_service_free(s);
        /* blob 0 comes first in the pack: its byte 10 */
        first_pack_file(".pack", pack, sizeof(pack));
        flip_byte(pack, 10);

        s = open_store();
        CHECK_OK(cas_blob_stat(s, &d[0], &size)); /* present, damaged */
        CHECK_EQ(read_back(s, &d[0], buf, blob_make(0, 5, buf)), -EBADMSG);
        CHECK_EQ(read_back(s, &d[0], buf, blob_make(0, 5, buf)), -EBADMSG); /* every read */
        CHECK_OK(cas_vblob_open(s, &d[0], size, &v));
        CHECK_EQ(cas_vblob_check(v), -EBADMSG);
        CHECK_OK(read_back(s, &d[1], buf, blob_make(1, 5, buf)));
        /* the repair: remove, and the rewrite drops it */
        CHECK_OK(cas_blob_remove(s, &d[0]));
        CHECK_OK(cas_blob_sync(s));
        cas_blob_service_free(s);
        s = open_store();
        CHECK_EQ(cas_blob_stat(s, &d[0], &size), -ENOENT);
        CHECK_OK(read_back(s, &d[1], buf, blob_make(1, 5, buf)));
        CHECK_OK(read_back(s, &d[2], buf, blob_make(2, 5, buf)));
        /* a re-import stores it again */
        CHECK_OK(cas_blob_put(s, buf, blob_make(0, 5, buf), PACKED, &d[0]));
        CHECK_OK(cas_blob_sync(s));
        CHECK_OK(read_back(s, &d[0], buf, blob_make(0, 5, buf)));
        cas_blob_service_free(s);
}

/* A packed blob of several groups: read back verified, no outboard file
 * stored for it (its readers build one), damage in its last group found. */
/* A blob of several groups is packed with its outboard (no .ob file):
 * each read is verified against it, so damage in one group fails the
 * reads of that group only. */
static void test_packed_groups(void) {
        struct cas_blob_service *s = new_store();
        static uint8_t buf[1 << 20], got[CAS_GROUP_SIZE];
        struct cas_outboard_builder b;
        _cleanup_free_ uint8_t *want_ob = NULL;
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        struct cas_digest d, d2;
        char pack[1200];
        uint8_t *ob = NULL;
        size_t ob_len, want_len;

        for (size_t k = 0; k < sizeof(buf); k++)
                buf[k] = (uint8_t) (k * 31 + k / 251);
        CHECK_OK(cas_blob_put(s, buf, sizeof(buf), PACKED, &d));
        CHECK_OK(cas_blob_sync(s));
        CHECK_EQ(count_loose(), 0);
        CHECK_OK(read_back(s, &d, buf, sizeof(buf)));
        CHECK_OK(cas_blob_outboard_get(s, &d, &ob, &ob_len));
        cas_outboard_builder_init(&b);
        cas_outboard_builder_update(&b, buf, sizeof(buf));
        CHECK_OK(cas_outboard_builder_final(&b, &d2, &want_ob, &want_len));
        CHECK_EQ(ob_len, want_len);
        CHECK(memcmp(ob, want_ob, ob_len) == 0);
        free(ob);
        CHECK_EQ(cas_blob_outboard_put(s, &d, want_ob, want_len), -EOPNOTSUPP);
        cas_blob_service_free(s);

        first_pack_file(".pack", pack, sizeof(pack));
        flip_byte(pack, 100); /* group 0 */
        s = open_store();
        CHECK_OK(cas_vblob_open(s, &d, sizeof(buf), &v));
        CHECK_EQ(cas_vblob_pread(v, got, sizeof(got), 0), -EBADMSG);
        CHECK_EQ(cas_vblob_pread(v, got, sizeof(got), 10 * CAS_GROUP_SIZE), (ssize_t) sizeof(got));
        CHECK(memcmp(got, buf + 10 * CAS_GROUP_SIZE, sizeof(got)) == 0);
        cas_vblob_close(TAKE_PTR(v));
        CHECK_EQ(count_loose(), 0);
        cas_blob_service_free(s);
}

static void write_file(const char *path, const void *data, size_t len) {
        int fd;

        (void) chmod(path, 0644);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        CHECK_EQ(write(fd, data, len), (ssize_t) len);
        close(fd);
}

static void test_bad_index(void) {
        struct cas_blob_service *s = new_store();
        struct cas_digest a, b;
        uint8_t buf[20000], junk[200];
        size_t alen, blen;
        uint64_t size;
        char idx[1200], good[1200];
        int fd;
        ssize_t n;

        alen = blob_make(1, 6, buf);
        CHECK_OK(cas_blob_put(s, buf, alen, PACKED, &a));
        CHECK_OK(cas_blob_sync(s));
        first_pack_file(".idx", good, sizeof(good));
        blen = blob_make(2, 6, buf);
        CHECK_OK(cas_blob_put(s, buf, blen, PACKED, &b));
        CHECK_OK(cas_blob_sync(s));
        cas_blob_service_free(s);
        /* the index of b's pack: the other one */
        {
                char dir[600];
                DIR *d;
                struct dirent *de;

                snprintf(dir, sizeof(dir), "%s/packs", blobs_dir);
                d = opendir(dir);
                idx[0] = 0;
                while ((de = readdir(d)))
                        if (strstr(de->d_name, ".idx") && !strstr(good, de->d_name))
                                snprintf(idx, sizeof(idx), "%s/%s", dir, de->d_name);
                closedir(d);
                CHECK(idx[0] != 0);
        }

        /* truncated */
        fd = open(idx, O_RDONLY);
        n = read(fd, junk, sizeof(junk));
        close(fd);
        CHECK(n > 40);
        write_file(idx, junk, 20);
        s = open_store();
        CHECK_EQ(cas_blob_stat(s, &b, &size), -ENOENT);
        CHECK_OK(cas_blob_stat(s, &a, &size)); /* the other pack is fine */
        cas_blob_service_free(s);
        /* a byte changed: the checksum fails */
        junk[50] ^= 1;
        write_file(idx, junk, (size_t) n);
        s = open_store();
        CHECK_EQ(cas_blob_stat(s, &b, &size), -ENOENT);
        CHECK_OK(cas_blob_stat(s, &a, &size));
        cas_blob_service_free(s);
        /* garbage */
        memset(junk, 0xa5, sizeof(junk));
        write_file(idx, junk, sizeof(junk));
        s = open_store();
        CHECK_EQ(cas_blob_open(s, &b, &(struct cas_blob_reader *){ NULL }), -ENOENT);
        CHECK_OK(read_back(s, &a, buf, blob_make(1, 6, buf)));
        cas_blob_service_free(s);
        /* empty, and the pack shorter than the index says */
        write_file(idx, junk, 0);
        s = open_store();
        CHECK_EQ(cas_blob_stat(s, &b, &size), -ENOENT);
        cas_blob_service_free(s);
        idx[strlen(idx) - 4] = 0;
        strcat(good, "");
        {
                char pack[1300];

                good[strlen(good) - 4] = 0;
                snprintf(pack, sizeof(pack), "%s.pack", good);
                CHECK_OK(truncate(pack, 10));
        }
        s = open_store();
        CHECK_EQ(cas_blob_stat(s, &a, &size), -ENOENT);
        cas_blob_service_free(s);
}

/* A writer killed before its sync leaves its pack as a temporary, which
 * the next writer removes; a pack without an index is gc's. */
static void test_dead_writer(void) {
        struct cas_blob_service *s = new_store();
        struct cas_digest d;
        uint8_t buf[20000];
        uint64_t size, files = 0, bytes = 0;
        char orphan[1200];
        pid_t pid;
        int status;

        cas_blob_service_free(s);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                s = open_store();
                for (unsigned i = 0; i < 5; i++)
                        if (cas_blob_put(s, buf, blob_make(i, 7, buf), PACKED, &d) < 0)
                                _exit(1);
                kill(getpid(), SIGKILL);
                _exit(1);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFSIGNALED(status));
        CHECK_EQ(count_files(tmp_dir, ".lock"), 1);
        CHECK(count_files(tmp_dir, "") >= 2); /* the pack temporary */

        s = open_store();
        cas_digest_of(buf, blob_make(0, 7, buf), &d);
        CHECK_EQ(cas_blob_stat(s, &d, &size), -ENOENT);
        CHECK_OK(cas_blob_put(s, buf, blob_make(0, 7, buf), PACKED, &d));
        CHECK_EQ(count_files(tmp_dir, ".lock"), 1); /* ours */
        CHECK_EQ(count_files(tmp_dir, ""), 2);      /* and our pack */
        CHECK_OK(cas_blob_sync(s));
        CHECK_EQ(count_files(tmp_dir, ""), 1);

        /* an orphan pack (a crash between the two renames) */
        snprintf(orphan, sizeof(orphan), "%s/packs/0123456789abcdef0123456789abcdef.pack", blobs_dir);
        write_file(orphan, buf, 100);
        CHECK_OK(cas_blob_local_reclaim(s, true, &files, &bytes));
        CHECK_EQ(files, 1);
        CHECK_EQ(access(orphan, F_OK), 0);
        files = bytes = 0;
        CHECK_OK(cas_blob_local_reclaim(s, false, &files, &bytes));
        CHECK_EQ(files, 1);
        CHECK_EQ(bytes, 100);
        CHECK(access(orphan, F_OK) < 0);
        CHECK_OK(read_back(s, &d, buf, blob_make(0, 7, buf)));
        cas_blob_service_free(s);
}

struct worker {
        struct cas_blob_service *s;
        unsigned id;
        struct cas_digest d[200];
};

static void *put_many(void *arg) {
        struct worker *w = arg;
        uint8_t buf[20000];

        for (unsigned i = 0; i < 200; i++)
                CHECK_OK(cas_blob_put(w->s, buf, blob_make(i % 150, w->id % 2, buf), PACKED, &w->d[i]));
        return NULL;
}

/* Writers in parallel, with flushes (every 64 blobs) while they write. */
static void test_concurrent(void) {
        struct cas_blob_service *s = new_store();
        struct worker w[4];
        pthread_t t[4];
        uint8_t buf[20000];

        CHECK_OK(cas_blob_local_set_flush_at(s, 64));
        for (unsigned i = 0; i < 4; i++) {
                w[i] = (struct worker){ .s = s, .id = i };
                CHECK_OK(pthread_create(&t[i], NULL, put_many, &w[i]));
        }
        for (unsigned i = 0; i < 4; i++)
                CHECK_OK(pthread_join(t[i], NULL));
        CHECK_OK(cas_blob_sync(s));
        CHECK(count_packs(".idx") >= 2);
        for (unsigned i = 0; i < 4; i++)
                for (unsigned k = 0; k < 200; k++)
                        CHECK_OK(read_back(s, &w[i].d[k], buf, blob_make(k % 150, i % 2, buf)));
        cas_blob_service_free(s);
        s = open_store();
        for (unsigned i = 0; i < 4; i++)
                for (unsigned k = 0; k < 200; k++)
                        CHECK_OK(read_back(s, &w[i].d[k], buf, blob_make(k % 150, i % 2, buf)));
        cas_blob_service_free(s);
}

/* The digest map grows by adds and rebuilds as packs arrive: every blob
 * of many packs is found, in this instance and in one loading them all at
 * once; removed blobs are not, also when listing; after the rewrite the
 * rest still is. */
#define MAP_PACKS 6
#define MAP_PER_PACK 500
static void test_map_growth(void) {
        struct cas_blob_service *s = new_store(), *other;
        static struct cas_digest d[MAP_PACKS * MAP_PER_PACK];
        struct listed l = { .want = d, .n_want = MAP_PACKS * MAP_PER_PACK };
        static uint8_t buf[70000];
        uint64_t size;
        size_t removed = 0;

        for (unsigned k = 0; k < MAP_PACKS; k++) {
                for (unsigned i = 0; i < MAP_PER_PACK; i++)
                        CHECK_OK(cas_blob_put(s, buf, blob_make(i, k, buf), PACKED, &d[k * MAP_PER_PACK + i]));
                CHECK_OK(cas_blob_sync(s));
                for (unsigned i = 0; i < (k + 1) * MAP_PER_PACK; i++)
                        CHECK_OK(cas_blob_stat(s, &d[i], &size));
        }
        CHECK_EQ(count_packs(".idx"), MAP_PACKS);
        other = open_store();
        for (unsigned i = 0; i < MAP_PACKS * MAP_PER_PACK; i++) {
                CHECK_OK(cas_blob_stat(other, &d[i], &size));
                CHECK_EQ(size, blob_make(i % MAP_PER_PACK, i / MAP_PER_PACK, buf));
        }
        CHECK_OK(cas_blob_list(other, list_cb, &l));
        CHECK_EQ(l.seen, MAP_PACKS * MAP_PER_PACK);
        CHECK_EQ(l.other, 0);

        for (unsigned i = 0; i < MAP_PACKS * MAP_PER_PACK; i += 7, removed++)
                CHECK_OK(cas_blob_remove(other, &d[i]));
        for (unsigned i = 0; i < MAP_PACKS * MAP_PER_PACK; i++)
                CHECK_EQ(cas_blob_stat(other, &d[i], &size), i % 7 ? 0 : -ENOENT);
        l.seen = 0;
        CHECK_OK(cas_blob_list(other, list_cb, &l));
        CHECK_EQ(l.seen, MAP_PACKS * MAP_PER_PACK - removed);
        CHECK_OK(cas_blob_sync(other)); /* rewrites every pack into one */
        CHECK_EQ(count_packs(".idx"), 1);
        for (unsigned i = 0; i < MAP_PACKS * MAP_PER_PACK; i++) {
                size_t len = blob_make(i % MAP_PER_PACK, i / MAP_PER_PACK, buf);

                if (i % 7)
                        CHECK_OK(read_back(other, &d[i], buf, len));
                else
                        CHECK_EQ(cas_blob_stat(other, &d[i], &size), -ENOENT);
        }
        cas_blob_service_free(other);
        cas_blob_service_free(s);
}

/* A blob in two packs (two writers) removed is gone from both; put again
 * it is found in the new pack. */
static void test_removed_twice_put_again(void) {
        struct cas_blob_service *a = new_store(), *b = open_store(), *c;
        uint8_t buf[20000];
        size_t len;
        struct cas_digest d, e, other[2];
        uint64_t size;

        /* different companions, so the two packs differ */
        CHECK_OK(cas_blob_put(a, buf, blob_make(1, 9, buf), PACKED, &other[0]));
        CHECK_OK(cas_blob_put(b, buf, blob_make(2, 9, buf), PACKED, &other[1]));
        len = blob_make(5, 9, buf);
        CHECK_OK(cas_blob_put(a, buf, len, PACKED, &d));
        CHECK_OK(cas_blob_put(b, buf, len, PACKED, &e));
        CHECK_OK(cas_blob_sync(a));
        CHECK_OK(cas_blob_sync(b));
        CHECK_EQ(count_packs(".idx"), 2);
        c = open_store();
        CHECK_OK(cas_blob_remove(c, &d));
        CHECK_EQ(cas_blob_stat(c, &d, &size), -ENOENT);
        CHECK_OK(cas_blob_stat(c, &other[0], &size));
        CHECK_OK(cas_blob_stat(c, &other[1], &size));
        CHECK_OK(cas_blob_put(c, buf, len, PACKED, &e));
        CHECK_OK(cas_blob_sync(c)); /* both packs rewritten with the new one */
        CHECK_EQ(count_packs(".idx"), 1);
        CHECK_OK(read_back(c, &d, buf, len));
        for (unsigned i = 0; i < 2; i++)
                CHECK_OK(read_back(c, &other[i], buf, blob_make(1 + i, 9, buf)));
        cas_blob_service_free(c);
        cas_blob_service_free(b);
        cas_blob_service_free(a);
}

/* Rewrites the index at path as version 1 (entries without outboards)
 * with a fresh checksum, or with the outboard lengths left if keep_ob. */
static void index_to_v1(const char *path, bool keep_ob) {
        static uint8_t idx[4096];
        int fd = open(path, O_RDONLY);
        ssize_t n = read(fd, idx, sizeof(idx));
        uint64_t count;
        struct cas_digest sum;

        close(fd);
        CHECK(n >= 64);
        idx[8] = 1;
        memcpy(&count, idx + 16, 8);
        for (uint64_t i = 0; i < count && !keep_ob; i++)
                memset(idx + 32 + i * 48 + 44, 0, 4);
        cas_digest_of(idx, (size_t) n - 32, &sum);
        memcpy(idx + n - 32, sum.b, 32);
        write_file(path, idx, (size_t) n);
}

/* Packs of version 1 (no outboards) stay readable: the verified reader
 * builds the outboard of a blob of a few groups when it opens it.  A
 * version 1 entry with an outboard is refused. */
static void test_version1_pack(void) {
        struct cas_blob_service *s = new_store();
        static uint8_t buf[40000];
        struct cas_digest d;
        uint8_t *ob = NULL;
        size_t ob_len;
        char idx[1200];
        uint64_t size;

        for (size_t k = 0; k < sizeof(buf); k++)
                buf[k] = (uint8_t) (k * 7 + k / 13);
        CHECK_OK(cas_blob_put(s, buf, sizeof(buf), PACKED, &d));
        CHECK_OK(cas_blob_sync(s));
        cas_blob_service_free(s);
        first_pack_file(".idx", idx, sizeof(idx));
        index_to_v1(idx, true);
        s = open_store();
        CHECK_EQ(cas_blob_stat(s, &d, &size), -ENOENT);
        cas_blob_service_free(s);
        index_to_v1(idx, false);
        s = open_store();
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(cas_blob_outboard_get(s, &d, &ob, &ob_len), -ENOENT);
        CHECK_OK(read_back(s, &d, buf, sizeof(buf)));
        cas_blob_service_free(s);
}

int main(void) {
        test_tmp_root("test-pack", tmp_root, sizeof(tmp_root));
        RUN(test_put_open_stat_list);
        RUN(test_dedup);
        RUN(test_reopen_and_second_instance);
        RUN(test_same_mtime);
        RUN(test_first_lookups);
        RUN(test_remove_repack);
        RUN(test_repack_same_name);
        RUN(test_damaged_pack);
        RUN(test_packed_groups);
        RUN(test_bad_index);
        RUN(test_version1_pack);
        RUN(test_dead_writer);
        RUN(test_concurrent);
        RUN(test_map_growth);
        RUN(test_removed_twice_put_again);
        remove_tree(tmp_root);
        return *test_exit_code();
}
