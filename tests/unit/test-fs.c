/* Unit tests for the filesystem layer over memory:// services: lookups and
 * attributes, inode sharing, readdir order and resumption, the root and
 * its providers, forget releasing memory, the bounded cache of fetched
 * Directories, thousands of inodes coming and going, EIO for missing or
 * corrupted content, reads, xattrs and concurrent first accesses. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/store.h"
#include "fs/fs.h"
#include "test.h"

#define N(s) .name = (s), .name_len = sizeof(s) - 1

static struct cas_store *store;

static struct cas_digest put_blob(const void *data, size_t len) {
        struct cas_digest d;
        CHECK_OK(cas_blob_put(store->blobs, data, len, 0, &d));
        return d;
}

static struct cas_directory *put_dir(const struct cas_node *n, size_t count) {
        struct cas_directory *d;
        enum cas_verr why;
        CHECK_OK(cas_directory_new(n, count, &d, NULL));
        CHECK_OK(cas_dir_put(store->dirs, &d, 1, 0, &why));
        return d;
}

static void put_root(const char *name, const struct cas_directory *d) {
        struct cas_node n = { .kind = CAS_NODE_DIRECTORY, .name = name, .name_len = strlen(name),
                              .digest = d->digest, .size = d->size };
        CHECK_OK(cas_root_put(store->roots, &n));
}

/* The test tree, registered as root "tree":
 *   a      file "hello"             f     file "hello" (same as a)
 *   b      executable "hello"       c     symlink -> "a"
 *   g      symlink -> "a"           d, e  empty directories
 *   sub    dir { x: file "hello", y: dir (empty) }
 *   big    BLOB_B (1,044,480 bytes) */
static struct cas_directory *tree, *sub;
static struct cas_digest hello, blob_b;
static uint8_t *blob_b_data;
#define BLOB_B_LEN (255 * 4096)

static void make_tree(void) {
        _cleanup_(cas_directory_freep) struct cas_directory *empty = NULL;

        CHECK_OK(cas_store_open("memory://", 0, &store));
        hello = put_blob("hello", 5);
        blob_b_data = malloc(BLOB_B_LEN);
        for (size_t i = 0; i < BLOB_B_LEN; i++)
                blob_b_data[i] = i % 255;
        blob_b = put_blob(blob_b_data, BLOB_B_LEN);
        empty = put_dir(NULL, 0);
        struct cas_node sn[] = {
                { .kind = CAS_NODE_FILE, N("x"), .digest = hello, .size = 5 },
                { .kind = CAS_NODE_DIRECTORY, N("y"), .digest = empty->digest, .size = 0 },
        };
        sub = put_dir(sn, 2);
        struct cas_node tn[] = {
                { .kind = CAS_NODE_FILE, N("a"), .digest = hello, .size = 5 },
                { .kind = CAS_NODE_FILE, N("b"), .digest = hello, .size = 5, .executable = true },
                { .kind = CAS_NODE_SYMLINK, N("c"), .target = "a", .target_len = 1 },
                { .kind = CAS_NODE_DIRECTORY, N("d"), .digest = empty->digest, .size = 0 },
                { .kind = CAS_NODE_DIRECTORY, N("e"), .digest = empty->digest, .size = 0 },
                { .kind = CAS_NODE_FILE, N("f"), .digest = hello, .size = 5 },
                { .kind = CAS_NODE_SYMLINK, N("g"), .target = "a", .target_len = 1 },
                { .kind = CAS_NODE_DIRECTORY, N("sub"), .digest = sub->digest, .size = sub->size },
                { .kind = CAS_NODE_FILE, N("big"), .digest = blob_b, .size = BLOB_B_LEN },
        };
        tree = put_dir(tn, ELEMENTSOF(tn));
        put_root("tree", tree);
}

static struct fs *new_fs_with(bool list_root, struct cas_blob_service *blobs, struct cas_dir_service *dirs) {
        struct fs_root_provider p = { &fs_root_service_ops, store->roots };
        struct fs_config cfg = { .uid = 1234, .gid = 5678, .list_root = list_root, .roots = &p, .n_roots = 1 };
        struct fs *fs;
        CHECK_OK(fs_new(blobs, dirs, &cfg, &fs));
        return fs;
}

static struct fs *new_fs_dir_cache(size_t dir_cache_entries) {
        struct fs_root_provider p = { &fs_root_service_ops, store->roots };
        struct fs_config cfg = { .roots = &p, .n_roots = 1, .dir_cache_entries = dir_cache_entries };
        struct fs *fs;
        CHECK_OK(fs_new(store->blobs, store->dirs, &cfg, &fs));
        return fs;
}

static struct fs *new_fs(bool list_root) {
        return new_fs_with(list_root, store->blobs, store->dirs);
}

static uint64_t lookup_ok(struct fs *fs, uint64_t parent, const char *name, struct fs_entry *e) {
        struct fs_entry tmp;
        if (!e)
                e = &tmp;
        CHECK_OK(fs_lookup(fs, parent, name, strlen(name), e));
        CHECK(e->ino != 0);
        return e->ino;
}

static uint64_t tree_ino(struct fs *fs) {
        return lookup_ok(fs, FS_ROOT_INO, "tree", NULL);
}

static void test_lookup_attrs(void) {
        struct fs *fs = new_fs(false);
        struct fs_entry e;
        struct fs_attr a;
        struct fs_timeout t;
        uint64_t t_ino = tree_ino(fs);

        CHECK(t_ino > FS_ROOT_INO);
        /* file */
        lookup_ok(fs, t_ino, "a", &e);
        CHECK_EQ(e.attr.mode, S_IFREG | 0444);
        CHECK_EQ(e.attr.size, 5);
        CHECK_EQ(e.attr.blocks, 1);
        CHECK_EQ(e.attr.uid, 1234);
        CHECK_EQ(e.attr.gid, 5678);
        CHECK_EQ(e.attr.time, 1);
        CHECK_EQ(e.attr.nlink, 1);
        CHECK_EQ(e.attr.ino, e.ino);
        CHECK(e.entry_valid.sec > 3600 && e.attr_valid.sec > 3600);
        /* executable */
        lookup_ok(fs, t_ino, "b", &e);
        CHECK_EQ(e.attr.mode, S_IFREG | 0555);
        /* symlink */
        lookup_ok(fs, t_ino, "c", &e);
        CHECK_EQ(e.attr.mode, S_IFLNK | 0444);
        CHECK_EQ(e.attr.size, 1);
        char buf[16];
        CHECK_EQ(fs_readlink(fs, e.ino, buf, sizeof(buf)), 1);
        CHECK(buf[0] == 'a');
        CHECK_EQ(fs_readlink(fs, e.ino, buf, 0), -ERANGE);
        /* directory: size = recursive entry count */
        lookup_ok(fs, t_ino, "sub", &e);
        CHECK_EQ(e.attr.mode, S_IFDIR | 0555);
        CHECK_EQ(e.attr.size, 2);
        CHECK_OK(fs_getattr(fs, e.ino, &a, &t));
        CHECK_EQ(a.size, 2);
        CHECK_EQ(a.mode, S_IFDIR | 0555);
        /* root */
        CHECK_OK(fs_getattr(fs, FS_ROOT_INO, &a, &t));
        CHECK_EQ(a.ino, FS_ROOT_INO);
        CHECK_EQ(a.mode, S_IFDIR | 0555);
        CHECK(a.time > 1);
        CHECK(t.sec <= 1);
        /* negative entries below the root are cacheable */
        CHECK_OK(fs_lookup(fs, t_ino, "nope", 4, &e));
        CHECK_EQ(e.ino, 0);
        CHECK(e.entry_valid.sec > 3600);
        /* lookups in a file */
        uint64_t a_ino = lookup_ok(fs, t_ino, "a", NULL);
        CHECK_EQ(fs_lookup(fs, a_ino, "x", 1, &e), -ENOTDIR);
        CHECK_EQ(fs_readlink(fs, a_ino, buf, sizeof(buf)), -EINVAL);
        /* unknown inode numbers */
        CHECK_EQ(fs_getattr(fs, 999, &a, &t), -ESTALE);
        fs_free(fs);
}

