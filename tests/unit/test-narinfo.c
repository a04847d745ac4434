/* Unit tests for the binary cache pieces: narinfo parsing (Nix-written
 * and tolerated quirks), the fingerprint and Ed25519 check against a key
 * nix-store --generate-binary-cache-key made, CA parsing, public keys, and
 * the streaming decompressors on NARs Nix 2.8 compressed. */
#include "store/decompress.h"
#include "store/narinfo.h"
#include "store/nixbase32.h"
#include "store/nixcache.h"
#include "test.h"

/* The NAR of a text path (builtins.toFile "a" "x") as Nix 2.8 wrote it
 * with each compression (nix copy --to file://...?compression=C). */
static const uint8_t nar_none[] = {
        0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6e, 0x69, 0x78, 0x2d,
        0x61, 0x72, 0x63, 0x68, 0x69, 0x76, 0x65, 0x2d, 0x31, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x74, 0x79, 0x70, 0x65, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x72, 0x65, 0x67, 0x75, 0x6c, 0x61, 0x72, 0x00,
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x6f, 0x6e, 0x74,
        0x65, 0x6e, 0x74, 0x73, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x78, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t nar_xz[] = {
        0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x46,
        0x02, 0x00, 0x21, 0x01, 0x16, 0x00, 0x00, 0x00, 0x74, 0x2f, 0xe5, 0xa3,
        0xe0, 0x00, 0x77, 0x00, 0x3d, 0x5d, 0x00, 0x06, 0x80, 0x36, 0x1f, 0xef,
        0xa6, 0xce, 0xbf, 0x76, 0xba, 0x1a, 0x7a, 0x4f, 0x2b, 0xea, 0xa4, 0x53,
        0x24, 0xed, 0xa1, 0x23, 0x04, 0x71, 0xff, 0x5b, 0xbf, 0x97, 0x69, 0xba,
        0xf3, 0x29, 0xbe, 0x24, 0x49, 0xa4, 0x70, 0x5d, 0x8f, 0x30, 0x0b, 0x47,
        0x28, 0x13, 0x33, 0xbd, 0x17, 0xb3, 0xb3, 0x3c, 0xae, 0x39, 0xb2, 0x47,
        0x7f, 0xcd, 0xdc, 0x9a, 0x35, 0xe8, 0xef, 0x54, 0x00, 0x00, 0x00, 0x00,
        0x69, 0x8b, 0x09, 0x0a, 0x6d, 0x7e, 0x9b, 0xb9, 0x00, 0x01, 0x59, 0x78,
        0x38, 0xaa, 0x21, 0x15, 0x1f, 0xb6, 0xf3, 0x7d, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x04, 0x59, 0x5a,
};
static const uint8_t nar_zstd[] = {
        0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0xa5, 0x02, 0x00, 0xe4, 0x03, 0x0d,
        0x00, 0x6e, 0x69, 0x78, 0x2d, 0x61, 0x72, 0x63, 0x68, 0x69, 0x76, 0x65,
        0x2d, 0x31, 0x00, 0x00, 0x00, 0x01, 0x00, 0x28, 0x00, 0x04, 0x00, 0x74,
        0x79, 0x70, 0x65, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x72, 0x65, 0x67,
        0x75, 0x6c, 0x61, 0x72, 0x00, 0x08, 0x00, 0x63, 0x6f, 0x6e, 0x74, 0x65,
        0x6e, 0x74, 0x73, 0x78, 0x01, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x09, 0x00, 0x20, 0x0b, 0xe4, 0x3b, 0x04, 0xc2, 0xc1, 0x40, 0x60,
        0x20, 0x30, 0x30, 0x18, 0x18, 0x18, 0x61, 0x00, 0x6d,
};
static const uint8_t nar_bzip2[] = {
        0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0x9e, 0x9c,
        0x64, 0xdf, 0x00, 0x00, 0x20, 0xd9, 0x80, 0x6c, 0xc2, 0x00, 0x62, 0x20,
        0x00, 0x2a, 0xe5, 0xdf, 0x60, 0x20, 0x00, 0x48, 0x68, 0x91, 0xa3, 0x65,
        0x36, 0xa1, 0xa3, 0x4c, 0x8f, 0x53, 0x11, 0x1a, 0x00, 0x00, 0x00, 0x19,
        0xd1, 0x62, 0x11, 0x55, 0x73, 0x49, 0x99, 0x10, 0x02, 0xc7, 0x3b, 0xc0,
        0x10, 0x81, 0x83, 0x26, 0x6d, 0xea, 0x7a, 0xc6, 0xef, 0x97, 0xd2, 0xad,
        0xbd, 0x74, 0x74, 0xa7, 0xdc, 0x04, 0x31, 0x60, 0x3d, 0xf0, 0x94, 0xff,
        0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0x9e, 0x9c, 0x64, 0xdf,
};
static const uint8_t nar_br[] = {
        0x1b, 0x77, 0x00, 0xe0, 0x07, 0xc1, 0x6d, 0x3b, 0x1c, 0xb4, 0x58, 0xba,
        0x86, 0x07, 0x6b, 0xb4, 0x98, 0x0f, 0x13, 0x39, 0xa0, 0x04, 0x35, 0xb7,
        0xf4, 0xf3, 0xc3, 0x06, 0x1c, 0x44, 0x1e, 0xf4, 0xb9, 0x00, 0xff, 0x75,
        0x99, 0x5f, 0x5d, 0x04, 0x60, 0x03, 0x12, 0x30, 0x4d, 0xc2, 0x00, 0xc4,
        0xd9, 0x04, 0x3c, 0x3e, 0x03, 0xd0, 0x00, 0x38,
};

#define KEY "test-1:wMOc6DAYiGaYoXHJ9qA3wj90+LENl+9UUXPr+nJauX4="
#define OTHER_KEY "test-1:zEAG+VtMquMlaKV3v/Q5r4Bxi9mNma7QZqenZHacZjY="
#define NARINFO_D                                                                          \
        "StorePath: /nix/store/2ri92b2l0r1my1w9ph106gz11d4hqf7a-d\n"                        \
        "URL: nar/0ccymcksvhm5z4khzpqwk4diwb02lb4v525xywxn2d9724kha2pk.nar\n"                \
        "Compression: none\n"                                                              \
        "FileHash: sha256:0ccymcksvhm5z4khzpqwk4diwb02lb4v525xywxn2d9724kha2pk\n"           \
        "FileSize: 160\n"                                                                  \
        "NarHash: sha256:0ccymcksvhm5z4khzpqwk4diwb02lb4v525xywxn2d9724kha2pk\n"            \
        "NarSize: 160\n"                                                                   \
        "References: 12wigjpizrn8axaqxj288q1b751qmwya-a\n"                                  \
        "Deriver: 1haw9f8iq96brb21qicgh5ddy887by51-d.drv\n"                                 \
        "Sig: test-1:W4YW81P70IyxiDiBt70znOGkRvizdg6DcwvFJdxl9rwTErr7xtUxGAfqvV49YF/UJOY9TnrBSEQO/avGw1Z7AQ==\n"
#define NARINFO_A                                                                          \
        "StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\n"                        \
        "URL: nar/0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c.nar\n"                \
        "Compression: none\n"                                                              \
        "FileHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n"           \
        "FileSize: 120\n"                                                                  \
        "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n"            \
        "NarSize: 120\n"                                                                   \
        "References: \n"                                                                   \
        "Sig: test-1:N8NiG5+99gFDflWVeReJqi/s1MjXTFyA3Z7eb+aYCYc+KBAHMVpQayoIN3+/I7pgWSoKrp0zS0Bv1FUjb9BCAg==\n" \
        "CA: text:sha256:10a83a91g1r50bdw8g4hn47m7j7m6angpabwc80l9c16nx11cw9d\n"

static struct nix_narinfo *parse_ok(const char *s) {
        struct nix_narinfo *ni = NULL;
        const char *why = NULL;
        int r = nix_narinfo_parse(s, strlen(s), &ni, &why);

        if (r < 0)
                fprintf(stderr, "parse: %d %s\n", r, why ? why : "");
        CHECK_OK(r);
        return ni;
}

static void parse_bad(const char *s) {
        struct nix_narinfo *ni = NULL;
        const char *why = NULL;

        CHECK_EQ(nix_narinfo_parse(s, strlen(s), &ni, &why), -EBADMSG);
        CHECK(why != NULL);
        CHECK(ni == NULL);
}

static int verify_with(const struct nix_narinfo *ni, const char *keys) {
        _cleanup_free_ struct nix_public_key *k = NULL;
        size_t n = 0;

        CHECK_OK(nix_public_keys_parse(keys, &k, &n, NULL));
        return nix_narinfo_verify(ni, k, n, NULL);
}

static void test_nix_written(void) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *d = parse_ok(NARINFO_D);
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *a = parse_ok(NARINFO_A);
        _cleanup_free_ char *fp = NULL;
        char b[NIX_BASENAME_MAX + 1], ca[NIX_CA_STR_MAX];

        CHECK_STREQ(d->path.name, "d");
        CHECK_STREQ(d->url, "nar/0ccymcksvhm5z4khzpqwk4diwb02lb4v525xywxn2d9724kha2pk.nar");
        CHECK_STREQ(d->compression, "none");
        CHECK(d->has_file_hash && d->has_file_size && d->file_size == 160 && d->nar_size == 160);
        CHECK_EQ(d->n_references, 1u);
        nix_store_path_basename(&d->references[0], b);
        CHECK_STREQ(b, "12wigjpizrn8axaqxj288q1b751qmwya-a");
        CHECK(d->has_deriver);
        nix_store_path_basename(&d->deriver, b);
        CHECK_STREQ(b, "1haw9f8iq96brb21qicgh5ddy887by51-d.drv");
        CHECK_EQ(d->n_signatures, 1u);
        CHECK_STREQ(d->signatures[0].name, "test-1");
        CHECK(!d->has_ca);
        CHECK_OK(nix_narinfo_fingerprint(d, &fp));
        CHECK_STREQ(fp, "1;/nix/store/2ri92b2l0r1my1w9ph106gz11d4hqf7a-d;sha256:0ccymcksvhm5z4khzpqwk4diwb02lb4v525xywxn2d9724kha2pk;160;"
                        "/nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a");
        CHECK_EQ(verify_with(d, KEY), 1);
        CHECK_EQ(verify_with(d, OTHER_KEY), 0);
        CHECK_EQ(verify_with(d, "other-1:wMOc6DAYiGaYoXHJ9qA3wj90+LENl+9UUXPr+nJauX4="), 0); /* name differs */
        CHECK_EQ(verify_with(d, OTHER_KEY " " KEY), 1);
        CHECK_EQ(verify_with(a, KEY), 1);
        CHECK_EQ(a->n_references, 0u);
        CHECK(a->has_ca && a->ca_type == NIX_CA_TEXT_SHA256);
        CHECK_OK(nix_ca_to_string(a->ca_type, a->ca_digest, ca));
        CHECK_STREQ(ca, "text:sha256:10a83a91g1r50bdw8g4hn47m7j7m6angpabwc80l9c16nx11cw9d");
        /* what the signature covers */
        d->nar_size++;
        CHECK_EQ(verify_with(d, KEY), 0);
        d->nar_size--;
        d->n_references = 0;
        CHECK_EQ(verify_with(d, KEY), 0);
}

