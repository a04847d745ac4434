/* Fuzz target for the streaming decompressors: the first byte picks the
 * method (none, xz, zstd, bzip2, br), the rest is the compressed input.
 * Any input ends in end of stream or an error, within a bounded output
 * (decompression bombs stop at the bound, as nar_ingest's limits would). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/decompress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
        const uint8_t *p;
        size_t len, pos;
};

static ssize_t mem_read(void *userdata, void *buf, size_t len) {
        struct mem *m = userdata;
        size_t n = m->len - m->pos;

        if (n > len)
                n = len;
        if (n > 4096)
                n = 4096; /* short reads, as a network gives */
        memcpy(buf, m->p + m->pos, n);
        m->pos += n;
        return (ssize_t) n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const methods[] = { "none", "xz", "zstd", "bzip2", "br" };
        static uint8_t out[65536];
        struct nix_decompress *d = NULL;
        struct mem m;
        size_t total = 0;
        ssize_t n;

        if (size < 1)
                return 0;
        m = (struct mem){ data + 1, size - 1, 0 };
        if (nix_decompress_new(methods[data[0] % 5], mem_read, &m, &d) < 0)
                abort();
        do {
                n = nix_decompress_read(d, out, 1 + (total % sizeof(out)));
                if (n > 0)
                        total += (size_t) n;
                if (n > (ssize_t) sizeof(out))
                        abort();
        } while (n > 0 && total < 64 * 1024 * 1024);
        nix_decompress_free(d);
        return 0;
}
