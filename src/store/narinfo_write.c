/* Writing narinfos: built from a PathInfo, rendered as Nix renders them,
 * and signed with a Nix signing key (Ed25519 through libcrypto). */
#include "store/narinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/nixbase32.h"
#include "util/base64.h"
#include "util/io.h"
#include "util/log.h"

static int narinfo_copy_lists(struct nix_narinfo *ni, const struct nix_pathinfo *pi) {
        if (pi->n_references > 0) {
                ni->references = calloc(pi->n_references, sizeof(*ni->references));
                if (!ni->references)
                        return -ENOMEM;
                memcpy(ni->references, pi->references, pi->n_references * sizeof(*ni->references));
                ni->n_references = pi->n_references;
        }
        if (pi->n_signatures > 0) {
                ni->signatures = calloc(pi->n_signatures, sizeof(*ni->signatures));
                if (!ni->signatures)
                        return -ENOMEM;
                for (size_t i = 0; i < pi->n_signatures; i++) {
                        ni->signatures[i].name = strdup(pi->signatures[i].name);
                        if (!ni->signatures[i].name)
                                return -ENOMEM;
                        memcpy(ni->signatures[i].data, pi->signatures[i].data, NIX_SIGNATURE_LEN);
                        ni->n_signatures = i + 1;
                }
        }
        return 0;
}

int nix_narinfo_from_pathinfo(const struct nix_pathinfo *pi, const char *url, const char *compression,
                              struct nix_narinfo **ret) {
        _cleanup_(nix_narinfo_freep) struct nix_narinfo *ni = calloc(1, sizeof(*ni));

        if (!ni)
                return -ENOMEM;
        ni->path = pi->path;
        ni->url = strdup(url);
        ni->compression = strdup(compression);
        if (!ni->url || !ni->compression || narinfo_copy_lists(ni, pi) < 0)
                return -ENOMEM;
        memcpy(ni->nar_sha256, pi->nar_sha256, NIX_SHA256_LEN);
        ni->nar_size = pi->nar_size;
        ni->has_deriver = pi->has_deriver;
        ni->deriver = pi->deriver;
        ni->has_ca = pi->has_ca;
        ni->ca_type = pi->ca_type;
        memcpy(ni->ca_digest, pi->ca_digest, sizeof(ni->ca_digest));
        *ret = TAKE_PTR(ni);
        return 0;
}

int nix_narinfo_to_pathinfo(const struct nix_narinfo *ni, const struct cas_node *root, uint64_t nar_size,
                             const uint8_t nar_sha256[NIX_SHA256_LEN], struct nix_pathinfo **ret) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        int r;

        r = nix_pathinfo_new(&ni->path, root, nar_size, nar_sha256, &pi);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ni->n_references; i++) {
                r = nix_pathinfo_add_reference(pi, &ni->references[i]);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ni->n_signatures; i++) {
                r = nix_pathinfo_add_signature(pi, ni->signatures[i].name, ni->signatures[i].data);
                if (r < 0)
                        return r;
        }
        pi->has_deriver = ni->has_deriver;
        pi->deriver = ni->deriver;
        pi->has_ca = ni->has_ca;
        pi->ca_type = ni->ca_type;
        memcpy(pi->ca_digest, ni->ca_digest, sizeof(pi->ca_digest));
        *ret = TAKE_PTR(pi);
        return 0;
}

/* One "Key: value" line per call; fprintf to a memstream. */
static void put_sha256(FILE *f, const char *key, const uint8_t d[NIX_SHA256_LEN]) {
        char b32[64];

        nixbase32_encode(d, NIX_SHA256_LEN, b32);
        fprintf(f, "%s: sha256:%s\n", key, b32);
}

static void put_tail(FILE *f, const struct nix_narinfo *ni) {
        char b[NIX_BASENAME_MAX + 1], sig[NIX_SIGNATURE_STR_MAX], ca[NIX_CA_STR_MAX];

        fputs("References: ", f);
        for (size_t i = 0; i < ni->n_references; i++) {
                nix_store_path_basename(&ni->references[i], b);
                fprintf(f, "%s%s", i ? " " : "", b);
        }
        fputc('\n', f);
        if (ni->has_deriver) {
                nix_store_path_basename(&ni->deriver, b);
                fprintf(f, "Deriver: %s\n", b);
        }
        for (size_t i = 0; i < ni->n_signatures; i++) {
                nix_signature_to_string(&ni->signatures[i], sig);
                fprintf(f, "Sig: %s\n", sig);
        }
        if (ni->has_ca && nix_ca_to_string(ni->ca_type, ni->ca_digest, ca) == 0)
                fprintf(f, "CA: %s\n", ca);
}