static void test_tolerated(void) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL, *hex = NULL;
        uint8_t want[NIX_SHA256_LEN];

        /* hex NarHash, no References, unknown deriver, unknown and repeated
         * fields, no Compression, CRLF, no final newline */
        ni = parse_ok("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\r\n"
                      "URL: nar/x.nar.bz2?hash=1\r\n"
                      "NarHash: sha256:0000000000000000000000000000000000000000000000000000\n"
                      "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n"
                      "NarSize: 120\n"
                      "Deriver: unknown-deriver\n"
                      "System: x86_64-linux\n"
                      "Frobnicate: yes\n"
                      "Sig: broken\n"
                      "Sig: test-1:N8NiG5+99gFDflWVeReJqi/s1MjXTFyA3Z7eb+aYCYc+KBAHMVpQayoIN3+/I7pgWSoKrp0zS0Bv1FUjb9BCAg==");
        CHECK_STREQ(ni->compression, "bzip2");
        CHECK_STREQ(ni->url, "nar/x.nar.bz2?hash=1");
        CHECK(!ni->has_deriver && !ni->has_file_hash && ni->n_references == 0);
        CHECK_EQ(ni->n_signatures, 1u);
        CHECK_EQ(verify_with(ni, KEY), 1);
        CHECK_EQ(nixbase32_decode("0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c", 52, want, sizeof(want)), 32);
        CHECK(memcmp(ni->nar_sha256, want, 32) == 0);
        {
                char h[65], s[512];
                nix_sha256_to_hex(want, h);
                snprintf(s, sizeof(s), "StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\n"
                                       "NarHash: sha256:%s\nNarSize: 120\nReferences: \n", h);
                hex = parse_ok(s);
                CHECK(memcmp(hex->nar_sha256, want, 32) == 0);
        }
        /* unsorted references keep their order (the fingerprint uses it) */
        nix_narinfo_free(TAKE_PTR(ni));
        ni = parse_ok("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: 1\n"
                      "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n"
                      "References: 2ri92b2l0r1my1w9ph106gz11d4hqf7a-d  12wigjpizrn8axaqxj288q1b751qmwya-a\n");
        CHECK_EQ(ni->n_references, 2u);
        CHECK_STREQ(ni->references[0].name, "d");
}

