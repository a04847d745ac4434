/* Unit tests for the inode table's internals: content whose first-choice
 * inode number is taken (or reserved) gets the next one in its chain and
 * is still found after the inode holding the first choice is forgotten;
 * numbers come back when the content does. */
#include <string.h>

#include "castore/store.h"
#include "fs/fs_internal.h"
#include "test.h"

static struct cas_store *store;

static struct fs *new_fs(void) {
        struct fs_config cfg = {};
        struct fs *fs;
        CHECK_OK(fs_new(store->blobs, store->dirs, &cfg, &fs));
        return fs;
}

/* A file node whose digest is fill bytes but for bytes 8..16, bytes8
 * (little-endian): those decide its first-choice number. */
static struct cas_node file_node(uint8_t fill, uint64_t bytes8) {
        struct cas_node n = { .kind = CAS_NODE_FILE, .name = "f", .name_len = 1, .size = 1 };
        memset(n.digest.b, fill, sizeof(n.digest.b));
        for (int i = 0; i < 8; i++)
                n.digest.b[8 + i] = (uint8_t) (bytes8 >> (8 * i));
        return n;
}

static uint64_t lookup(struct fs *fs, const struct cas_node *n) {
        struct node_key k;
        struct fs_entry e;

        fs_node_key_of(n, &k);
        pthread_mutex_lock(&fs->lock);
        CHECK_OK(fs_inode_lookup_locked(fs, n, &k, false, &e));
        pthread_mutex_unlock(&fs->lock);
        CHECK_EQ(e.attr.ino, e.ino);
        return e.ino;
}

static uint64_t ino_for(struct fs *fs, const struct cas_node *n) {
        struct node_key k;
        uint64_t ino;

        fs_node_key_of(n, &k);
        pthread_mutex_lock(&fs->lock);
        ino = fs_ino_for_key_locked(fs, &k);
        pthread_mutex_unlock(&fs->lock);
        return ino;
}

static void test_collision(void) {
        struct fs *fs = new_fs();
        struct cas_node a = file_node(0x11, 0x1234567890abcdefULL);
        struct cas_node b = file_node(0x22, 0x1234567890abcdefULL); /* same first choice */
        struct fs_stats st;
        struct fs_attr attr;

        uint64_t ia = lookup(fs, &a);
        CHECK_EQ(ino_for(fs, &b), ino_for(fs, &b)); /* asking takes nothing */
        uint64_t ib = lookup(fs, &b);
        CHECK(ia != ib);
        CHECK_EQ(fs->moved.count, 1);
        CHECK_EQ(lookup(fs, &a), ia);
        CHECK_EQ(lookup(fs, &b), ib);
        /* a forgotten: b is still found (its chain now starts with a hole) */
        fs_forget(fs, ia, 2);
        CHECK_EQ(fs_getattr(fs, ia, &attr, NULL), -ESTALE);
        CHECK_EQ(ino_for(fs, &b), ib);
        CHECK_EQ(lookup(fs, &b), ib);
        fs_get_stats(fs, &st);
        CHECK_EQ(st.inodes, 2);
        /* a comes back on its first choice */
        CHECK_EQ(ino_for(fs, &a), ia);
        CHECK_EQ(lookup(fs, &a), ia);
        fs_forget(fs, ib, 3);
        CHECK_EQ(fs->moved.count, 0);
        /* b alone now gets the first choice */
        fs_forget(fs, ia, 1);
        CHECK_EQ(lookup(fs, &b), ia);
        CHECK_EQ(fs->moved.count, 0);
        fs_free(fs);
}

/* Content whose first choice is the root's number (or 0) gets another. */
static void test_reserved(void) {
        struct fs *fs = new_fs();
        uint64_t mix = hash_u64((uint64_t) CAS_NODE_FILE << 1);
        struct cas_node r = file_node(0x33, FS_ROOT_INO ^ mix), z = file_node(0x44, 0 ^ mix);

        uint64_t ir = lookup(fs, &r), iz = lookup(fs, &z);
        CHECK(ir > FS_ROOT_INO && iz > FS_ROOT_INO && ir != iz);
        CHECK_EQ(fs->moved.count, 2);
        CHECK_EQ(lookup(fs, &r), ir);
        fs_forget(fs, ir, 2);
        fs_forget(fs, iz, 1);
        CHECK_EQ(fs->moved.count, 0);
        fs_free(fs);
}

int main(void) {
        CHECK_OK(cas_store_open("memory://", 0, &store));
        RUN(test_collision);
        RUN(test_reserved);
        cas_store_free(store);
        return 0;
}
