/* Unit tests for PathInfo: encode/decode round trips, one violating
 * message per validation rule, the memory and LMDB services, the root
 * provider by basename, and registration of a tree as nix-store --add
 * would (known answer from real Nix). */
#include <stdlib.h>

#include "castore.pb-c.h"
#include "castore/lmdb.h"
#include "test-pg.h"
#include "castore/store.h"
#include "pathinfo.pb-c.h"
#include "store/nar.h"
#include "store/nixbase32.h"
#include "store/pathinfosvc.h"
#include "test.h"

#define BASE_A "00bgd045z0d4icpbc2yyz4gx48ak44la-foo"
#define BASE_B "lfngsssysp6h1v4ccqg23c52s9sjl779-x"
#define BASE_C "capi7w5i7rp2pkvhkn6hw35a8ik7q04k-a"

static struct nix_store_path sp(const char *base) {
        struct nix_store_path p;
        CHECK_OK(nix_store_path_from_basename(base, strlen(base), &p));
        return p;
}

static struct nix_pathinfo *sample(const char *base) {
        struct nix_store_path p = sp(base), refs[2] = { sp(BASE_B), sp(BASE_C) };
        struct cas_node root = { .kind = CAS_NODE_FILE, .size = 12 };
        uint8_t sha[32], sig[64];
        struct nix_pathinfo *pi;

        cas_digest_of("Hello World!", 12, &root.digest);
        memset(sha, 0xab, sizeof(sha));
        memset(sig, 0x5a, sizeof(sig));
        CHECK_OK(nix_pathinfo_new(&p, &root, 128, sha, &pi));
        CHECK_OK(nix_pathinfo_add_reference(pi, &refs[0]));
        CHECK_OK(nix_pathinfo_add_reference(pi, &refs[1]));
        CHECK_OK(nix_pathinfo_add_signature(pi, "cache.nixos.org-1", sig));
        pi->has_deriver = true;
        pi->deriver = sp("00bgd045z0d4icpbc2yyz4gx48ak44la-foo.drv");
        pi->has_ca = true;
        pi->ca_type = NIX_CA_FLAT_SHA1;
        memset(pi->ca_digest, 0x11, 20);
        return pi;
}

static void test_round_trip(void) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = sample(BASE_A), *back = NULL;
        uint8_t *buf, *buf2;
        size_t len, len2;

        CHECK(nix_pathinfo_check(pi) == NULL);
        CHECK_STREQ(pi->node.name, BASE_A);
        CHECK_OK(nix_pathinfo_encode(pi, &buf, &len));
        CHECK_OK(nix_pathinfo_decode(buf, len, &back, NULL));
        CHECK_STREQ(back->node.name, BASE_A);
        CHECK_EQ(back->node.kind, CAS_NODE_FILE);
        CHECK(cas_digest_equal(&back->node.digest, &pi->node.digest));
        CHECK_EQ(back->nar_size, 128);
        CHECK_EQ(back->n_references, 2);
        CHECK_STREQ(back->references[0].name, "x");
        CHECK_STREQ(back->references[1].name, "a");
        CHECK_EQ(back->n_signatures, 1);
        CHECK_STREQ(back->signatures[0].name, "cache.nixos.org-1");
        CHECK_EQ(back->signatures[0].data[63], 0x5a);
        char sig[NIX_SIGNATURE_STR_MAX];
        nix_signature_to_string(&back->signatures[0], sig);
        CHECK_STREQ(sig, "cache.nixos.org-1:WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa"
                         "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWg==");
        CHECK(back->has_deriver);
        CHECK_STREQ(back->deriver.name, "foo.drv");
        CHECK(back->has_ca);
        CHECK_EQ(back->ca_type, NIX_CA_FLAT_SHA1);
        /* canonical: re-encoding gives the same bytes */
        CHECK_OK(nix_pathinfo_encode(back, &buf2, &len2));
        CHECK_EQ(len, len2);
        CHECK(memcmp(buf, buf2, len) == 0);
        free(buf);
        free(buf2);

        /* wire layout: node (field 1) first, then references (2), narinfo (3) */
        Tvix__Store__V1__PathInfo *ppi;
        CHECK_OK(nix_pathinfo_encode(pi, &buf, &len));
        CHECK_EQ(buf[0], 0x0a);
        ppi = tvix__store__v1__path_info__unpack(NULL, len, buf);
        CHECK(ppi);
        CHECK_EQ(ppi->n_references, 2);
        CHECK_EQ(ppi->references[0].len, 20);
        CHECK_STREQ(ppi->narinfo->reference_names[0], BASE_B);
        CHECK_EQ(ppi->narinfo->nar_sha256.len, 32);
        CHECK_EQ(ppi->node->node_case, TVIX__CASTORE__V1__NODE__NODE_FILE);
        tvix__store__v1__path_info__free_unpacked(ppi, NULL);
        free(buf);
}