static void test_refused(void) {
        parse_bad("");
        parse_bad("URL: u\nNarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\nNarSize: 1\n");
        parse_bad("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: 1\n"
                  "NarHash: md5:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n");
        parse_bad("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: -1\n"
                  "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n");
        parse_bad("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: 99999999999999999999\n"
                  "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n");
        parse_bad("StorePath: /tmp/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: 1\n"
                  "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\n");
        parse_bad("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: 1\n"
                  "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\nno colon here\n");
        parse_bad("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: 1\n"
                  "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\nReferences: not-a-path\n");
        parse_bad("StorePath: /nix/store/12wigjpizrn8axaqxj288q1b751qmwya-a\nURL: u\nNarSize: 1\n"
                  "NarHash: sha256:0rsv7kag23nvdpy4500mv2m0b4sm4c8fkgqrfsrmv1kgk77bi81c\nCA: fixed:r:sha257:x\n");
}

static void test_ca_and_keys(void) {
        enum nix_ca_hash t;
        uint8_t d[NIX_CA_DIGEST_MAX];
        struct nix_public_key *k = NULL;
        const char *bad = NULL;
        size_t n;
        const char *s = "fixed:r:sha256:10a83a91g1r50bdw8g4hn47m7j7m6angpabwc80l9c16nx11cw9d";

        CHECK_OK(nix_ca_parse(s, strlen(s), &t, d));
        CHECK_EQ(t, NIX_CA_NAR_SHA256);
        s = "fixed:sha1:0000000000000000000000000000000000000000";
        CHECK_OK(nix_ca_parse(s, strlen(s), &t, d));
        CHECK_EQ(t, NIX_CA_FLAT_SHA1);
        s = "fixed:r:sha256:10a8";
        CHECK_EQ(nix_ca_parse(s, strlen(s), &t, d), -EINVAL);
        CHECK_EQ(nix_public_keys_parse("  " KEY "\n" OTHER_KEY " ", &k, &n, NULL), 0);
        CHECK_EQ(n, 2u);
        CHECK_STREQ(k[1].name, "test-1");
        free(k);
        CHECK_EQ(nix_public_keys_parse(KEY " nocolon", &k, &n, &bad), -EINVAL);
        CHECK_STREQ(bad, "nocolon");
        CHECK_EQ(nix_public_keys_parse("x:AAAA", &k, &n, &bad), -EINVAL);
        CHECK_EQ(nix_public_keys_parse(":wMOc6DAYiGaYoXHJ9qA3wj90+LENl+9UUXPr+nJauX4=", &k, &n, &bad), -EINVAL);
}

