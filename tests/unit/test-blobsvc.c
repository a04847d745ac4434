/* Unit tests for the blob services (memory:// and the local one-file-per-
 * blob store): put/stat/open/pread, streaming writes against SPEC §2 known
 * answers, dedup, deferred sync, rot detection, list, concurrent preads. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "castore/blobsvc.h"
#include "test.h"

#define BLOB_B_LEN (255 * 4096)
#define HELLO_HEX "5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c"
#define BLOB_A_HEX "7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63"
#define BLOB_B_HEX "a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2"
#define EMPTY_HEX "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

static uint8_t *blob_b;
static char tmp_root[256];

static const char *hex(const struct cas_digest *d) {
        static char buf[CAS_DIGEST_HEX_LEN + 1];
        cas_digest_to_hex(d, buf);
        return buf;
}

static struct cas_digest digest_of_hex(const char *s) {
        struct cas_digest d;
        CHECK_OK(cas_digest_parse(s, &d));
        return d;
}

/* ---- backends under test ---- */

static struct cas_blob_service *new_memory(void) {
        struct cas_blob_service *s;
        CHECK_OK(cas_blob_memory_new(&s));
        return s;
}

static int local_counter;
static char local_dir[512];

static struct cas_blob_service *new_local(void) {
        struct cas_blob_service *s;
        char tmp[600];

        snprintf(local_dir, sizeof(local_dir), "%s/store%d", tmp_root, local_counter++);
        CHECK_OK(mkdir(local_dir, 0755));
        snprintf(tmp, sizeof(tmp), "%s/tmp", local_dir);
        CHECK_OK(mkdir(tmp, 0755));
        strcat(local_dir, "/blobs");
        CHECK_OK(cas_blob_local_new(local_dir, tmp, &s));
        return s;
}

/* Reopens the local store whose blobs live in local_dir. */
static struct cas_blob_service *reopen_local(void) {
        struct cas_blob_service *s;
        char tmp[600];

        snprintf(tmp, sizeof(tmp), "%.*s/tmp", (int) (strlen(local_dir) - strlen("/blobs")), local_dir);
        CHECK_OK(cas_blob_local_new(local_dir, tmp, &s));
        return s;
}

/* ---- tests, each run against a fresh service ---- */

/* What a reader yields hashes to its digest, with exactly its size and
 * nothing past it: 0 or -EBADMSG. */
static int reader_hash_check(struct cas_blob_reader *r) {
        uint8_t *buf = malloc(r->size + 1);
        struct cas_digest d;
        ssize_t n;

        CHECK(buf);
        n = cas_blob_pread_full(r, buf, (size_t) r->size, 0);
        CHECK(n >= 0);
        cas_digest_of(buf, (size_t) n, &d);
        free(buf);
        if ((uint64_t) n != r->size || !cas_digest_equal(&d, &r->digest))
                return -EBADMSG;
        return 0;
}

static void test_put_stat_open(struct cas_blob_service *s) {
        struct cas_blob_reader *r;
        struct cas_digest d;
        uint64_t size;
        char buf[32];

        CHECK_OK(cas_blob_put(s, "Hello World!", 12, 0, &d));
        CHECK_STREQ(hex(&d), HELLO_HEX);
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, 12);
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK(cas_digest_equal(&r->digest, &d));
        CHECK_EQ(r->size, 12);
        CHECK_EQ(cas_blob_pread(r, buf, sizeof(buf), 0), 12);
        CHECK(memcmp(buf, "Hello World!", 12) == 0);
        CHECK_EQ(cas_blob_pread(r, buf, 5, 6), 5);
        CHECK(memcmp(buf, "World", 5) == 0);
        CHECK_EQ(cas_blob_pread(r, buf, 5, 12), 0);
        CHECK_EQ(cas_blob_pread(r, buf, 5, 1000), 0);
        CHECK_EQ(cas_blob_pread(r, buf, 5, UINT64_MAX), 0);
        CHECK_OK(reader_hash_check(r));
        cas_blob_reader_close(r);

        CHECK_OK(cas_blob_put(s, "\x00\x01", 2, 0, &d));
        CHECK_STREQ(hex(&d), BLOB_A_HEX);
        CHECK_OK(cas_blob_put(s, NULL, 0, 0, &d));
        CHECK_STREQ(hex(&d), EMPTY_HEX);
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, 0);
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_EQ(cas_blob_pread(r, buf, 1, 0), 0);
        CHECK_OK(reader_hash_check(r));
        cas_blob_reader_close(r);

        d = digest_of_hex(BLOB_B_HEX);
        CHECK_EQ(cas_blob_stat(s, &d, &size), -ENOENT);
        CHECK_EQ(cas_blob_open(s, &d, &r), -ENOENT);
}

