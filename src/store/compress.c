/* Streaming compressors for binary cache NARs (compress.h): input pushed
 * through one small adapter per library into a fixed output buffer that
 * is handed to the sink whenever it fills, and at the end. */
#include "store/compress.h"

#include <brotli/encode.h>
#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#define OUT_BUF (128 * 1024)

enum method { M_NONE, M_XZ, M_ZSTD, M_BZIP2, M_BR };

struct nix_compress {
        enum method method;
        nar_write_fn write;
        void *userdata;
        uint8_t *out;
        bool finished;
        union {
                lzma_stream xz;
                ZSTD_CStream *zstd;
                bz_stream bz;
                BrotliEncoderState *br;
        } u;
};

static const struct {
        const char *name;
        const char *ext;
        enum method m;
} methods[] = {
        { "none", "", M_NONE }, { "xz", ".xz", M_XZ },     { "zstd", ".zst", M_ZSTD },
        { "bzip2", ".bz2", M_BZIP2 }, { "br", ".br", M_BR },
};

static int method_index(const char *method) {
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (strcmp(method, methods[i].name) == 0)
                        return (int) i;
        return -1;
}

bool nix_compress_method_valid(const char *method) {
        return method && method_index(method) >= 0;
}

const char *nix_compress_extension(const char *method) {
        int i = method ? method_index(method) : -1;

        return i < 0 ? NULL : methods[i].ext;
}

static int init_method(struct nix_compress *c) {
        switch (c->method) {
        case M_NONE:
                return 0;
        case M_XZ:
                c->u.xz = (lzma_stream) LZMA_STREAM_INIT;
                return lzma_easy_encoder(&c->u.xz, 6, LZMA_CHECK_CRC64) == LZMA_OK ? 0 : -ENOMEM;
        case M_ZSTD:
                c->u.zstd = ZSTD_createCStream();
                return c->u.zstd && !ZSTD_isError(ZSTD_initCStream(c->u.zstd, 3)) ? 0 : -ENOMEM;
        case M_BZIP2:
                return BZ2_bzCompressInit(&c->u.bz, 9, 0, 0) == BZ_OK ? 0 : -ENOMEM;
        case M_BR:
                c->u.br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
                return c->u.br ? 0 : -ENOMEM;
        }
        return -EINVAL;
}

