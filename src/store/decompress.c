/* Streaming decompressors for binary cache NARs (decompress.h): one small
 * adapter per library over a shared input buffer. */
#include "store/decompress.h"

#include <brotli/decode.h>
#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define IN_BUF (128 * 1024)

enum method { M_NONE, M_XZ, M_ZSTD, M_BZIP2, M_BR };

struct nix_decompress {
        enum method method;
        nar_read_fn read;
        void *userdata;
        uint8_t *in;
        size_t in_pos, in_len;
        bool in_eof, done;
        bool zstd_frame_done;
        bool stream_end; /* the compressed stream ended: only finish() remains */
        union {
                lzma_stream xz;
                ZSTD_DStream *zstd;
                bz_stream bz;
                BrotliDecoderState *br;
        } u;
};

static const struct {
        const char *name;
        enum method m;
} methods[] = {
        { "", M_NONE }, { "none", M_NONE }, { "xz", M_XZ }, { "zstd", M_ZSTD }, { "bzip2", M_BZIP2 }, { "br", M_BR },
};

/* Refills the input buffer when empty: 0, or a read error. */
static int fill(struct nix_decompress *d) {
        ssize_t n;

        if (d->in_pos < d->in_len || d->in_eof)
                return 0;
        n = d->read(d->userdata, d->in, IN_BUF);
        if (n < 0)
                return (int) n;
        d->in_pos = 0;
        d->in_len = (size_t) n;
        d->in_eof = n == 0;
        return 0;
}

/* After the end of the compressed stream: nothing may follow. */
static ssize_t finish(struct nix_decompress *d) {
        int r;

        d->done = true;
        r = fill(d);
        if (r < 0)
                return r;
        return d->in_pos < d->in_len ? -EBADMSG : 0;
}

int nix_decompress_new(const char *method, nar_read_fn read, void *userdata, struct nix_decompress **ret) {
        _cleanup_(nix_decompress_freep) struct nix_decompress *d = NULL;
        size_t i;

        for (i = 0; i < ELEMENTSOF(methods); i++)
                if (strcmp(method, methods[i].name) == 0)
                        break;
        if (i == ELEMENTSOF(methods))
                return -EOPNOTSUPP;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->method = methods[i].m;
        d->read = read;
        d->userdata = userdata;
        d->in = malloc(IN_BUF);
        if (!d->in)
                return -ENOMEM;
        switch (d->method) {
        case M_NONE:
                break;
        case M_XZ:
                d->u.xz = (lzma_stream) LZMA_STREAM_INIT;
                if (lzma_stream_decoder(&d->u.xz, UINT64_MAX, 0) != LZMA_OK)
                        return -ENOMEM;
                break;
        case M_ZSTD:
                d->u.zstd = ZSTD_createDStream();
                if (!d->u.zstd || ZSTD_isError(ZSTD_initDStream(d->u.zstd)))
                        return -ENOMEM;
                break;
        case M_BZIP2:
                if (BZ2_bzDecompressInit(&d->u.bz, 0, 0) != BZ_OK) {
                        d->method = M_NONE;
                        return -ENOMEM;
                }
                break;
        case M_BR:
                d->u.br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
                if (!d->u.br)
                        return -ENOMEM;
                break;
        }
        *ret = TAKE_PTR(d);
        return 0;
}

void nix_decompress_free(struct nix_decompress *d) {
        if (!d)
                return;
        switch (d->method) {
        case M_NONE:
                break;
        case M_XZ:
                lzma_end(&d->u.xz);
                break;
        case M_ZSTD:
                ZSTD_freeDStream(d->u.zstd);
                break;
        case M_BZIP2:
                BZ2_bzDecompressEnd(&d->u.bz);
                break;
        case M_BR:
                BrotliDecoderDestroyInstance(d->u.br);
                break;
        }
        free(d->in);
        free(d);
}

static ssize_t read_none(struct nix_decompress *d, uint8_t *buf, size_t len) {
        size_t n;
        int r = fill(d);

        if (r < 0)
                return r;
        n = d->in_len - d->in_pos;
        if (n > len)
                n = len;
        memcpy(buf, d->in + d->in_pos, n);
        d->in_pos += n;
        return (ssize_t) n;
}