static void test_inode_sharing(void) {
        struct fs *fs = new_fs(false);
        uint64_t t_ino = tree_ino(fs);
        uint64_t a = lookup_ok(fs, t_ino, "a", NULL), f = lookup_ok(fs, t_ino, "f", NULL);
        uint64_t b = lookup_ok(fs, t_ino, "b", NULL);
        uint64_t c = lookup_ok(fs, t_ino, "c", NULL), g = lookup_ok(fs, t_ino, "g", NULL);
        uint64_t d = lookup_ok(fs, t_ino, "d", NULL), e = lookup_ok(fs, t_ino, "e", NULL);
        uint64_t s = lookup_ok(fs, t_ino, "sub", NULL);
        uint64_t x = lookup_ok(fs, s, "x", NULL), y = lookup_ok(fs, s, "y", NULL);

        CHECK_EQ(a, f);
        CHECK_EQ(a, x);  /* same content in another directory */
        CHECK(a != b);   /* executable bit differs */
        CHECK_EQ(c, g);
        CHECK_EQ(d, e);
        CHECK_EQ(d, y);
        CHECK(d != a && d != c && a != c && s != d);

        /* numbers derive from content: a new filesystem gives the same ones */
        struct fs *fs2 = new_fs(false);
        uint64_t t2 = tree_ino(fs2);
        CHECK_EQ(t2, t_ino);
        CHECK_EQ(lookup_ok(fs2, t2, "b", NULL), b);
        CHECK_EQ(lookup_ok(fs2, t2, "g", NULL), c);
        fs_free(fs2);
        fs_free(fs);
}

static void test_root(void) {
        struct fs *fs = new_fs(false);
        struct fs_entry e;
        struct fs_open o;

        lookup_ok(fs, FS_ROOT_INO, "tree", &e);
        CHECK(e.entry_valid.sec <= 1);    /* roots can be re-pointed */
        CHECK(e.attr_valid.sec > 3600);   /* the content they name cannot */
        CHECK_EQ(fs_lookup(fs, FS_ROOT_INO, "tre", 3, &e), -ENOENT);
        CHECK_EQ(fs_lookup(fs, FS_ROOT_INO, "treee", 5, &e), -ENOENT);
        CHECK_EQ(fs_lookup(fs, FS_ROOT_INO, "tree", 5, &e), -ENOENT); /* with the NUL */
        CHECK_EQ(fs_lookup(fs, FS_ROOT_INO, "", 0, &e), -ENOENT);
        CHECK_EQ(fs_lookup(fs, FS_ROOT_INO, "..", 2, &e), -ENOENT);
        CHECK_EQ(fs_opendir(fs, FS_ROOT_INO, &o), -EPERM);
        CHECK_EQ(fs_getxattr(fs, FS_ROOT_INO, FS_XATTR_DIRECTORY_DIGEST, NULL, 0), -ENODATA);

        /* a root added after start is visible at once */
        CHECK_EQ(fs_lookup(fs, FS_ROOT_INO, "later", 5, &e), -ENOENT);
        put_root("later", sub);
        lookup_ok(fs, FS_ROOT_INO, "later", &e);
        CHECK_EQ(e.attr.size, 2);
        CHECK_OK(cas_root_remove(store->roots, "later", 5));
        CHECK_EQ(fs_lookup(fs, FS_ROOT_INO, "later", 5, &e), -ENOENT);
        fs_free(fs);
}

struct collected {
        char names[64][32];
        uint64_t inos[64], offs[64];
        uint32_t modes[64];
        size_t n, limit;
        bool plus;
};

static int collect(void *userdata, const char *name, size_t len, uint32_t mode, uint64_t ino, uint64_t next_off,
                   const struct fs_entry *entry) {
        struct collected *c = userdata;
        if (c->n >= c->limit)
                return 0;
        CHECK(len < 32);
        CHECK_EQ(!!entry, c->plus);
        if (entry)
                CHECK_EQ(entry->ino, ino);
        memcpy(c->names[c->n], name, len);
        c->names[c->n][len] = 0;
        c->inos[c->n] = ino;
        c->offs[c->n] = next_off;
        c->modes[c->n] = mode;
        c->n++;
        return 1;
}

static void test_root_listing(void) {
        struct fs *fs = new_fs(true);
        struct collected c = { .limit = 64 };
        struct fs_open o;
        struct fs_attr a;

        put_root("aaa", sub);
        put_root("zzz", sub);
        CHECK_OK(fs_opendir(fs, FS_ROOT_INO, &o));
        CHECK(!o.cache_dir);
        put_root("mmm", sub); /* after the snapshot: not in this listing */
        CHECK_OK(fs_readdir(fs, FS_ROOT_INO, o.fh, 0, false, collect, &c));
        CHECK_EQ(c.n, 3);
        CHECK_STREQ(c.names[0], "aaa");
        CHECK_STREQ(c.names[1], "tree");
        CHECK_STREQ(c.names[2], "zzz");
        CHECK_EQ(c.inos[1], tree_ino(fs));
        /* resumption */
        c.n = 0;
        CHECK_OK(fs_readdir(fs, FS_ROOT_INO, o.fh, c.offs[1], false, collect, &c));
        CHECK_EQ(c.n, 1);
        CHECK_STREQ(c.names[0], "zzz");
        CHECK_OK(fs_releasedir(fs, FS_ROOT_INO, o.fh));
        CHECK_EQ(fs_readdir(fs, FS_ROOT_INO, o.fh, 0, false, collect, &c), -EBADF);
        CHECK_EQ(fs_releasedir(fs, FS_ROOT_INO, o.fh), -EBADF);
        CHECK_OK(fs_getattr(fs, FS_ROOT_INO, &a, NULL));
        CHECK_EQ(a.size, 4);
        for (const char *const *n = (const char *const[]){ "aaa", "zzz", "mmm", NULL }; *n; n++)
                CHECK_OK(cas_root_remove(store->roots, *n, strlen(*n)));
        fs_free(fs);
}

/* A second provider: its roots merge into the listing; on a name clash
 * the first provider wins. */
