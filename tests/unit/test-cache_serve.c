/* Unit tests for serving a binary cache without HTTP (store/cache_serve.h)
 * and the pull-style NAR stream under it: every window of a NAR equals the
 * same bytes of a full render, narinfos signed on the fly verify, NARs are
 * found by hash, and uploads register a path only when every check passes. */
#include <stdio.h>

#include "castore/store.h"
#include "store/cache_serve.h"
#include "store/nar.h"
#include "store/nar_stream.h"
#include "store/nixbase32.h"
#include "test.h"

#define UNIT_SECRET "unit-1:w9kpwQtkV8nEeq64+SnZdCokLcQmS7yZKFC4z4YNjTjeSlp9idl5BDYomK/il2Kn1OIAvE3FN79eTrBx8H3aIg==\n"
#define UNIT_PUBLIC "unit-1:3kpafYnZeQQ2KJiv4pdip9TiALxNxTe/Xk6wcfB92iI="

struct env {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct cas_node root;  /* a directory: a small file and a 300 KB one */
        uint8_t *nar;          /* its NAR */
        size_t nar_len;
        uint8_t nar_sha256[NIX_SHA256_LEN];
};

struct buf {
        uint8_t *p;
        size_t len;
};

static int buf_write(void *userdata, const void *data, size_t len) {
        struct buf *b = userdata;

        b->p = realloc(b->p, b->len + len);
        CHECK(b->p);
        memcpy(b->p + b->len, data, len);
        b->len += len;
        return 0;
}

static void env_open(struct env *e) {
        static uint8_t big[300000];
        struct cas_node files[2] = {
                { .kind = CAS_NODE_FILE, .name = "big", .name_len = 3, .size = sizeof(big) },
                { .kind = CAS_NODE_FILE, .name = "hello", .name_len = 5, .size = 12, .executable = true },
        };
        struct cas_directory *d;
        struct buf out = {};

        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t) (i * 7 + (i >> 9));
        CHECK_OK(cas_store_open("memory://", 0, &e->store));
        CHECK_OK(nix_pathinfo_open_store(e->store, &e->pis));
        CHECK_OK(cas_blob_put(e->store->blobs, big, sizeof(big), 0, &files[0].digest));
        CHECK_OK(cas_blob_put(e->store->blobs, "Hello World!", 12, 0, &files[1].digest));
        CHECK_OK(cas_directory_new(files, 2, &d, NULL));
        CHECK_OK(cas_dir_put(e->store->dirs, &d, 1, 0, NULL));
        e->root = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .digest = d->digest, .size = d->size };
        cas_directory_free(d);
        CHECK_OK(nar_render(e->store->blobs, e->store->dirs, &e->root, 0, buf_write, &out, NULL, e->nar_sha256));
        e->nar = out.p;
        e->nar_len = out.len;
}

static void env_close(struct env *e) {
        nix_pathinfo_service_free(e->pis);
        cas_store_free(e->store);
        free(e->nar);
}

/* Reads a whole stream in reads of at most chunk bytes. */
static ssize_t read_all(struct nar_stream *st, uint8_t *buf, size_t max, size_t chunk) {
        size_t len = 0;
        ssize_t n;

        do {
                n = nar_stream_read(st, buf + len, MIN(chunk, max - len + 1));
                if (n < 0)
                        return n;
                len += (size_t) n;
                CHECK(len <= max);
        } while (n > 0);
        return (ssize_t) len;
}