int nix_compress_new(const char *method, nar_write_fn write, void *userdata, struct nix_compress **ret) {
        _cleanup_(nix_compress_freep) struct nix_compress *c = NULL;
        int i = method ? method_index(method) : -1, r;

        if (i < 0)
                return -EOPNOTSUPP;
        if (!write || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->method = M_NONE; /* nothing to end until init_method succeeds */
        c->write = write;
        c->userdata = userdata;
        c->out = malloc(OUT_BUF);
        if (!c->out)
                return -ENOMEM;
        c->method = methods[i].m;
        r = init_method(c);
        if (r < 0) {
                if (c->method == M_BZIP2)
                        c->method = M_NONE; /* bzlib has no state to end after a failed init */
                return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

void nix_compress_free(struct nix_compress *c) {
        if (!c)
                return;
        switch (c->method) {
        case M_NONE:
                break;
        case M_XZ:
                lzma_end(&c->u.xz);
                break;
        case M_ZSTD:
                ZSTD_freeCStream(c->u.zstd);
                break;
        case M_BZIP2:
                BZ2_bzCompressEnd(&c->u.bz);
                break;
        case M_BR:
                BrotliEncoderDestroyInstance(c->u.br);
                break;
        }
        free(c->out);
        free(c);
}

/* Each code_* consumes all of in[0..len) (with end: and ends the stream),
 * flushing the output buffer to the sink as it fills. */

static int code_none(struct nix_compress *c, const uint8_t *in, size_t len) {
        while (len > 0) {
                size_t n = len < OUT_BUF ? len : OUT_BUF;
                int r = c->write(c->userdata, in, n);

                if (r < 0)
                        return r;
                in += n;
                len -= n;
        }
        return 0;
}

static int code_xz(struct nix_compress *c, const uint8_t *in, size_t len, bool end) {
        lzma_stream *s = &c->u.xz;
        lzma_ret lr;
        int r;

        s->next_in = in;
        s->avail_in = len;
        for (;;) {
                s->next_out = c->out;
                s->avail_out = OUT_BUF;
                lr = lzma_code(s, end ? LZMA_FINISH : LZMA_RUN);
                if (lr == LZMA_MEM_ERROR)
                        return -ENOMEM;
                if (lr != LZMA_OK && lr != LZMA_STREAM_END)
                        return -EIO;
                if (s->avail_out < OUT_BUF) {
                        r = c->write(c->userdata, c->out, OUT_BUF - s->avail_out);
                        if (r < 0)
                                return r;
                }
                if (end ? lr == LZMA_STREAM_END : s->avail_in == 0 && s->avail_out > 0)
                        return 0;
        }
}

static int code_zstd(struct nix_compress *c, const uint8_t *in, size_t len, bool end) {
        ZSTD_inBuffer ib = { in, len, 0 };
        size_t z;
        int r;

        for (;;) {
                ZSTD_outBuffer ob = { c->out, OUT_BUF, 0 };

                z = ZSTD_compressStream2(c->u.zstd, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
                if (ZSTD_isError(z))
                        return ZSTD_getErrorCode(z) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
                if (ob.pos > 0) {
                        r = c->write(c->userdata, c->out, ob.pos);
                        if (r < 0)
                                return r;
                }
                /* with end, z is what remains to flush; without, all input taken is enough */
                if (end ? z == 0 : ib.pos == ib.size)
                        return 0;
        }
}

static int code_bzip2(struct nix_compress *c, const uint8_t *in, size_t len, bool end) {
        bz_stream *s = &c->u.bz;
        int r, br;

        while (len > 0 || end) {
                unsigned chunk = (unsigned) (len > UINT32_MAX ? UINT32_MAX : len);

                s->next_in = (char *) in;
                s->avail_in = chunk;
                s->next_out = (char *) c->out;
                s->avail_out = OUT_BUF;
                br = BZ2_bzCompress(s, end && chunk == len ? BZ_FINISH : BZ_RUN);
                if (br != BZ_RUN_OK && br != BZ_FINISH_OK && br != BZ_STREAM_END)
                        return br == BZ_MEM_ERROR ? -ENOMEM : -EIO;
                in += chunk - s->avail_in;
                len -= chunk - s->avail_in;
                if (s->avail_out < OUT_BUF) {
                        r = c->write(c->userdata, c->out, OUT_BUF - s->avail_out);
                        if (r < 0)
                                return r;
                }
                if (br == BZ_STREAM_END)
                        return 0;
        }
        return 0;
}

static int code_br(struct nix_compress *c, const uint8_t *in, size_t len, bool end) {
        const uint8_t *next_in = in;
        size_t avail_in = len;
        int r;

        for (;;) {
                uint8_t *next_out = c->out;
                size_t avail_out = OUT_BUF;

                if (!BrotliEncoderCompressStream(c->u.br, end ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS,
                                                 &avail_in, &next_in, &avail_out, &next_out, NULL))
                        return -EIO;
                if (avail_out < OUT_BUF) {
                        r = c->write(c->userdata, c->out, OUT_BUF - avail_out);
                        if (r < 0)
                                return r;
                }
                if (end ? BrotliEncoderIsFinished(c->u.br)
                        : avail_in == 0 && !BrotliEncoderHasMoreOutput(c->u.br))
                        return 0;
        }
}

static int code(struct nix_compress *c, const uint8_t *in, size_t len, bool end) {
        switch (c->method) {
        case M_NONE:
                return code_none(c, in, len);
        case M_XZ:
                return code_xz(c, in, len, end);
        case M_ZSTD:
                return code_zstd(c, in, len, end);
        case M_BZIP2:
                return code_bzip2(c, in, len, end);
        case M_BR:
                return code_br(c, in, len, end);
        }
        return -EINVAL;
}

int nix_compress_write(void *userdata, const void *buf, size_t len) {
        struct nix_compress *c = userdata;

        if (c->finished)
                return -EINVAL;
        if (len == 0)
                return 0;
        return code(c, buf, len, false);
}

int nix_compress_finish(struct nix_compress *c) {
        if (c->finished)
                return -EINVAL;
        c->finished = true;
        return code(c, NULL, 0, true);
}
