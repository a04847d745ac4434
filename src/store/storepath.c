/* Store path parsing, formatting and content-addressed path computation
 * (see storepath.h). */
#include "store/storepath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/nixbase32.h"

static bool name_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
               c == '-' || c == '.' || c == '_' || c == '?' || c == '=';
}

int nix_name_check(const char *name, size_t len) {
        if (len == 0 || len > NIX_NAME_MAX)
                return -EINVAL;
        if (name[0] == '.') {
                /* ".", "..", ".-…", "..-…": a first component of . or .. */
                if (len == 1 || name[1] == '-')
                        return -EINVAL;
                if (name[1] == '.' && (len == 2 || name[2] == '-'))
                        return -EINVAL;
        }
        for (size_t i = 0; i < len; i++)
                if (!name_char_ok(name[i]))
                        return -EINVAL;
        return 0;
}

int nix_store_path_new(const uint8_t digest[NIX_DIGEST_LEN], const char *name, size_t name_len,
                       struct nix_store_path *ret) {
        if (nix_name_check(name, name_len) < 0)
                return -EINVAL;
        memcpy(ret->digest, digest, NIX_DIGEST_LEN);
        memcpy(ret->name, name, name_len);
        ret->name[name_len] = 0;
        ret->name_len = name_len;
        return 0;
}

int nix_store_path_from_basename(const char *s, size_t len, struct nix_store_path *ret) {
        uint8_t digest[NIX_DIGEST_LEN];

        if (len < NIX_DIGEST_CHARS + 2 || s[NIX_DIGEST_CHARS] != '-')
                return -EINVAL;
        if (nixbase32_decode(s, NIX_DIGEST_CHARS, digest, sizeof(digest)) != NIX_DIGEST_LEN)
                return -EINVAL;
        return nix_store_path_new(digest, s + NIX_DIGEST_CHARS + 1, len - NIX_DIGEST_CHARS - 1, ret);
}

int nix_store_path_from_absolute(const char *s, struct nix_store_path *ret, const char **ret_subpath) {
        const char *base, *end;

        if (strncmp(s, NIX_STORE_DIR "/", NIX_STORE_DIR_LEN + 1) != 0)
                return -EINVAL;
        base = s + NIX_STORE_DIR_LEN + 1;
        end = strchr(base, '/');
        if (!end)
                end = base + strlen(base);
        else if (!ret_subpath)
                return -EINVAL;
        if (nix_store_path_from_basename(base, (size_t) (end - base), ret) < 0)
                return -EINVAL;
        if (ret_subpath)
                *ret_subpath = end;
        return 0;
}

int nix_store_path_parse(const char *s, struct nix_store_path *ret, const char **ret_subpath) {
        if (s[0] == '/')
                return nix_store_path_from_absolute(s, ret, ret_subpath);
        if (ret_subpath)
                *ret_subpath = s + strlen(s);
        return nix_store_path_from_basename(s, strlen(s), ret);
}

size_t nix_store_path_basename(const struct nix_store_path *p, char *ret) {
        nixbase32_encode(p->digest, NIX_DIGEST_LEN, ret);
        ret[NIX_DIGEST_CHARS] = '-';
        memcpy(ret + NIX_DIGEST_CHARS + 1, p->name, p->name_len);
        ret[NIX_DIGEST_CHARS + 1 + p->name_len] = 0;
        return NIX_DIGEST_CHARS + 1 + p->name_len;
}

size_t nix_store_path_absolute(const struct nix_store_path *p, char *ret) {
        memcpy(ret, NIX_STORE_DIR "/", NIX_STORE_DIR_LEN + 1);
        return NIX_STORE_DIR_LEN + 1 + nix_store_path_basename(p, ret + NIX_STORE_DIR_LEN + 1);
}

int nix_store_path_compare(const struct nix_store_path *a, const struct nix_store_path *b) {
        char x[NIX_BASENAME_MAX + 1], y[NIX_BASENAME_MAX + 1];

        nix_store_path_basename(a, x);
        nix_store_path_basename(b, y);
        return strcmp(x, y);
}

