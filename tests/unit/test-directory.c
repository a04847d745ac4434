/* Unit tests for Directory/Node: SPEC §2 known answers, exact canonical
 * encodings, and one violating message per validation rule of SPEC §1. */
#include "castore.pb-c.h"
#include "castore/directory.h"
#include "test.h"

#define N(s) .name = (s), .name_len = sizeof(s) - 1

static const char *hex_of(const struct cas_directory *d) {
        static char buf[65];
        cas_digest_to_hex(&d->digest, buf);
        return buf;
}

static struct cas_directory *with_keep(void) {
        struct cas_node n = { .kind = CAS_NODE_FILE, N(".keep"), .digest = cas_digest_empty };
        struct cas_directory *d;

        CHECK_OK(cas_directory_new(&n, 1, &d, NULL));
        return d;
}

static void test_empty(void) {
        struct cas_directory *d;
        uint8_t *buf;
        size_t len;

        CHECK_OK(cas_directory_new(NULL, 0, &d, NULL));
        CHECK_STREQ(hex_of(d), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        CHECK_OK(cas_directory_encode(d, &buf, &len));
        CHECK_EQ(len, 0);
        free(buf);
        cas_directory_free(d);
}

static void test_with_keep(void) {
        struct cas_directory *d = with_keep(), *d2;
        uint8_t *buf;
        size_t len;
        char hex[2 * 64 + 1];

        CHECK_STREQ(hex_of(d), "8b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e");
        CHECK_OK(cas_directory_encode(d, &buf, &len));
        CHECK_EQ(len, 43);
        CHECK_STREQ(test_hex(buf, len, hex),
                    "12290a052e6b6565701220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        CHECK_EQ(d->size, 1);
        CHECK_OK(cas_directory_decode(buf, len, 0, &d2, NULL));
        CHECK(cas_digest_equal(&d->digest, &d2->digest));
        free(buf);
        cas_directory_free(d);
        cas_directory_free(d2);
}

static void complicated(uint64_t keep_size, const char *want) {
        _cleanup_(cas_directory_freep) struct cas_directory *k = with_keep();
        struct cas_node n[3] = {
                { .kind = CAS_NODE_SYMLINK, N("aa"), .target = "/nix/store/somewhereelse", .target_len = 24 },
                { .kind = CAS_NODE_FILE, N(".keep"), .digest = cas_digest_empty },
                { .kind = CAS_NODE_DIRECTORY, N("keep"), .digest = k->digest, .size = keep_size },
        };
        struct cas_directory *d, *d2;
        uint8_t *buf;
        size_t len;

        CHECK_OK(cas_directory_new(n, 3, &d, NULL));
        CHECK_STREQ(hex_of(d), want);
        CHECK_EQ(d->n_dirs, 1);
        CHECK_EQ(d->n_files, 1);
        CHECK_EQ(d->n_symlinks, 1);
        CHECK_EQ(d->size, 3 + keep_size);
        /* merged order is by name across kinds */
        CHECK_STREQ(d->entries[0].name, ".keep");
        CHECK_STREQ(d->entries[1].name, "aa");
        CHECK_STREQ(d->entries[2].name, "keep");
        CHECK(cas_directory_find(d, "aa", 2) == &d->entries[1]);
        CHECK(cas_directory_find(d, "a", 1) == NULL);
        CHECK(cas_directory_find(d, "keepx", 5) == NULL);
        /* decode of our own encoding round-trips; inflated sizes are accepted */
        CHECK_OK(cas_directory_encode(d, &buf, &len));
        CHECK_OK(cas_directory_decode(buf, len, 0, &d2, NULL));
        CHECK_STREQ(hex_of(d2), want);
        CHECK_STREQ(d2->entries[1].target, "/nix/store/somewhereelse");
        free(buf);
        cas_directory_free(d);
        cas_directory_free(d2);
}

static void test_complicated(void) {
        complicated(1, "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a");
        complicated(2, "424a7f6ce08d805d15b428062faae96299a1675d708c3a39261afe38cdd04feb");
}

static void test_directory_b(void) {
        struct cas_node n = { .kind = CAS_NODE_DIRECTORY, N("a"), .digest = cas_digest_empty, .size = 0 };
        struct cas_directory *d;
        uint8_t *buf;
        size_t len;
        char hex[2 * 64 + 1];

        CHECK_OK(cas_directory_new(&n, 1, &d, NULL));
        CHECK_STREQ(hex_of(d), "8701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc");
        CHECK_OK(cas_directory_encode(d, &buf, &len));
        CHECK_EQ(len, 39);
        CHECK_STREQ(test_hex(buf, len, hex),
                    "0a250a01611220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        free(buf);
        cas_directory_free(d);
}

/* ---- a hand-built protobuf message per rule ---- */

typedef Tvix__Castore__V1__DirectoryNode PbDN;
typedef Tvix__Castore__V1__FileNode PbFN;
typedef Tvix__Castore__V1__SymlinkNode PbSN;

static uint8_t zero_digest[33];

static ProtobufCBinaryData bin(const void *p, size_t n) {
        return (ProtobufCBinaryData){ n, (uint8_t *) p };
}

/* Packs a Directory with up to 3 entries per list and decodes it. */
static void expect_verr(PbDN **dn, size_t nd, PbFN **fn, size_t nf, PbSN **sn, size_t ns, enum cas_verr want) {
        Tvix__Castore__V1__Directory pd = TVIX__CASTORE__V1__DIRECTORY__INIT;
        struct cas_directory *d = NULL;
        enum cas_verr why = CAS_VERR_NONE;
        uint8_t buf[16384];
        size_t len;
        int r;

        pd.directories = dn, pd.n_directories = nd;
        pd.files = fn, pd.n_files = nf;
        pd.symlinks = sn, pd.n_symlinks = ns;
        len = tvix__castore__v1__directory__get_packed_size(&pd);
        CHECK(len <= sizeof(buf));
        tvix__castore__v1__directory__pack(&pd, buf);
        r = cas_directory_decode(buf, len, 0, &d, &why);
        if (want == CAS_VERR_NONE) {
                CHECK_OK(r);
                cas_directory_free(d);
                return;
        }
        if (r != -EBADMSG || why != want)
                fprintf(stderr, "got r=%d why=%s, want %s\n", r, cas_verr_str(why), cas_verr_str(want));
        CHECK_EQ(r, -EBADMSG);
        CHECK_EQ(why, want);
        CHECK(d == NULL);
}

static PbFN file(const char *name, size_t len) {
        PbFN f = TVIX__CASTORE__V1__FILE_NODE__INIT;
        f.name = bin(name, len);
        f.digest = bin(zero_digest, 32);
        return f;
}

static void test_rule_names(void) {
        char longname[257], nul[] = { 'a', 0, 'b' };
        PbFN f;
        PbFN *fp = &f;

        memset(longname, 'x', sizeof(longname));
        f = file("", 0), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NAME_EMPTY);
        f = file(".", 1), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NAME_DOT);
        f = file("..", 2), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NAME_DOT);
        f = file("...", 3), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NONE);
        f = file(longname, 256), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NAME_TOO_LONG);
        f = file(longname, 255), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NONE);
        f = file(nul, 3), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NAME_NUL);
        f = file("a/b", 3), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_NAME_SLASH);
}

