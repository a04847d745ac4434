/* Unit tests for store paths: basename and absolute parsing, Nix's name
 * rules, formatting, and text/source path known answers from real Nix. */
#include "store/storepath.h"
#include "test.h"

#define P(s) nix_store_path_from_basename((s), strlen(s), &p)

static void test_parse_basename(void) {
        struct nix_store_path p;
        char buf[NIX_BASENAME_MAX + 1];

        CHECK_OK(P("00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432"));
        CHECK_STREQ(p.name, "net-tools-1.60_p20170221182432");
        CHECK_EQ(p.name_len, 30);
        CHECK_EQ(p.digest[0], 0x8a);
        CHECK_EQ(p.digest[19], 0x00);
        CHECK_EQ(nix_store_path_basename(&p, buf), 32 + 1 + 30);
        CHECK_STREQ(buf, "00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432");

        /* every allowed character */
        CHECK_OK(P("00bgd045z0d4icpbc2yyz4gx48ak44la-aZ09+-._?="));
        /* leading period: accepted by Nix >= 2.4 unless . or .. is the first component */
        CHECK_OK(P("00bgd045z0d4icpbc2yyz4gx48ak44la-.dot"));
        CHECK_OK(P("00bgd045z0d4icpbc2yyz4gx48ak44la-..dot"));
        CHECK_OK(P("00bgd045z0d4icpbc2yyz4gx48ak44la-..."));
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-."), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-.."), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-.-foo"), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-..-foo"), -EINVAL);

        /* bad digest part */
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44lo-foo"), -EINVAL); /* 'o' */
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44l-foo"), -EINVAL);  /* 31 chars */
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44laa-foo"), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la_foo"), -EINVAL); /* no dash */
        CHECK_OK(P("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-foo")); /* 160 bits: no carry possible */
        CHECK_EQ(P("00BGD045Z0D4ICPBC2YYZ4GX48AK44LA-foo"), -EINVAL);
        /* bad names */
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-"), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la"), -EINVAL);
        CHECK_EQ(P(""), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-a/b"), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-a b"), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-caf\xc3\xa9"), -EINVAL);
        CHECK_EQ(P("00bgd045z0d4icpbc2yyz4gx48ak44la-a:b"), -EINVAL);
        CHECK_EQ(nix_store_path_from_basename("00bgd045z0d4icpbc2yyz4gx48ak44la-a\0b", 36, &p), -EINVAL);
        /* length limit: 211 is fine, 212 is not */
        char name[40 + 212];
        memcpy(name, "00bgd045z0d4icpbc2yyz4gx48ak44la-", 33);
        memset(name + 33, 'x', 212);
        CHECK_OK(nix_store_path_from_basename(name, 33 + 211, &p));
        CHECK_EQ(p.name_len, 211);
        CHECK_EQ(nix_store_path_from_basename(name, 33 + 212, &p), -EINVAL);
        CHECK_EQ(nix_name_check("x", 0), -EINVAL);
}

static void test_parse_absolute(void) {
        struct nix_store_path p;
        const char *sub;
        char buf[NIX_PATH_MAX + 1];

        CHECK_OK(nix_store_path_from_absolute("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo", &p, NULL));
        CHECK_STREQ(p.name, "foo");
        CHECK_EQ(nix_store_path_absolute(&p, buf), 11 + 32 + 1 + 3);
        CHECK_STREQ(buf, "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo");
        CHECK_EQ(nix_store_path_from_absolute("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo/bin/sh", &p, NULL),
                 -EINVAL);
        CHECK_OK(nix_store_path_from_absolute("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo/bin/sh", &p, &sub));
        CHECK_STREQ(sub, "/bin/sh");
        CHECK_OK(nix_store_path_from_absolute("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo", &p, &sub));
        CHECK_STREQ(sub, "");
        CHECK_EQ(nix_store_path_from_absolute("/nix/store/", &p, &sub), -EINVAL);
        CHECK_EQ(nix_store_path_from_absolute("/nix/store//00bgd045z0d4icpbc2yyz4gx48ak44la-foo", &p, &sub), -EINVAL);
        CHECK_EQ(nix_store_path_from_absolute("/nix/stor/00bgd045z0d4icpbc2yyz4gx48ak44la-foo", &p, &sub), -EINVAL);
        CHECK_EQ(nix_store_path_from_absolute("/gnu/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo", &p, &sub), -EINVAL);
        CHECK_EQ(nix_store_path_from_absolute("nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo", &p, &sub), -EINVAL);

        /* either form */
        CHECK_OK(nix_store_path_parse("00bgd045z0d4icpbc2yyz4gx48ak44la-foo", &p, &sub));
        CHECK_STREQ(sub, "");
        CHECK_OK(nix_store_path_parse("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-foo/x", &p, &sub));
        CHECK_STREQ(sub, "/x");
        CHECK_EQ(nix_store_path_parse("00bgd045z0d4icpbc2yyz4gx48ak44la-foo/x", &p, &sub), -EINVAL);
}

static void test_compare(void) {
        struct nix_store_path a, b;

        CHECK_OK(nix_store_path_from_basename("00bgd045z0d4icpbc2yyz4gx48ak44la-b", 34, &a));
        CHECK_OK(nix_store_path_from_basename("10bgd045z0d4icpbc2yyz4gx48ak44la-a", 34, &b));
        CHECK(nix_store_path_compare(&a, &b) < 0);
        CHECK(nix_store_path_compare(&b, &a) > 0);
        CHECK(nix_store_path_equal(&a, &a));
}

