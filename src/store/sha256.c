/* SHA-256 wrappers over OpenSSL EVP (see sha256.h). */
#include "store/sha256.h"

#include <errno.h>
#include <openssl/evp.h>

#include "util/hex.h"

int nix_sha256_init(struct nix_sha256 *h) {
        h->failed = false;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                nix_sha256_done(h);
                return -EIO;
        }
        return 0;
}

void nix_sha256_update(struct nix_sha256 *h, const void *data, size_t len) {
        if (len > 0 && EVP_DigestUpdate(h->ctx, data, len) != 1)
                h->failed = true;
}

int nix_sha256_final(struct nix_sha256 *h, uint8_t ret[NIX_SHA256_LEN]) {
        unsigned n = 0;
        int r = 0;

        if (h->failed || EVP_DigestFinal_ex(h->ctx, ret, &n) != 1 || n != NIX_SHA256_LEN)
                r = -EIO;
        nix_sha256_done(h);
        return r;
}

void nix_sha256_done(struct nix_sha256 *h) {
        EVP_MD_CTX_free(h->ctx);
        h->ctx = NULL;
}

int nix_sha256_of(const void *data, size_t len, uint8_t ret[NIX_SHA256_LEN]) {
        unsigned n = 0;

        if (EVP_Digest(data, len, ret, &n, EVP_sha256(), NULL) != 1 || n != NIX_SHA256_LEN)
                return -EIO;
        return 0;
}

void nix_sha256_to_hex(const uint8_t d[NIX_SHA256_LEN], char *ret) {
        hex_encode(d, NIX_SHA256_LEN, ret);
}
