/* narinfo parsing, the fingerprint Nix signs and Ed25519 verification of
 * its Sig lines (narinfo.h).  The one place that maps libcrypto's
 * signature failures to errno. */
#include "store/narinfo.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/nixbase32.h"
#include "util/base64.h"

void nix_narinfo_free(struct nix_narinfo *ni) {
        if (!ni)
                return;
        free(ni->url);
        free(ni->compression);
        free(ni->references);
        for (size_t i = 0; i < ni->n_signatures; i++)
                free(ni->signatures[i].name);
        free(ni->signatures);
        free(ni);
}

static int set_string(char **field, const char *v, size_t len) {
        char *s = strndup(v, len);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static bool parse_u64(const char *v, size_t len, uint64_t *ret) {
        uint64_t x = 0;

        if (len == 0 || len > 20)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return false;
                if (x > (UINT64_MAX - (uint64_t) (v[i] - '0')) / 10)
                        return false;
                x = x * 10 + (uint64_t) (v[i] - '0');
        }
        *ret = x;
        return true;
}

/* "sha256:<nixbase32 or hex>" */
static bool parse_sha256(const char *v, size_t len, uint8_t ret[NIX_SHA256_LEN]) {
        if (len < 7 || memcmp(v, "sha256:", 7) != 0)
                return false;
        return nix_hash_digest_parse(v + 7, len - 7, ret, NIX_SHA256_LEN) == 0;
}

static int parse_references(struct nix_narinfo *ni, const char *v, size_t len) {
        struct nix_store_path *refs = NULL;
        size_t n = 0, cap = 0;

        for (size_t i = 0; i < len;) {
                size_t j = i;

                while (j < len && v[j] != ' ')
                        j++;
                if (j > i) {
                        if (n == cap) {
                                struct nix_store_path *t;

                                cap = cap ? 2 * cap : 8;
                                t = reallocarray(refs, cap, sizeof(*refs));
                                if (!t) {
                                        free(refs);
                                        return -ENOMEM;
                                }
                                refs = t;
                        }
                        if (nix_store_path_from_basename(v + i, j - i, &refs[n]) < 0) {
                                free(refs);
                                return -EBADMSG;
                        }
                        n++;
                }
                i = j + 1;
        }
        free(ni->references);
        ni->references = refs;
        ni->n_references = n;
        return 0;
}

