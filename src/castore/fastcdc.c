/* FastCDC v2020 (see fastcdc.h): gear hash rolled two bytes per step,
 * cut-point skipping below the minimum, a stricter mask before the average
 * size and a looser one after it (normalized chunking, level 1). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "castore/fastcdc.h"
#include "util/macro.h"

/* Masks by the number of bits of the average size (FastCDC's reference
 * implementation, extended past 128 KiB as restic's and the Rust crate's
 * are): the bits are spread over the word, as the paper recommends. */
static const uint64_t masks[26] = {
        [5] = 0x0000000001804110,  [6] = 0x0000000001803110,  [7] = 0x0000000018035100,
        [8] = 0x0000001800035300,  [9] = 0x0000019000353000,  [10] = 0x0000590003530000,
        [11] = 0x0000d90003530000, [12] = 0x0000d90103530000, [13] = 0x0000d90303530000,
        [14] = 0x0000d90313530000, [15] = 0x0000d90f03530000, [16] = 0x0000d90303537000,
        [17] = 0x0000d90703537000, [18] = 0x0000d90707537000, [19] = 0x0000d91707537000,
        [20] = 0x0000d91747537000, [21] = 0x0000d91767537000, [22] = 0x0000d93767537000,
        [23] = 0x0000d93777537000, [24] = 0x0000d93777577000, [25] = 0x0000db3777577000,
};

/* The gear table: entry i is the first 8 bytes (big-endian) of the MD5 of
 * 64 bytes of value i, as the Rust crate derives it; gear_ls is it shifted
 * left by one bit (the paper's "rolling two bytes each time"). */
static uint64_t gear[256], gear_ls[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;
static int gear_error;

static void gear_init(void) {
        uint8_t seed[64], md[EVP_MAX_MD_SIZE];
        unsigned mdlen;

        for (int i = 0; i < 256; i++) {
                memset(seed, i, sizeof(seed));
                if (!EVP_Digest(seed, sizeof(seed), md, &mdlen, EVP_md5(), NULL) || mdlen != 16) {
                        gear_error = -EIO;
                        return;
                }
                uint64_t v = 0;
                for (int k = 0; k < 8; k++)
                        v = v << 8 | md[k];
                gear[i] = v;
                gear_ls[i] = v << 1;
        }
}

/* The base-2 logarithm rounded to the nearest integer, as the crate rounds
 * it: b + 1 when avg >= 2^(b + 1/2), i.e. avg^2 >= 2^(2b + 1). */
static unsigned log2_rounded(size_t avg) {
        unsigned b = 63 - (unsigned) __builtin_clzll(avg);

        return (uint64_t) avg * avg >= 1ull << (2 * b + 1) ? b + 1 : b;
}

int cas_fastcdc_init(struct cas_fastcdc *c, size_t avg) {
        if (avg < CAS_FASTCDC_AVG_MIN || avg > CAS_FASTCDC_AVG_MAX)
                return -EINVAL;
        pthread_once(&gear_once, gear_init);
        if (gear_error < 0)
                return gear_error;
        unsigned bits = log2_rounded(avg);
        *c = (struct cas_fastcdc){ .min = avg / 2, .avg = avg, .max = avg * 2 };
        c->mask_s = masks[bits + 1];
        c->mask_l = masks[bits - 1];
        c->mask_s_ls = c->mask_s << 1;
        c->mask_l_ls = c->mask_l << 1;
        c->buf = malloc(c->max);
        return c->buf ? 0 : -ENOMEM;
}

void cas_fastcdc_done(struct cas_fastcdc *c) {
        free(c->buf);
        c->buf = NULL;
}

size_t cas_fastcdc_cut(const struct cas_fastcdc *c, const uint8_t *buf, size_t len) {
        size_t center = c->avg, i;
        uint64_t h = 0;

        if (len <= c->min)
                return len;
        if (len > c->max)
                len = c->max;
        else if (len < center)
                center = len;
        /* two bytes per step, from the minimum (nothing is cut below it) */
        for (i = c->min / 2; i < center / 2; i++) {
                h = (h << 2) + gear_ls[buf[2 * i]];
                if (!(h & c->mask_s_ls))
                        return 2 * i;
                h += gear[buf[2 * i + 1]];
                if (!(h & c->mask_s))
                        return 2 * i + 1;
        }
        for (; i < len / 2; i++) {
                h = (h << 2) + gear_ls[buf[2 * i]];
                if (!(h & c->mask_l_ls))
                        return 2 * i;
                h += gear[buf[2 * i + 1]];
                if (!(h & c->mask_l))
                        return 2 * i + 1;
        }
        return len;
}

/* Cuts while the pending bytes decide a cut: at least max of them, or all
 * that is left at the end. */
static int drain(struct cas_fastcdc *c, size_t keep_below, cas_fastcdc_sink sink, void *userdata) {
        while (c->len > 0 && c->len >= keep_below) {
                size_t n = cas_fastcdc_cut(c, c->buf + c->start, c->len);
                int r = sink(userdata, c->buf + c->start, n);

                c->start += n;
                c->len -= n;
                if (r < 0)
                        return r;
        }
        return 0;
}

int cas_fastcdc_push(struct cas_fastcdc *c, const void *data, size_t len, cas_fastcdc_sink sink, void *userdata) {
        const uint8_t *p = data;
        int r;

        while (len > 0) {
                if (c->start > 0) { /* compact: the pending bytes to the front */
                        memmove(c->buf, c->buf + c->start, c->len);
                        c->start = 0;
                }
                size_t n = MIN(len, c->max - c->len);
                memcpy(c->buf + c->len, p, n);
                c->len += n;
                p += n;
                len -= n;
                r = drain(c, c->max, sink, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cas_fastcdc_finish(struct cas_fastcdc *c, cas_fastcdc_sink sink, void *userdata) {
        int r = drain(c, 0, sink, userdata);

        c->start = c->len = 0;
        return r;
}
