/* Split-virtqueue processing over guest memory mapped from the VMM:
 * address translation, descriptor-chain walking with every guest value
 * validated, used-ring updates and notification suppression (EVENT_IDX). */
#include "transport/virtqueue.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"
#include "util/macro.h"

/* Guest memory changes under us: every shared field is read exactly once
 * with an atomic (untorn, not re-fetched) load, and the value is validated
 * as a local copy. */
#define GUEST_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define GUEST_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static bool range_in(uint64_t base, uint64_t size, uint64_t addr, uint64_t len) {
        /* [addr, addr+len) within [base, base+size), without overflow */
        if (addr < base)
                return false;
        uint64_t off = addr - base;
        return off < size && len <= size - off;
}

void *vu_mem_gpa(const struct vu_mem *m, uint64_t gpa, uint64_t len) {
        if (len == 0)
                len = 1;
        for (unsigned i = 0; i < m->nregions && i < VU_MAX_REGIONS; i++) {
                const struct vu_mem_region *r = &m->regions[i];
                if (range_in(r->gpa, r->size, gpa, len))
                        return r->host + (gpa - r->gpa);
        }
        return NULL;
}

void *vu_mem_uva(const struct vu_mem *m, uint64_t uva, uint64_t len) {
        if (len == 0)
                len = 1;
        for (unsigned i = 0; i < m->nregions && i < VU_MAX_REGIONS; i++) {
                const struct vu_mem_region *r = &m->regions[i];
                if (range_in(r->uva, r->size, uva, len))
                        return r->host + (uva - r->uva);
        }
        return NULL;
}

int vu_mem_gpa_iov(const struct vu_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max) {
        unsigned n = 0;

        while (len > 0) {
                const struct vu_mem_region *r = NULL;
                for (unsigned i = 0; i < m->nregions && i < VU_MAX_REGIONS; i++)
                        if (range_in(m->regions[i].gpa, m->regions[i].size, gpa, 1)) {
                                r = &m->regions[i];
                                break;
                        }
                if (!r)
                        return -EFAULT;
                if (n >= max)
                        return -E2BIG;
                uint64_t off = gpa - r->gpa;
                uint64_t chunk = MIN(len, r->size - off);
                iov[n].iov_base = r->host + off;
                iov[n].iov_len = chunk;
                n++;
                len -= chunk;
                gpa += chunk; /* cannot wrap: chunk ends inside a region */
        }
        return (int) n;
}

int vq_map(struct vq *q, const struct vu_mem *mem, unsigned num, uint64_t desc_uva, uint64_t avail_uva,
           uint64_t used_uva) {
        if (num == 0 || num > VQ_MAX_SIZE || (num & (num - 1)) != 0)
                return -EINVAL;
        /* alignment required by the virtio spec (and by our typed access) */
        if ((desc_uva & 15) || (avail_uva & 1) || (used_uva & 3))
                return -EFAULT;
        void *d = vu_mem_uva(mem, desc_uva, vq_desc_bytes(num));
        void *a = vu_mem_uva(mem, avail_uva, vq_avail_bytes(num));
        void *u = vu_mem_uva(mem, used_uva, vq_used_bytes(num));
        if (!d || !a || !u)
                return -EFAULT;
        q->num = num;
        q->mem = mem;
        q->desc = d;
        q->avail = a;
        q->used = u;
        q->broken = false;
        q->used_idx = GUEST_LOAD(&q->used[1]);
        q->signalled_used_valid = false;
        return 0;
}

static uint16_t avail_idx(const struct vq *q) {
        return GUEST_LOAD(&q->avail[1]);
}

static int map_desc(const struct vq *q, const struct vq_desc *d, struct vq_elem *elem, unsigned *nseg) {
        int n = vu_mem_gpa_iov(q->mem, d->addr, d->len, elem->iov + *nseg, VQ_MAX_IOV - *nseg);
        if (n < 0)
                return n;
        *nseg += (unsigned) n;
        return 0;
}

/* Walks the chain starting at head.  Any error is -EPROTO. */
static int walk_chain(struct vq *q, uint16_t head, struct vq_elem *elem) {
        const struct vq_desc *table = q->desc;
        unsigned table_size = q->num, i = head, budget = q->num, nseg = 0;
        bool in_indirect = false, seen_write = false;

        elem->head = head;
        elem->out_num = elem->in_num = 0;
        elem->out_len = elem->in_len = 0;
        for (;;) {
                struct vq_desc d;

                if (i >= table_size || budget == 0)
                        return -EPROTO; /* NEXT out of range, or a loop */
                budget--;
                memcpy(&d, &table[i], sizeof(d)); /* private copy, validated below */

                if (d.flags & VQ_DESC_F_INDIRECT) {
                        if (!q->indirect || in_indirect || (d.flags & VQ_DESC_F_NEXT))
                                return -EPROTO;
                        if (d.len == 0 || d.len % sizeof(struct vq_desc) != 0 ||
                            d.len / sizeof(struct vq_desc) > VQ_MAX_SIZE)
                                return -EPROTO;
                        /* memcpy reads the table entries, so no alignment is needed */
                        table = vu_mem_gpa(q->mem, d.addr, d.len);
                        if (!table)
                                return -EPROTO;
                        table_size = d.len / sizeof(struct vq_desc);
                        budget = table_size;
                        in_indirect = true;
                        i = 0;
                        continue;
                }

                if (d.flags & VQ_DESC_F_WRITE) {
                        seen_write = true;
                        elem->in_len += d.len;
                        if (elem->in_len > VQ_MAX_CHAIN_BYTES)
                                return -EPROTO;
                } else {
                        if (seen_write) /* readable after writable: not allowed */
                                return -EPROTO;
                        elem->out_len += d.len;
                        if (elem->out_len > VQ_MAX_CHAIN_BYTES)
                                return -EPROTO;
                }
                unsigned before = nseg;
                if (map_desc(q, &d, elem, &nseg) < 0)
                        return -EPROTO;
                if (d.flags & VQ_DESC_F_WRITE)
                        elem->in_num += nseg - before;
                else
                        elem->out_num += nseg - before;

                if (!(d.flags & VQ_DESC_F_NEXT))
                        return 0;
                i = d.next;
        }
}