static void test_rule_non_utf8_roundtrip(void) {
        static const char name[] = { (char) 0xff, (char) 0xfe, 'x', (char) 0xc3 };
        struct cas_node n = { .kind = CAS_NODE_FILE, .name = name, .name_len = 4, .digest = cas_digest_empty };
        struct cas_directory *d, *d2;
        uint8_t *buf;
        size_t len;

        CHECK_OK(cas_directory_new(&n, 1, &d, NULL));
        CHECK_OK(cas_directory_encode(d, &buf, &len));
        CHECK_OK(cas_directory_decode(buf, len, 0, &d2, NULL));
        CHECK_EQ(d2->entries[0].name_len, 4);
        CHECK(memcmp(d2->entries[0].name, name, 4) == 0);
        CHECK(cas_digest_equal(&d->digest, &d2->digest));
        free(buf);
        cas_directory_free(d);
        cas_directory_free(d2);
}

static void test_rule_sorting(void) {
        PbFN a = file("a", 1), b = file("b", 1), a2 = file("a", 1);
        PbFN *unsorted[] = { &b, &a }, *dup[] = { &a, &a2 }, *sorted[] = { &a, &b };

        expect_verr(NULL, 0, unsorted, 2, NULL, 0, CAS_VERR_UNSORTED);
        expect_verr(NULL, 0, dup, 2, NULL, 0, CAS_VERR_DUPLICATE);
        expect_verr(NULL, 0, sorted, 2, NULL, 0, CAS_VERR_NONE);
        /* byte order, not locale: "B" (0x42) sorts before "a" (0x61) */
        PbFN B = file("B", 1);
        PbFN *bytewise[] = { &B, &a };
        expect_verr(NULL, 0, bytewise, 2, NULL, 0, CAS_VERR_NONE);
}