static void test_ca_strings(void) {
        uint8_t d[64];
        char s[NIX_CA_STR_MAX];

        memset(d, 0, sizeof(d));
        CHECK_OK(nix_ca_to_string(NIX_CA_NAR_SHA256, d, s));
        CHECK_STREQ(s, "fixed:r:sha256:0000000000000000000000000000000000000000000000000000");
        CHECK_OK(nix_ca_to_string(NIX_CA_TEXT_SHA256, d, s));
        CHECK(strncmp(s, "text:sha256:", 12) == 0);
        CHECK_OK(nix_ca_to_string(NIX_CA_FLAT_SHA512, d, s));
        CHECK_EQ(strlen(s), strlen("fixed:sha512:") + 103);
        CHECK_OK(nix_ca_to_string(NIX_CA_NAR_MD5, d, s));
        CHECK_STREQ(s, "fixed:r:md5:00000000000000000000000000");
        CHECK_EQ(nix_ca_to_string(_NIX_CA_MAX, d, s), -EINVAL);
        CHECK_EQ(nix_ca_digest_len(NIX_CA_NAR_SHA1), 20);
        CHECK_EQ(nix_ca_digest_len(NIX_CA_NAR_SHA512), 64);
        CHECK_EQ(nix_ca_digest_len(NIX_CA_FLAT_MD5), 16);
        CHECK_EQ(nix_ca_digest_len((enum nix_ca_hash) 9), 0);
}

/* ---- hostile messages: build a valid one with protobuf-c, break one field ---- */

struct msg {
        Tvix__Store__V1__PathInfo pi;
        Tvix__Castore__V1__Node node;
        Tvix__Castore__V1__FileNode file;
        Tvix__Store__V1__NARInfo ni;
        Tvix__Store__V1__NARInfo__Signature sig, *sigs[1];
        Tvix__Store__V1__StorePath deriver;
        Tvix__Store__V1__NARInfo__CA ca;
        ProtobufCBinaryData refs[1];
        char *ref_names[1];
        uint8_t digest[32], sha[32], sigdata[64], refdigest[20], caddigest[64];
        char name[64], ref_name[64], deriver_name[64], key[32];
};

static void msg_init(struct msg *m) {
        struct nix_store_path r = sp(BASE_B);

        memset(m, 0, sizeof(*m));
        tvix__store__v1__path_info__init(&m->pi);
        tvix__castore__v1__node__init(&m->node);
        tvix__castore__v1__file_node__init(&m->file);
        tvix__store__v1__narinfo__init(&m->ni);
        tvix__store__v1__narinfo__signature__init(&m->sig);
        tvix__store__v1__store_path__init(&m->deriver);
        tvix__store__v1__narinfo__ca__init(&m->ca);
        strcpy(m->name, BASE_A);
        strcpy(m->ref_name, BASE_B);
        strcpy(m->deriver_name, "foo.drv");
        strcpy(m->key, "key-1");
        memcpy(m->refdigest, r.digest, 20);
        m->file.name = (ProtobufCBinaryData){ strlen(m->name), (uint8_t *) m->name };
        m->file.digest = (ProtobufCBinaryData){ 32, m->digest };
        m->node.node_case = TVIX__CASTORE__V1__NODE__NODE_FILE;
        m->node.file = &m->file;
        m->pi.node = &m->node;
        m->refs[0] = (ProtobufCBinaryData){ 20, m->refdigest };
        m->pi.n_references = 1;
        m->pi.references = m->refs;
        m->ref_names[0] = m->ref_name;
        m->ni.n_reference_names = 1;
        m->ni.reference_names = m->ref_names;
        m->ni.nar_sha256 = (ProtobufCBinaryData){ 32, m->sha };
        m->sig.name = m->key;
        m->sig.data = (ProtobufCBinaryData){ 64, m->sigdata };
        m->sigs[0] = &m->sig;
        m->ni.n_signatures = 1;
        m->ni.signatures = m->sigs;
        m->deriver.name = m->deriver_name;
        m->deriver.digest = (ProtobufCBinaryData){ 20, m->refdigest };
        m->ni.deriver = &m->deriver;
        m->ca.type = TVIX__STORE__V1__NARINFO__CA__HASH__NAR_SHA256;
        m->ca.digest = (ProtobufCBinaryData){ 32, m->caddigest };
        m->ni.ca = &m->ca;
        m->pi.narinfo = &m->ni;
}

