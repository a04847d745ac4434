/* Unit tests for export (castore/export.h): a tree with every node kind
 * round-trips (same bytes, modes, targets; a re-import gives the same
 * digest); file and symlink roots; an existing destination is refused; a
 * corrupt or missing blob fails the export and leaves no file with wrong
 * content and no temporary behind. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/export.h"
#include "castore/import.h"
#include "test.h"

static char tmp_root[256];

static void path_of(char *ret, size_t size, const char *rel) {
        snprintf(ret, size, "%s/%s", tmp_root, rel);
}

static void write_file(const char *rel, const char *text, mode_t mode) {
        char p[512];
        int fd;

        path_of(p, sizeof(p), rel);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL, mode);
        CHECK(fd >= 0);
        CHECK_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        CHECK_EQ(fchmod(fd, mode), 0);
        close(fd);
}

static void make_dir(const char *rel) {
        char p[512];

        path_of(p, sizeof(p), rel);
        CHECK_EQ(mkdir(p, 0755), 0);
}

static void make_link(const char *target, const char *rel) {
        char p[512];

        path_of(p, sizeof(p), rel);
        CHECK_EQ(symlink(target, p), 0);
}

/* Loose blobs (no packs), so that test_corrupt_blob can damage one file in
 * place; test-pack damages packed blobs. */
static void import(struct cas_store *s, const char *rel, struct cas_node *n, void **mem) {
        struct cas_import_opts opts = { .threads = 2, .no_pack = true };
        char p[512];

        path_of(p, sizeof(p), rel);
        CHECK_OK(cas_import_path(s, p, &opts, n, mem, NULL));
}

static int export(struct cas_store *s, const struct cas_node *n, const char *rel, struct cas_export_stats *st) {
        char p[512];

        path_of(p, sizeof(p), rel);
        return cas_export_tree(s, n, p, 0, st);
}

static void expect_file(const char *rel, const char *text, mode_t mode) {
        char p[512], buf[256];
        struct stat st;
        ssize_t k;
        int fd;

        path_of(p, sizeof(p), rel);
        CHECK_EQ(lstat(p, &st), 0);
        CHECK(S_ISREG(st.st_mode));
        CHECK_EQ(st.st_mode & 07777, mode);
        fd = open(p, O_RDONLY);
        CHECK(fd >= 0);
        k = read(fd, buf, sizeof(buf) - 1);
        CHECK(k >= 0);
        buf[k] = 0;
        CHECK_STREQ(buf, text);
        close(fd);
}

static void expect_link(const char *rel, const char *target) {
        char p[512], buf[256];
        ssize_t k;

        path_of(p, sizeof(p), rel);
        k = readlink(p, buf, sizeof(buf) - 1);
        CHECK(k >= 0);
        buf[k] = 0;
        CHECK_STREQ(buf, target);
}

static bool exists(const char *rel) {
        char p[512];
        struct stat st;

        path_of(p, sizeof(p), rel);
        return lstat(p, &st) == 0;
}

/* Names in a directory other than . and .., counted; *ret_tmp tells
 * whether one of them is an export temporary. */
static int count_entries(const char *rel, bool *ret_tmp) {
        char p[512];
        struct dirent *de;
        DIR *d;
        int n = 0;

        path_of(p, sizeof(p), rel);
        d = opendir(p);
        CHECK(d);
        *ret_tmp = false;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (strncmp(de->d_name, ".castore-export.", 16) == 0)
                        *ret_tmp = true;
                n++;
        }
        closedir(d);
        return n;
}

static void blob_file(const char *store, const struct cas_digest *d, char *ret, size_t size) {
        char hex[CAS_DIGEST_HEX_LEN + 1];

        cas_digest_to_hex(d, hex);
        snprintf(ret, size, "%s/blobs/%.2s/%s", store, hex, hex);
}