static int extra_lookup(void *ctx, const char *name, size_t len, struct cas_node *ret, void **ret_mem) {
        struct cas_node n = { .kind = CAS_NODE_SYMLINK, .target = "elsewhere", .target_len = 9 };
        if (!(len == 5 && memcmp(name, "extra", 5) == 0) && !(len == 4 && memcmp(name, "tree", 4) == 0))
                return -ENOENT;
        n.name = name;
        n.name_len = len;
        return cas_node_copy(&n, ret, ret_mem);
}

static int extra_list(void *ctx, fs_root_list_cb cb, void *userdata) {
        struct cas_node n = { .kind = CAS_NODE_SYMLINK, N("extra"), .target = "elsewhere", .target_len = 9 };
        int r = cb(userdata, &n);
        if (r < 0)
                return r;
        n.name = "tree";
        n.name_len = 4;
        return cb(userdata, &n);
}

static const struct fs_root_ops extra_ops = { .name = "extra", .lookup = extra_lookup, .list = extra_list };

static void test_root_providers(void) {
        struct fs_root_provider p[2] = { { &fs_root_service_ops, store->roots }, { &extra_ops, NULL } };
        struct fs_config cfg = { .list_root = true, .roots = p, .n_roots = 2 };
        struct collected c = { .limit = 64 };
        struct fs_entry e;
        struct fs_open o;
        struct fs *fs;

        CHECK_OK(fs_new(store->blobs, store->dirs, &cfg, &fs));
        lookup_ok(fs, FS_ROOT_INO, "tree", &e);
        CHECK_EQ(e.attr.mode, S_IFDIR | 0555);
        lookup_ok(fs, FS_ROOT_INO, "extra", &e);
        CHECK_EQ(e.attr.mode, S_IFLNK | 0444);
        CHECK_OK(fs_opendir(fs, FS_ROOT_INO, &o));
        CHECK_OK(fs_readdir(fs, FS_ROOT_INO, o.fh, 0, false, collect, &c));
        CHECK_EQ(c.n, 2);
        CHECK_STREQ(c.names[0], "extra");
        CHECK_STREQ(c.names[1], "tree");
        CHECK_EQ(c.modes[1], S_IFDIR | 0555);
        CHECK_OK(fs_releasedir(fs, FS_ROOT_INO, o.fh));
        fs_free(fs);
}

static void test_readdir(void) {
        struct fs *fs = new_fs(false);
        uint64_t t_ino = tree_ino(fs);
        struct collected all = { .limit = 64 }, part;
        struct fs_open o;
        const char *want[] = { "a", "b", "big", "c", "d", "e", "f", "g", "sub" };

        CHECK_OK(fs_opendir(fs, t_ino, &o));
        CHECK(o.cache_dir && o.keep_cache);
        CHECK_OK(fs_readdir(fs, t_ino, o.fh, 0, false, collect, &all));
        CHECK_EQ(all.n, ELEMENTSOF(want));
        for (size_t i = 0; i < all.n; i++) {
                CHECK_STREQ(all.names[i], want[i]);
                CHECK_EQ(all.offs[i], i + 1);
                /* readdir numbers are those lookup gives */
                CHECK_EQ(all.inos[i], lookup_ok(fs, t_ino, want[i], NULL));
        }
        CHECK_EQ(all.modes[2], S_IFREG | 0444);
        CHECK_EQ(all.modes[3], S_IFLNK | 0444);
        CHECK_EQ(all.modes[8], S_IFDIR | 0555);

        /* resumption two entries at a time: nothing lost or repeated */
        uint64_t off = 0;
        size_t seen = 0;
        for (;;) {
                part = (struct collected){ .limit = 2 };
                CHECK_OK(fs_readdir(fs, t_ino, o.fh, off, false, collect, &part));
                if (part.n == 0)
                        break;
                for (size_t i = 0; i < part.n; i++)
                        CHECK_STREQ(part.names[i], want[seen + i]);
                seen += part.n;
                off = part.offs[part.n - 1];
        }
        CHECK_EQ(seen, ELEMENTSOF(want));
        /* past the end */
        part = (struct collected){ .limit = 64 };
        CHECK_OK(fs_readdir(fs, t_ino, o.fh, 1000, false, collect, &part));
        CHECK_EQ(part.n, 0);
        CHECK_OK(fs_releasedir(fs, t_ino, o.fh));
        CHECK_EQ(fs_opendir(fs, lookup_ok(fs, t_ino, "a", NULL), &o), -ENOTDIR);
        fs_free(fs);
}

static void test_readdirplus_refs(void) {
        struct fs *fs = new_fs(false);
        struct collected c = { .limit = 3, .plus = true };
        struct fs_stats st0, st1;
        uint64_t t_ino = tree_ino(fs);

        fs_get_stats(fs, &st0);
        CHECK_EQ(st0.inodes, 2); /* root and tree */
        CHECK_OK(fs_readdir(fs, t_ino, 0, 0, true, collect, &c));
        CHECK_EQ(c.n, 3); /* a, b, big: the fourth did not fit and holds no reference */
        fs_get_stats(fs, &st1);
        CHECK_EQ(st1.inodes, 5);
        for (size_t i = 0; i < c.n; i++)
                fs_forget(fs, c.inos[i], 1);
        fs_get_stats(fs, &st1);
        CHECK_EQ(st1.inodes, 2);
        fs_free(fs);
}

static void test_forget(void) {
        struct fs *fs = new_fs(false);
        struct fs_stats st;
        uint64_t t_ino = tree_ino(fs);
        uint64_t s = lookup_ok(fs, t_ino, "sub", NULL);
        uint64_t x = lookup_ok(fs, s, "x", NULL);
        uint64_t a = lookup_ok(fs, t_ino, "a", NULL); /* same inode as x */
        struct fs_attr attr;

        CHECK_EQ(a, x);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 4);
        CHECK_EQ(st.dirs_loaded, 2);
        fs_forget(fs, x, 1);
        CHECK_OK(fs_getattr(fs, x, &attr, NULL)); /* one reference left */
        fs_forget(fs, x, 1);
        CHECK_EQ(fs_getattr(fs, x, &attr, NULL), -ESTALE);
        fs_forget(fs, s, 1);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 2);
        CHECK_EQ(st.dirs_loaded, 1); /* sub's Directory went with it */
        fs_forget(fs, t_ino, 5);     /* more than held: clamps */
        fs_forget(fs, 424242, 1);    /* unknown: ignored */
        fs_forget(fs, FS_ROOT_INO, 1);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 1);
        CHECK_EQ(st.dirs_loaded, 0);

        /* many lookups of the same name, forgotten in one batch */
        t_ino = tree_ino(fs);
        for (int i = 0; i < 100; i++)
                lookup_ok(fs, t_ino, "sub", NULL);
        fs_forget(fs, s, 99);
        CHECK_OK(fs_getattr(fs, s, &attr, NULL));
        fs_forget(fs, s, 1);
        CHECK_EQ(fs_getattr(fs, s, &attr, NULL), -ESTALE);

        /* an open handle keeps a forgotten inode alive until release */
        uint64_t b = lookup_ok(fs, t_ino, "b", NULL);
        struct fs_open o;
        CHECK_OK(fs_open(fs, b, O_RDONLY, &o));
        fs_forget(fs, b, 1);
        CHECK_OK(fs_getattr(fs, b, &attr, NULL));
        CHECK_OK(fs_release(fs, b, o.fh));
        CHECK_EQ(fs_getattr(fs, b, &attr, NULL), -ESTALE);

        fs_session_reset(fs);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 1);
        fs_free(fs);
}