static void test_rule_duplicate_across_lists(void) {
        PbDN d = TVIX__CASTORE__V1__DIRECTORY_NODE__INIT;
        PbSN s = TVIX__CASTORE__V1__SYMLINK_NODE__INIT;
        PbFN f = file("x", 1);
        PbDN *dp = &d;
        PbSN *sp = &s;
        PbFN *fp = &f;

        d.name = bin("x", 1), d.digest = bin(zero_digest, 32);
        s.name = bin("x", 1), s.target = bin("t", 1);
        expect_verr(&dp, 1, &fp, 1, NULL, 0, CAS_VERR_DUPLICATE);
        expect_verr(NULL, 0, &fp, 1, &sp, 1, CAS_VERR_DUPLICATE);
        expect_verr(&dp, 1, NULL, 0, &sp, 1, CAS_VERR_DUPLICATE);
        /* a name in a later list may sort before one in an earlier list */
        s.name = bin("a", 1);
        expect_verr(&dp, 1, &fp, 0, &sp, 1, CAS_VERR_NONE);
}

static void test_rule_digest_len(void) {
        PbFN f = file("f", 1);
        PbDN d = TVIX__CASTORE__V1__DIRECTORY_NODE__INIT;
        PbFN *fp = &f;
        PbDN *dp = &d;

        f.digest = bin(zero_digest, 31), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_DIGEST_LEN);
        f.digest = bin(zero_digest, 33), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_DIGEST_LEN);
        f.digest = bin(NULL, 0), expect_verr(NULL, 0, &fp, 1, NULL, 0, CAS_VERR_DIGEST_LEN);
        d.name = bin("d", 1), d.digest = bin(zero_digest, 20);
        expect_verr(&dp, 1, NULL, 0, NULL, 0, CAS_VERR_DIGEST_LEN);
}

static void test_rule_symlink_target(void) {
        static char longt[4097];
        PbSN s = TVIX__CASTORE__V1__SYMLINK_NODE__INIT;
        PbSN *sp = &s;

        memset(longt, 'x', sizeof(longt));
        s.name = bin("l", 1);
        s.target = bin(NULL, 0), expect_verr(NULL, 0, NULL, 0, &sp, 1, CAS_VERR_TARGET_EMPTY);
        s.target = bin(longt, 4096), expect_verr(NULL, 0, NULL, 0, &sp, 1, CAS_VERR_TARGET_TOO_LONG);
        s.target = bin(longt, 4095), expect_verr(NULL, 0, NULL, 0, &sp, 1, CAS_VERR_NONE);
        s.target = bin("a\0b", 3), expect_verr(NULL, 0, NULL, 0, &sp, 1, CAS_VERR_TARGET_NUL);
        s.target = bin("/abs/with/slashes", 17), expect_verr(NULL, 0, NULL, 0, &sp, 1, CAS_VERR_NONE);
}

static void test_rule_size_overflow(void) {
        PbDN a = TVIX__CASTORE__V1__DIRECTORY_NODE__INIT, b = TVIX__CASTORE__V1__DIRECTORY_NODE__INIT;
        PbDN *dp[] = { &a, &b };

        a.name = bin("a", 1), a.digest = bin(zero_digest, 32), a.size = UINT64_MAX - 5;
        b.name = bin("b", 1), b.digest = bin(zero_digest, 32), b.size = 10;
        expect_verr(dp, 2, NULL, 0, NULL, 0, CAS_VERR_SIZE_OVERFLOW);
        a.size = UINT64_MAX - 12;
        expect_verr(dp, 2, NULL, 0, NULL, 0, CAS_VERR_NONE);
        a.size = UINT64_MAX - 11; /* + 10 + 2 entries = UINT64_MAX + 1 */
        expect_verr(dp, 2, NULL, 0, NULL, 0, CAS_VERR_SIZE_OVERFLOW);
}

