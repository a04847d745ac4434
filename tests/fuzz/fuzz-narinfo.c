/* Fuzz target for the narinfo parser: any input either fails with a
 * reason or parses into a narinfo whose required fields are set, whose
 * fingerprint can be built and whose signatures can be checked (key: the
 * test-1 key of test-narinfo.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/narinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const struct nix_public_key key = {
                .name = "test-1",
                .key = { 0xc0, 0xc3, 0x9c, 0xe8, 0x30, 0x18, 0x88, 0x66, 0x98, 0xa1, 0x71, 0xc9, 0xf6, 0xa0, 0x37, 0xc2,
                         0x3f, 0x74, 0xf8, 0xb1, 0x0d, 0x97, 0xef, 0x54, 0x51, 0x73, 0xeb, 0xfa, 0x72, 0x5a, 0xb9, 0x7e },
        };
        struct nix_narinfo *ni = NULL;
        const char *why = NULL;
        char *fp = NULL;
        int r;

        r = nix_narinfo_parse((const char *) data, size, &ni, &why);
        if (r == -EBADMSG && !why)
                abort();
        if (r < 0)
                return 0;
        if (!ni->url || !ni->compression)
                abort();
        if (nix_narinfo_fingerprint(ni, &fp) < 0 || strncmp(fp, "1;/nix/store/", 13) != 0)
                abort();
        if (nix_narinfo_verify(ni, &key, 1, NULL) < 0)
                abort();
        free(fp);
        nix_narinfo_free(ni);
        return 0;
}
