/* io_uring over raw system calls: ring set-up with restrictions, the
 * shared-memory submission and completion queues, io_uring_enter. */
#include "util/uring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/macro.h"

#define SQE_SIZE 128u

static int sys_setup(unsigned entries, struct io_uring_params *p) {
        return (int) syscall(SYS_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags) {
        return (int) syscall(SYS_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
        return (int) syscall(SYS_io_uring_register, fd, op, arg, n);
}

static void *map(int fd, size_t len, off_t off) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
        return p == MAP_FAILED ? NULL : p;
}

static int map_rings(struct uring *u, const struct io_uring_params *p) {
        uint8_t *sq, *cq;

        u->sq_map_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
        u->cq_map_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
        u->sqes_len = (size_t) p->sq_entries * SQE_SIZE;
        if (p->features & IORING_FEAT_SINGLE_MMAP)
                u->sq_map_len = u->cq_map_len = MAX(u->sq_map_len, u->cq_map_len);
        u->sq_map = map(u->fd, u->sq_map_len, IORING_OFF_SQ_RING);
        if (!u->sq_map)
                return negative_errno();
        if (p->features & IORING_FEAT_SINGLE_MMAP)
                u->cq_map = u->sq_map;
        else if (!(u->cq_map = map(u->fd, u->cq_map_len, IORING_OFF_CQ_RING)))
                return negative_errno();
        u->sqes = map(u->fd, u->sqes_len, IORING_OFF_SQES);
        if (!u->sqes)
                return negative_errno();
        sq = u->sq_map;
        cq = u->cq_map;
        u->sq_entries = p->sq_entries;
        u->sq_head = (unsigned *) (sq + p->sq_off.head);
        u->sq_tail = (unsigned *) (sq + p->sq_off.tail);
        u->sq_mask = (unsigned *) (sq + p->sq_off.ring_mask);
        u->sq_array = (unsigned *) (sq + p->sq_off.array);
        u->cq_head = (unsigned *) (cq + p->cq_off.head);
        u->cq_tail = (unsigned *) (cq + p->cq_off.tail);
        u->cq_mask = (unsigned *) (cq + p->cq_off.ring_mask);
        u->cqes = (struct io_uring_cqe *) (cq + p->cq_off.cqes);
        u->sq_local_tail = *u->sq_tail;
        return 0;
}

/* fd as fixed file 0, only only_op on fixed files in SQEs, no further
 * registrations, then the ring is enabled (it was created disabled, the
 * one state in which restrictions can be registered). */
static int restrict_and_enable(struct uring *u, uint8_t only_op, int fd) {
        struct io_uring_restriction res[2] = {
                { .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = only_op },
                { .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
        };

        if (sys_register(u->fd, IORING_REGISTER_FILES, &fd, 1) < 0)
                return negative_errno();
        if (sys_register(u->fd, IORING_REGISTER_RESTRICTIONS, res, ELEMENTSOF(res)) < 0)
                return negative_errno();
        if (sys_register(u->fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
                return negative_errno();
        return 0;
}

int uring_open(struct uring *u, unsigned entries, uint8_t only_op, int fd) {
        struct io_uring_params p = {
                .flags = IORING_SETUP_SQE128 | IORING_SETUP_R_DISABLED | IORING_SETUP_COOP_TASKRUN |
                         IORING_SETUP_CQSIZE,
                .cq_entries = 2 * entries,
        };
        int r;

        *u = (struct uring){ .fd = -1 };
        u->fd = sys_setup(entries, &p);
        if (u->fd < 0)
                return negative_errno();
        r = map_rings(u, &p);
        if (r >= 0)
                r = restrict_and_enable(u, only_op, fd);
        if (r < 0)
                uring_close(u);
        return r;
}

void uring_close(struct uring *u) {
        if (u->sqes)
                munmap(u->sqes, u->sqes_len);
        if (u->cq_map && u->cq_map != u->sq_map)
                munmap(u->cq_map, u->cq_map_len);
        if (u->sq_map)
                munmap(u->sq_map, u->sq_map_len);
        if (u->fd >= 0)
                close(u->fd);
        *u = (struct uring){ .fd = -1 };
}

struct io_uring_sqe *uring_get_sqe(struct uring *u) {
        unsigned head = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
        struct io_uring_sqe *sqe;
        unsigned idx;

        if (u->sq_local_tail - head >= u->sq_entries)
                return NULL;
        idx = u->sq_local_tail & *u->sq_mask;
        sqe = (struct io_uring_sqe *) (u->sqes + (size_t) idx * SQE_SIZE);
        memset(sqe, 0, SQE_SIZE);
        sqe->fd = 0;
        sqe->flags = IOSQE_FIXED_FILE;
        u->sq_array[idx] = idx;
        u->sq_local_tail++;
        return sqe;
}

int uring_submit(struct uring *u, unsigned wait) {
        unsigned submit;
        int k;

        /* what the kernel has not consumed yet, earlier leftovers included */
        __atomic_store_n(u->sq_tail, u->sq_local_tail, __ATOMIC_RELEASE);
        submit = u->sq_local_tail - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
        if (submit == 0 && wait == 0)
                return 0;
        k = sys_enter(u->fd, submit, wait, wait > 0 ? IORING_ENTER_GETEVENTS : 0);
        return k < 0 ? negative_errno() : 0;
}

struct io_uring_cqe *uring_peek(struct uring *u) {
        unsigned head = *u->cq_head;

        if (head == __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE))
                return NULL;
        return &u->cqes[head & *u->cq_mask];
}

void uring_advance(struct uring *u) {
        __atomic_store_n(u->cq_head, *u->cq_head + 1, __ATOMIC_RELEASE);
}