/* Packs m and decodes it: 0, or -EBADMSG whose reason contains why. */
static void msg_expect(struct msg *m, const char *why) {
        size_t len = tvix__store__v1__path_info__get_packed_size(&m->pi);
        uint8_t *buf = malloc(len + 1);
        struct nix_pathinfo *pi = NULL;
        const char *got = NULL;
        int r;

        CHECK(buf);
        tvix__store__v1__path_info__pack(&m->pi, buf);
        r = nix_pathinfo_decode(buf, len, &pi, &got);
        if (!why) {
                CHECK_OK(r);
                nix_pathinfo_free(pi);
        } else if (r != -EBADMSG || !got || !strstr(got, why)) {
                fprintf(stderr, "expected \"%s\", got %d \"%s\"\n", why, r, got ? got : "");
                abort();
        }
        free(buf);
        msg_init(m);
}

/* Packs m, turns the 0x01 byte of the string s on the wire into a NUL
 * (protobuf-c packs strings up to their first NUL, so that is how to get
 * one there), and expects decoding to fail saying why. */
static void msg_expect_nul(struct msg *m, const char *s, const char *why) {
        size_t len = tvix__store__v1__path_info__get_packed_size(&m->pi);
        uint8_t *buf = malloc(len + 1), *p;
        struct nix_pathinfo *pi = NULL;
        const char *got = NULL;
        int r;

        CHECK(buf);
        tvix__store__v1__path_info__pack(&m->pi, buf);
        p = memmem(buf, len, s, strlen(s));
        CHECK(p);
        p = memchr(p, 1, strlen(s));
        CHECK(p);
        *p = 0;
        r = nix_pathinfo_decode(buf, len, &pi, &got);
        if (r != -EBADMSG || !got || !strstr(got, why)) {
                fprintf(stderr, "expected \"%s\", got %d \"%s\"\n", why, r, got ? got : "");
                abort();
        }
        free(buf);
        msg_init(m);
}