/* Directories beyond the cache's bound are dropped once unused and
 * fetched again when needed; one in use is never dropped. */
static void test_dir_cache(void) {
        struct fs *fs = new_fs_dir_cache(3); /* fewer entries than tree has */
        struct fs_stats st;
        struct collected c = { .limit = 64 };
        uint64_t t_ino = tree_ino(fs);
        uint64_t s = lookup_ok(fs, t_ino, "sub", NULL);

        fs_get_stats(fs, &st);
        CHECK_EQ(st.dir_fetches, 1);
        CHECK_EQ(st.dirs_loaded, 1); /* tree's 9 entries: over the bound, but it was in use */
        uint64_t x = lookup_ok(fs, s, "x", NULL);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.dir_fetches, 2);
        CHECK_EQ(st.dirs_loaded, 1); /* tree's went for sub's */
        /* tree again: fetched anew, same answers */
        CHECK_EQ(lookup_ok(fs, t_ino, "a", NULL), x);
        CHECK_OK(fs_readdir(fs, t_ino, 0, 0, false, collect, &c));
        CHECK_EQ(c.n, 9);
        CHECK_STREQ(c.names[8], "sub");
        CHECK_EQ(c.inos[8], s);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.dir_fetches, 3);
        CHECK_EQ(st.dirs_loaded, 1);
        /* forgetting a directory frees its cached Directory with it */
        fs_forget(fs, t_ino, 1);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.dirs_loaded, 0);
        CHECK_EQ(st.inodes, 3); /* root, sub, a = x */
        fs_free(fs);

        /* the default keeps both */
        fs = new_fs(false);
        t_ino = tree_ino(fs);
        lookup_ok(fs, lookup_ok(fs, t_ino, "sub", NULL), "x", NULL);
        lookup_ok(fs, t_ino, "a", NULL);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.dir_fetches, 2);
        CHECK_EQ(st.dirs_loaded, 2);
        fs_free(fs);
}

#define MANY 5000

struct many {
        uint64_t inos[MANY + 1];
        size_t n;
};

static int collect_many(void *userdata, const char *name, size_t len, uint32_t mode, uint64_t ino,
                        uint64_t next_off, const struct fs_entry *entry) {
        struct many *m = userdata;
        CHECK(m->n < MANY);
        m->inos[m->n++] = ino;
        return 1;
}

/* Thousands of inodes (several slab chunks, the index growing and
 * shrinking) made by readdirplus and forgotten again, with the numbers
 * they had. */
static void test_many_inodes(void) {
        static struct cas_node nodes[MANY];
        static char names[MANY][8];
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        struct many plus = {}, again = {};
        struct fs_stats st;
        struct fs_attr a;

        for (size_t i = 0; i < MANY; i++) {
                snprintf(names[i], sizeof(names[i]), "f%05zu", i);
                nodes[i] = (struct cas_node){ .kind = CAS_NODE_FILE, .name = names[i], .name_len = 6,
                                              .digest = put_blob(names[i], 6), .size = 6 };
        }
        d = put_dir(nodes, MANY);
        put_root("many", d);

        struct fs *fs = new_fs(false);
        uint64_t m = lookup_ok(fs, FS_ROOT_INO, "many", NULL);
        CHECK_OK(fs_readdir(fs, m, 0, 0, true, collect_many, &plus));
        CHECK_EQ(plus.n, MANY);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, MANY + 2);
        for (size_t i = 0; i < MANY; i++) {
                CHECK_OK(fs_getattr(fs, plus.inos[i], &a, NULL));
                CHECK_EQ(a.size, 6);
        }
        /* readdir without attributes gives the same numbers, and takes no reference */
        CHECK_OK(fs_readdir(fs, m, 0, 0, false, collect_many, &again));
        CHECK_EQ(memcmp(plus.inos, again.inos, sizeof(plus.inos)), 0);
        for (size_t i = 0; i < MANY; i++)
                fs_forget(fs, plus.inos[i], 1);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 2);
        CHECK_EQ(fs_getattr(fs, plus.inos[MANY / 2], &a, NULL), -ESTALE);
        /* made again: the same numbers */
        again.n = 0;
        CHECK_OK(fs_readdir(fs, m, 0, 0, true, collect_many, &again));
        CHECK_EQ(memcmp(plus.inos, again.inos, sizeof(plus.inos)), 0);
        fs_forget(fs, m, 1);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, MANY + 1);
        fs_session_reset(fs);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 1);
        fs_free(fs);
        CHECK_OK(cas_root_remove(store->roots, "many", 4));
}

static void test_read(void) {
        struct fs *fs = new_fs(false);
        uint64_t t_ino = tree_ino(fs);
        uint64_t big = lookup_ok(fs, t_ino, "big", NULL);
        static uint8_t buf[1 << 20];
        struct fs_read_result res;
        struct fs_open o;
        struct fs_stats st;

        CHECK_EQ(fs_open(fs, big, O_WRONLY, &o), -EROFS);
        CHECK_EQ(fs_open(fs, big, O_RDWR, &o), -EROFS);
        CHECK_EQ(fs_open(fs, big, O_RDONLY | O_TRUNC, &o), -EROFS);
        CHECK_EQ(fs_open(fs, t_ino, O_RDONLY, &o), -EISDIR);
        CHECK_EQ(fs_read(fs, big, big, 0, 10, buf, &res), -EBADF); /* not open */
        CHECK_OK(fs_open(fs, big, O_RDONLY, &o));
        CHECK(o.keep_cache);
        CHECK_EQ(o.backing_id, -1);
        const uint64_t offs[] = { 0, 1, 254, 255, 4095, 4096, 65536, 500000, BLOB_B_LEN - 1000, BLOB_B_LEN - 1 };
        for (size_t i = 0; i < ELEMENTSOF(offs); i++) {
                CHECK_OK(fs_read(fs, big, o.fh, offs[i], 70000, buf, &res));
                CHECK_EQ(res.len, MIN(70000, BLOB_B_LEN - offs[i]));
                CHECK(memcmp(buf, blob_b_data + offs[i], res.len) == 0);
        }
        CHECK_OK(fs_read(fs, big, o.fh, 0, sizeof(buf), buf, &res));
        CHECK_EQ(res.len, BLOB_B_LEN);
        CHECK(memcmp(buf, blob_b_data, BLOB_B_LEN) == 0);
        CHECK_OK(fs_read(fs, big, o.fh, BLOB_B_LEN, 100, buf, &res));
        CHECK_EQ(res.len, 0);
        CHECK_OK(fs_read(fs, big, o.fh, UINT64_MAX, 100, buf, &res));
        CHECK_EQ(res.len, 0);
        /* a second open shares the verified reader */
        struct fs_open o2;
        CHECK_OK(fs_open(fs, big, O_RDONLY, &o2));
        fs_get_stats(fs, &st);
        CHECK_EQ(st.blob_opens, 1);
        CHECK_EQ(st.open_files, 1);
        CHECK_OK(fs_release(fs, big, o.fh));
        CHECK_OK(fs_read(fs, big, o2.fh, 3, 3, buf, &res));
        CHECK_EQ(res.len, 3);
        CHECK_OK(fs_release(fs, big, o2.fh));
        CHECK_EQ(fs_release(fs, big, o2.fh), -EBADF);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.open_files, 1); /* kept open, idle */
        /* reopening after the last release does not hash again */
        CHECK_OK(fs_open(fs, big, O_RDONLY, &o));
        CHECK_OK(fs_release(fs, big, o.fh));
        fs_get_stats(fs, &st);
        CHECK_EQ(st.blob_opens, 1);
        /* forgetting the inode closes its idle reader */
        fs_forget(fs, big, 1);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.open_files, 0);

        /* reads without an open handle (zero-message open): the first one
         * opens and checks the blob */
        big = lookup_ok(fs, t_ino, "big", NULL);
        CHECK_OK(fs_read(fs, big, 0, 4096, 100, buf, &res));
        CHECK_EQ(res.len, 100);
        CHECK(memcmp(buf, blob_b_data + 4096, 100) == 0);
        CHECK_OK(fs_read(fs, big, 0, BLOB_B_LEN - 10, 100, buf, &res));
        CHECK_EQ(res.len, 10);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.blob_opens, 2); /* a memory blob: hashed again for the new inode */
        CHECK_EQ(st.open_files, 1);
        CHECK_EQ(fs_read(fs, big, 12345, 0, 100, buf, &res), -EBADF); /* a handle that was never opened */
        fs_free(fs);
}