static void test_round_trip(void) {
        struct cas_store *s;
        struct cas_node n, again;
        struct cas_export_stats st;
        void *mem, *mem2;
        mode_t old = umask(077); /* modes must not depend on it */

        make_dir("rt");
        make_dir("rt/sub");
        make_dir("rt/sub/empty");
        write_file("rt/plain", "plain text\n", 0644);
        write_file("rt/sub/run", "#!/bin/sh\necho hi\n", 0755);
        write_file("rt/sub/zero", "", 0644);
        make_link("sub/run", "rt/rel");
        make_link("/nix/store/somewhere-else", "rt/sub/abs");
        CHECK_OK(cas_store_open("memory://", 0, &s));
        import(s, "rt", &n, &mem);

        CHECK_OK(export(s, &n, "rt.out", &st));
        CHECK_EQ(st.files, 3);
        CHECK_EQ(st.directories, 3);
        CHECK_EQ(st.symlinks, 2);
        CHECK_EQ(st.bytes, strlen("plain text\n") + strlen("#!/bin/sh\necho hi\n"));
        expect_file("rt.out/plain", "plain text\n", 0644);
        expect_file("rt.out/sub/run", "#!/bin/sh\necho hi\n", 0755);
        expect_file("rt.out/sub/zero", "", 0644);
        expect_link("rt.out/rel", "sub/run");
        expect_link("rt.out/sub/abs", "/nix/store/somewhere-else");
        CHECK(exists("rt.out/sub/empty"));
        bool tmp;
        CHECK_EQ(count_entries("rt.out", &tmp), 3);
        CHECK(!tmp);

        /* the export imports to the same digest */
        import(s, "rt.out", &again, &mem2);
        CHECK(cas_digest_equal(&again.digest, &n.digest));
        free(mem2);

        /* an existing destination is refused, also with a trailing slash */
        CHECK_EQ(export(s, &n, "rt.out", NULL), -EEXIST);
        CHECK_EQ(export(s, &n, "rt.out/", NULL), -EEXIST);
        CHECK_EQ(export(s, &n, "no-such-dir/out", NULL), -ENOENT);

        /* file and symlink roots */
        struct cas_node f, l;
        void *fmem, *lmem;
        import(s, "rt/sub/run", &f, &fmem);
        CHECK_OK(export(s, &f, "run.out", &st));
        CHECK_EQ(st.files, 1);
        expect_file("run.out", "#!/bin/sh\necho hi\n", 0755);
        import(s, "rt/rel", &l, &lmem);
        CHECK_OK(export(s, &l, "rel.out/", &st));
        CHECK_EQ(st.symlinks, 1);
        expect_link("rel.out", "sub/run");
        free(fmem);
        free(lmem);

        umask(old);
        free(mem);
        cas_store_free(s);
}

static void test_corrupt_blob(void) {
        struct cas_store *s;
        struct cas_node n;
        char store[512], p[600];
        void *mem;
        bool tmp;
        int fd;

        make_dir("bad");
        write_file("bad/a-good", "good\n", 0644);
        write_file("bad/b-rotten", "this will rot\n", 0644);
        write_file("bad/c-after", "never reached\n", 0644);
        path_of(store, sizeof(store), "bad.store");
        CHECK_OK(cas_store_open(store, CAS_STORE_CREATE, &s));
        import(s, "bad", &n, &mem);

        /* flip a byte of b-rotten's blob, in place (same size) */
        struct cas_digest d;
        cas_digest_of("this will rot\n", 14, &d);
        blob_file(store, &d, p, sizeof(p));
        CHECK_EQ(chmod(p, 0644), 0);
        fd = open(p, O_WRONLY);
        CHECK(fd >= 0);
        CHECK_EQ(pwrite(fd, "T", 1, 0), 1);
        close(fd);

        CHECK_EQ(export(s, &n, "bad.out", NULL), -EBADMSG);
        expect_file("bad.out/a-good", "good\n", 0644); /* verified before the rotten one */
        CHECK(!exists("bad.out/b-rotten"));
        CHECK(!exists("bad.out/c-after"));
        CHECK_EQ(count_entries("bad.out", &tmp), 1);
        CHECK(!tmp);

        /* a file root: nothing at all appears */
        struct cas_node f = { .kind = CAS_NODE_FILE, .digest = d, .size = 14 };
        CHECK_EQ(export(s, &f, "bad.out/file", NULL), -EBADMSG);
        CHECK(!exists("bad.out/file"));

        /* a blob one byte longer than the node says */
        CHECK_EQ(truncate(p, 15), 0);
        CHECK_EQ(export(s, &f, "bad.out/file", NULL), -EBADMSG);
        CHECK(!exists("bad.out/file"));

        /* a missing blob */
        CHECK_EQ(unlink(p), 0);
        CHECK_EQ(export(s, &f, "bad.out/file", NULL), -ENOENT);
        CHECK(!exists("bad.out/file"));
        CHECK_EQ(count_entries("bad.out", &tmp), 1);
        CHECK(!tmp);

        free(mem);
        cas_store_free(s);
}

int main(void) {
        test_tmp_root("test-export", tmp_root, sizeof(tmp_root));

        RUN(test_round_trip);
        RUN(test_corrupt_blob);

        remove_tree(tmp_root);
        return 0;
}