struct mem {
        const uint8_t *p;
        size_t len, pos, chunk;
};

static ssize_t mem_read(void *userdata, void *buf, size_t len) {
        struct mem *m = userdata;
        size_t n = m->len - m->pos;

        if (n > len)
                n = len;
        if (n > m->chunk)
                n = m->chunk;
        memcpy(buf, m->p + m->pos, n);
        m->pos += n;
        return (ssize_t) n;
}

/* Decompresses all of in (fed chunk bytes at a time, read out step bytes
 * at a time) into out: the length or a negative errno. */
static ssize_t decompress(const char *method, const uint8_t *in, size_t len, size_t chunk, size_t step, uint8_t *out,
                          size_t max) {
        _cleanup_(nix_decompress_freep) struct nix_decompress *d = NULL;
        struct mem m = { in, len, 0, chunk };
        size_t tot = 0;
        ssize_t n;

        CHECK_OK(nix_decompress_new(method, mem_read, &m, &d));
        do {
                n = nix_decompress_read(d, out + tot, step < max - tot ? step : max - tot);
                if (n > 0)
                        tot += (size_t) n;
        } while (n > 0 && tot < max);
        if (n < 0)
                return n;
        if (tot == max && nix_decompress_read(d, out, 1) != 0)
                return -E2BIG;
        return (ssize_t) tot;
}

