/* Fuzz target for PathInfo decoding: any input either fails with a reason
 * or decodes to a PathInfo that passes the in-memory checks and whose
 * encoding is canonical (re-decoding and re-encoding gives the same bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pathinfo.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct nix_pathinfo *pi = NULL, *pi2 = NULL;
        uint8_t *buf = NULL, *buf2 = NULL;
        size_t len, len2;
        const char *why = NULL;
        int r;

        log_set_max_level(LOG_ERR - 1);
        r = nix_pathinfo_decode(data, size, &pi, &why);
        if (r == -EBADMSG && !why)
                abort();
        if (r < 0)
                return 0;
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
        return 0;
}