static void test_pread_offsets(struct cas_blob_service *s) {
        struct cas_blob_reader *r;
        struct cas_digest d;
        uint8_t buf[70000];
        static const uint64_t offs[] = { 0, 1, 254, 255, 256, 4095, 4096, 65535, 65536, 131071,
                                         BLOB_B_LEN - 70000, BLOB_B_LEN - 1, BLOB_B_LEN, BLOB_B_LEN + 1 };
        static const size_t lens[] = { 1, 7, 255, 4096, 65537, 70000 };

        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
        CHECK_STREQ(hex(&d), BLOB_B_HEX);
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_EQ(r->size, BLOB_B_LEN);
        CHECK(r->fd >= 0 || r->data);
        for (size_t i = 0; i < ELEMENTSOF(offs); i++)
                for (size_t j = 0; j < ELEMENTSOF(lens); j++) {
                        uint64_t o = offs[i];
                        size_t want = o >= BLOB_B_LEN ? 0 : MIN((uint64_t) lens[j], BLOB_B_LEN - o);
                        ssize_t n = cas_blob_pread(r, buf, lens[j], o);

                        CHECK_EQ(n, want);
                        CHECK(memcmp(buf, blob_b + o, want) == 0);
                }
        CHECK_OK(reader_hash_check(r));
        cas_blob_reader_close(r);
}

/* Streams BLOB_B in odd-sized pieces (1, 2, 3 ... bytes, then larger). */
static void test_writer(struct cas_blob_service *s) {
        struct cas_blob_writer *w;
        struct cas_digest d;
        uint64_t size, off = 0;
        size_t step = 1;

        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        while (off < BLOB_B_LEN) {
                size_t n = MIN((uint64_t) step, BLOB_B_LEN - off);
                CHECK_OK(cas_blob_write(w, blob_b + off, n));
                off += n;
                step = step < 100 ? step + 1 : step * 3 + 7;
        }
        CHECK_OK(cas_blob_commit(w, &d, &size));
        CHECK_STREQ(hex(&d), BLOB_B_HEX);
        CHECK_EQ(size, BLOB_B_LEN);
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, BLOB_B_LEN);

        /* a writer that is aborted leaves nothing behind */
        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        CHECK_OK(cas_blob_write(w, "\x00\x01", 2));
        cas_blob_abort(w);
        d = digest_of_hex(BLOB_A_HEX);
        CHECK_EQ(cas_blob_stat(s, &d, NULL), -ENOENT);

        /* an empty writer stores the empty blob */
        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        CHECK_OK(cas_blob_commit(w, &d, &size));
        CHECK_STREQ(hex(&d), EMPTY_HEX);
        CHECK_EQ(size, 0);
}

static int count_cb(void *userdata, const struct cas_digest *d) {
        (*(int *) userdata)++;
        return 0;
}

/* Storing the same content again (put and writer) changes nothing. */
static void test_dedup(struct cas_blob_service *s) {
        struct cas_blob_writer *w;
        struct cas_digest d1, d2;
        uint64_t size;
        int count = 0;

        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d1));
        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d2));
        CHECK(cas_digest_equal(&d1, &d2));
        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        CHECK_OK(cas_blob_write(w, blob_b, BLOB_B_LEN));
        CHECK_OK(cas_blob_commit(w, &d2, &size));
        CHECK(cas_digest_equal(&d1, &d2));
        CHECK_EQ(size, BLOB_B_LEN);
        CHECK_OK(cas_blob_list(s, count_cb, &count));
        CHECK_EQ(count, 1);
}

static void test_defer_sync(struct cas_blob_service *s) {
        struct cas_blob_writer *w;
        struct cas_digest d;
        uint64_t size;

        CHECK_OK(cas_blob_put(s, "Hello World!", 12, CAS_BLOB_DEFER_SYNC, &d));
        CHECK_STREQ(hex(&d), HELLO_HEX);
        CHECK_OK(cas_blob_writer_new(s, CAS_BLOB_DEFER_SYNC, &w));
        CHECK_OK(cas_blob_write(w, blob_b, BLOB_B_LEN));
        CHECK_OK(cas_blob_commit(w, &d, &size));
        CHECK_STREQ(hex(&d), BLOB_B_HEX);
        CHECK_OK(cas_blob_sync(s));
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, BLOB_B_LEN);
        d = digest_of_hex(HELLO_HEX);
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, 12);
        CHECK_OK(cas_blob_sync(s)); /* nothing pending: fine */
}

