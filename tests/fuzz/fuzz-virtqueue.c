/* Fuzz target for the descriptor-chain walker: the input becomes guest
 * memory (split into two adjacent regions) holding a descriptor table and
 * the available/used rings at input-chosen offsets; chains are popped,
 * read, answered and pushed as a transport would.
 * Layout: u16 num, u8 flags, u16 last_avail, u32 desc/avail/used offsets,
 * u32 split point, then the memory bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 21
#define GPA_BASE 0x40000000ull
#define UVA_BASE 0x7f0000000000ull

static uint32_t rd32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct vq_elem elem;
        struct vu_mem mem = {};
        struct vq q = {};
        uint8_t buf[4096];
        static uint8_t fill[3000];

        if (size < HDR + 16 || size > (1u << 20))
                return 0;
        memset(fill, 0xa5, sizeof(fill));
        uint16_t num;
        memcpy(&num, data, 2);
        num = (uint16_t) (1u << (num % 11)); /* 1 .. 1024 */
        uint8_t flags = data[2];
        uint16_t last_avail;
        memcpy(&last_avail, data + 3, 2);
        size_t len = size - HDR;
        uint32_t desc_off = rd32(data + 5) % len, avail_off = rd32(data + 9) % len;
        uint32_t used_off = rd32(data + 13) % len, split = rd32(data + 17) % len;

        /* two separate allocations so an access straying across the
         * region border is caught by ASan */
        size_t len0 = split ? split : len, len1 = len - len0;
        uint8_t *r0 = malloc(len0), *r1 = len1 ? malloc(len1) : NULL;
        if (!r0 || (len1 && !r1))
                goto out;
        memcpy(r0, data + HDR, len0);
        if (len1)
                memcpy(r1, data + HDR + len0, len1);
        mem.regions[0] = (struct vu_mem_region){ .gpa = GPA_BASE, .size = len0, .uva = UVA_BASE, .host = r0 };
        mem.nregions = 1;
        if (len1) {
                mem.regions[1] = (struct vu_mem_region){
                        .gpa = GPA_BASE + len0, .size = len1, .uva = UVA_BASE + len0, .host = r1
                };
                mem.nregions = 2;
        }

        q.indirect = flags & 1;
        q.event_idx = flags & 2;
        q.last_avail_idx = last_avail;
        if (vq_map(&q, &mem, num, UVA_BASE + desc_off, UVA_BASE + avail_off, UVA_BASE + used_off) < 0)
                goto out;
        for (unsigned n = 0; n < 2 * VQ_MAX_SIZE; n++) {
                int r = vq_pop(&q, &elem);
                if (r == 0) {
                        if (!vq_enable_kick(&q))
                                break;
                        continue;
                }
                if (r == -EIO)
                        break;
                if (r == -EPROTO) {
                        vq_push(&q, elem.head, 0);
                        continue;
                }
                ssize_t k0 = vq_elem_read(&elem, buf, sizeof(buf));
                if (k0 < 0)
                        break;
                size_t got = (size_t) k0;
                struct vq_writer w;
                vq_writer_init(&w, &elem);
                (void) vq_writer_put(&w, buf, got < 16 ? got : 16);
                /* up to 3000 bytes more, across however many segments */
                uint64_t space = vq_writer_space(&w);
                (void) vq_writer_put(&w, fill, space < sizeof(fill) ? (size_t) space : sizeof(fill));
                (void) vq_writer_put(&w, buf, got);
                vq_push(&q, elem.head, (uint32_t) w.done);
                (void) vq_should_notify(&q);
        }
out:
        free(r0);
        free(r1);
        return 0;
}
