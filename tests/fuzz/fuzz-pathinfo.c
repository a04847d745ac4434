/* Fuzz target for the protobuf decoders of outside input: PathInfo,
 * Directory and Node.  The same bytes go to each.  Any input either fails
 * with a reason or decodes to something that passes the in-memory checks
 * and whose encoding is canonical (re-decoding and re-encoding gives the
 * same bytes); a Directory's digest is that of its canonical encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "castore/directory.h"
#include "store/pathinfo.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_pathinfo(const uint8_t *data, size_t size) {
        struct nix_pathinfo *pi = NULL, *pi2 = NULL;
        uint8_t *buf = NULL, *buf2 = NULL;
        size_t len, len2;
        const char *why = NULL;
        int r;

        r = nix_pathinfo_decode(data, size, &pi, &why);
        if (r == -EBADMSG && !why)
                abort();
        if (r < 0)
                return;
        if (nix_pathinfo_check(pi))
                abort();
        if (nix_pathinfo_encode(pi, &buf, &len) < 0)
                abort();
        if (nix_pathinfo_decode(buf, len, &pi2, &why) < 0)
                abort();
        if (nix_pathinfo_encode(pi2, &buf2, &len2) < 0)
                abort();
        if (len != len2 || memcmp(buf, buf2, len) != 0)
                abort();
        free(buf);
        free(buf2);
        nix_pathinfo_free(pi);
        nix_pathinfo_free(pi2);
}

static void fuzz_directory(const uint8_t *data, size_t size) {
        struct cas_directory *d = NULL, *d2 = NULL;
        enum cas_verr why = CAS_VERR_NONE;
        uint8_t *buf = NULL;
        size_t len;
        struct cas_digest digest;
        uint64_t total;
        int r;

        r = cas_directory_decode(data, size, 0, &d, &why);
        if (r == -EBADMSG && why == CAS_VERR_NONE)
                abort();
        if (r < 0)
                return;
        total = d->n_entries;
        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];

                if (cas_node_check(e, 0) != CAS_VERR_NONE)
                        abort();
                if (i > 0 && cas_name_compare(d->entries[i - 1].name, d->entries[i - 1].name_len, e->name,
                                              e->name_len) >= 0)
                        abort();
                if (e->kind == CAS_NODE_DIRECTORY && __builtin_add_overflow(total, e->size, &total))
                        abort();
                if (cas_directory_find(d, e->name, e->name_len) != e)
                        abort();
        }
        if (total != d->size || d->n_dirs + d->n_files + d->n_symlinks != d->n_entries)
                abort();
        if (cas_directory_encode(d, &buf, &len) < 0)
                abort();
        cas_digest_of(buf, len, &digest);
        if (!cas_digest_equal(&digest, &d->digest))
                abort();
        if (cas_directory_decode(buf, len, CAS_DECODE_STRICT_SIZE, &d2, NULL) < 0)
                abort();
        if (!cas_digest_equal(&d2->digest, &d->digest) || d2->size != d->size)
                abort();
        free(buf);
        cas_directory_free(d);
        cas_directory_free(d2);
}

static void fuzz_node(const uint8_t *data, size_t size) {
        struct cas_node n, n2;
        void *mem = NULL, *mem2 = NULL;
        uint8_t *buf = NULL, *buf2 = NULL;
        size_t len, len2;

        if (cas_node_decode(data, size, CAS_NODE_ALLOW_EMPTY_NAME, &n, &mem, NULL) < 0)
                return;
        if (cas_node_check(&n, CAS_NODE_ALLOW_EMPTY_NAME) != CAS_VERR_NONE)
                abort();
        if (cas_node_encode(&n, &buf, &len) < 0)
                abort();
        if (cas_node_decode(buf, len, CAS_NODE_ALLOW_EMPTY_NAME, &n2, &mem2, NULL) < 0)
                abort();
        if (cas_node_encode(&n2, &buf2, &len2) < 0)
                abort();
        if (len != len2 || memcmp(buf, buf2, len) != 0)
                abort();
        free(buf);
        free(buf2);
        free(mem);
        free(mem2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        log_set_max_level(LOG_LEVEL_ERR - 1);
        fuzz_pathinfo(data, size);
        fuzz_directory(data, size);
        fuzz_node(data, size);
        return 0;
}