struct list_state {
        struct cas_digest want[4];
        bool seen[4];
        int n, stop_after;
};

static int list_cb(void *userdata, const struct cas_digest *d) {
        struct list_state *st = userdata;
        bool found = false;

        for (int i = 0; i < 4; i++)
                if (cas_digest_equal(d, &st->want[i])) {
                        CHECK(!st->seen[i]);
                        st->seen[i] = found = true;
                }
        CHECK(found);
        st->n++;
        return st->stop_after && st->n == st->stop_after ? -ECANCELED : 0;
}

static void test_list(struct cas_blob_service *s) {
        struct list_state st = {};

        CHECK_OK(cas_blob_list(s, list_cb, &st));
        CHECK_EQ(st.n, 0);
        CHECK_OK(cas_blob_put(s, "Hello World!", 12, 0, &st.want[0]));
        CHECK_OK(cas_blob_put(s, "\x00\x01", 2, 0, &st.want[1]));
        CHECK_OK(cas_blob_put(s, "", 0, 0, &st.want[2]));
        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &st.want[3]));
        CHECK_OK(cas_blob_list(s, list_cb, &st));
        CHECK_EQ(st.n, 4);
        for (int i = 0; i < 4; i++)
                CHECK(st.seen[i]);
        memset(st.seen, 0, sizeof(st.seen));
        st.n = 0;
        st.stop_after = 2;
        CHECK_EQ(cas_blob_list(s, list_cb, &st), -ECANCELED);
        CHECK_EQ(st.n, 2);
}

struct pread_job {
        struct cas_blob_reader *r;
        unsigned seed;
        int ok;
};

static void *pread_thread(void *arg) {
        struct pread_job *j = arg;
        uint8_t buf[9000];

        for (int i = 0; i < 300; i++) {
                uint64_t off = rand_r(&j->seed) % (BLOB_B_LEN + 100);
                size_t len = 1 + rand_r(&j->seed) % sizeof(buf);
                size_t want = off >= BLOB_B_LEN ? 0 : MIN((uint64_t) len, BLOB_B_LEN - off);

                if (cas_blob_pread(j->r, buf, len, off) != (ssize_t) want || memcmp(buf, blob_b + off, want) != 0)
                        return NULL;
        }
        j->ok = 1;
        return NULL;
}

static void test_concurrent_pread(struct cas_blob_service *s) {
        struct cas_blob_reader *r;
        struct cas_digest d;
        pthread_t t[8];
        struct pread_job jobs[8];

        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
        CHECK_OK(cas_blob_open(s, &d, &r));
        for (int i = 0; i < 8; i++) {
                jobs[i] = (struct pread_job){ .r = r, .seed = 1234 + i };
                CHECK_EQ(pthread_create(&t[i], NULL, pread_thread, &jobs[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
                CHECK_EQ(pthread_join(t[i], NULL), 0);
                CHECK(jobs[i].ok);
        }
        cas_blob_reader_close(r);
}

static void test_args(struct cas_blob_service *s) {
        struct cas_digest d = cas_digest_empty;
        struct cas_blob_reader *r;

        CHECK_EQ(cas_blob_put(NULL, "", 0, 0, &d), -EINVAL);
        CHECK_EQ(cas_blob_put(s, NULL, 3, 0, &d), -EINVAL);
        CHECK_EQ(cas_blob_open(s, NULL, &r), -EINVAL);
        CHECK_EQ(cas_blob_stat(s, NULL, NULL), -EINVAL);
        CHECK_EQ(cas_blob_list(s, NULL, NULL), -EINVAL);
}

/* ---- local store only ---- */

static void blob_file(const struct cas_digest *d, char *ret, size_t size) {
        char h[CAS_DIGEST_HEX_LEN + 1];

        cas_digest_to_hex(d, h);
        snprintf(ret, size, "%s/%.2s/%s", local_dir, h, h);
}

static void tmp_dir(char *ret, size_t size) {
        snprintf(ret, size, "%.*s/tmp", (int) (strlen(local_dir) - strlen("/blobs")), local_dir);
}

/* Entries of tmp/ other than lock files. */
static int count_temps(void) {
        char path[700];
        DIR *d;
        struct dirent *de;
        int n = 0;

        tmp_dir(path, sizeof(path));
        CHECK(d = opendir(path));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && !strstr(de->d_name, ".lock"))
                        n++;
        closedir(d);
        return n;
}

static void test_local_layout(void) {
        struct cas_blob_service *s = new_local();
        struct cas_blob_writer *w;
        struct cas_digest d;
        char path[800];
        struct stat st;
        uint64_t size;

        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
        blob_file(&d, path, sizeof(path));
        CHECK_OK(stat(path, &st));
        CHECK(S_ISREG(st.st_mode));
        CHECK_EQ(st.st_size, BLOB_B_LEN);
        CHECK_EQ(count_temps(), 0);
        /* storing it again leaves the file alone */
        {
                struct stat st2;
                CHECK_OK(cas_blob_writer_new(s, 0, &w));
                CHECK_OK(cas_blob_write(w, blob_b, BLOB_B_LEN));
                CHECK_OK(cas_blob_commit(w, &d, &size));
                CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
                CHECK_OK(stat(path, &st2));
                CHECK_EQ(st2.st_ino, st.st_ino);
                CHECK_EQ(count_temps(), 0);
        }

        /* deferred: invisible (a temporary) until synced */
        CHECK_OK(cas_blob_writer_new(s, CAS_BLOB_DEFER_SYNC, &w));
        CHECK_OK(cas_blob_write(w, "Hello World!", 12));
        CHECK_OK(cas_blob_commit(w, &d, &size));
        CHECK_EQ(cas_blob_stat(s, &d, NULL), -ENOENT);
        CHECK_EQ(count_temps(), 1);
        CHECK_OK(cas_blob_sync(s));
        CHECK_EQ(count_temps(), 0);
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, 12);

        /* an aborted writer past its memory buffer removes its temporary */
        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        CHECK_OK(cas_blob_write(w, blob_b, BLOB_B_LEN));
        CHECK_EQ(count_temps(), 1);
        cas_blob_abort(w);
        CHECK_EQ(count_temps(), 0);

        /* deferred blobs not yet synced are stored when the service closes */
        CHECK_OK(cas_blob_put(s, "\x00\x01", 2, CAS_BLOB_DEFER_SYNC, &d));
        cas_blob_service_free(s);
        s = reopen_local();
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, 2);
        d = digest_of_hex(BLOB_B_HEX);
        CHECK_OK(cas_blob_stat(s, &d, &size));
        CHECK_EQ(size, BLOB_B_LEN);
        cas_blob_service_free(s);
}