static void test_xattr(void) {
        struct fs *fs = new_fs(false);
        uint64_t t_ino = tree_ino(fs);
        uint64_t a = lookup_ok(fs, t_ino, "a", NULL), c = lookup_ok(fs, t_ino, "c", NULL);
        char buf[128], want[CAS_DIGEST_B3_LEN + 1];

        cas_digest_to_b3(&hello, want);
        CHECK_EQ(fs_getxattr(fs, a, FS_XATTR_BLOB_DIGEST, NULL, 0), CAS_DIGEST_B3_LEN);
        CHECK_EQ(fs_getxattr(fs, a, FS_XATTR_BLOB_DIGEST, buf, sizeof(buf)), CAS_DIGEST_B3_LEN);
        buf[CAS_DIGEST_B3_LEN] = 0;
        CHECK_STREQ(buf, want);
        CHECK(strncmp(buf, "b3:", 3) == 0);
        CHECK_EQ(fs_getxattr(fs, a, FS_XATTR_BLOB_DIGEST, buf, 10), -ERANGE);
        CHECK_EQ(fs_getxattr(fs, a, FS_XATTR_DIRECTORY_DIGEST, buf, sizeof(buf)), -ENODATA);
        CHECK_EQ(fs_getxattr(fs, a, "user.other", buf, sizeof(buf)), -ENODATA);
        CHECK_EQ(fs_listxattr(fs, a, NULL, 0), sizeof(FS_XATTR_BLOB_DIGEST));
        CHECK_EQ(fs_listxattr(fs, a, buf, sizeof(buf)), sizeof(FS_XATTR_BLOB_DIGEST));
        CHECK(memcmp(buf, FS_XATTR_BLOB_DIGEST, sizeof(FS_XATTR_BLOB_DIGEST)) == 0);
        CHECK_EQ(fs_listxattr(fs, a, buf, 3), -ERANGE);

        cas_digest_to_b3(&tree->digest, want);
        CHECK_EQ(fs_getxattr(fs, t_ino, FS_XATTR_DIRECTORY_DIGEST, buf, sizeof(buf)), CAS_DIGEST_B3_LEN);
        buf[CAS_DIGEST_B3_LEN] = 0;
        CHECK_STREQ(buf, want);
        CHECK_EQ(fs_listxattr(fs, t_ino, buf, sizeof(buf)), sizeof(FS_XATTR_DIRECTORY_DIGEST));
        CHECK_EQ(fs_getxattr(fs, c, FS_XATTR_BLOB_DIGEST, buf, sizeof(buf)), -ENODATA);
        CHECK_EQ(fs_listxattr(fs, c, buf, sizeof(buf)), 0);
        CHECK_EQ(fs_listxattr(fs, FS_ROOT_INO, buf, sizeof(buf)), 0);

        CHECK_EQ(fs_access(fs, a, W_OK), -EROFS);
        CHECK_EQ(fs_access(fs, a, X_OK), -EACCES);
        CHECK_OK(fs_access(fs, a, R_OK));
        CHECK_OK(fs_access(fs, lookup_ok(fs, t_ino, "b", NULL), X_OK | R_OK));
        CHECK_OK(fs_access(fs, t_ino, X_OK));
        struct fs_statfs sf;
        CHECK_OK(fs_statfs(fs, FS_ROOT_INO, &sf));
        CHECK_EQ(sf.namelen, 255);
        fs_free(fs);
}

/* --- failures: a directory service that has lost some Directories and a
 * blob service that returns wrong bytes --- */

struct lossy_dirs {
        struct cas_dir_service base;
        struct cas_dir_service *inner;
        struct cas_digest missing;
        unsigned gets;
        bool gated;           /* get waits until open is set */
        bool open;
        pthread_cond_t cond;  /* open changed */
        pthread_mutex_t lock;
};

static int lossy_get(struct cas_dir_service *s, const struct cas_digest *d, struct cas_directory **ret) {
        struct lossy_dirs *l = (struct lossy_dirs *) s;
        pthread_mutex_lock(&l->lock);
        l->gets++;
        while (l->gated && !l->open)
                pthread_cond_wait(&l->cond, &l->lock);
        pthread_mutex_unlock(&l->lock);
        if (cas_digest_equal(d, &l->missing))
                return -ENOENT;
        return cas_dir_get(l->inner, d, ret);
}

static const struct cas_dir_ops lossy_ops = { .name = "lossy", .get = lossy_get };

struct bad_reader {
        struct cas_blob_reader base;
        uint8_t *data;
};

static ssize_t bad_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        struct bad_reader *b = (struct bad_reader *) r;
        if (off >= r->size)
                return 0;
        len = MIN(len, r->size - off);
        memcpy(buf, b->data + off, len);
        return len;
}

static void bad_close(struct cas_blob_reader *r) {
        struct bad_reader *b = (struct bad_reader *) r;
        if (r->fd >= 0)
                close(r->fd);
        free(b->data);
        free(b);
}

static const struct cas_blob_reader_ops bad_reader_ops = { .pread = bad_pread, .close = bad_close };

/* Serves the memory store's blobs, flipping one byte of `corrupt` and,
 * with use_fd, through a file descriptor (like the local store). */
struct bad_blobs {
        struct cas_blob_service base;
        struct cas_digest corrupt;
        bool use_fd;
};