static void test_decompress(void) {
        static const struct {
                const char *method;
                const uint8_t *data;
                size_t len;
        } v[] = {
                { "none", nar_none, sizeof(nar_none) }, { "xz", nar_xz, sizeof(nar_xz) },
                { "zstd", nar_zstd, sizeof(nar_zstd) }, { "bzip2", nar_bzip2, sizeof(nar_bzip2) },
                { "br", nar_br, sizeof(nar_br) },
        };
        static const size_t sizes[] = { 1, 7, 8, 4096 };
        uint8_t out[256], bad[256];

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                for (size_t c = 0; c < ELEMENTSOF(sizes); c++)
                        for (size_t s = 0; s < ELEMENTSOF(sizes); s++) {
                                ssize_t n = decompress(v[i].method, v[i].data, v[i].len, sizes[c], sizes[s], out,
                                                       sizeof(out));
                                if (n != (ssize_t) sizeof(nar_none))
                                        fprintf(stderr, "%s chunk %zu step %zu: %zd\n", v[i].method, sizes[c],
                                                sizes[s], n);
                                CHECK_EQ(n, (ssize_t) sizeof(nar_none));
                                CHECK(memcmp(out, nar_none, sizeof(nar_none)) == 0);
                        }
                if (strcmp(v[i].method, "none") == 0)
                        continue;
                /* truncated: every proper prefix fails */
                for (size_t cut = 0; cut < v[i].len; cut++)
                        CHECK(decompress(v[i].method, v[i].data, cut, 4096, 4096, out, sizeof(out)) < 0 ||
                              decompress(v[i].method, v[i].data, cut, 4096, 4096, out, sizeof(out)) !=
                                      (ssize_t) sizeof(nar_none));
                /* trailing garbage */
                memcpy(bad, v[i].data, v[i].len);
                bad[v[i].len] = 0x42;
                CHECK_EQ(decompress(v[i].method, bad, v[i].len + 1, 4096, 4096, out, sizeof(out)), -EBADMSG);
        }
        {
                struct nix_decompress *d = NULL;
                CHECK_EQ(nix_decompress_new("lz4", mem_read, NULL, &d), -EOPNOTSUPP);
        }
}

/* A key made by nix-store --generate-binary-cache-key unit-1 (secret,
 * then the public file). */
#define UNIT_SECRET "unit-1:w9kpwQtkV8nEeq64+SnZdCokLcQmS7yZKFC4z4YNjTjeSlp9idl5BDYomK/il2Kn1OIAvE3FN79eTrBx8H3aIg==\n"
#define UNIT_PUBLIC "unit-1:3kpafYnZeQQ2KJiv4pdip9TiALxNxTe/Xk6wcfB92iI="

