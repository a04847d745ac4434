/* Split-virtqueue processing over guest memory mapped from the VMM:
 * address translation, descriptor-chain walking with every guest value
 * validated, used-ring updates and notification suppression (EVENT_IDX). */
#include "transport/virtqueue.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>
#include <string.h>

#include "util/log.h"
#include "util/macro.h"

/* Guest memory changes under us: every shared field is read exactly once
 * with an atomic (untorn, not re-fetched) load, and the value is validated
 * as a local copy. */
#define GUEST_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define GUEST_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Copies a structure out of guest memory.  The compiler barrier after it
 * keeps the compiler from dropping the private copy and reading the guest's
 * (changing) bytes again where the copy's fields are used. */
static void guest_copy(void *dst, const void *src, size_t n) {
        memcpy(dst, src, n);
        __asm__ __volatile__("" ::: "memory");
}

/* ---- recovering from guest memory that vanished (SIGBUS) ----
 *
 * A guarded function registers a recovery point for its thread, accesses
 * guest memory, and unregisters it.  The SIGBUS handler unwinds to the
 * point when the fault address lies inside the memory table the point
 * names; everything else goes to the previous action.  The handler runs
 * with SA_NODEFER and an empty mask, so unwinding with siglongjmp needs no
 * signal mask restore (sigsetjmp(env, 0) is cheap: no system call).
 * Guarded sections take no locks and allocate nothing, so leaving one
 * early leaks nothing. */
struct guard {
        sigjmp_buf env;
        const struct vu_mem *mem;
        struct guard *prev;
};

static __thread struct guard *guard_top;
static struct sigaction guard_old_action;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static int guard_init_error;

static bool in_guest(const struct vu_mem *m, const void *addr) {
        uintptr_t a = (uintptr_t) addr;
        for (unsigned i = 0; i < m->nregions && i < VU_MAX_REGIONS; i++) {
                uintptr_t base = (uintptr_t) m->regions[i].host;
                if (a >= base && a - base < m->regions[i].size)
                        return true;
        }
        return false;
}

static void guard_sigbus(int sig, siginfo_t *si, void *uc) {
        struct guard *g = guard_top;

        if (g && si && si->si_code > 0 && in_guest(g->mem, si->si_addr)) {
                guard_top = g->prev;
                /* the jump does not restore the signal mask (sigsetjmp
                 * with 0 spares a syscall per access); where the handler
                 * runs with SIGBUS blocked (ThreadSanitizer blocks all
                 * signals in handlers), unblock it as it was outside */
                if (uc)
                        pthread_sigmask(SIG_SETMASK, &((ucontext_t *) uc)->uc_sigmask, NULL);
                siglongjmp(g->env, 1);
        }
        /* not a fault in guest memory: what would have happened without us */
        if (guard_old_action.sa_flags & SA_SIGINFO) {
                if (guard_old_action.sa_sigaction) {
                        guard_old_action.sa_sigaction(sig, si, uc);
                        return;
                }
        } else if (guard_old_action.sa_handler != SIG_DFL && guard_old_action.sa_handler != SIG_IGN) {
                guard_old_action.sa_handler(sig);
                return;
        }
        /* default action: a fault recurs when the instruction is retried,
         * a sent signal is raised again */
        signal(SIGBUS, SIG_DFL);
        if (!si || si->si_code <= 0)
                raise(SIGBUS);
}

static void guard_install(void) {
        struct sigaction sa = { .sa_sigaction = guard_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK };
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, &guard_old_action) < 0)
                guard_init_error = negative_errno();
}

int vu_mem_guard_init(void) {
        pthread_once(&guard_once, guard_install);
        return guard_init_error;
}

/* Runs fn(arg) with a recovery point for faults inside mem: returns 0, or
 * -EFAULT if fn was cut short by one.  fn must take no lock and allocate
 * nothing.  Only this frame's own unmodified locals live across the
 * sigsetjmp, so nothing is clobbered by the jump back; noinline keeps it
 * that way (inlined, the callers' state would share the frame). */
__attribute__((noinline)) static int guarded(const struct vu_mem *mem, void (*fn)(void *), void *arg) {
        struct guard g = { .mem = mem, .prev = guard_top };

        if (sigsetjmp(g.env, 0) != 0)
                return -EFAULT; /* the handler popped g */
        guard_top = &g;
        /* no guest access may move above this point ... */
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        fn(arg);
        /* ... nor below this one */
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        guard_top = g.prev;
        return 0;
}