static void test_validation(void) {
        struct msg m;
        const char *bad_names[] = { "foo", "00bgd045z0d4icpbc2yyz4gx48ak44la-", "00bgd045z0d4icpbc2yyz4gx48ak44la-a b",
                                    "00bgd045z0d4icpbc2yyz4gx48ak44la-..", "e0bgd045z0d4icpbc2yyz4gx48ak44la-foo" };

        msg_init(&m);
        msg_expect(&m, NULL);
        /* root node */
        m.pi.node = NULL;
        msg_expect(&m, "no root node");
        m.node.node_case = TVIX__CASTORE__V1__NODE__NODE__NOT_SET;
        msg_expect(&m, "no kind");
        m.file.digest.len = 31;
        msg_expect(&m, "invalid root node");
        for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
                strcpy(m.name, bad_names[i]);
                m.file.name.len = strlen(m.name);
                msg_expect(&m, "basename");
        }
        m.file.name.len = 0;
        msg_expect(&m, "invalid root node");
        /* narinfo */
        m.pi.narinfo = NULL;
        msg_expect(&m, "no narinfo");
        m.ni.nar_sha256.len = 20;
        msg_expect(&m, "nar_sha256");
        m.ni.nar_sha256.len = 0;
        msg_expect(&m, "nar_sha256");
        /* references */
        m.refs[0].len = 19;
        msg_expect(&m, "reference digest");
        m.ni.n_reference_names = 0;
        msg_expect(&m, "differ in number");
        m.pi.n_references = 0;
        msg_expect(&m, "differ in number");
        strcpy(m.ref_name, BASE_C);
        msg_expect(&m, "does not match");
        strcpy(m.ref_name, "x");
        msg_expect(&m, "reference name");
        /* signatures */
        m.sig.data.len = 63;
        msg_expect(&m, "64 bytes");
        m.sig.data.len = 0;
        msg_expect(&m, "64 bytes");
        strcpy(m.key, "");
        msg_expect(&m, "key name");
        strcpy(m.key, "a:b");
        msg_expect(&m, "key name");
        strcpy(m.key, "a b");
        msg_expect(&m, "key name");
        /* deriver */
        m.deriver.digest.len = 32;
        msg_expect(&m, "20 bytes");
        strcpy(m.deriver_name, "");
        msg_expect(&m, "store path name");
        strcpy(m.deriver_name, "a/b");
        msg_expect(&m, "store path name");
        m.ni.deriver = NULL;
        msg_expect(&m, NULL);
        /* content address: digest length per type, known types only */
        m.ca.digest.len = 20;
        msg_expect(&m, "wrong length");
        m.ca.type = TVIX__STORE__V1__NARINFO__CA__HASH__NAR_SHA1;
        msg_expect(&m, "wrong length");
        m.ca.type = TVIX__STORE__V1__NARINFO__CA__HASH__NAR_SHA1;
        m.ca.digest.len = 20;
        msg_expect(&m, NULL);
        m.ca.type = TVIX__STORE__V1__NARINFO__CA__HASH__FLAT_SHA512;
        m.ca.digest.len = 64;
        msg_expect(&m, NULL);
        m.ca.type = TVIX__STORE__V1__NARINFO__CA__HASH__NAR_MD5;
        m.ca.digest.len = 16;
        msg_expect(&m, NULL);
        m.ca.type = (Tvix__Store__V1__NARInfo__CA__Hash) 9;
        msg_expect(&m, "unknown content address");
        m.ca.type = (Tvix__Store__V1__NARInfo__CA__Hash) -1;
        msg_expect(&m, "unknown content address");
        m.ni.ca = NULL;
        msg_expect(&m, NULL);

        /* a string field holding a NUL: the part before it would pass,
         * so it must not be cut there */
        strcpy(m.ref_name, BASE_B "\x01zz");
        msg_expect_nul(&m, m.ref_name, "NUL");
        strcpy(m.key, "key-1\x01x");
        msg_expect_nul(&m, m.key, "NUL");
        strcpy(m.deriver_name, "foo.drv\x01x");
        msg_expect_nul(&m, m.deriver_name, "NUL");

        /* not protobuf at all */
        struct nix_pathinfo *pi;
        const char *why;
        CHECK_EQ(nix_pathinfo_decode("\xff\xff\xff", 3, &pi, &why), -EBADMSG);
        CHECK_EQ(nix_pathinfo_decode("", 0, &pi, &why), -EBADMSG);
        CHECK(strstr(why, "no root node"));

        /* building in memory: a root node that is no valid node is refused */
        struct nix_store_path p = sp(BASE_A);
        struct cas_node bad = { .kind = CAS_NODE_SYMLINK };
        uint8_t sha[32] = {};
        CHECK_EQ(nix_pathinfo_new(&p, &bad, 0, sha, &pi), -EINVAL);
}

/* ---- services ---- */

struct collect {
        size_t n;
        char names[8][NIX_BASENAME_MAX + 1];
};

static int collect_cb(void *userdata, const struct nix_pathinfo *pi) {
        struct collect *c = userdata;
        CHECK(c->n < 8);
        memcpy(c->names[c->n], pi->node.name, pi->node.name_len);
        c->names[c->n][pi->node.name_len] = 0;
        c->n++;
        return 0;
}

static int stop_cb(void *userdata, const struct nix_pathinfo *pi) {
        return -ECANCELED;
}

struct root_names {
        size_t n;
        char names[8][NIX_BASENAME_MAX + 1];
};

static int root_cb(void *userdata, const struct cas_node *n) {
        struct root_names *c = userdata;
        memcpy(c->names[c->n], n->name, n->name_len);
        c->names[c->n][n->name_len] = 0;
        c->n++;
        return 0;
}