/* What Nix wrote comes back byte for byte; signatures we make verify. */
static void test_write_and_sign(void) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *d = parse_ok(NARINFO_D);
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *a = parse_ok(NARINFO_A);
        _cleanup_free_ char *text_d = NULL, *text_a = NULL;
        _cleanup_free_ struct nix_public_key *pub = NULL;
        struct nix_secret_key k, bad;
        struct nix_public_key mine;
        size_t n, len;
        char *flip;

        CHECK_OK(nix_narinfo_format(d, &text_d, &len));
        CHECK_STREQ(text_d, NARINFO_D);
        CHECK_EQ(len, strlen(NARINFO_D));
        CHECK_OK(nix_narinfo_format(a, &text_a, NULL));
        CHECK_STREQ(text_a, NARINFO_A);

        CHECK_OK(nix_secret_key_parse(UNIT_SECRET, strlen(UNIT_SECRET), &k));
        CHECK_STREQ(k.name, "unit-1");
        CHECK_OK(nix_public_keys_parse(UNIT_PUBLIC, &pub, &n, NULL));
        nix_secret_key_public(&k, &mine);
        CHECK(memcmp(mine.key, pub[0].key, 32) == 0);
        CHECK_EQ(verify_with(d, UNIT_PUBLIC), 0);
        CHECK_OK(nix_narinfo_sign(d, &k));
        CHECK_EQ(d->n_signatures, 2u);
        CHECK_EQ(verify_with(d, UNIT_PUBLIC), 1);
        CHECK_EQ(verify_with(d, KEY), 1); /* Nix's signature kept */
        CHECK_OK(nix_narinfo_sign(d, &k)); /* same name: replaced */
        CHECK_EQ(d->n_signatures, 2u);
        d->nar_size++;
        CHECK_EQ(verify_with(d, UNIT_PUBLIC), 0);

        /* a secret key whose public half is not its seed's */
        flip = strdup(UNIT_SECRET);
        flip[60] = flip[60] == 'A' ? 'B' : 'A';
        CHECK_EQ(nix_secret_key_parse(flip, strlen(flip), &bad), -EINVAL);
        free(flip);
        CHECK_EQ(nix_secret_key_parse(UNIT_PUBLIC, strlen(UNIT_PUBLIC), &bad), -EINVAL);
        CHECK_EQ(nix_secret_key_parse("unit-1", 6, &bad), -EINVAL);
}

/* Nix's store URL parameters, as copy --to reads them */
static void test_url_params(void) {
        const char *url = "file:///c?compression=zstd&secret-key=/k%2Bs/a+b%20c.sec&write-nar-listing=1&x=";
        char *v = NULL;

        CHECK_OK(nix_cache_url_param(url, "compression", &v));
        CHECK_STREQ(v, "zstd");
        free(v);
        CHECK_OK(nix_cache_url_param(url, "secret-key", &v));
        CHECK_STREQ(v, "/k+s/a+b c.sec"); /* '+' stays, as in Nix */
        free(v);
        CHECK_OK(nix_cache_url_param(url, "write-nar-listing", &v));
        CHECK_STREQ(v, "1");
        free(v);
        CHECK_OK(nix_cache_url_param(url, "x", &v)); /* empty, not absent */
        CHECK_STREQ(v, "");
        free(v);
        CHECK_EQ(nix_cache_url_param(url, "compress", &v), -ENOENT);
        CHECK_EQ(nix_cache_url_param("file:///c", "compression", &v), -ENOENT);
        CHECK_EQ(nix_cache_url_param("http://h/?a=%zz%4", "a", &v), 0);
        CHECK_STREQ(v, "%zz%4");
        free(v);
}

int main(void) {
        test_url_params();
        test_nix_written();
        test_tolerated();
        test_refused();
        test_ca_and_keys();
        test_decompress();
        test_write_and_sign();
        return *test_exit_code();
}