static int add_signature(struct nix_narinfo *ni, const char *v, size_t len) {
        const char *colon = memchr(v, ':', len);
        uint8_t data[NIX_SIGNATURE_LEN + 3];
        struct nix_signature *t;
        size_t name_len;
        char *name;

        if (!colon || colon == v || (size_t) (colon - v) > NIX_SIGNATURE_NAME_MAX)
                return 0; /* cannot verify: skipped */
        name_len = (size_t) (colon - v);
        if (base64_decode(colon + 1, len - name_len - 1, data, sizeof(data)) != NIX_SIGNATURE_LEN)
                return 0;
        t = reallocarray(ni->signatures, ni->n_signatures + 1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        ni->signatures = t;
        name = strndup(v, name_len);
        if (!name)
                return -ENOMEM;
        t[ni->n_signatures].name = name;
        memcpy(t[ni->n_signatures].data, data, NIX_SIGNATURE_LEN);
        ni->n_signatures++;
        return 0;
}

static int parse_deriver(struct nix_narinfo *ni, const char *v, size_t len) {
        if (len == strlen("unknown-deriver") && memcmp(v, "unknown-deriver", len) == 0) {
                ni->has_deriver = false;
                return 0;
        }
        if (nix_store_path_from_basename(v, len, &ni->deriver) < 0)
                return -EBADMSG;
        ni->has_deriver = true;
        return 0;
}

/* "/nix/store/<basename>" of exactly len bytes */
static int parse_store_path(const char *v, size_t len, struct nix_store_path *ret) {
        size_t pre = NIX_STORE_DIR_LEN + 1;

        if (len <= pre || memcmp(v, NIX_STORE_DIR "/", pre) != 0)
                return -EINVAL;
        return nix_store_path_from_basename(v + pre, len - pre, ret);
}

struct seen {
        bool path, url, nar_hash, nar_size;
};

/* One "Key: value" line.  0, -EBADMSG (*why set) or -ENOMEM. */
static int parse_field(struct nix_narinfo *ni, struct seen *seen, const char *k, size_t klen, const char *v,
                       size_t vlen, const char **why) {
#define KEY(s) (klen == strlen(s) && memcmp(k, s, klen) == 0)
        if (KEY("StorePath")) {
                seen->path = true;
                if (parse_store_path(v, vlen, &ni->path) < 0)
                        return *why = "StorePath is not a store path", -EBADMSG;
        } else if (KEY("URL")) {
                seen->url = true;
                return set_string(&ni->url, v, vlen);
        } else if (KEY("Compression"))
                return set_string(&ni->compression, v, vlen);
        else if (KEY("FileHash")) {
                if (!parse_sha256(v, vlen, ni->file_sha256))
                        return *why = "FileHash is not sha256:<digest>", -EBADMSG;
                ni->has_file_hash = true;
        } else if (KEY("FileSize")) {
                if (!parse_u64(v, vlen, &ni->file_size))
                        return *why = "FileSize is not a number", -EBADMSG;
                ni->has_file_size = true;
        } else if (KEY("NarHash")) {
                seen->nar_hash = true;
                if (!parse_sha256(v, vlen, ni->nar_sha256))
                        return *why = "NarHash is not sha256:<digest>", -EBADMSG;
        } else if (KEY("NarSize")) {
                seen->nar_size = true;
                if (!parse_u64(v, vlen, &ni->nar_size))
                        return *why = "NarSize is not a number", -EBADMSG;
        } else if (KEY("References")) {
                int r = parse_references(ni, v, vlen);
                if (r == -EBADMSG)
                        *why = "References holds an invalid store path basename";
                return r;
        } else if (KEY("Deriver")) {
                if (parse_deriver(ni, v, vlen) < 0)
                        return *why = "Deriver is not a store path basename", -EBADMSG;
        } else if (KEY("Sig"))
                return add_signature(ni, v, vlen);
        else if (KEY("CA")) {
                ni->has_ca = vlen > 0;
                if (vlen > 0 && nix_ca_parse(v, vlen, &ni->ca_type, ni->ca_digest) < 0)
                        return *why = "CA is not a content address", -EBADMSG;
        }
        return 0; /* System, unknown fields */
#undef KEY
}

static int parse_lines(struct nix_narinfo *ni, const char *buf, size_t len, const char **why) {
        struct seen seen = {};
        int r;

        for (size_t i = 0; i < len;) {
                const char *nl = memchr(buf + i, '\n', len - i);
                size_t end = nl ? (size_t) (nl - buf) : len, e = end;
                const char *colon;

                if (e > i && buf[e - 1] == '\r')
                        e--;
                if (e > i) {
                        colon = memchr(buf + i, ':', e - i);
                        if (!colon || colon + 1 >= buf + e || colon[1] != ' ') {
                                /* "Key:" with an empty value is allowed (References:) */
                                if (!colon || colon + 1 != buf + e)
                                        return *why = "a line is not \"Key: value\"", -EBADMSG;
                                r = parse_field(ni, &seen, buf + i, (size_t) (colon - buf - i), colon + 1, 0, why);
                        } else
                                r = parse_field(ni, &seen, buf + i, (size_t) (colon - buf - i), colon + 2,
                                                (size_t) (buf + e - colon - 2), why);
                        if (r < 0)
                                return r;
                }
                i = end + 1;
        }
        if (!seen.path || !seen.url || !seen.nar_hash || !seen.nar_size)
                return *why = "StorePath, URL, NarHash or NarSize is missing", -EBADMSG;
        return 0;
}

int nix_narinfo_parse(const char *buf, size_t len, struct nix_narinfo **ret, const char **ret_why) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = NULL;
        const char *why = NULL;
        int r;

        if (!buf || !ret)
                return -EINVAL;
        if (ret_why)
                *ret_why = NULL;
        if (len > NIX_NARINFO_MAX || memchr(buf, 0, len)) {
                if (ret_why)
                        *ret_why = len > NIX_NARINFO_MAX ? "narinfo too large" : "narinfo holds a NUL byte";
                return -EBADMSG;
        }
        ni = calloc(1, sizeof(*ni));
        if (!ni)
                return -ENOMEM;
        r = parse_lines(ni, buf, len, &why);
        if (r < 0) {
                if (ret_why)
                        *ret_why = why;
                return r;
        }
        if (!ni->compression && set_string(&ni->compression, "bzip2", 5) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(ni);
        return 0;
}

int nix_narinfo_fingerprint(const struct nix_narinfo *ni, char **ret) {
        char path[NIX_PATH_MAX + 1], b32[64];
        size_t cap, n;
        char *s;

        if (!ni || !ret)
                return -EINVAL;
        cap = 2 * (NIX_PATH_MAX + 1) + 128 + ni->n_references * (NIX_PATH_MAX + 1);
        s = malloc(cap);
        if (!s)
                return -ENOMEM;
        nix_store_path_absolute(&ni->path, path);
        nixbase32_encode(ni->nar_sha256, NIX_SHA256_LEN, b32);
        n = (size_t) snprintf(s, cap, "1;%s;sha256:%s;%" PRIu64 ";", path, b32, ni->nar_size);
        for (size_t i = 0; i < ni->n_references; i++) {
                if (i > 0)
                        s[n++] = ',';
                n += nix_store_path_absolute(&ni->references[i], s + n);
        }
        s[n] = 0;
        *ret = s;
        return 0;
}

int nix_public_keys_parse(const char *s, struct nix_public_key **ret, size_t *ret_n, const char **ret_bad) {
        struct nix_public_key *keys = NULL, *t;
        size_t n = 0;

        while (*s) {
                size_t len = strcspn(s, " \t\n"), name_len;
                const char *colon;

                if (len == 0) {
                        s++;
                        continue;
                }
                colon = memchr(s, ':', len);
                name_len = colon ? (size_t) (colon - s) : 0;
                t = reallocarray(keys, n + 1, sizeof(*keys));
                if (!t) {
                        free(keys);
                        return -ENOMEM;
                }
                keys = t;
                if (!colon || name_len == 0 || name_len > NIX_SIGNATURE_NAME_MAX ||
                    base64_decode(colon + 1, len - name_len - 1, keys[n].key, sizeof(keys[n].key)) != 32) {
                        free(keys);
                        if (ret_bad)
                                *ret_bad = s;
                        return -EINVAL;
                }
                memcpy(keys[n].name, s, name_len);
                keys[n].name[name_len] = 0;
                n++;
                s += len;
        }
        *ret = keys;
        *ret_n = n;
        return 0;
}

/* 1 verified, 0 not, -ENOMEM/-EIO */
static int ed25519_verify(const uint8_t key[32], const uint8_t sig[NIX_SIGNATURE_LEN], const char *msg) {
        EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key, 32);
        EVP_MD_CTX *ctx;
        int r;

        if (!pkey)
                return 0; /* not a valid point: nothing verifies with it */
        ctx = EVP_MD_CTX_new();
        if (!ctx) {
                EVP_PKEY_free(pkey);
                return -ENOMEM;
        }
        r = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 ? 0 : -EIO;
        if (r == 0)
                r = EVP_DigestVerify(ctx, sig, NIX_SIGNATURE_LEN, (const unsigned char *) msg, strlen(msg)) == 1;
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        return r;
}

int nix_narinfo_verify(const struct nix_narinfo *ni, const struct nix_public_key *keys, size_t n_keys,
                       size_t *ret_key) {
        _cleanup_free_ char *fp = NULL;
        int r;

        r = nix_narinfo_fingerprint(ni, &fp);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ni->n_signatures; i++)
                for (size_t k = 0; k < n_keys; k++) {
                        if (strcmp(ni->signatures[i].name, keys[k].name) != 0)
                                continue;
                        r = ed25519_verify(keys[k].key, ni->signatures[i].data, fp);
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                if (ret_key)
                                        *ret_key = k;
                                return 1;
                        }
                }
        return 0;
}
