/* Unit tests for cas_store_open: URL schemes, creating and reopening the
 * local store, refusing what is not a store, read-only opening. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/store.h"
#include "test.h"

static char tmp_root[256];

static void path_of(char *ret, size_t size, const char *name) {
        snprintf(ret, size, "%s/%s", tmp_root, name);
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");

        CHECK(f);
        fputs(text, f);
        CHECK_EQ(fclose(f), 0);
}

static bool is_dir(const char *dir, const char *name) {
        char p[600];
        struct stat st;

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Stores a blob, a directory and a root so that reopening can check them. */
static void fill(struct cas_store *s) {
        struct cas_directory *d;
        struct cas_digest blob;
        struct cas_node f = { .kind = CAS_NODE_FILE, .name = "hello", .name_len = 5, .size = 12 };
        struct cas_node root = { .kind = CAS_NODE_DIRECTORY, .name = "tree", .name_len = 4 };

        CHECK_OK(cas_blob_put(s->blobs, "Hello World!", 12, 0, &blob));
        f.digest = blob;
        CHECK_OK(cas_directory_new(&f, 1, &d, NULL));
        CHECK_OK(cas_dir_put(s->dirs, &d, 1, 0, NULL));
        root.digest = d->digest;
        root.size = d->size;
        CHECK_OK(cas_root_put(s->roots, &root));
        cas_directory_free(d);
}

static void check_filled(struct cas_store *s) {
        struct cas_node root;
        struct cas_directory *d;
        uint64_t size;
        void *mem;

        CHECK_OK(cas_root_get(s->roots, "tree", 4, &root, &mem));
        CHECK_OK(cas_dir_get(s->dirs, &root.digest, &d));
        CHECK_EQ(d->n_entries, 1);
        CHECK_OK(cas_blob_stat(s->blobs, &d->entries[0].digest, &size));
        CHECK_EQ(size, 12);
        cas_directory_free(d);
        free(mem);
}

static void test_memory(void) {
        struct cas_store *s;

        CHECK_OK(cas_store_open("memory://", 0, &s));
        CHECK(s->blobs && s->dirs && s->roots);
        CHECK(!s->lmdb);
        CHECK_STREQ(s->url, "memory://");
        fill(s);
        check_filled(s);
        cas_store_free(s);
}

static void test_bad_urls(void) {
        struct cas_store *s;

        CHECK_EQ(cas_store_open("s3://bucket", CAS_STORE_CREATE, &s), -EINVAL);
        CHECK_EQ(cas_store_open("grpc+unix:///run/x.sock", 0, &s), -EINVAL);
        CHECK_EQ(cas_store_open("memory://x", 0, &s), -EINVAL);
        CHECK_EQ(cas_store_open("local://", 0, &s), -EINVAL);
        CHECK_EQ(cas_store_open("", 0, &s), -EINVAL);
        CHECK_EQ(cas_store_open(NULL, 0, &s), -EINVAL);
}

static void test_create_reopen(void) {
        char dir[300], url[320];
        struct cas_store *s;

        path_of(dir, sizeof(dir), "a/b/store");
        CHECK_EQ(cas_store_open(dir, 0, &s), -ENOENT);
        CHECK_EQ(cas_store_open(dir, CAS_STORE_READONLY, &s), -ENOENT);
        CHECK_EQ(access(dir, F_OK), -1); /* nothing was created */

        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &s));
        CHECK(s->lmdb);
        CHECK(is_dir(dir, "blobs") && is_dir(dir, "tmp") && is_dir(dir, "meta"));
        fill(s);
        cas_store_free(s);
        {
                /* owner-only: copies of private files must not become
                 * readable to others through the store */
                struct stat st;

                CHECK_EQ(stat(dir, &st), 0);
                CHECK_EQ(st.st_mode & 07777, 0700);
        }

        /* again, plain and with the local:// scheme; CREATE on an existing store is fine */
        CHECK_OK(cas_store_open(dir, 0, &s));
        check_filled(s);
        cas_store_free(s);
        snprintf(url, sizeof(url), "local://%s", dir);
        CHECK_OK(cas_store_open(url, CAS_STORE_CREATE, &s));
        CHECK_STREQ(s->url, url);
        check_filled(s);
        cas_store_free(s);
}

static void test_readonly(void) {
        char dir[300];
        struct cas_store *s;
        struct cas_node n = { .kind = CAS_NODE_SYMLINK, .name = "l", .name_len = 1, .target = "x", .target_len = 1 };

        path_of(dir, sizeof(dir), "ro");
        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &s));
        fill(s);
        cas_store_free(s);
        CHECK_OK(cas_store_open(dir, CAS_STORE_READONLY, &s));
        check_filled(s);
        CHECK_EQ(cas_root_put(s->roots, &n), -EROFS);
        cas_store_free(s);
        /* READONLY wins over CREATE: nothing is created */
        path_of(dir, sizeof(dir), "ro-missing");
        CHECK_EQ(cas_store_open(dir, CAS_STORE_READONLY | CAS_STORE_CREATE, &s), -ENOENT);
}