static int bad_open(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct bad_blobs *bb = (struct bad_blobs *) s;
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *inner = NULL;
        int r = cas_blob_open(store->blobs, d, &inner);
        if (r < 0)
                return r;
        struct bad_reader *b = calloc(1, sizeof(*b));
        b->base = (struct cas_blob_reader){ .ops = &bad_reader_ops, .digest = *d, .size = inner->size, .fd = -1 };
        b->data = malloc(inner->size + 1);
        CHECK_EQ(cas_blob_pread(inner, b->data, inner->size, 0), (ssize_t) inner->size);
        if (cas_digest_equal(d, &bb->corrupt) && inner->size > 0)
                b->data[inner->size / 2] ^= 1;
        if (bb->use_fd) {
                int fd = memfd_create("blob", MFD_CLOEXEC);
                CHECK(fd >= 0);
                CHECK_EQ(write(fd, b->data, inner->size), (ssize_t) inner->size);
                b->base.fd = fd;
        }
        *ret = &b->base;
        return 0;
}

static const struct cas_blob_ops bad_blob_ops = { .name = "bad", .open = bad_open };

static void test_missing_directory(void) {
        struct lossy_dirs l = { .base = { &lossy_ops }, .inner = store->dirs, .missing = sub->digest };
        pthread_mutex_init(&l.lock, NULL);
        struct fs *fs = new_fs_with(false, store->blobs, &l.base);
        struct collected c = { .limit = 64 };
        struct fs_entry e;
        struct fs_attr a;
        struct fs_open o;
        uint64_t t_ino = tree_ino(fs);
        uint64_t s = lookup_ok(fs, t_ino, "sub", &e);

        /* stat works */
        CHECK_OK(fs_getattr(fs, s, &a, NULL));
        CHECK_EQ(a.mode, S_IFDIR | 0555);
        CHECK_EQ(a.size, 2);
        /* listing or child lookup: EIO, each time (not remembered) */
        CHECK_EQ(fs_lookup(fs, s, "x", 1, &e), -EIO);
        CHECK_EQ(fs_opendir(fs, s, &o), -EIO);
        CHECK_EQ(fs_readdir(fs, s, 0, 0, false, collect, &c), -EIO);
        CHECK_EQ(fs_readdir(fs, s, 0, 0, true, collect, &c), -EIO);
        CHECK_EQ(c.n, 0);
        CHECK_EQ(fs_getxattr(fs, s, FS_XATTR_DIRECTORY_DIGEST, NULL, 0), CAS_DIGEST_B3_LEN);
        /* the directory appears: access works */
        l.missing = cas_digest_empty;
        lookup_ok(fs, s, "x", NULL);
        fs_free(fs);
        pthread_mutex_destroy(&l.lock);
}

static void test_missing_and_corrupt_blob(void) {
        struct bad_blobs bb = { .base = { &bad_blob_ops }, .corrupt = blob_b };
        struct fs *fs = new_fs_with(false, &bb.base, store->dirs);
        struct fs_open o;
        struct fs_attr a;
        struct fs_stats st;
        uint64_t t_ino = tree_ino(fs);
        uint64_t big = lookup_ok(fs, t_ino, "big", NULL);

        CHECK_OK(fs_getattr(fs, big, &a, NULL));
        CHECK_EQ(a.size, BLOB_B_LEN);
        CHECK_EQ(fs_open(fs, big, O_RDONLY, &o), -EIO);
        CHECK_EQ(fs_open(fs, big, O_RDONLY, &o), -EIO); /* checked again, still bad */
        fs_get_stats(fs, &st);
        CHECK_EQ(st.blob_opens, 2);
        CHECK_EQ(st.open_files, 0);
        fs_free(fs);

        /* a file node whose blob is not in the store at all */
        struct cas_digest nowhere;
        cas_digest_of("not stored", 10, &nowhere);
        struct cas_node n = { .kind = CAS_NODE_FILE, N("gone"), .digest = nowhere, .size = 10 };
        _cleanup_(cas_directory_freep) struct cas_directory *d = put_dir(&n, 1);
        put_root("gone", d);
        fs = new_fs(false);
        uint64_t g = lookup_ok(fs, FS_ROOT_INO, "gone", NULL);
        uint64_t f = lookup_ok(fs, g, "gone", NULL);
        CHECK_OK(fs_getattr(fs, f, &a, NULL));
        CHECK_EQ(a.size, 10);
        CHECK_EQ(fs_open(fs, f, O_RDONLY, &o), -EIO);
        /* a file node whose size disagrees with its blob */
        struct cas_node liar = { .kind = CAS_NODE_FILE, N("liar"), .digest = hello, .size = 6 };
        _cleanup_(cas_directory_freep) struct cas_directory *d2 = put_dir(&liar, 1);
        put_root("liar", d2);
        uint64_t lr = lookup_ok(fs, FS_ROOT_INO, "liar", NULL);
        CHECK_EQ(fs_open(fs, lookup_ok(fs, lr, "liar", NULL), O_RDONLY, &o), -EIO);
        CHECK_OK(cas_root_remove(store->roots, "gone", 4));
        CHECK_OK(cas_root_remove(store->roots, "liar", 4));
        fs_free(fs);
}

static int fake_backing_calls, fake_backing_open_ids;
static int fake_backing_open(void *ctx, int fd) {
        CHECK(fd >= 0);
        fake_backing_calls++;
        return ++fake_backing_open_ids;
}
static void fake_backing_close(void *ctx, int id) {
        fake_backing_calls--;
}
static const struct fs_backing_ops fake_backing = { fake_backing_open, fake_backing_close };

static void test_fd_reads_and_backing(void) {
        struct bad_blobs bb = { .base = { &bad_blob_ops }, .use_fd = true };
        struct fs_root_provider p = { &fs_root_service_ops, store->roots };
        struct fs_config cfg = { .roots = &p, .n_roots = 1 };
        struct fs *fs;
        struct fs_read_result res;
        struct fs_open o, o2;
        uint8_t buf[64];

        /* by default, blob files without fs-verity are not handed over */
        CHECK_OK(fs_new(&bb.base, store->dirs, &cfg, &fs));
        fs_set_backing(fs, &fake_backing, NULL);
        uint64_t big = lookup_ok(fs, tree_ino(fs), "big", NULL);
        CHECK_OK(fs_open(fs, big, O_RDONLY, &o));
        CHECK_EQ(o.backing_id, -1);
        CHECK_EQ(fake_backing_calls, 0);
        CHECK_OK(fs_release(fs, big, o.fh));
        fs_free(fs);

        /* --passthrough=on: they are */
        cfg.passthrough_unverified = true;
        CHECK_OK(fs_new(&bb.base, store->dirs, &cfg, &fs));
        uint64_t t_ino = tree_ino(fs);
        big = lookup_ok(fs, t_ino, "big", NULL);
        fs_set_backing(fs, &fake_backing, NULL);
        CHECK_OK(fs_open(fs, big, O_RDONLY, &o));
        CHECK_EQ(o.backing_id, 1);
        CHECK_OK(fs_open(fs, big, O_RDONLY, &o2));
        CHECK_EQ(o2.backing_id, 1); /* one backing file per inode */
        CHECK_EQ(fake_backing_calls, 1);
        /* reads that reach the daemon are verified copies, even of a file
         * that is also passed through */
        CHECK_OK(fs_read(fs, big, o.fh, 1000, 64, buf, &res));
        CHECK_EQ(res.len, 64);
        CHECK(memcmp(buf, blob_b_data + 1000, 64) == 0);
        CHECK_OK(fs_release(fs, big, o.fh));
        CHECK_EQ(fake_backing_calls, 1);
        CHECK_OK(fs_release(fs, big, o2.fh));
        CHECK_EQ(fake_backing_calls, 1); /* the idle reader keeps it */
        CHECK_OK(fs_open(fs, big, O_RDONLY, &o));
        CHECK_EQ(o.backing_id, 1);      /* reused: no new registration */
        CHECK_OK(fs_release(fs, big, o.fh));
        fs_forget(fs, big, 1);
        CHECK_EQ(fake_backing_calls, 0); /* closed with the inode */
        fs_free(fs);
}