static void exercise(struct nix_pathinfo_service *s) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *a = sample(BASE_A), *b = sample(BASE_B),
                                                           *c = sample(BASE_C);
        struct nix_pathinfo *got;
        struct nix_store_path p = sp(BASE_A);
        struct collect col = {};
        struct cas_node node;
        void *mem;
        char **names;
        size_t n;

        CHECK_EQ(nix_pathinfo_get(s, p.digest, &got), -ENOENT);
        CHECK_OK(nix_pathinfo_put(s, a));
        CHECK_OK(nix_pathinfo_put(s, b));
        CHECK_OK(nix_pathinfo_put(s, c));
        CHECK_OK(nix_pathinfo_get(s, p.digest, &got));
        CHECK_STREQ(got->node.name, BASE_A);
        CHECK_EQ(got->n_references, 2);
        nix_pathinfo_free(got);
        /* replace */
        a->nar_size = 999;
        CHECK_OK(nix_pathinfo_put(s, a));
        CHECK_OK(nix_pathinfo_get_path(s, &p, &got));
        CHECK_EQ(got->nar_size, 999);
        nix_pathinfo_free(got);
        /* same digest, other name */
        struct nix_store_path other = sp("00bgd045z0d4icpbc2yyz4gx48ak44la-bar");
        CHECK_EQ(nix_pathinfo_get_path(s, &other, &got), -ENOENT);
        /* invalid PathInfo refused by put */
        a->signatures[0].name[0] = ':';
        CHECK_EQ(nix_pathinfo_put(s, a), -EINVAL);
        a->signatures[0].name[0] = 'c';

        CHECK_OK(nix_pathinfo_list(s, collect_cb, &col));
        CHECK_EQ(col.n, 3);
        CHECK_EQ(nix_pathinfo_list(s, stop_cb, NULL), -ECANCELED);

        /* root provider */
        CHECK_OK(nix_root_lookup(s, BASE_B, strlen(BASE_B), &node, &mem));
        CHECK_EQ(node.name_len, strlen(BASE_B));
        CHECK(memcmp(node.name, BASE_B, node.name_len) == 0);
        CHECK_EQ(node.kind, CAS_NODE_FILE);
        free(mem);
        CHECK_EQ(nix_root_lookup(s, "00bgd045z0d4icpbc2yyz4gx48ak44la-bar", 36, &node, &mem), -ENOENT);
        CHECK_EQ(nix_root_lookup(s, "foo", 3, &node, &mem), -ENOENT);
        CHECK_EQ(nix_root_lookup(s, ".", 1, &node, &mem), -ENOENT);
        CHECK_EQ(nix_root_lookup(s, "", 0, &node, &mem), -ENOENT);
        CHECK_EQ(nix_root_lookup(s, "10bgd045z0d4icpbc2yyz4gx48ak44la-foo", 36, &node, &mem), -ENOENT);
        CHECK_OK(nix_root_list(s, &names, &n));
        CHECK_EQ(n, 3);
        CHECK_STREQ(names[0], BASE_A);
        CHECK_STREQ(names[1], BASE_C);
        CHECK_STREQ(names[2], BASE_B);
        nix_basenames_free(names, n);
        col = (struct collect){};
        CHECK_OK(nix_pathinfo_list_by_name(s, collect_cb, &col));
        CHECK_EQ(col.n, 3);
        CHECK_STREQ(col.names[0], BASE_A);
        CHECK_STREQ(col.names[1], BASE_C);
        CHECK_STREQ(col.names[2], BASE_B);
        CHECK_EQ(nix_pathinfo_list_by_name(s, stop_cb, NULL), -ECANCELED);

        /* as a cas_root_service */
        struct cas_root_service *rs;
        struct root_names rn = {};
        CHECK_OK(nix_root_service_new(s, &rs));
        CHECK_OK(cas_root_get(rs, BASE_C, strlen(BASE_C), &node, &mem));
        free(mem);
        CHECK_EQ(cas_root_get(rs, "x", 1, &node, &mem), -ENOENT);
        CHECK_OK(cas_root_list(rs, root_cb, &rn));
        CHECK_EQ(rn.n, 3);
        CHECK_STREQ(rn.names[0], BASE_A);
        CHECK_STREQ(rn.names[1], BASE_C);
        CHECK_STREQ(rn.names[2], BASE_B);
        CHECK_EQ(cas_root_put(rs, &node), -EOPNOTSUPP);
        cas_root_service_free(rs);

        /* removal: gone from get and list; a second one is -ENOENT */
        struct nix_store_path pb = sp(BASE_B);
        CHECK_OK(nix_pathinfo_remove(s, pb.digest));
        CHECK_EQ(nix_pathinfo_get(s, pb.digest, &got), -ENOENT);
        CHECK_EQ(nix_pathinfo_remove(s, pb.digest), -ENOENT);
        col = (struct collect){};
        CHECK_OK(nix_pathinfo_list_by_name(s, collect_cb, &col));
        CHECK_EQ(col.n, 2);
        CHECK_STREQ(col.names[0], BASE_A);
        CHECK_STREQ(col.names[1], BASE_C);
        CHECK_OK(nix_pathinfo_put(s, b));
}