static void test_windows(void) {
        struct env e = {};
        const uint64_t cuts[][2] = { { 0, 0 }, { 0, 1 }, { 5, 100 }, { 100, 200000 }, { 299990, 20 }, { 1, 0 } };
        uint8_t *got;

        env_open(&e);
        got = malloc(e.nar_len + 1);
        CHECK(got);
        for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
                struct nar_stream *st;
                uint64_t off = cuts[i][0], len = cuts[i][1] ? cuts[i][1] : e.nar_len - off;

                CHECK_OK(nar_stream_open(e.store->blobs, e.store->dirs, &e.root, off, len, &st));
                CHECK_EQ(read_all(st, got, e.nar_len, i % 2 ? 4096 : 100000), len);
                CHECK(memcmp(got, e.nar + off, len) == 0);
                nar_stream_free(st);
        }
        /* abandoned mid-way: the render thread ends */
        struct nar_stream *st;
        CHECK_OK(nar_stream_open(e.store->blobs, e.store->dirs, &e.root, 0, e.nar_len, &st));
        CHECK_EQ(nar_stream_read(st, got, 10), 10);
        nar_stream_free(st);
        /* a missing blob: an error, not a short success */
        struct cas_node missing = { .kind = CAS_NODE_FILE, .size = 5 };
        memset(missing.digest.b, 0x42, sizeof(missing.digest.b));
        CHECK_OK(nar_stream_open(e.store->blobs, e.store->dirs, &missing, 0, 136, &st));
        CHECK_EQ(read_all(st, got, e.nar_len, 4096), -ENOENT);
        nar_stream_free(st);
        free(got);
        env_close(&e);
}