static void mark_broken(struct vq *q) {
        __atomic_store_n(&q->broken, true, __ATOMIC_RELAXED);
}

bool vq_is_broken(const struct vq *q) {
        return __atomic_load_n(&q->broken, __ATOMIC_RELAXED);
}

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

struct used_idx_load {
        const uint16_t *idx;
        uint16_t value;
};

static void load_used_idx(void *arg) {
        struct used_idx_load *ld = arg;
        ld->value = GUEST_LOAD(ld->idx);
}

int vq_map(struct vq *q, const struct vu_mem *mem, unsigned num, uint64_t desc_uva, uint64_t avail_uva,
           uint64_t used_uva) {
        struct used_idx_load ld;
        int r;

        r = vu_mem_guard_init();
        if (r < 0)
                return r;
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
        /* ... and on the host side too: the front-end picks each region's
         * mmap_offset freely, which can shift aligned guest addresses onto
         * misaligned host pointers */
        if (((uintptr_t) d & 15) || ((uintptr_t) a & 1) || ((uintptr_t) u & 3))
                return -EFAULT;
        ld.idx = (uint16_t *) u + 1;
        r = guarded(mem, load_used_idx, &ld);
        if (r < 0)
                return r;
        q->num = num;
        q->mem = mem;
        q->desc = d;
        q->avail = a;
        q->used = u;
        q->broken = false;
        q->used_idx = ld.value;
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

        elem->mem = q->mem;
        elem->head = head;
        elem->out_num = elem->in_num = 0;
        elem->out_len = elem->in_len = 0;
        for (;;) {
                struct vq_desc d;

                if (i >= table_size || budget == 0)
                        return -EPROTO; /* NEXT out of range, or a loop */
                budget--;
                guest_copy(&d, &table[i], sizeof(d)); /* private copy, validated below */

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

/* The guest-memory part of vq_pop, run under a recovery point. */
struct pop_call {
        struct vq *q;
        struct vq_elem *elem;
        int r;
};

static void pop_chain(void *arg) {
        struct pop_call *c = arg;
        struct vq *q = c->q;

        uint16_t idx = avail_idx(q);
        uint16_t pending = (uint16_t) (idx - q->last_avail_idx);
        if (pending == 0) {
                c->r = 0;
                return;
        }
        if (pending > q->num) {
                c->r = -EIO;
                return;
        }
        /* the ring entry must be read after the index that published it */
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint16_t head = GUEST_LOAD(&q->avail[2 + (q->last_avail_idx & (q->num - 1))]);
        if (head >= q->num) {
                c->r = -EIO;
                return;
        }
        c->r = walk_chain(q, head, c->elem);
        q->last_avail_idx++;
        if (c->r < 0) {
                c->elem->head = head;
                c->elem->out_num = c->elem->in_num = 0;
                c->elem->out_len = c->elem->in_len = 0;
                return;
        }
        c->r = 1;
}

int vq_pop(struct vq *q, struct vq_elem *elem) {
        struct pop_call c = { .q = q, .elem = elem };

        if (vq_is_broken(q) || q->num == 0)
                return -EIO;
        if (guarded(q->mem, pop_chain, &c) < 0)
                c.r = -EFAULT;
        if (c.r == -EIO || c.r == -EFAULT)
                mark_broken(q);
        return c.r;
}

struct push_call {
        struct vq *q;
        uint16_t head;
        uint32_t len;
};

static void push_used(void *arg) {
        struct push_call *c = arg;
        struct vq *q = c->q;
        struct vq_used_elem *ring = (struct vq_used_elem *) (q->used + 2);
        struct vq_used_elem *e = &ring[q->used_idx & (q->num - 1)];

        GUEST_STORE(&e->id, (uint32_t) c->head);
        GUEST_STORE(&e->len, c->len);
        /* the element must be visible before the index that publishes it */
        __atomic_store_n(&q->used[1], (uint16_t) (q->used_idx + 1), __ATOMIC_RELEASE);
        q->used_idx++;
}

void vq_push(struct vq *q, uint16_t head, uint32_t len) {
        struct push_call c = { .q = q, .head = head, .len = len };

        if (vq_is_broken(q) || q->num == 0)
                return;
        if (guarded(q->mem, push_used, &c) < 0)
                mark_broken(q);
}

/* The driver's suppression state: avail flags and used_event. */
struct suppression {
        const struct vq *q;
        uint16_t flags, used_event;
};

static void load_suppression(void *arg) {
        struct suppression *s = arg;
        s->flags = GUEST_LOAD(&s->q->avail[0]);
        s->used_event = GUEST_LOAD(&s->q->avail[2 + s->q->num]);
}

bool vq_should_notify(struct vq *q) {
        struct suppression s = { .q = q };

        if (vq_is_broken(q) || q->num == 0)
                return false;
        /* our used->idx store must be ordered before reading the driver's
         * suppression state, or both sides may decide not to notify */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (guarded(q->mem, load_suppression, &s) < 0) {
                mark_broken(q);
                return false;
        }
        if (!q->event_idx)
                return !(s.flags & VQ_AVAIL_F_NO_INTERRUPT);

        uint16_t old = q->signalled_used, new = q->used_idx;
        bool valid = q->signalled_used_valid;
        q->signalled_used = new;
        q->signalled_used_valid = true;
        if (!valid)
                return true;
        /* notify if used_event lies in [old, new) */
        return (uint16_t) (new - s.used_event - 1) < (uint16_t) (new - old);
}

struct kick_call {
        struct vq *q;
        bool pending;
};

static void enable_kick(void *arg) {
        struct kick_call *c = arg;
        struct vq *q = c->q;

        if (q->event_idx) {
                uint16_t *avail_event = (uint16_t *) ((struct vq_used_elem *) (q->used + 2) + q->num);
                GUEST_STORE(avail_event, q->last_avail_idx);
        }
        /* publish avail_event before re-reading avail->idx */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        c->pending = avail_idx(q) != q->last_avail_idx;
}

bool vq_enable_kick(struct vq *q) {
        struct kick_call c = { .q = q };

        if (vq_is_broken(q) || q->num == 0)
                return false;
        if (guarded(q->mem, enable_kick, &c) < 0) {
                mark_broken(q);
                return false;
        }
        return c.pending;
}

struct read_call {
        const struct vq_elem *elem;
        void *buf;
        size_t len, done;
};

static void elem_read(void *arg) {
        struct read_call *c = arg;
        const struct vq_elem *elem = c->elem;

        for (unsigned i = 0; i < elem->out_num && c->done < c->len; i++) {
                size_t k = MIN(c->len - c->done, elem->iov[i].iov_len);
                memcpy((uint8_t *) c->buf + c->done, elem->iov[i].iov_base, k);
                c->done += k;
        }
}

ssize_t vq_elem_read(const struct vq_elem *elem, void *buf, size_t len) {
        struct read_call c = { .elem = elem, .buf = buf, .len = len };

        if (guarded(elem->mem, elem_read, &c) < 0)
                return -EFAULT;
        return (ssize_t) c.done;
}

/* Advances the cursor by len bytes. */
static void writer_skip(struct vq_writer *w, size_t len) {
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

void vq_writer_init(struct vq_writer *w, const struct vq_elem *elem) {
        w->elem = elem;
        w->i = elem->out_num;
        w->off = 0;
        w->done = 0;
        writer_skip(w, 0); /* step over leading empty segments */
}

uint64_t vq_writer_space(const struct vq_writer *w) {
        return w->elem->in_len - w->done;
}

struct put_call {
        struct vq_writer *w;
        const uint8_t *p;
        size_t len;
};

static void writer_put(void *arg) {
        struct put_call *c = arg;
        struct vq_writer *w = c->w;
        const struct vq_elem *e = w->elem;

        while (c->len > 0) {
                const struct iovec *v = &e->iov[w->i];
                size_t k = MIN(c->len, v->iov_len - w->off);
                memcpy((uint8_t *) v->iov_base + w->off, c->p, k);
                c->p += k;
                c->len -= k;
                writer_skip(w, k);
        }
}

int vq_writer_put(struct vq_writer *w, const void *data, size_t len) {
        struct put_call c = { .w = w, .p = data, .len = len };

        if (len > vq_writer_space(w))
                return -ENOSPC;
        return guarded(w->elem->mem, writer_put, &c);
}