int vq_pop(struct vq *q, struct vq_elem *elem) {
        if (q->broken || q->num == 0)
                return -EIO;
        uint16_t idx = avail_idx(q);
        uint16_t pending = (uint16_t) (idx - q->last_avail_idx);
        if (pending == 0)
                return 0;
        if (pending > q->num) {
                q->broken = true;
                return -EIO;
        }
        /* the ring entry must be read after the index that published it */
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint16_t head = GUEST_LOAD(&q->avail[2 + (q->last_avail_idx & (q->num - 1))]);
        if (head >= q->num) {
                q->broken = true;
                return -EIO;
        }
        q->last_avail_idx++;
        int r = walk_chain(q, head, elem);
        if (r < 0) {
                elem->head = head;
                elem->out_num = elem->in_num = 0;
                elem->out_len = elem->in_len = 0;
                return r;
        }
        return 1;
}

void vq_push(struct vq *q, uint16_t head, uint32_t len) {
        if (q->broken || q->num == 0)
                return;
        struct vq_used_elem *ring = (struct vq_used_elem *) (q->used + 2);
        struct vq_used_elem *e = &ring[q->used_idx & (q->num - 1)];
        GUEST_STORE(&e->id, (uint32_t) head);
        GUEST_STORE(&e->len, len);
        q->used_idx++;
        /* the element must be visible before the index that publishes it */
        __atomic_store_n(&q->used[1], q->used_idx, __ATOMIC_RELEASE);
}

bool vq_should_notify(struct vq *q) {
        if (q->broken || q->num == 0)
                return false;
        /* our used->idx store must be ordered before reading the driver's
         * suppression state, or both sides may decide not to notify */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!q->event_idx)
                return !(GUEST_LOAD(&q->avail[0]) & VQ_AVAIL_F_NO_INTERRUPT);

        uint16_t old = q->signalled_used, new = q->used_idx;
        bool valid = q->signalled_used_valid;
        q->signalled_used = new;
        q->signalled_used_valid = true;
        if (!valid)
                return true;
        uint16_t event = GUEST_LOAD(&q->avail[2 + q->num]);
        /* notify if used_event lies in [old, new) */
        return (uint16_t) (new - event - 1) < (uint16_t) (new - old);
}

bool vq_enable_kick(struct vq *q) {
        if (q->broken || q->num == 0)
                return false;
        if (q->event_idx) {
                uint16_t *avail_event = (uint16_t *) ((struct vq_used_elem *) (q->used + 2) + q->num);
                GUEST_STORE(avail_event, q->last_avail_idx);
        }
        /* publish avail_event before re-reading avail->idx */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return avail_idx(q) != q->last_avail_idx;
}

size_t vq_elem_read(const struct vq_elem *elem, void *buf, size_t len) {
        size_t done = 0;
        for (unsigned i = 0; i < elem->out_num && done < len; i++) {
                size_t k = MIN(len - done, elem->iov[i].iov_len);
                memcpy((uint8_t *) buf + done, elem->iov[i].iov_base, k);
                done += k;
        }
        return done;
}

void vq_writer_init(struct vq_writer *w, const struct vq_elem *elem) {
        w->elem = elem;
        w->i = elem->out_num;
        w->off = 0;
        w->done = 0;
        vq_writer_skip(w, 0); /* step over leading empty segments */
}

uint64_t vq_writer_space(const struct vq_writer *w) {
        return w->elem->in_len - w->done;
}

int vq_writer_put(struct vq_writer *w, const void *data, size_t len) {
        const struct vq_elem *e = w->elem;
        const uint8_t *p = data;

        if (len > vq_writer_space(w))
                return -ENOSPC;
        while (len > 0) {
                const struct iovec *v = &e->iov[w->i];
                size_t k = MIN(len, v->iov_len - w->off);
                memcpy((uint8_t *) v->iov_base + w->off, p, k);
                p += k;
                len -= k;
                vq_writer_skip(w, k);
        }
        return 0;
}

unsigned vq_writer_iov(const struct vq_writer *w, size_t len, struct iovec *iov, unsigned max, size_t *ret_len) {
        const struct vq_elem *e = w->elem;
        unsigned n = 0, i = w->i;
        size_t off = w->off, total = 0;

        while (total < len && n < max && i < e->out_num + e->in_num) {
                size_t k = MIN(len - total, e->iov[i].iov_len - off);
                if (k > 0) {
                        iov[n].iov_base = (uint8_t *) e->iov[i].iov_base + off;
                        iov[n].iov_len = k;
                        n++;
                        total += k;
                }
                i++;
                off = 0;
        }
        *ret_len = total;
        return n;
}

void vq_writer_skip(struct vq_writer *w, size_t len) {
        const struct vq_elem *e = w->elem;

        w->done += len;
        while (len > 0 && w->i < e->out_num + e->in_num) {
                size_t k = MIN(len, e->iov[w->i].iov_len - w->off);
                w->off += k;
                len -= k;
                if (w->off == e->iov[w->i].iov_len) {
                        w->i++;
                        w->off = 0;
                }
        }
        /* skip over empty segments so off < iov_len holds at the cursor */
        while (w->i < e->out_num + e->in_num && e->iov[w->i].iov_len == 0)
                w->i++;
}
