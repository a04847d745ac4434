/* FastCDC content-defined chunking, the 2020 variant (Xia et al., "The
 * Design of Fast Content-Defined Chunking for Data Deduplication Based
 * Storage Systems", TPDS 2020) with normalization level 1, cutting at the
 * same points as the `fastcdc` Rust crate's v2020 module (what snix's
 * object-store blob service uses), so that both produce the same chunks.
 * Streaming: memory is one buffer of the maximum chunk size. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The range of average chunk sizes whose min = avg/2 and max = 2*avg stay
 * within the limits the Rust crate accepts. */
#define CAS_FASTCDC_AVG_MIN 512u
#define CAS_FASTCDC_AVG_MAX (2u << 20)
#define CAS_FASTCDC_AVG_DEFAULT (256u << 10)

/* Receives each chunk in order; the bytes are valid during the call.  A
 * negative return stops chunking and is returned by push/finish. */
typedef int (*cas_fastcdc_sink)(void *userdata, const uint8_t *chunk, size_t len);

struct cas_fastcdc {
        size_t min, avg, max;
        uint64_t mask_s, mask_l, mask_s_ls, mask_l_ls;
        uint8_t *buf; /* max bytes; [start, start + len) not yet cut */
        size_t start, len;
};

/* Sets up a chunker with min/avg/max = avg/2, avg, 2*avg: 0, -EINVAL if
 * avg is outside [CAS_FASTCDC_AVG_MIN, CAS_FASTCDC_AVG_MAX], -ENOMEM. */
int cas_fastcdc_init(struct cas_fastcdc *c, size_t avg);
void cas_fastcdc_done(struct cas_fastcdc *c);

/* Feeds data; every chunk whose end is decided goes to sink.  The chunks
 * do not depend on how the stream is split into pushes. */
int cas_fastcdc_push(struct cas_fastcdc *c, const void *data, size_t len, cas_fastcdc_sink sink, void *userdata);
/* Ends the stream: the remaining chunks go to sink (none for an empty
 * stream).  The chunker is then empty and may take a new stream. */
int cas_fastcdc_finish(struct cas_fastcdc *c, cas_fastcdc_sink sink, void *userdata);

/* The length of the first chunk of buf[0..len), len being all that is left
 * of the stream or at least c->max bytes. */
size_t cas_fastcdc_cut(const struct cas_fastcdc *c, const uint8_t *buf, size_t len);