static void test_rule_garbage(void) {
        static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f };
        static const uint8_t truncated[] = { 0x12, 0x29, 0x0a, 0x05, 0x2e };
        struct cas_directory *d;
        enum cas_verr why;

        CHECK_EQ(cas_directory_decode(junk, sizeof(junk), 0, &d, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_PROTOBUF);
        CHECK_EQ(cas_directory_decode(truncated, sizeof(truncated), 0, &d, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_PROTOBUF);
}

static void test_unknown_fields_ignored(void) {
        /* DIRECTORY_WITH_KEEP followed by field 15 (varint 1): the digest is
         * that of our re-encoding, so it equals WITH_KEEP's. */
        uint8_t buf[64];
        static const uint8_t keep[] = { 0x12, 0x29, 0x0a, 0x05, 0x2e, 0x6b, 0x65, 0x65, 0x70, 0x12, 0x20 };
        struct cas_directory *d;

        memcpy(buf, keep, sizeof(keep));
        memcpy(buf + sizeof(keep), cas_digest_empty.b, 32);
        buf[43] = 0x78, buf[44] = 0x01;
        CHECK_OK(cas_directory_decode(buf, 45, 0, &d, NULL));
        CHECK_STREQ(hex_of(d), "8b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e");
        cas_directory_free(d);
}

static void test_new_rejects(void) {
        struct cas_node n[2] = {
                { .kind = CAS_NODE_FILE, N("x"), .digest = cas_digest_empty },
                { .kind = CAS_NODE_SYMLINK, N("x"), .target = "t", .target_len = 1 },
        };
        struct cas_directory *d;
        enum cas_verr why;

        CHECK_EQ(cas_directory_new(n, 2, &d, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_DUPLICATE);
        n[1].name = "a/b", n[1].name_len = 3;
        CHECK_EQ(cas_directory_new(n, 2, &d, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_NAME_SLASH);
        CHECK(cas_size_ok(2, 1, 0));
        CHECK(!cas_size_ok(2, 1, CAS_DECODE_STRICT_SIZE));
        CHECK(!cas_size_ok(0, 1, 0));
}

static void test_node_roundtrip(void) {
        struct cas_node n = { .kind = CAS_NODE_SYMLINK, N("root"), .target = "/x", .target_len = 2 }, out;
        void *mem;
        uint8_t *buf;
        size_t len;
        enum cas_verr why;

        CHECK_OK(cas_node_encode(&n, &buf, &len));
        CHECK_OK(cas_node_decode(buf, len, 0, &out, &mem, &why));
        CHECK_EQ(out.kind, CAS_NODE_SYMLINK);
        CHECK_STREQ(out.name, "root");
        CHECK_STREQ(out.target, "/x");
        free(buf);
        free(mem);

        n = (struct cas_node){ .kind = CAS_NODE_FILE, .name = "", .digest = cas_digest_empty, .size = 0 };
        CHECK_OK(cas_node_encode(&n, &buf, &len));
        CHECK_EQ(cas_node_decode(buf, len, 0, &out, &mem, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_NAME_EMPTY);
        CHECK_OK(cas_node_decode(buf, len, CAS_NODE_ALLOW_EMPTY_NAME, &out, &mem, &why));
        free(mem);
        free(buf);
        CHECK_EQ(cas_node_decode("", 0, 0, &out, &mem, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_NODE_EMPTY);
}

int main(void) {
        RUN(test_empty);
        RUN(test_with_keep);
        RUN(test_complicated);
        RUN(test_directory_b);
        RUN(test_rule_names);
        RUN(test_rule_non_utf8_roundtrip);
        RUN(test_rule_sorting);
        RUN(test_rule_duplicate_across_lists);
        RUN(test_rule_digest_len);
        RUN(test_rule_symlink_target);
        RUN(test_rule_size_overflow);
        RUN(test_rule_garbage);
        RUN(test_unknown_fields_ignored);
        RUN(test_new_rejects);
        RUN(test_node_roundtrip);
        return 0;
}