/* A new session (virtiofs guest reboot) forgets inodes and the handles
 * of the old one: none of them is ever released by the new kernel. */
static void test_forget_all_handles(void) {
        struct fs *fs = new_fs(true);
        struct collected c = { .limit = 64 };
        struct fs_read_result res;
        struct fs_stats st;
        struct fs_open o, od;
        uint8_t buf[16];
        uint64_t t_ino = tree_ino(fs);
        uint64_t big = lookup_ok(fs, t_ino, "big", NULL);

        CHECK_OK(fs_open(fs, big, O_RDONLY, &o));
        CHECK_OK(fs_opendir(fs, FS_ROOT_INO, &od));
        fs_session_reset(fs);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 1);
        CHECK_EQ(st.open_files, 0);
        CHECK_EQ(fs_read(fs, big, o.fh, 0, sizeof(buf), buf, &res), -EBADF);
        CHECK_EQ(fs_readdir(fs, FS_ROOT_INO, od.fh, 0, false, collect, &c), -EBADF);
        CHECK_EQ(fs_release(fs, big, o.fh), -EBADF);
        CHECK_EQ(fs_releasedir(fs, FS_ROOT_INO, od.fh), -EBADF);
        fs_free(fs);
}

/* A file hashed once is not hashed again for a new inode while the blob
 * file is unchanged; a rewritten file is. */
/* Every read verifies: a blob file that rots (or is rewritten) under an
 * open handle fails the reads it spoils, with EIO, while the rest of the
 * blob still reads; a repaired blob (the file replaced by a good one) is
 * served again by the same mount once its reader is reopened. */
static void rewrite_in_place(const char *path, uint64_t off, const char *bytes, size_t n) {
        int fd;

        CHECK_EQ(chmod(path, 0644), 0);
        fd = open(path, O_WRONLY);
        CHECK(fd >= 0);
        CHECK_EQ(pwrite(fd, bytes, n, (off_t) off), (ssize_t) n);
        close(fd);
}

static void test_verified_files(void) {
        char dir[] = "/tmp/test-fs-XXXXXX";
        struct cas_store *local;
        struct fs_root_provider p;
        struct fs_config cfg = { .n_roots = 1, .idle_readers = 1 };
        struct fs_read_result res;
        struct fs_stats st;
        struct fs_open o;
        struct fs *fs;
        static uint8_t big[300000], buf[300000];
        char path[256], hex[CAS_DIGEST_HEX_LEN + 1];
        enum cas_verr why;
        struct cas_digest d, ds;

        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t) (i * 13 + (i >> 12));
        CHECK(mkdtemp(dir));
        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &local));
        CHECK_OK(cas_blob_put(local->blobs, big, sizeof(big), 0, &d));
        CHECK_OK(cas_blob_put(local->blobs, "small file", 10, 0, &ds));
        struct cas_node n[] = { { .kind = CAS_NODE_FILE, N("big"), .digest = d, .size = sizeof(big) },
                                { .kind = CAS_NODE_FILE, N("small"), .digest = ds, .size = 10 } };
        struct cas_directory *dd;
        CHECK_OK(cas_directory_new(n, 2, &dd, NULL));
        CHECK_OK(cas_dir_put(local->dirs, &dd, 1, 0, &why));
        struct cas_node r = { .kind = CAS_NODE_DIRECTORY, N("r"), .digest = dd->digest, .size = 2 };
        CHECK_OK(cas_root_put(local->roots, &r));
        p = (struct fs_root_provider){ &fs_root_service_ops, local->roots };
        cfg.roots = &p;
        CHECK_OK(fs_new(local->blobs, local->dirs, &cfg, &fs));
        uint64_t rr = lookup_ok(fs, FS_ROOT_INO, "r", NULL);
        uint64_t f = lookup_ok(fs, rr, "big", NULL), fsm = lookup_ok(fs, rr, "small", NULL);

        CHECK_OK(fs_open(fs, f, O_RDONLY, &o));
        CHECK_OK(fs_read(fs, f, o.fh, 0, sizeof(buf), buf, &res));
        CHECK(res.len == sizeof(big) && memcmp(buf, big, sizeof(big)) == 0);

        /* one byte rots in group 10 (bytes 163840..180223), same handle */
        cas_digest_to_hex(&d, hex);
        snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", dir, hex, hex);
        rewrite_in_place(path, 170000, "\xff", 1);
        CHECK_EQ(fs_read(fs, f, o.fh, 169000, 4096, buf, &res), -EIO);
        CHECK_EQ(fs_read(fs, f, o.fh, 0, sizeof(buf), buf, &res), -EIO);
        CHECK_OK(fs_read(fs, f, o.fh, 0, 4096, buf, &res)); /* far from the damage */
        CHECK(res.len == 4096 && memcmp(buf, big, 4096) == 0);
        CHECK_OK(fs_read(fs, f, o.fh, 200000, 4096, buf, &res));
        CHECK(res.len == 4096 && memcmp(buf, big + 200000, 4096) == 0);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.verify_failures, 4); /* each also failed on a fresh open */

        /* repaired while the handle stays open: the same handle reads the
         * good file (a fresh open passes where the old reader fails) */
        CHECK_OK(cas_blob_remove(local->blobs, &d));
        CHECK_OK(cas_blob_put(local->blobs, big, sizeof(big), 0, &d));
        CHECK_OK(fs_read(fs, f, o.fh, 169000, 4096, buf, &res));
        CHECK(res.len == 4096 && memcmp(buf, big + 169000, 4096) == 0);
        CHECK_OK(fs_read(fs, f, o.fh, 0, sizeof(buf), buf, &res));
        CHECK(res.len == sizeof(big) && memcmp(buf, big, sizeof(big)) == 0);

        /* a small file (no outboard) rewritten: its reads fail too */
        CHECK_OK(fs_read(fs, fsm, 0, 0, 100, buf, &res));
        CHECK(res.len == 10 && memcmp(buf, "small file", 10) == 0);
        cas_digest_to_hex(&ds, hex);
        snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", dir, hex, hex);
        rewrite_in_place(path, 0, "SMALL", 5);
        CHECK_EQ(fs_read(fs, fsm, 0, 0, 100, buf, &res), -EIO);
        CHECK_EQ(fs_read(fs, fsm, 0, 7, 2, buf, &res), -EIO);

        /* repaired (a good file replaces the damaged one, as a re-import
         * after verify --repair does): once the reader is reopened, the
         * same mount serves the right bytes */
        CHECK_OK(cas_blob_remove(local->blobs, &ds));
        CHECK_OK(cas_blob_put(local->blobs, "small file", 10, 0, &ds));
        CHECK_OK(fs_release(fs, f, o.fh)); /* big goes idle, pushing out small's reader */
        CHECK_OK(fs_read(fs, fsm, 0, 0, 100, buf, &res));
        CHECK(res.len == 10 && memcmp(buf, "small file", 10) == 0);
        fs_free(fs);

        cas_directory_free(dd);
        cas_store_free(local);
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        CHECK_EQ(system(cmd), 0);
}