/* Bytes changed on disk are caught by verify; a truncated file is replaced
 * by the next put of the same content. */
static void test_local_rot(void) {
        struct cas_blob_service *s = new_local();
        struct cas_blob_reader *r;
        struct cas_digest d;
        char path[800];
        uint8_t byte;
        int fd;

        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
        blob_file(&d, path, sizeof(path));
        CHECK_OK(chmod(path, 0644));
        CHECK((fd = open(path, O_RDWR)) >= 0);
        CHECK_EQ(pread(fd, &byte, 1, 500000), 1);
        byte ^= 0x10;
        CHECK_EQ(pwrite(fd, &byte, 1, 500000), 1);
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_EQ(reader_hash_check(r), -EBADMSG);
        cas_blob_reader_close(r);

        CHECK_OK(ftruncate(fd, 1000));
        close(fd);
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_EQ(r->size, 1000);
        CHECK_EQ(reader_hash_check(r), -EBADMSG);
        cas_blob_reader_close(r);

        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_EQ(r->size, BLOB_B_LEN);
        CHECK_OK(reader_hash_check(r));
        cas_blob_reader_close(r);

        /* A flipped byte keeps the size, so the next put finds the blob in
         * place and stores nothing: a repair removes it first, after
         * which a put stores it again.  An open reader keeps its bytes. */
        CHECK((fd = open(path, O_RDWR)) >= 0);
        CHECK_EQ(pwrite(fd, &byte, 1, 500000), 1);
        close(fd);
        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_EQ(reader_hash_check(r), -EBADMSG);
        CHECK_OK(cas_blob_remove(s, &d));
        CHECK_EQ(reader_hash_check(r), -EBADMSG);
        cas_blob_reader_close(r);
        CHECK_EQ(cas_blob_stat(s, &d, NULL), -ENOENT);
        CHECK_EQ(cas_blob_remove(s, &d), -ENOENT);
        CHECK_OK(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d));
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_OK(reader_hash_check(r));
        cas_blob_reader_close(r);
        cas_blob_service_free(s);

        /* the memory backend hands out pointers into its blobs: a removed
         * blob's bytes stay for the readers open until the service goes */
        s = new_memory();
        CHECK_OK(cas_blob_put(s, "x", 1, 0, &d));
        CHECK_OK(cas_blob_open(s, &d, &r));
        CHECK_OK(cas_blob_remove(s, &d));
        CHECK_EQ(cas_blob_stat(s, &d, NULL), -ENOENT);
        CHECK_EQ(cas_blob_remove(s, &d), -ENOENT);
        {
                char c = 0;

                CHECK_EQ(cas_blob_pread(r, &c, 1, 0), 1);
                CHECK_EQ(c, 'x');
        }
        cas_blob_reader_close(r);
        cas_blob_service_free(s);
}

