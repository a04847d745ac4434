/* Fuzz target for NAR ingestion: the input is a NAR stream, read in
 * chunks of a size chosen from its length so splits land everywhere, and
 * ingested serially or with its files stored by worker threads (the
 * length's parity chooses).  Whatever the parser accepts must render back
 * to exactly the input bytes (the strict grammar admits one encoding per
 * tree) with the same hash, through the read-ahead or serially. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/nar.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
        const uint8_t *p;
        size_t len, pos, chunk;
};

static ssize_t input_read(void *userdata, void *buf, size_t len) {
        struct input *in = userdata;
        size_t n = MIN(MIN(len, in->len - in->pos), in->chunk);

        memcpy(buf, in->p + in->pos, n);
        in->pos += n;
        return (ssize_t) n;
}

struct output {
        const uint8_t *want;
        size_t len, pos;
};

static int output_write(void *userdata, const void *buf, size_t len) {
        struct output *out = userdata;

        if (len > out->len - out->pos || memcmp(out->want + out->pos, buf, len) != 0)
                abort(); /* re-rendering differs from the accepted input */
        out->pos += len;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const size_t chunks[] = { SIZE_MAX, 1, 7, 8, 13, 4096 };
        struct cas_blob_service *blobs = NULL;
        struct cas_dir_service *dirs = NULL;
        struct input in = { .p = data, .len = size, .chunk = chunks[size % ELEMENTSOF(chunks)] };
        struct nar_ingest_result res;
        int r;

        log_set_max_level(LOG_LEVEL_ERR - 1); /* quiet */
        if (cas_blob_memory_new(&blobs) < 0 || cas_dir_memory_new(&dirs) < 0)
                abort();
        r = nar_ingest(blobs, dirs, input_read, &in, (size & 1) ? 0 : NAR_INGEST_SERIAL, &res);
        if (r >= 0) {
                struct output out = { .want = data, .len = size };
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t len;

                if (res.nar_size != size)
                        abort();
                if (nar_render(blobs, dirs, &res.root, (size & 2) ? NAR_RENDER_SERIAL : 0, output_write, &out, &len,
                               sha) < 0)
                        abort();
                if (out.pos != size || len != size || memcmp(sha, res.nar_sha256, sizeof(sha)) != 0)
                        abort();
                free(res.mem);
        } else if (r == -EBADMSG && !res.error)
                abort(); /* every malformation names its rule */
        cas_dir_service_free(dirs);
        cas_blob_service_free(blobs);
        return 0;
}