static ssize_t read_xz(struct nix_decompress *d, uint8_t *buf, size_t len) {
        lzma_stream *s = &d->u.xz;
        lzma_ret lr;
        int r;

        s->next_out = buf;
        s->avail_out = len;
        while (s->avail_out == len) {
                r = fill(d);
                if (r < 0)
                        return r;
                s->next_in = d->in + d->in_pos;
                s->avail_in = d->in_len - d->in_pos;
                lr = lzma_code(s, d->in_eof ? LZMA_FINISH : LZMA_RUN);
                d->in_pos = d->in_len - s->avail_in;
                if (lr == LZMA_STREAM_END) {
                        d->stream_end = true;
                        return s->avail_out < len ? (ssize_t) (len - s->avail_out) : finish(d);
                }
                if (lr == LZMA_MEM_ERROR)
                        return -ENOMEM;
                if (lr != LZMA_OK || (d->in_eof && s->avail_out == len))
                        return -EBADMSG;
        }
        return (ssize_t) (len - s->avail_out);
}

static ssize_t read_zstd(struct nix_decompress *d, uint8_t *buf, size_t len) {
        ZSTD_outBuffer out = { buf, len, 0 };
        size_t z;
        int r;

        while (out.pos == 0) {
                ZSTD_inBuffer in;

                r = fill(d);
                if (r < 0)
                        return r;
                if (d->in_eof && d->zstd_frame_done)
                        return finish(d);
                in = (ZSTD_inBuffer){ d->in + d->in_pos, d->in_len - d->in_pos, 0 };
                z = ZSTD_decompressStream(d->u.zstd, &out, &in);
                d->in_pos += in.pos;
                if (ZSTD_isError(z))
                        return -EBADMSG;
                /* 0: a frame is complete and flushed; another may follow */
                d->zstd_frame_done = z == 0;
                if (d->in_eof && out.pos == 0)
                        return d->zstd_frame_done ? finish(d) : -EBADMSG;
        }
        return (ssize_t) out.pos;
}

static ssize_t read_bzip2(struct nix_decompress *d, uint8_t *buf, size_t len) {
        bz_stream *s = &d->u.bz;
        int r, br;

        s->next_out = (char *) buf;
        s->avail_out = (unsigned) (len > UINT32_MAX ? UINT32_MAX : len);
        len = s->avail_out;
        while (s->avail_out == len) {
                r = fill(d);
                if (r < 0)
                        return r;
                s->next_in = (char *) d->in + d->in_pos;
                s->avail_in = (unsigned) (d->in_len - d->in_pos);
                br = BZ2_bzDecompress(s);
                d->in_pos = d->in_len - s->avail_in;
                if (br == BZ_STREAM_END) {
                        d->stream_end = true;
                        return s->avail_out < len ? (ssize_t) (len - s->avail_out) : finish(d);
                }
                if (br == BZ_MEM_ERROR)
                        return -ENOMEM;
                if (br != BZ_OK || (d->in_eof && s->avail_out == len))
                        return -EBADMSG;
        }
        return (ssize_t) (len - s->avail_out);
}

static ssize_t read_br(struct nix_decompress *d, uint8_t *buf, size_t len) {
        size_t avail_out = len;
        uint8_t *next_out = buf;
        BrotliDecoderResult br;
        int r;

        while (avail_out == len) {
                const uint8_t *next_in;
                size_t avail_in;

                r = fill(d);
                if (r < 0)
                        return r;
                next_in = d->in + d->in_pos;
                avail_in = d->in_len - d->in_pos;
                br = BrotliDecoderDecompressStream(d->u.br, &avail_in, &next_in, &avail_out, &next_out, NULL);
                d->in_pos = d->in_len - avail_in;
                if (br == BROTLI_DECODER_RESULT_SUCCESS) {
                        d->stream_end = true;
                        return avail_out < len ? (ssize_t) (len - avail_out) : finish(d);
                }
                if (br == BROTLI_DECODER_RESULT_ERROR)
                        return -EBADMSG;
                if (br == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT && d->in_eof)
                        return -EBADMSG;
        }
        return (ssize_t) (len - avail_out);
}

ssize_t nix_decompress_read(void *userdata, void *buf, size_t len) {
        struct nix_decompress *d = userdata;

        if (d->done || len == 0)
                return 0;
        if (d->stream_end)
                return finish(d);
        switch (d->method) {
        case M_NONE:
                return read_none(d, buf, len);
        case M_XZ:
                return read_xz(d, buf, len);
        case M_ZSTD:
                return read_zstd(d, buf, len);
        case M_BZIP2:
                return read_bzip2(d, buf, len);
        case M_BR:
                return read_br(d, buf, len);
        }
        return -EINVAL;
}