static void touch(const char *dir, const char *name) {
        char path[800];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        CHECK((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
        close(fd);
}

static bool exists_in(const char *dir, const char *name) {
        char path[800];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return access(path, F_OK) == 0;
}

/* Temporaries of dead writers go on the first write; those of a live one
 * (its lock file held) and foreign files stay. */
static void test_local_stale_temps(void) {
        struct cas_blob_service *s = new_local();
        struct cas_digest d;
        char tmp[700], path[800];
        int live;

        tmp_dir(tmp, sizeof(tmp));
        touch(tmp, "4242-00000000000000aa.7");            /* no lock file: orphan */
        touch(tmp, "4242-00000000000000bb.lock");         /* lock file nobody holds */
        touch(tmp, "4242-00000000000000bb.1");
        touch(tmp, "4242-00000000000000bb.2");
        touch(tmp, "4243-00000000000000cc.lock");         /* held below: alive */
        touch(tmp, "4243-00000000000000cc.3");
        touch(tmp, "notes.txt");                          /* not ours */
        snprintf(path, sizeof(path), "%s/4243-00000000000000cc.lock", tmp);
        CHECK((live = open(path, O_RDONLY)) >= 0);
        CHECK_OK(flock(live, LOCK_EX));

        CHECK_OK(cas_blob_stat(s, &cas_digest_empty, NULL) == -ENOENT ? 0 : -1); /* reading cleans nothing */
        CHECK(exists_in(tmp, "4242-00000000000000aa.7"));
        CHECK_OK(cas_blob_put(s, "x", 1, 0, &d));
        CHECK(!exists_in(tmp, "4242-00000000000000aa.7"));
        CHECK(!exists_in(tmp, "4242-00000000000000bb.lock"));
        CHECK(!exists_in(tmp, "4242-00000000000000bb.1"));
        CHECK(!exists_in(tmp, "4242-00000000000000bb.2"));
        CHECK(exists_in(tmp, "4243-00000000000000cc.lock"));
        CHECK(exists_in(tmp, "4243-00000000000000cc.3"));
        CHECK(exists_in(tmp, "notes.txt"));
        close(live);
        cas_blob_service_free(s);
}

/* A writer killed with deferred blobs pending leaves temporaries that the
 * next writer removes; its blobs never appear. */
static void test_local_killed_writer(void) {
        struct cas_blob_service *s = new_local();
        struct cas_digest d;
        pid_t pid;
        int status;

        cas_blob_service_free(s);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                struct cas_blob_service *c = reopen_local();
                if (cas_blob_put(c, blob_b, BLOB_B_LEN, CAS_BLOB_DEFER_SYNC, &d) < 0 ||
                    cas_blob_put(c, "Hello World!", 12, CAS_BLOB_DEFER_SYNC, &d) < 0)
                        _exit(1);
                _exit(0); /* no sync, no free: as if killed */
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_EQ(count_temps(), 2);

        s = reopen_local();
        CHECK_OK(cas_blob_put(s, "\x00\x01", 2, 0, &d));
        CHECK_EQ(count_temps(), 0);
        d = digest_of_hex(BLOB_B_HEX);
        CHECK_EQ(cas_blob_stat(s, &d, NULL), -ENOENT);
        cas_blob_service_free(s);
        {
                char tmp[700];
                DIR *dir;
                struct dirent *de;
                int n = 0;

                tmp_dir(tmp, sizeof(tmp));
                CHECK(dir = opendir(tmp));
                while ((de = readdir(dir)))
                        n += de->d_name[0] != '.';
                closedir(dir);
                CHECK_EQ(n, 0); /* lock files too */
        }
}

/* Two writers on one store (two importers): the second one's clean-up
 * must leave the first one's deferred temporaries alone. */
static void test_local_two_writers(void) {
        struct cas_blob_service *a = new_local(), *b = reopen_local();
        struct cas_digest da, db;
        uint64_t size;

        CHECK_OK(cas_blob_put(a, blob_b, BLOB_B_LEN, CAS_BLOB_DEFER_SYNC, &da));
        CHECK_OK(cas_blob_put(b, "Hello World!", 12, CAS_BLOB_DEFER_SYNC, &db));
        CHECK_EQ(count_temps(), 2);
        CHECK_OK(cas_blob_sync(a));
        CHECK_OK(cas_blob_sync(b));
        CHECK_OK(cas_blob_stat(b, &da, &size));
        CHECK_EQ(size, BLOB_B_LEN);
        CHECK_OK(cas_blob_stat(a, &db, &size));
        CHECK_EQ(size, 12);
        cas_blob_service_free(a);
        cas_blob_service_free(b);
        CHECK_EQ(count_temps(), 0);
}

struct writer_job {
        struct cas_blob_service *s;
        int id;
        int ok;
};

/* Each thread stores 32 small blobs, half of them shared with the others. */
static void *writer_thread(void *arg) {
        struct writer_job *j = arg;

        for (int i = 0; i < 32; i++) {
                char buf[64];
                int len = snprintf(buf, sizeof(buf), "blob %d of %d", i, i % 2 ? j->id : -1);
                struct cas_digest d;

                if (i % 3 == 0) {
                        struct cas_blob_writer *w;
                        uint64_t size;
                        if (cas_blob_writer_new(j->s, CAS_BLOB_DEFER_SYNC, &w) < 0 ||
                            cas_blob_write(w, buf, len) < 0 || cas_blob_commit(w, &d, &size) < 0)
                                return NULL;
                } else if (cas_blob_put(j->s, buf, len, CAS_BLOB_DEFER_SYNC, &d) < 0)
                        return NULL;
        }
        j->ok = 1;
        return NULL;
}

static int count_cb2(void *userdata, const struct cas_digest *d) {
        (*(int *) userdata)++;
        return 0;
}

static void test_local_concurrent_writers(void) {
        struct cas_blob_service *s = new_local();
        struct writer_job jobs[4];
        pthread_t t[4];
        int count = 0;

        for (int i = 0; i < 4; i++) {
                jobs[i] = (struct writer_job){ .s = s, .id = i };
                CHECK_EQ(pthread_create(&t[i], NULL, writer_thread, &jobs[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                CHECK_EQ(pthread_join(t[i], NULL), 0);
                CHECK(jobs[i].ok);
        }
        CHECK_OK(cas_blob_sync(s));
        CHECK_OK(cas_blob_list(s, count_cb2, &count));
        CHECK_EQ(count, 16 + 4 * 16);
        CHECK_EQ(count_temps(), 0);
        cas_blob_service_free(s);
}

/* Past the pending limit a commit flushes by itself. */
static void test_local_auto_flush(void) {
        struct cas_blob_service *s = new_local();
        struct cas_digest first, d;
        uint64_t size;

        CHECK_EQ(cas_blob_local_set_flush_at(NULL, 100), -EINVAL);
        CHECK_OK(cas_blob_local_set_flush_at(s, 100));
        CHECK_OK(cas_blob_put(s, "0", 1, CAS_BLOB_DEFER_SYNC, &first));
        CHECK_EQ(cas_blob_stat(s, &first, NULL), -ENOENT);
        for (int i = 1; i < 99; i++) {
                char buf[16];
                int len = snprintf(buf, sizeof(buf), "%d", i);
                CHECK_OK(cas_blob_put(s, buf, len, CAS_BLOB_DEFER_SYNC, &d));
        }
        CHECK_EQ(cas_blob_stat(s, &first, NULL), -ENOENT);
        CHECK_EQ(count_temps(), 99);
        for (int i = 99; i < 100; i++) {
                char buf[16];
                int len = snprintf(buf, sizeof(buf), "%d", i);
                CHECK_OK(cas_blob_put(s, buf, len, CAS_BLOB_DEFER_SYNC, &d));
        }
        CHECK_OK(cas_blob_stat(s, &first, &size));
        CHECK_EQ(size, 1);
        CHECK_EQ(count_temps(), 0);
        cas_blob_service_free(s);
}

/* A failing write (here the file size limit, as ENOSPC would) returns the
 * error and leaves no temporary behind. */
static void test_local_write_error(void) {
        struct cas_blob_service *s = new_local();
        struct cas_blob_writer *w;
        struct rlimit old, lim;
        struct cas_digest d;
        uint64_t size;

        CHECK_OK(getrlimit(RLIMIT_FSIZE, &old));
        lim = (struct rlimit){ 100000, old.rlim_max };
        signal(SIGXFSZ, SIG_IGN);
        CHECK_OK(setrlimit(RLIMIT_FSIZE, &lim));

        CHECK_EQ(cas_blob_put(s, blob_b, BLOB_B_LEN, 0, &d), -EFBIG);
        CHECK_EQ(count_temps(), 0);
        CHECK_OK(cas_blob_writer_new(s, CAS_BLOB_DEFER_SYNC, &w));
        int r = 0;
        for (size_t off = 0; off < BLOB_B_LEN && r >= 0; off += 30000)
                r = cas_blob_write(w, blob_b + off, MIN((size_t) 30000, BLOB_B_LEN - off));
        if (r >= 0)
                r = cas_blob_commit(w, &d, &size);
        else
                cas_blob_abort(w);
        CHECK_EQ(r, -EFBIG);
        CHECK_EQ(count_temps(), 0);
        /* small blobs still fit */
        CHECK_OK(cas_blob_put(s, "Hello World!", 12, 0, &d));

        CHECK_OK(setrlimit(RLIMIT_FSIZE, &old));
        signal(SIGXFSZ, SIG_DFL);
        d = digest_of_hex(BLOB_B_HEX);
        CHECK_EQ(cas_blob_stat(s, &d, NULL), -ENOENT);
        cas_blob_service_free(s);
}

/* A writer whose write failed half way must not commit afterwards, even
 * once the condition has cleared (space freed): its hash covers bytes that
 * never reached the file, so a commit would store wrong content under the
 * digest.  Writes after the failure fail too. */
static void test_local_write_error_poisons_writer(void) {
        struct cas_blob_service *s = new_local();
        struct cas_blob_writer *w;
        struct rlimit old, lim;
        struct cas_digest d, want = digest_of_hex(BLOB_B_HEX);
        uint64_t size;
        int r;

        CHECK_OK(getrlimit(RLIMIT_FSIZE, &old));
        lim = (struct rlimit){ 65536 + 10, old.rlim_max };
        signal(SIGXFSZ, SIG_IGN);
        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        CHECK_OK(cas_blob_write(w, blob_b, 65536)); /* buffered */
        CHECK_OK(setrlimit(RLIMIT_FSIZE, &lim));
        /* spills the buffer, then fails 10 bytes into this chunk */
        r = cas_blob_write(w, blob_b + 65536, 100000);
        CHECK_OK(setrlimit(RLIMIT_FSIZE, &old));
        signal(SIGXFSZ, SIG_DFL);
        CHECK_EQ(r, -EFBIG);
        CHECK_EQ(cas_blob_write(w, blob_b + 165536, BLOB_B_LEN - 165536), -EFBIG);
        CHECK_EQ(cas_blob_commit(w, &d, &size), -EFBIG);
        CHECK_EQ(count_temps(), 0);
        CHECK_EQ(cas_blob_stat(s, &want, NULL), -ENOENT);
        /* nor under the digest of what the whole stream would have been */
        struct cas_hasher h;
        cas_hasher_init(&h);
        cas_hasher_update(&h, blob_b, 165536);
        cas_hasher_final(&h, &d);
        CHECK_EQ(cas_blob_stat(s, &d, NULL), -ENOENT);
        cas_blob_service_free(s);
}

/* The traced child of test_local_dedup_durable: a blob already in place
 * (possibly renamed there by another writer whose final sync has not run
 * yet, a writer that may have been killed) is found by a deferred put,
 * which stores nothing; the sync that follows must still make the store
 * durable, since the caller is about to record a reference to the blob. */
static int dedup_child(const char *dir) {
        struct cas_blob_service *s;
        struct cas_blob_writer *w;
        struct cas_digest d;
        char blobs[600], tmp[600];
        uint64_t size;
        int fd;

        snprintf(blobs, sizeof(blobs), "%s/blobs", dir);
        snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
        CHECK_OK(cas_blob_local_new(blobs, tmp, &s));
        CHECK_OK(cas_blob_put(s, "Hello World!", 12, CAS_BLOB_DEFER_SYNC, &d));
        CHECK_OK(cas_blob_writer_new(s, CAS_BLOB_DEFER_SYNC, &w));
        CHECK_OK(cas_blob_write(w, blob_b, BLOB_B_LEN));
        CHECK_OK(cas_blob_commit(w, &d, &size));
        CHECK_OK(cas_blob_sync(s));
        /* a marker in the trace: what follows is the dedup part */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        close(fd);
        CHECK_OK(cas_blob_put(s, "Hello World!", 12, CAS_BLOB_DEFER_SYNC, &d));
        CHECK_OK(cas_blob_sync(s));
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        close(fd);
        CHECK_OK(cas_blob_writer_new(s, CAS_BLOB_DEFER_SYNC, &w));
        CHECK_OK(cas_blob_write(w, blob_b, BLOB_B_LEN));
        CHECK_OK(cas_blob_commit(w, &d, &size));
        CHECK_OK(cas_blob_sync(s));
        cas_blob_service_free(s);
        return 0;
}

static void test_local_dedup_durable(const char *self) {
        char dir[600], log[700], cmd[1600], line[512];
        int phase = 0, syncs[3] = {};
        FILE *f;

        if (system("strace -V >/dev/null 2>&1") != 0) {
                SKIP_PART("strace is not installed");
                return;
        }
        snprintf(dir, sizeof(dir), "%s/dedup", tmp_root);
        CHECK_OK(mkdir(dir, 0755));
        snprintf(log, sizeof(log), "%s/strace.log", tmp_root);
        /* LeakSanitizer cannot run under ptrace */
        snprintf(cmd, sizeof(cmd),
                 "ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o '%s' -e trace=syncfs,openat '%s' --dedup-child '%s'", log,
                 self, dir);
        CHECK_EQ(system(cmd), 0);
        f = fopen(log, "r");
        CHECK(f);
        while (fgets(line, sizeof(line), f)) {
                if (strstr(line, "\"/dev/null\""))
                        phase = 1;
                else if (strstr(line, "\"/dev/zero\""))
                        phase = 2;
                else if (strstr(line, "syncfs("))
                        syncs[phase]++;
        }
        fclose(f);
        CHECK_EQ(syncs[0], 2); /* one flush: data, then renames */
        CHECK(syncs[1] >= 1);  /* dedup by put, then sync */
        CHECK(syncs[2] >= 1);  /* dedup by a writer's commit, then sync */
}

/* Names in the blob tree that are not blobs are not listed. */
static void test_local_list_skips_junk(void) {
        struct cas_blob_service *s = new_local();
        struct cas_digest d;
        char path[800];
        int count = 0;

        CHECK_OK(cas_blob_put(s, "Hello World!", 12, 0, &d));
        snprintf(path, sizeof(path), "%s/5c", local_dir);
        touch(path, "5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470"); /* 63 hex */
        touch(path, "00a7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c"); /* wrong shard */
        touch(path, "5CA7815ADCB484E9A136C11EFE69C1D530176D549B5D18D038EB5280B4B3470C"); /* upper case */
        touch(local_dir, "README");
        snprintf(path, sizeof(path), "%s/zz", local_dir);
        CHECK_OK(mkdir(path, 0755));
        CHECK_OK(cas_blob_list(s, count_cb2, &count));
        CHECK_EQ(count, 1);
        cas_blob_service_free(s);
}

typedef void (*backend_test)(struct cas_blob_service *s);

static const struct {
        const char *name;
        struct cas_blob_service *(*make)(void);
} backends[] = {
        { "memory", new_memory },
        { "local", new_local },
};

static void run_both(const char *name, backend_test t) {
        for (size_t i = 0; i < ELEMENTSOF(backends); i++) {
                struct cas_blob_service *s = backends[i].make();

                fprintf(stderr, "  %s (%s)\n", name, backends[i].name);
                t(s);
                cas_blob_service_free(s);
        }
}

#define RUN_BOTH(t) run_both(#t, t)

int main(int argc, char **argv) {
        blob_b = malloc(BLOB_B_LEN);
        for (size_t i = 0; i < BLOB_B_LEN; i++)
                blob_b[i] = i % 255;
        if (argc == 3 && strcmp(argv[1], "--dedup-child") == 0)
                return dedup_child(argv[2]);
        test_tmp_root("test-blobsvc", tmp_root, sizeof(tmp_root));

        RUN_BOTH(test_put_stat_open);
        RUN_BOTH(test_pread_offsets);
        RUN_BOTH(test_writer);
        RUN_BOTH(test_dedup);
        RUN_BOTH(test_defer_sync);
        RUN_BOTH(test_list);
        RUN_BOTH(test_concurrent_pread);
        RUN_BOTH(test_args);
        RUN(test_local_layout);
        RUN(test_local_rot);
        RUN(test_local_stale_temps);
        RUN(test_local_killed_writer);
        RUN(test_local_two_writers);
        RUN(test_local_concurrent_writers);
        RUN(test_local_auto_flush);
        RUN(test_local_write_error);
        RUN(test_local_write_error_poisons_writer);
        RUN(test_local_list_skips_junk);
        fprintf(stderr, "  test_local_dedup_durable\n");
        test_local_dedup_durable(argv[0]);

        remove_tree(tmp_root);
        free(blob_b);
        return *test_exit_code();
}