static void abs_of(const struct nix_store_path *p, char *buf) {
        nix_store_path_absolute(p, buf);
}

static void test_text_paths(void) {
        struct nix_store_path p, refs[3];
        char buf[NIX_PATH_MAX + 1];

        /* nix-instantiate --eval -E 'builtins.toFile "foo" "bar"' */
        CHECK_OK(nix_store_path_make_text("foo", 3, "bar", 3, NULL, 0, &p));
        abs_of(&p, buf);
        CHECK_STREQ(buf, "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo");

        /* builtins.toFile "x" "y" and builtins.toFile "a" "z" */
        CHECK_OK(nix_store_path_make_text("x", 1, "y", 1, NULL, 0, &refs[0]));
        abs_of(&refs[0], buf);
        CHECK_STREQ(buf, "/nix/store/lfngsssysp6h1v4ccqg23c52s9sjl779-x");
        CHECK_OK(nix_store_path_make_text("a", 1, "z", 1, NULL, 0, &refs[1]));
        abs_of(&refs[1], buf);
        CHECK_STREQ(buf, "/nix/store/capi7w5i7rp2pkvhkn6hw35a8ik7q04k-a");
        refs[2] = refs[0];

        /* builtins.toFile "foo" "${b} ${a} ${a}": references {a, b}, given
         * here unsorted and with a duplicate, as Nix's set would hold them */
        const char *content = "/nix/store/capi7w5i7rp2pkvhkn6hw35a8ik7q04k-a "
                              "/nix/store/lfngsssysp6h1v4ccqg23c52s9sjl779-x "
                              "/nix/store/lfngsssysp6h1v4ccqg23c52s9sjl779-x";
        CHECK_OK(nix_store_path_make_text("foo", 3, content, strlen(content), refs, 3, &p));
        abs_of(&p, buf);
        CHECK_STREQ(buf, "/nix/store/5wlilpgv8bhibm9d7s0dszwxcva7362n-foo");

        CHECK_EQ(nix_store_path_make_text("a/b", 3, "", 0, NULL, 0, &p), -EINVAL);
}

static void test_source_paths(void) {
        struct nix_store_path p;
        char buf[NIX_PATH_MAX + 1];
        /* nix-store --add of a directory "src" holding the file f = "hi\n":
         * NAR sha256 = nix-store --query --hash, in hex */
        static const uint8_t nar_sha256[32] = {
                0x33, 0x21, 0x30, 0x29, 0x1e, 0xdf, 0xac, 0xb9, 0x09, 0x5f, 0x20, 0x93, 0x01, 0x89, 0xa1, 0x00,
                0x20, 0x1e, 0x9a, 0xdd, 0xa1, 0xe0, 0x4b, 0x33, 0x02, 0x8d, 0x38, 0x96, 0xd1, 0x2e, 0xef, 0xca,
        };

        CHECK_OK(nix_store_path_make_source("src", 3, nar_sha256, NULL, 0, false, &p));
        abs_of(&p, buf);
        CHECK_STREQ(buf, "/nix/store/qp2422fm4lgfh6979k71gsw0n9nf512m-src");
}

/* Source paths with references and a self-reference: paths real Nix
 * accepted from a cache without signatures, which it does only when the
 * path is what makeFixedOutputPath gives for the CA and references. */
static void test_source_paths_refs(void) {
        static const uint8_t nar_sha256[32] = {
                0x35, 0x6e, 0x9e, 0x8e, 0xad, 0xb2, 0x54, 0xcf, 0xe0, 0xa2, 0xd5, 0x45, 0xea, 0x0f, 0x93, 0x03,
                0xb0, 0x76, 0x20, 0xab, 0x2d, 0x87, 0x46, 0xe0, 0xb0, 0xbf, 0x0d, 0xb1, 0xc7, 0x9e, 0x14, 0xcc,
        };
        struct nix_store_path refs[2], p;
        char buf[NIX_PATH_MAX + 1];
        const char *sub;

        CHECK_OK(nix_store_path_parse("/nix/store/c50r857dkp7ww72qhcxfbds160hlk81v-tree", &refs[0], &sub));
        refs[1] = refs[0]; /* a duplicate counts once, as in Nix's set */
        CHECK_OK(nix_store_path_make_source("t2", 2, nar_sha256, refs, 2, false, &p));
        abs_of(&p, buf);
        CHECK_STREQ(buf, "/nix/store/lpb2pnkqa8j2z892bhqdiaz52iyqfms3-t2");
        CHECK_OK(nix_store_path_make_source("t4", 2, nar_sha256, refs, 1, true, &p));
        abs_of(&p, buf);
        CHECK_STREQ(buf, "/nix/store/q7q3pdkxx9vizh35zkhqyf9s9q6x0zr2-t4");
}

int main(void) {
        RUN(test_parse_basename);
        RUN(test_parse_absolute);
        RUN(test_compare);
        RUN(test_text_paths);
        RUN(test_source_paths);
        RUN(test_source_paths_refs);
        return 0;
}
