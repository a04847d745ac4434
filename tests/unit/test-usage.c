/* Unit tests for castore/usage.h and store/info.h: counts and bytes of
 * blobs (on disk: checked against stat of the local store's files),
 * directories and roots; file bytes of trees with shared and repeated
 * parts and of a very deep tree; the distinct trees of `castore info`. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "castore/usage.h"
#include "store/info.h"
#include "test.h"
#include "test-tree.h"

static struct cas_node named(struct cas_node n, const char *name) {
        n.name = name;
        n.name_len = strlen(name);
        return n;
}

/* sub = { f: 5 bytes }, top = { a: 5 bytes (same blob), b: 3 bytes,
 * s1: sub, s2: sub, l -> a }: files 5 + 3 + 2 * 5 = 18 bytes. */
struct trees {
        struct cas_node sub, top;
};

static struct trees make_trees(struct cas_store *s) {
        struct trees t;
        struct cas_node f = test_file_node(s, "f", "hello", 5), nodes[5];

        t.sub = test_dir_node(s, "sub", &f, 1);
        nodes[0] = named(f, "a");
        nodes[1] = test_file_node(s, "b", "abc", 3);
        nodes[2] = named(t.sub, "s1");
        nodes[3] = named(t.sub, "s2");
        nodes[4] = (struct cas_node){ .kind = CAS_NODE_SYMLINK, .name = "l", .name_len = 1, .target = "a",
                                      .target_len = 1 };
        t.top = test_dir_node(s, "top", nodes, 5);
        return t;
}

static void test_tree_bytes(void) {
        struct cas_store *s;
        struct cas_tree_bytes *tb;
        struct trees t;
        uint64_t bytes;
        struct cas_node link = { .kind = CAS_NODE_SYMLINK, .name = "x", .name_len = 1, .target = "y", .target_len = 1 };

        CHECK_OK(cas_store_open("memory://", 0, &s));
        t = make_trees(s);
        CHECK_OK(cas_tree_bytes_new(s->dirs, &tb));
        CHECK_OK(cas_tree_bytes_of(tb, &t.sub, &bytes));
        CHECK_EQ(bytes, 5);
        CHECK_OK(cas_tree_bytes_of(tb, &t.top, &bytes));
        CHECK_EQ(bytes, 18);
        CHECK_OK(cas_tree_bytes_of(tb, &t.top, &bytes)); /* remembered */
        CHECK_EQ(bytes, 18);
        CHECK_OK(cas_tree_bytes_of(tb, &link, &bytes));
        CHECK_EQ(bytes, 0);
        struct cas_node missing = t.top;
        missing.digest.b[0] ^= 1;
        CHECK_EQ(cas_tree_bytes_of(tb, &missing, &bytes), -ENOENT);
        cas_tree_bytes_free(tb);

        /* a tree deeper than any recursion should go: 100000 levels, one
         * byte at the bottom and one at each level */
        struct cas_node cur = test_file_node(s, "leaf", "x", 1), two[2];
        two[1] = test_file_node(s, "one", "y", 1);
        for (int i = 0; i < 100000; i++) {
                two[0] = named(cur, "d");
                cur = test_dir_node(s, "d", two, 2);
        }
        CHECK_OK(cas_tree_bytes_new(s->dirs, &tb));
        CHECK_OK(cas_tree_bytes_of(tb, &cur, &bytes));
        CHECK_EQ(bytes, 100001);
        cas_tree_bytes_free(tb);
        cas_store_free(s);
}

