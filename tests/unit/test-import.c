/* Unit tests for the tree importer over a memory:// store: trees built on
 * disk whose digests are SPEC §2 known answers, file and symlink roots,
 * special files, and a wider tree whose directories must all be stored. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/import.h"
#include "castore/pathwalk.h"
#include "test.h"

static char base[] = "/tmp/castore-test-import.XXXXXX";

static void write_file(const char *rel, const void *data, size_t len, mode_t mode) {
        char p[512];
        int fd;

        snprintf(p, sizeof(p), "%s/%s", base, rel);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
        CHECK(fd >= 0);
        CHECK((size_t) write(fd, data, len) == len);
        CHECK(fchmod(fd, mode) == 0);
        close(fd);
}

static void make_dir(const char *rel) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", base, rel);
        CHECK(mkdir(p, 0755) == 0);
}

static void make_link(const char *target, const char *rel) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", base, rel);
        CHECK(symlink(target, p) == 0);
}

static struct cas_store *store_new(void) {
        struct cas_store *s;
        CHECK_OK(cas_store_open("memory://", 0, &s));
        return s;
}

static int import(struct cas_store *s, const char *rel, bool skip, struct cas_node *n, void **mem) {
        struct cas_import_opts opts = { .threads = 3, .skip_special = skip };
        char p[512];

        snprintf(p, sizeof(p), "%s/%s", base, rel);
        return cas_import_path(s, p, &opts, n, mem, NULL);
}

static void test_complicated(void) {
        struct cas_store *s = store_new();
        struct cas_node n;
        void *mem;

        make_dir("c");
        make_dir("c/keep");
        write_file("c/keep/.keep", "", 0, 0644);
        write_file("c/.keep", "", 0, 0644);
        make_link("/nix/store/somewhereelse", "c/aa");
        CHECK_OK(import(s, "c", false, &n, &mem));
        CHECK_EQ(n.kind, CAS_NODE_DIRECTORY);
        CHECK_STREQ(CAS_DIGEST_HEX(&n.digest), "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a");
        CHECK_EQ(n.size, 4);
        /* the child directory was stored too (DIRECTORY_WITH_KEEP) */
        struct cas_node k;
        void *kmem;
        CHECK_OK(cas_walk_path(s->dirs, &n, "keep", &k, &kmem));
        CHECK_STREQ(CAS_DIGEST_HEX(&k.digest), "8b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e");
        free(kmem);
        free(mem);
        cas_store_free(s);
}

static void test_directory_b_and_roots(void) {
        struct cas_store *s = store_new();
        struct cas_node n;
        void *mem;
        uint64_t size;

        make_dir("b");
        make_dir("b/a");
        CHECK_OK(import(s, "b", false, &n, &mem));
        CHECK_STREQ(CAS_DIGEST_HEX(&n.digest), "8701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc");
        CHECK_OK(cas_dir_stat(s->dirs, &cas_digest_empty, &size));
        CHECK_EQ(size, 0);
        free(mem);

        write_file("hello", "Hello World!", 12, 0755);
        CHECK_OK(import(s, "hello", false, &n, &mem));
        CHECK_EQ(n.kind, CAS_NODE_FILE);
        CHECK(n.executable);
        CHECK_EQ(n.size, 12);
        CHECK_STREQ(CAS_DIGEST_HEX(&n.digest), "5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c");
        CHECK_OK(cas_blob_stat(s->blobs, &n.digest, &size));
        CHECK_EQ(size, 12);
        free(mem);

        make_link("target/with/slashes", "lnk");
        CHECK_OK(import(s, "lnk", false, &n, &mem));
        CHECK_EQ(n.kind, CAS_NODE_SYMLINK);
        CHECK_STREQ(n.target, "target/with/slashes");
        free(mem);
        cas_store_free(s);
}

static void test_special_files(void) {
        struct cas_store *s = store_new();
        struct cas_node n;
        void *mem = NULL;
        char p[512];

        make_dir("sp");
        write_file("sp/f", "x", 1, 0644);
        snprintf(p, sizeof(p), "%s/sp/fifo", base);
        CHECK(mkfifo(p, 0644) == 0);
        CHECK_EQ(import(s, "sp", false, &n, &mem), -EINVAL);
        CHECK_OK(import(s, "sp", true, &n, &mem));
        CHECK_EQ(n.size, 1);
        free(mem);
        CHECK_EQ(import(s, "sp/fifo", false, &n, &mem), -EINVAL);
        CHECK_EQ(import(s, "does-not-exist", false, &n, &mem), -ENOENT);
        cas_store_free(s);
}

/* Many directories and files, more than the job queue holds, with shared
 * content: every directory reachable from the root must be stored, and the
 * same tree imported with one thread gives the same digest. */
static void test_wide_tree(void) {
        struct cas_store *s = store_new(), *s1 = store_new();
        struct cas_import_opts one = { .threads = 1 };
        struct cas_node n, n1;
        void *mem, *mem1;
        char rel[128], p[512];

        make_dir("w");
        for (int i = 0; i < 30; i++) {
                snprintf(rel, sizeof(rel), "w/d%02d", i);
                make_dir(rel);
                snprintf(rel, sizeof(rel), "w/d%02d/sub", i);
                make_dir(rel);
                for (int j = 0; j < 40; j++) {
                        char data[32];
                        int len = snprintf(data, sizeof(data), "%d", j % 7);
                        snprintf(rel, sizeof(rel), "w/d%02d/sub/f%02d", i, j);
                        write_file(rel, data, len, j % 3 ? 0644 : 0755);
                }
        }
        CHECK_OK(import(s, "w", false, &n, &mem));
        CHECK_EQ(n.size, 30 * 2 + 30 * 40);
        snprintf(p, sizeof(p), "%s/w", base);
        CHECK_OK(cas_import_path(s1, p, &one, &n1, &mem1, NULL));
        CHECK(cas_digest_equal(&n.digest, &n1.digest));
        for (int i = 0; i < 30; i++) {
                struct cas_node c;
                void *cmem;
                struct cas_directory *d;
                snprintf(rel, sizeof(rel), "d%02d/sub", i);
                CHECK_OK(cas_walk_path(s->dirs, &n, rel, &c, &cmem));
                CHECK_OK(cas_dir_get(s->dirs, &c.digest, &d));
                CHECK_EQ(d->n_files, 40);
                cas_directory_free(d);
                free(cmem);
        }
        free(mem);
        free(mem1);
        cas_store_free(s);
        cas_store_free(s1);
}

int main(void) {
        CHECK(mkdtemp(base));
        RUN(test_complicated);
        RUN(test_directory_b_and_roots);
        RUN(test_special_files);
        RUN(test_wide_tree);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
        return 0;
}