static void test_refuse_non_store(void) {
        char dir[300], file[320];
        struct cas_store *s;

        /* a directory with other files is never turned into a store */
        path_of(dir, sizeof(dir), "home");
        CHECK_OK(mkdir(dir, 0755));
        snprintf(file, sizeof(file), "%s/notes.txt", dir);
        write_file(file, "mine\n");
        CHECK_EQ(cas_store_open(dir, 0, &s), -EMEDIUMTYPE);
        CHECK_EQ(cas_store_open(dir, CAS_STORE_CREATE, &s), -EMEDIUMTYPE);
        CHECK(!is_dir(dir, "blobs"));

        /* an empty directory: missing store without CREATE, new store with */
        path_of(dir, sizeof(dir), "empty");
        CHECK_OK(mkdir(dir, 0755));
        CHECK_EQ(cas_store_open(dir, 0, &s), -ENOENT);
        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &s));
        cas_store_free(s);

        /* a file is not a directory */
        path_of(file, sizeof(file), "plain-file");
        write_file(file, "x");
        CHECK_EQ(cas_store_open(file, CAS_STORE_CREATE, &s), -ENOTDIR);

        /* a store from a future format */
        path_of(dir, sizeof(dir), "future");
        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &s));
        cas_store_free(s);
        snprintf(file, sizeof(file), "%s/castore-store", dir);
        write_file(file, "castore-store 99\n");
        CHECK_EQ(cas_store_open(dir, 0, &s), -EPROTONOSUPPORT);
        write_file(file, "garbage");
        CHECK_EQ(cas_store_open(dir, 0, &s), -EBADMSG);
}

/* A creation that died before writing the marker is finished by the next
 * CREATE (only the layout is there), and not opened without it. */
static void test_unfinished_create(void) {
        char dir[300], sub[320];
        struct cas_store *s;

        path_of(dir, sizeof(dir), "unfinished");
        CHECK_OK(mkdir(dir, 0755));
        snprintf(sub, sizeof(sub), "%s/blobs", dir);
        CHECK_OK(mkdir(sub, 0755));
        snprintf(sub, sizeof(sub), "%s/tmp", dir);
        CHECK_OK(mkdir(sub, 0755));
        CHECK_EQ(cas_store_open(dir, 0, &s), -ENOENT);
        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &s));
        fill(s);
        cas_store_free(s);
        CHECK_OK(cas_store_open(dir, 0, &s));
        check_filled(s);
        cas_store_free(s);
}

/* Creating a store is durable before it is declared finished: the marker
 * is renamed into place only after the metadata directory (holding the
 * new LMDB files) and every directory the creation made have been synced
 * in their parents, so a power loss cannot leave a marker naming a store
 * whose database or whose very directory is gone.  The system calls of a
 * creation in a child process are traced with strace (-y names each fd's
 * path) and checked in order. */
static void test_create_durable(const char *self) {
        char dir[300], log[320], cmd[1200], line[1024], parent[300], meta[320];
        bool meta_synced = false, parent_synced = false, grandparent_synced = false, renamed = false;
        FILE *f;

        if (system("strace -V >/dev/null 2>&1") != 0) {
                SKIP_PART("strace is not installed");
                return;
        }
        path_of(parent, sizeof(parent), "durable");
        path_of(dir, sizeof(dir), "durable/store");
        snprintf(meta, sizeof(meta), "%s/meta", dir);
        snprintf(log, sizeof(log), "%s/strace.log", tmp_root);
        /* LeakSanitizer cannot run under ptrace */
        snprintf(cmd, sizeof(cmd),
                 "ASAN_OPTIONS=detect_leaks=0 strace -f -qq -y -o '%s' "
                 "-e trace=fsync,fdatasync,rename,renameat,renameat2 '%s' --create '%s'",
                 log, self, dir);
        CHECK_EQ(system(cmd), 0);
        f = fopen(log, "r");
        CHECK(f);
        while (fgets(line, sizeof(line), f)) {
                char want[400];

                if (renamed)
                        break;
                if (strstr(line, "\"castore-store\")")) {
                        renamed = true;
                        break;
                }
                if (!strstr(line, "sync("))
                        continue;
                snprintf(want, sizeof(want), "<%s>)", meta);
                if (strstr(line, want))
                        meta_synced = true;
                snprintf(want, sizeof(want), "<%s>)", parent);
                if (strstr(line, want))
                        parent_synced = true;
                snprintf(want, sizeof(want), "<%s>)", tmp_root);
                if (strstr(line, want))
                        grandparent_synced = true;
        }
        fclose(f);
        CHECK(renamed);
        CHECK(meta_synced);        /* data.mdb and lock.mdb are in meta/ */
        CHECK(parent_synced);      /* the store directory is in durable/ */
        CHECK(grandparent_synced); /* durable/ was created too */
}

int main(int argc, char **argv) {
        if (argc == 3 && strcmp(argv[1], "--create") == 0) {
                /* the traced child of test_create_durable */
                struct cas_store *s;
                CHECK_OK(cas_store_open(argv[2], CAS_STORE_CREATE, &s));
                cas_store_free(s);
                return 0;
        }

        test_tmp_root("test-store", tmp_root, sizeof(tmp_root));

        RUN(test_memory);
        RUN(test_bad_urls);
        RUN(test_create_reopen);
        RUN(test_readonly);
        RUN(test_refuse_non_store);
        RUN(test_unfinished_create);
        fprintf(stderr, "  test_create_durable\n");
        test_create_durable(argv[0]);

        remove_tree(tmp_root);
        return *test_exit_code();
}