struct race {
        struct fs *fs;
        uint64_t dir;
        int result;
};

static void *race_lookup(void *arg) {
        struct race *r = arg;
        struct fs_entry e;
        r->result = fs_lookup(r->fs, r->dir, "x", 1, &e);
        return NULL;
}

/* Eight threads look up in a directory not yet loaded, all at once: one
 * fetches it, held at a gate until the seven others are seen waiting for
 * that fetch, which proves they overlapped; then they all succeed with one
 * fetch between them. */
static void test_concurrent_first_access(void) {
        struct lossy_dirs l = { .base = { &lossy_ops }, .inner = store->dirs };
        pthread_mutex_init(&l.lock, NULL);
        pthread_cond_init(&l.cond, NULL);
        struct fs *fs = new_fs_with(false, store->blobs, &l.base);
        uint64_t t_ino = tree_ino(fs);
        uint64_t s = lookup_ok(fs, t_ino, "sub", NULL);
        pthread_t th[8];
        struct race rc[8];
        struct fs_stats st;

        l.gets = 0;
        l.gated = true;
        for (int i = 0; i < 8; i++) {
                rc[i] = (struct race){ fs, s, 1 };
                CHECK_EQ(pthread_create(&th[i], NULL, race_lookup, &rc[i]), 0);
        }
        for (int i = 0; i < 30000; i++) { /* at most 30 s */
                fs_get_stats(fs, &st);
                if (st.dir_fetch_waits == 7)
                        break;
                usleep(1000);
        }
        CHECK_EQ(st.dir_fetch_waits, 7);
        pthread_mutex_lock(&l.lock);
        l.open = true;
        pthread_cond_broadcast(&l.cond);
        pthread_mutex_unlock(&l.lock);
        for (int i = 0; i < 8; i++) {
                pthread_join(th[i], NULL);
                CHECK_OK(rc[i].result);
        }
        CHECK_EQ(l.gets, 1);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.dir_fetches, 2); /* tree and sub, once each */
        fs_free(fs);
        pthread_cond_destroy(&l.cond);
        pthread_mutex_destroy(&l.lock);
}

/* Many threads looking up, reading and forgetting at once. */
static void *stress(void *arg) {
        struct fs *fs = arg;
        static uint8_t bufs[4][4096];
        static int next;
        uint8_t *buf = bufs[__atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) % 4];
        for (int i = 0; i < 2000; i++) {
                struct fs_entry e, t;
                struct fs_open o;
                struct fs_read_result res;
                CHECK_OK(fs_lookup(fs, FS_ROOT_INO, "tree", 4, &t));
                CHECK_OK(fs_lookup(fs, t.ino, (i & 1) ? "big" : "a", (i & 1) ? 3 : 1, &e));
                CHECK_OK(fs_open(fs, e.ino, O_RDONLY, &o));
                CHECK_OK(fs_read(fs, e.ino, o.fh, i, 4096, buf, &res));
                CHECK_OK(fs_release(fs, e.ino, o.fh));
                fs_forget(fs, e.ino, 1);
                fs_forget(fs, t.ino, 1);
        }
        return NULL;
}

static void test_stress(void) {
        struct fs *fs = new_fs(false);
        pthread_t th[4];
        struct fs_stats st;

        for (int i = 0; i < 4; i++)
                CHECK_EQ(pthread_create(&th[i], NULL, stress, fs), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 1);
        CHECK_EQ(st.open_files, 0);
        fs_free(fs);
}

/* Threads looking names up in two directories and listing them through a
 * Directory cache too small for one: each lookup's Directory is dropped
 * by another thread's fetch once unpinned, never while in use. */
struct dir_stress {
        struct fs *fs;
        uint64_t tree, sub;
};

static void *dir_stress(void *arg) {
        struct dir_stress *d = arg;
        for (int i = 0; i < 1000; i++) {
                struct fs_entry e;
                struct collected c = { .limit = 64 };
                if (i & 1) {
                        CHECK_OK(fs_lookup(d->fs, d->sub, "x", 1, &e));
                        CHECK(e.ino != 0);
                } else {
                        CHECK_OK(fs_lookup(d->fs, d->tree, "sub", 3, &e));
                        CHECK_EQ(e.ino, d->sub);
                }
                fs_forget(d->fs, e.ino, 1);
                CHECK_OK(fs_readdir(d->fs, (i & 2) ? d->sub : d->tree, 0, 0, false, collect, &c));
                CHECK_EQ(c.n, (i & 2) ? 2u : 9u);
        }
        return NULL;
}

static void test_dir_cache_stress(void) {
        struct dir_stress d = { .fs = new_fs_dir_cache(1) };
        pthread_t th[4];
        struct fs_stats st;

        d.tree = tree_ino(d.fs);
        d.sub = lookup_ok(d.fs, d.tree, "sub", NULL);
        for (int i = 0; i < 4; i++)
                CHECK_EQ(pthread_create(&th[i], NULL, dir_stress, &d), 0);
        for (int i = 0; i < 4; i++)
                pthread_join(th[i], NULL);
        fs_get_stats(d.fs, &st);
        CHECK(st.dir_fetches > 2);   /* dropped and fetched again */
        CHECK(st.dirs_loaded <= 2); /* the last ones, fetched while in use */
        fs_free(d.fs);
}

int main(void) {
        make_tree();
        RUN(test_lookup_attrs);
        RUN(test_inode_sharing);
        RUN(test_root);
        RUN(test_root_listing);
        RUN(test_root_providers);
        RUN(test_readdir);
        RUN(test_readdirplus_refs);
        RUN(test_forget);
        RUN(test_dir_cache);
        RUN(test_many_inodes);
        RUN(test_read);
        RUN(test_xattr);
        RUN(test_missing_directory);
        RUN(test_missing_and_corrupt_blob);
        RUN(test_fd_reads_and_backing);
        RUN(test_forget_all_handles);
        RUN(test_verified_files);
        RUN(test_concurrent_first_access);
        RUN(test_stress);
        RUN(test_dir_cache_stress);
        cas_directory_free(tree);
        cas_directory_free(sub);
        free(blob_b_data);
        cas_store_free(store);
        return 0;
}