static void test_memory_service(void) {
        struct nix_pathinfo_service *s;

        CHECK_OK(nix_pathinfo_memory_new(&s));
        exercise(s);
        nix_pathinfo_service_free(s);
}

/* The cache removes from far and near; near need not hold it. */
static void test_cache_remove(void) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *a = sample(BASE_A), *b = sample(BASE_B);
        struct nix_pathinfo_service *near, *far, *c;
        struct nix_store_path pa = sp(BASE_A), pb = sp(BASE_B);
        struct nix_pathinfo *got;

        CHECK_OK(nix_pathinfo_memory_new(&near));
        CHECK_OK(nix_pathinfo_memory_new(&far));
        CHECK_OK(nix_pathinfo_put(far, a));
        CHECK_OK(nix_pathinfo_put(far, b));
        CHECK_OK(nix_pathinfo_cache_new(near, far, &c));
        CHECK_OK(nix_pathinfo_get(c, pa.digest, &got)); /* now near too */
        nix_pathinfo_free(got);
        CHECK_OK(nix_pathinfo_remove(c, pa.digest));
        CHECK_EQ(nix_pathinfo_get(near, pa.digest, &got), -ENOENT);
        CHECK_EQ(nix_pathinfo_get(far, pa.digest, &got), -ENOENT);
        CHECK_OK(nix_pathinfo_remove(c, pb.digest)); /* far only */
        CHECK_EQ(nix_pathinfo_get(c, pb.digest, &got), -ENOENT);
        CHECK_EQ(nix_pathinfo_remove(c, pb.digest), -ENOENT);
        nix_pathinfo_service_free(c);
}

static void test_lmdb_service(void) {
        char dir[] = "/tmp/test-pathinfo.XXXXXX", cmd[64];
        struct cas_store *store;
        struct nix_pathinfo_service *s;
        struct nix_pathinfo *got;
        struct nix_store_path p = sp(BASE_C);

        CHECK(mkdtemp(dir));
        CHECK_OK(cas_store_open(dir, CAS_STORE_CREATE, &store));
        CHECK(store->lmdb);
        CHECK_OK(nix_pathinfo_open_store(store, &s));
        CHECK(strcmp(s->ops->name, "lmdb") == 0);
        exercise(s);
        {
                /* a corrupt record is reported by get and skipped by list,
                 * which still delivers the others and then fails */
                static const uint8_t zero[NIX_DIGEST_LEN];
                struct collect col = {};
                MDB_dbi dbi;

                CHECK_OK(cas_lmdb_dbi(store->lmdb, "pathinfo", &dbi));
                CHECK_OK(cas_lmdb_put(store->lmdb, dbi, zero, NIX_DIGEST_LEN, "\xff\xff\xff", 3));
                CHECK_EQ(nix_pathinfo_get(s, zero, &got), -EBADMSG);
                CHECK_EQ(nix_pathinfo_list(s, collect_cb, &col), -EBADMSG);
                CHECK_EQ(col.n, 3);
        }
        nix_pathinfo_service_free(s);
        cas_store_free(store);

        /* persisted, and readable from a read-only open */
        CHECK_OK(cas_store_open(dir, CAS_STORE_READONLY, &store));
        CHECK_OK(nix_pathinfo_open_store(store, &s));
        CHECK_OK(nix_pathinfo_get_path(s, &p, &got));
        CHECK_EQ(got->n_signatures, 1);
        nix_pathinfo_free(got);
        nix_pathinfo_service_free(s);
        cas_store_free(store);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
}