static void test_memory_usage(void) {
        struct cas_store *s;
        struct nix_pathinfo_service *pis;
        struct cas_usage u;
        struct nix_store_info in;
        struct trees t;

        CHECK_OK(cas_store_open("memory://", 0, &s));
        CHECK_OK(nix_pathinfo_open_store(s, &pis));
        CHECK_OK(cas_store_usage(s, &u));
        CHECK_EQ(u.blobs, 0);
        CHECK_EQ(u.dirs, 0);
        CHECK_EQ(u.roots, 0);
        CHECK(!u.blob_disk_known);

        t = make_trees(s);
        CHECK_OK(cas_root_put(s->roots, &t.top));
        struct cas_node again = named(t.top, "again");
        CHECK_OK(cas_root_put(s->roots, &again));
        CHECK_OK(cas_store_usage(s, &u));
        CHECK_EQ(u.blobs, 2);
        CHECK_EQ(u.blob_bytes, 8);
        CHECK_EQ(u.dirs, 2);
        CHECK(u.dir_bytes > 0);
        CHECK_EQ(u.roots, 2);

        /* two roots of one tree, and a store path of it: one tree */
        struct nix_store_path p;
        struct nix_pathinfo *pi;
        uint8_t sha[NIX_SHA256_LEN] = { 1 };
        const char *base = "00bgd045z0d4icpbc2yyz4gx48ak44la-top";
        CHECK_OK(nix_store_path_from_basename(base, strlen(base), &p));
        CHECK_OK(nix_pathinfo_new(&p, &t.top, 4242, sha, &pi));
        CHECK_OK(nix_pathinfo_put(pis, pi));
        nix_pathinfo_free(pi);
        CHECK_OK(nix_store_info(s, pis, &in));
        CHECK_EQ(in.cas.blobs, 2);
        CHECK_EQ(in.store_paths, 1);
        CHECK_EQ(in.nar_bytes, 4242);
        CHECK_EQ(in.trees, 1);
        CHECK_EQ(in.tree_bytes, 18);

        /* another tree: sub alone */
        CHECK_OK(cas_root_put(s->roots, &t.sub));
        CHECK_OK(nix_store_info(s, NULL, &in));
        CHECK_EQ(in.store_paths, 0);
        CHECK_EQ(in.trees, 2);
        CHECK_EQ(in.tree_bytes, 23);
        nix_pathinfo_service_free(pis);
        cas_store_free(s);
}

/* st_blocks * 512 of a file below dir, 0 if it does not exist. */
static uint64_t disk_bytes(const char *dir, const struct cas_digest *d, const char *suffix) {
        char hex[CAS_DIGEST_HEX_LEN + 1], path[1024];
        struct stat st;

        cas_digest_to_hex(d, hex);
        snprintf(path, sizeof(path), "%s/blobs/%.2s/%s%s", dir, hex, hex, suffix);
        if (stat(path, &st) < 0)
                return 0;
        return (uint64_t) st.st_blocks * 512;
}

static void test_local_disk_usage(void) {
        char dir[512];
        struct cas_store *s;
        struct cas_usage u;
        struct cas_digest d1, d2;
        uint64_t one, want;
        size_t big = 100000;
        char *data = malloc(big);

        CHECK(data);
        for (size_t i = 0; i < big; i++)
                data[i] = (char) (i * 7 + i / 251);
        test_tmp_root("castore-test-usage", dir, sizeof(dir));
        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &s));
        CHECK_OK(cas_blob_put(s->blobs, "small", 5, 0, &d1));
        CHECK_OK(cas_blob_put(s->blobs, data, big, 0, &d2)); /* over 16 KiB: an outboard */
        CHECK(disk_bytes(dir, &d2, ".ob") > 0);
        want = disk_bytes(dir, &d1, "") + disk_bytes(dir, &d2, "") + disk_bytes(dir, &d2, ".ob");
        CHECK_OK(cas_blob_disk_usage(s->blobs, &d2, &one));
        CHECK_EQ(one, disk_bytes(dir, &d2, "") + disk_bytes(dir, &d2, ".ob"));
        CHECK_EQ(cas_blob_disk_usage(s->blobs, &cas_digest_empty, &one), -ENOENT);
        CHECK_OK(cas_store_usage(s, &u));
        CHECK(u.blob_disk_known);
        CHECK_EQ(u.blobs, 2);
        CHECK_EQ(u.blob_bytes, 5 + big);
        CHECK_EQ(u.blob_disk_bytes, want);
        cas_store_free(s);
        remove_tree(dir);
        free(data);
}

int main(void) {
        RUN(test_tree_bytes);
        RUN(test_memory_usage);
        RUN(test_local_disk_usage);
        return 0;
}