int nix_narinfo_format(const struct nix_narinfo *ni, char **ret, size_t *ret_len) {
        char path[NIX_PATH_MAX + 1];
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return -ENOMEM;
        nix_store_path_absolute(&ni->path, path);
        fprintf(f, "StorePath: %s\nURL: %s\nCompression: %s\n", path, ni->url, ni->compression);
        if (ni->has_file_hash)
                put_sha256(f, "FileHash", ni->file_sha256);
        if (ni->has_file_size)
                fprintf(f, "FileSize: %" PRIu64 "\n", ni->file_size);
        put_sha256(f, "NarHash", ni->nar_sha256);
        fprintf(f, "NarSize: %" PRIu64 "\n", ni->nar_size);
        put_tail(f, ni);
        if (ferror(f) | fclose(f)) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
}

/* ---- keys and signatures ---- */

static int ed25519_public_of_seed(const uint8_t seed[32], uint8_t pub[32]) {
        EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
        size_t n = 32;
        int r;

        if (!pkey)
                return -EIO;
        r = EVP_PKEY_get_raw_public_key(pkey, pub, &n) == 1 && n == 32 ? 0 : -EIO;
        EVP_PKEY_free(pkey);
        return r;
}

int nix_secret_key_parse(const char *s, size_t len, struct nix_secret_key *ret) {
        uint8_t pub[32];
        const char *colon;
        size_t name_len;
        int r;

        while (len > 0 && strchr(" \t\r\n", s[0])) {
                s++;
                len--;
        }
        while (len > 0 && strchr(" \t\r\n", s[len - 1]))
                len--;
        colon = memchr(s, ':', len);
        if (!colon)
                return -EINVAL;
        name_len = (size_t) (colon - s);
        if (name_len == 0 || name_len > NIX_SIGNATURE_NAME_MAX ||
            base64_decode(colon + 1, len - name_len - 1, ret->key, sizeof(ret->key)) != 64)
                return -EINVAL;
        memcpy(ret->name, s, name_len);
        ret->name[name_len] = 0;
        r = ed25519_public_of_seed(ret->key, pub);
        if (r < 0)
                return r;
        return memcmp(pub, ret->key + 32, 32) == 0 ? 0 : -EINVAL;
}

int nix_secret_key_load(const char *path, struct nix_secret_key *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        if (fd < 0)
                return log_error_errno(-errno, "cannot open the signing key %s: %m", path);
        r = read_file_fd(fd, 4096, &buf, &len);
        if (r < 0)
                return log_error_errno(r, "cannot read the signing key %s: %m", path);
        r = nix_secret_key_parse((const char *) buf, len, ret);
        explicit_bzero(buf, len);
        if (r == -EINVAL)
                return log_error_errno(r, "%s is not a Nix signing key (name:base64 of 64 bytes, as "
                                          "nix-store --generate-binary-cache-key writes)", path);
        if (r < 0)
                return log_error_errno(r, "cannot use the signing key %s: %m", path);
        return 0;
}

void nix_secret_key_public(const struct nix_secret_key *k, struct nix_public_key *ret) {
        memcpy(ret->name, k->name, sizeof(ret->name));
        memcpy(ret->key, k->key + 32, 32);
}

static int ed25519_sign(const uint8_t seed[32], const char *msg, uint8_t sig[NIX_SIGNATURE_LEN]) {
        EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t n = NIX_SIGNATURE_LEN;
        int r = -EIO;

        if (pkey && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
            EVP_DigestSign(ctx, sig, &n, (const unsigned char *) msg, strlen(msg)) == 1 && n == NIX_SIGNATURE_LEN)
                r = 0;
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        return r;
}

int nix_narinfo_sign(struct nix_narinfo *ni, const struct nix_secret_key *k) {
        _cleanup_free_ char *fp = NULL;
        uint8_t sig[NIX_SIGNATURE_LEN];
        struct nix_signature *t;
        int r;

        r = nix_narinfo_fingerprint(ni, &fp);
        if (r < 0)
                return r;
        r = ed25519_sign(k->key, fp, sig);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ni->n_signatures; i++)
                if (strcmp(ni->signatures[i].name, k->name) == 0) {
                        memcpy(ni->signatures[i].data, sig, NIX_SIGNATURE_LEN);
                        return 0;
                }
        t = reallocarray(ni->signatures, ni->n_signatures + 1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        ni->signatures = t;
        t[ni->n_signatures].name = strdup(k->name);
        if (!t[ni->n_signatures].name)
                return -ENOMEM;
        memcpy(t[ni->n_signatures].data, sig, NIX_SIGNATURE_LEN);
        ni->n_signatures++;
        return 0;
}