/* The same against PostgreSQL ($CASTORE_TEST_PG), with a corrupt row. */
static void test_pg_service(void) {
        static const uint8_t zero[NIX_DIGEST_LEN];
        struct cas_pg *pg;
        struct nix_pathinfo_service *s;
        struct nix_pathinfo *got;
        struct collect col = {};

        if (!test_pg_url()) {
                fprintf(stderr, "  (the postgresql backend runs with $CASTORE_TEST_PG: test-postgres.sh sets it)\n");
                return;
        }
        test_pg_reset();
        CHECK_OK(cas_pg_open(test_pg_url(), 0, &pg));
        CHECK_OK(nix_pathinfo_pg_new(pg, &s));
        cas_pg_unref(pg); /* the service holds its own reference */
        CHECK(strcmp(s->ops->name, "postgresql") == 0);
        exercise(s);
        /* a corrupt row: get reports it, list skips it, delivers the
         * others and then fails */
        test_pg_sql("INSERT INTO pathinfos VALUES ('\\x0000000000000000000000000000000000000000', '\\xffffff')");
        CHECK_EQ(nix_pathinfo_get(s, zero, &got), -EBADMSG);
        CHECK_EQ(nix_pathinfo_list(s, collect_cb, &col), -EBADMSG);
        CHECK_EQ(col.n, 3);
        /* a valid PathInfo under another key */
        test_pg_sql("UPDATE pathinfos SET data = (SELECT data FROM pathinfos WHERE digest <> "
                    "'\\x0000000000000000000000000000000000000000' LIMIT 1) "
                    "WHERE digest = '\\x0000000000000000000000000000000000000000'");
        CHECK_EQ(nix_pathinfo_get(s, zero, &got), -EBADMSG);
        CHECK_OK(nix_pathinfo_remove(s, zero));
        col = (struct collect){};
        CHECK_OK(nix_pathinfo_list(s, collect_cb, &col));
        CHECK_EQ(col.n, 3);
        nix_pathinfo_service_free(s);
}

/* The tree of nix-store --add of a directory "src" holding f = "hi\n". */
static void test_register_nar(void) {
        struct cas_store *store;
        struct nix_pathinfo_service *s;
        struct nix_pathinfo *got;
        struct nix_store_path p;
        struct cas_node f = { .kind = CAS_NODE_FILE, .name = "f", .name_len = 1, .size = 3 };
        struct cas_directory *d;
        char buf[NIX_PATH_MAX + 1], ca[NIX_CA_STR_MAX];

        CHECK_OK(cas_store_open("memory://", 0, &store));
        CHECK_OK(nix_pathinfo_open_store(store, &s));
        CHECK(strcmp(s->ops->name, "memory") == 0);
        CHECK_OK(cas_blob_put(store->blobs, "hi\n", 3, 0, &f.digest));
        CHECK_OK(cas_directory_new(&f, 1, &d, NULL));
        CHECK_OK(cas_dir_put(store->dirs, &d, 1, 0, NULL));
        struct cas_node root = { .kind = CAS_NODE_DIRECTORY, .digest = d->digest, .size = d->size };
        uint8_t sha[32];
        uint64_t size;
        CHECK_OK(nar_render(store->blobs, store->dirs, &root, 0, NULL, NULL, &size, sha));
        CHECK_OK(nix_register_nar(s, &root, "src", size, sha, &p));
        nix_store_path_absolute(&p, buf);
        CHECK_STREQ(buf, "/nix/store/qp2422fm4lgfh6979k71gsw0n9nf512m-src");
        CHECK_OK(nix_pathinfo_get_path(s, &p, &got));
        CHECK_EQ(got->nar_size, 288);
        CHECK(got->has_ca);
        CHECK_OK(nix_ca_to_string(got->ca_type, got->ca_digest, ca));
        /* nix path-info --json of the same path */
        CHECK_STREQ(ca, "fixed:r:sha256:1jpg5v8rcf4d08rlpq51vnd1w800l64h34r0bw4vkb6z3qlk089k");
        CHECK(memcmp(got->ca_digest, got->nar_sha256, 32) == 0);
        CHECK_EQ(got->n_references, 0);
        CHECK_EQ(got->node.kind, CAS_NODE_DIRECTORY);
        nix_pathinfo_free(got);
        CHECK_EQ(nix_register_nar(s, &root, "a/b", size, sha, &p), -EINVAL);
        CHECK_EQ(nix_register_nar(s, &root, "", size, sha, &p), -EINVAL);
        CHECK_EQ(nix_register_nar(s, &root, "..", size, sha, &p), -EINVAL);
        cas_directory_free(d);
        nix_pathinfo_service_free(s);
        cas_store_free(store);
}

int main(void) {
        RUN(test_round_trip);
        RUN(test_ca_strings);
        RUN(test_validation);
        RUN(test_memory_service);
        RUN(test_lmdb_service);
        RUN(test_pg_service);
        RUN(test_cache_remove);
        RUN(test_register_nar);
        return 0;
}