static void test_serve(void) {
        _cleanup_(nix_serve_freep) struct nix_serve *s = NULL;
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        _cleanup_free_ struct nix_public_key *pub = NULL;
        _cleanup_free_ char *info = NULL, *text = NULL;
        struct nix_secret_key k;
        struct nix_store_path p;
        char hash[NIX_DIGEST_CHARS + 1], name[64];
        size_t len, n_pub;
        struct env e = {};

        env_open(&e);
        CHECK_OK(nix_secret_key_parse(UNIT_SECRET, strlen(UNIT_SECRET), &k));
        CHECK_OK(nix_public_keys_parse(UNIT_PUBLIC, &pub, &n_pub, NULL));
        CHECK_OK(nix_register_nar(e.pis, &e.root, "tree", e.nar_len, e.nar_sha256, &p));
        struct nix_serve_config cfg = { .sign_keys = &k, .n_sign_keys = 1, .priority = 7 };
        CHECK_OK(nix_serve_new(e.store, e.pis, &cfg, &s));

        CHECK_OK(nix_serve_cache_info(s, &info, &len));
        CHECK_STREQ(info, "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 7\n");

        /* the NAR by hash before any narinfo: the index is built on the miss */
        strcpy(name, "");
        nixbase32_encode(e.nar_sha256, NIX_SHA256_LEN, name);
        strcat(name, ".nar");
        CHECK_OK(nix_serve_nar_lookup(s, name, &pi));
        CHECK(nix_store_path_equal(&pi->path, &p));

        nixbase32_encode(p.digest, NIX_DIGEST_LEN, hash);
        CHECK_OK(nix_serve_narinfo(s, hash, NIX_DIGEST_CHARS, &text, &len));
        CHECK_EQ(strlen(text), len);
        CHECK_OK(nix_narinfo_parse(text, len, &ni, NULL));
        CHECK(nix_store_path_equal(&ni->path, &p));
        CHECK_STREQ(ni->compression, "none");
        CHECK(strncmp(ni->url, "nar/", 4) == 0 && strcmp(ni->url + 4, name) == 0);
        CHECK(ni->has_file_hash && memcmp(ni->file_sha256, e.nar_sha256, NIX_SHA256_LEN) == 0);
        CHECK(ni->has_file_size && ni->file_size == e.nar_len);
        CHECK_EQ(ni->n_signatures, 1);
        CHECK_EQ(nix_narinfo_verify(ni, pub, n_pub, NULL), 1);

        /* bad and unknown names */
        CHECK_EQ(nix_serve_narinfo(s, hash, 31, &text, &len), -EINVAL);
        CHECK_EQ(nix_serve_narinfo(s, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", 32, &text, &len), -EINVAL);
        CHECK_EQ(nix_serve_narinfo(s, "00000000000000000000000000000000", 32, &text, &len), -ENOENT);
        CHECK_EQ(nix_serve_nar_lookup(s, "abc.nar", &pi), -EINVAL);
        CHECK_EQ(nix_serve_nar_lookup(s, "0000000000000000000000000000000000000000000000000000.nar", &pi), -ENOENT);
        CHECK_EQ(nix_serve_nar_lookup(s, name + 1, &pi), -EINVAL);
        env_close(&e);
}

/* Uploads the NAR as "nar/<name>" in pieces of chunk bytes (len of it). */
static int upload(struct nix_serve *s, const char *name, const uint8_t *nar, size_t len, size_t chunk) {
        struct nix_upload *u;
        const char *why;
        int r;

        r = nix_serve_upload_begin(s, name, &u);
        if (r < 0)
                return r;
        for (size_t off = 0; off < len; off += chunk) {
                r = nix_upload_write(u, nar + off, MIN(chunk, len - off));
                if (r < 0)
                        break;
        }
        return nix_upload_finish(u, &why);
}

/* The narinfo Nix would upload for the tree under url, with nar_size. */
static char *narinfo_for(const struct env *e, const struct nix_store_path *p, const char *url, uint64_t nar_size,
                         const struct nix_secret_key *k, const struct nix_store_path *ref) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        char *text;

        CHECK_OK(nix_pathinfo_new(p, &e->root, nar_size, e->nar_sha256, &pi));
        if (ref)
                CHECK_OK(nix_pathinfo_add_reference(pi, ref));
        CHECK_OK(nix_narinfo_from_pathinfo(pi, url, "none", &ni));
        if (k)
                CHECK_OK(nix_narinfo_sign(ni, k));
        CHECK_OK(nix_narinfo_format(ni, &text, NULL));
        return text;
}

static void test_upload(void) {
        _cleanup_(nix_serve_freep) struct nix_serve *s = NULL, *closed = NULL, *keyed = NULL;
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        _cleanup_free_ struct nix_public_key *pub = NULL;
        struct nix_store_path p, other, unknown;
        struct nix_secret_key k;
        struct nix_upload *u;
        char hash[NIX_DIGEST_CHARS + 1], *text;
        const char *why;
        uint64_t fsize;
        size_t n_pub;
        struct env e = {};

        env_open(&e);
        CHECK_OK(nix_secret_key_parse(UNIT_SECRET, strlen(UNIT_SECRET), &k));
        CHECK_OK(nix_public_keys_parse(UNIT_PUBLIC, &pub, &n_pub, NULL));
        CHECK_OK(nix_store_path_make_source("up", 2, e.nar_sha256, NULL, 0, false, &p));
        CHECK_OK(nix_store_path_make_source("other", 5, e.nar_sha256, NULL, 0, false, &other));
        CHECK_OK(nix_store_path_make_source("unknown", 7, e.nar_sha256, NULL, 0, false, &unknown));
        nixbase32_encode(p.digest, NIX_DIGEST_LEN, hash);

        struct nix_serve_config no = {};
        CHECK_OK(nix_serve_new(e.store, e.pis, &no, &closed));
        CHECK_EQ(nix_serve_upload_begin(closed, "a.nar", &u), -EPERM);
        CHECK_EQ(nix_serve_upload_narinfo(closed, hash, 32, "x", 1, &why), -EPERM);

        struct nix_serve_config yes = { .allow_uploads = true };
        CHECK_OK(nix_serve_new(e.store, e.pis, &yes, &s));
        CHECK_EQ(nix_serve_upload_begin(s, "a.tar", &u), -EINVAL);
        CHECK_EQ(nix_serve_upload_begin(s, "../a.nar", &u), -EINVAL);
        CHECK_EQ(nix_serve_upload_begin(s, "a.nar.gz", &u), -EINVAL);

        /* truncated, then trailing bytes: refused, nothing pending */
        CHECK_EQ(upload(s, "a.nar", e.nar, e.nar_len - 8, 1000), -EBADMSG);
        CHECK_EQ(nix_serve_upload_pending(s, "a.nar", NULL), 0);
        uint8_t *longer = malloc(e.nar_len + 1);
        CHECK(longer);
        memcpy(longer, e.nar, e.nar_len);
        longer[e.nar_len] = 0;
        CHECK_EQ(upload(s, "a.nar", longer, e.nar_len + 1, 4096), -EBADMSG);
        free(longer);
        /* abandoned half-way: freed, nothing pending */
        CHECK_OK(nix_serve_upload_begin(s, "a.nar", &u));
        CHECK_OK(nix_upload_write(u, e.nar, 100));
        nix_upload_free(u);
        CHECK_EQ(nix_serve_upload_pending(s, "a.nar", NULL), 0);

        /* a narinfo before its NAR */
        text = narinfo_for(&e, &p, "nar/a.nar", e.nar_len, NULL, NULL);
        CHECK_EQ(nix_serve_upload_narinfo(s, hash, 32, text, strlen(text), &why), -ENOENT);
        free(text);

        CHECK_OK(upload(s, "a.nar", e.nar, e.nar_len, 7777));
        CHECK_EQ(nix_serve_upload_pending(s, "a.nar", &fsize), 1);
        CHECK_EQ(fsize, e.nar_len);
        /* wrong size, another path's name, an unknown reference: refused, still pending */
        text = narinfo_for(&e, &p, "nar/a.nar", e.nar_len + 8, NULL, NULL);
        CHECK_EQ(nix_serve_upload_narinfo(s, hash, 32, text, strlen(text), &why), -EBADMSG);
        free(text);
        text = narinfo_for(&e, &other, "nar/a.nar", e.nar_len, NULL, NULL);
        CHECK_EQ(nix_serve_upload_narinfo(s, hash, 32, text, strlen(text), &why), -EBADMSG);
        free(text);
        text = narinfo_for(&e, &p, "nar/a.nar", e.nar_len, NULL, &unknown);
        CHECK_EQ(nix_serve_upload_narinfo(s, hash, 32, text, strlen(text), &why), -ENOENT);
        free(text);
        CHECK_EQ(nix_serve_upload_narinfo(s, hash, 32, "garbage", 7, &why), -EBADMSG);
        CHECK_EQ(nix_pathinfo_get_path(e.pis, &p, &pi), -ENOENT);
        CHECK_EQ(nix_serve_upload_pending(s, "a.nar", NULL), 1);

        /* the right one (referring to itself) binds it */
        text = narinfo_for(&e, &p, "nar/a.nar?x=1", e.nar_len, NULL, &p);
        CHECK_OK(nix_serve_upload_narinfo(s, hash, 32, text, strlen(text), &why));
        free(text);
        CHECK_EQ(nix_serve_upload_pending(s, "a.nar", NULL), 0);
        CHECK_OK(nix_pathinfo_get_path(e.pis, &p, &pi));
        CHECK_EQ(pi->nar_size, e.nar_len);
        CHECK_EQ(pi->n_references, 1);
        CHECK(cas_digest_equal(&pi->node.digest, &e.root.digest));

        /* upload keys: unsigned refused, signed accepted */
        struct nix_serve_config signed_only = { .allow_uploads = true, .upload_keys = pub, .n_upload_keys = n_pub };
        CHECK_OK(nix_serve_new(e.store, e.pis, &signed_only, &keyed));
        nixbase32_encode(other.digest, NIX_DIGEST_LEN, hash);
        CHECK_OK(upload(keyed, "b.nar", e.nar, e.nar_len, 65536));
        text = narinfo_for(&e, &other, "nar/b.nar", e.nar_len, NULL, NULL);
        CHECK_EQ(nix_serve_upload_narinfo(keyed, hash, 32, text, strlen(text), &why), -EPERM);
        free(text);
        text = narinfo_for(&e, &other, "nar/b.nar", e.nar_len, &k, NULL);
        CHECK_OK(nix_serve_upload_narinfo(keyed, hash, 32, text, strlen(text), &why));
        free(text);

        /* a pending upload left at the end is freed with the server */
        CHECK_OK(upload(s, "left.nar", e.nar, e.nar_len, 65536));
        nix_serve_free(TAKE_PTR(s));
        env_close(&e);
}

int main(void) {
        test_windows();
        test_serve();
        test_upload();
        return *test_exit_code();
}