int nix_store_path_make(const char *type, const uint8_t inner[NIX_SHA256_LEN], const char *name,
                        size_t name_len, struct nix_store_path *ret) {
        _cleanup_(nix_sha256_done) struct nix_sha256 h = {};
        uint8_t full[NIX_SHA256_LEN], folded[NIX_DIGEST_LEN] = {};
        char hex[2 * NIX_SHA256_LEN + 1];
        int r;

        if (nix_name_check(name, name_len) < 0)
                return -EINVAL;
        nix_sha256_to_hex(inner, hex);
        r = nix_sha256_init(&h);
        if (r < 0)
                return r;
        nix_sha256_update(&h, type, strlen(type));
        nix_sha256_update(&h, ":sha256:", 8);
        nix_sha256_update(&h, hex, 2 * NIX_SHA256_LEN);
        nix_sha256_update(&h, ":" NIX_STORE_DIR ":", NIX_STORE_DIR_LEN + 2);
        nix_sha256_update(&h, name, name_len);
        r = nix_sha256_final(&h, full);
        if (r < 0)
                return r;
        for (size_t i = 0; i < NIX_SHA256_LEN; i++)
                folded[i % NIX_DIGEST_LEN] ^= full[i];
        return nix_store_path_new(folded, name, name_len, ret);
}

static int refs_cmp(const void *x, const void *y) {
        return nix_store_path_compare(x, y);
}

/* "<base>" then ":/nix/store/<ref>" per reference, in Nix's set order
 * (sorted by basename, duplicates once), then ":self" if self_ref.
 * *ret is malloc'ed. */
static int make_type(const char *base, const struct nix_store_path *refs, size_t n_refs, bool self_ref,
                     char **ret) {
        _cleanup_free_ struct nix_store_path *sorted = NULL;
        char *s, *p;

        if (n_refs > SIZE_MAX / (NIX_PATH_MAX + 1) - 1)
                return -ENOMEM;
        s = malloc(strlen(base) + sizeof(":self") + n_refs * (NIX_PATH_MAX + 1));
        if (!s)
                return -ENOMEM;
        p = stpcpy(s, base);
        if (n_refs > 0) {
                sorted = malloc(n_refs * sizeof(*sorted));
                if (!sorted) {
                        free(s);
                        return -ENOMEM;
                }
                memcpy(sorted, refs, n_refs * sizeof(*sorted));
                qsort(sorted, n_refs, sizeof(*sorted), refs_cmp);
        }
        for (size_t i = 0; i < n_refs; i++) {
                if (i > 0 && nix_store_path_equal(&sorted[i - 1], &sorted[i]))
                        continue;
                *p++ = ':';
                p += nix_store_path_absolute(&sorted[i], p);
        }
        if (self_ref)
                strcpy(p, ":self");
        *ret = s;
        return 0;
}

int nix_store_path_make_text(const char *name, size_t name_len, const void *content, size_t content_len,
                             const struct nix_store_path *refs, size_t n_refs, struct nix_store_path *ret) {
        _cleanup_free_ char *type = NULL;
        uint8_t inner[NIX_SHA256_LEN];
        int r;

        r = make_type("text", refs, n_refs, false, &type);
        if (r < 0)
                return r;
        r = nix_sha256_of(content, content_len, inner);
        if (r < 0)
                return r;
        return nix_store_path_make(type, inner, name, name_len, ret);
}

int nix_store_path_make_source(const char *name, size_t name_len, const uint8_t nar_sha256[NIX_SHA256_LEN],
                               const struct nix_store_path *refs, size_t n_refs, bool self_ref,
                               struct nix_store_path *ret) {
        _cleanup_free_ char *type = NULL;
        int r;

        r = make_type("source", refs, n_refs, self_ref, &type);
        if (r < 0)
                return r;
        return nix_store_path_make(type, nar_sha256, name, name_len, ret);
}
