/* A minimal io_uring ring over the raw system calls: 128-byte SQEs, one
 * permitted operation (fixed at set-up, IORING_REGISTER_RESTRICTIONS),
 * submission and completion.  Just what the FUSE io_uring transport
 * needs; no dependency on liburing. */
#pragma once

#include <linux/io_uring.h>
#include <stddef.h>
#include <stdint.h>

/* One ring.  Used by one thread at a time (no locks). */
struct uring {
        int fd;
        unsigned sq_entries;
        unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
        uint8_t *sqes;                  /* sq_entries SQEs of 128 bytes */
        unsigned sq_local_tail;         /* SQEs filled, not yet published */
        unsigned *cq_head, *cq_tail, *cq_mask;
        struct io_uring_cqe *cqes;
        void *sq_map, *cq_map;
        size_t sq_map_len, cq_map_len, sqes_len;
};

/* Creates a ring of at least `entries` 128-byte SQEs (and twice as many
 * CQEs) that accepts nothing but SQEs of opcode `only_op` on `fd`, which
 * becomes its fixed file 0 (SQEs say fd 0 and IOSQE_FIXED_FILE; the
 * helpers below set both): the ring cannot be used for anything else, even
 * by code that gets hold of it.  0 or -errno (-ENOSYS, -EPERM: io_uring is
 * not available here). */
int uring_open(struct uring *u, unsigned entries, uint8_t only_op, int fd);
/* Unmaps and closes (pending operations are cancelled); safe twice. */
void uring_close(struct uring *u);

/* The next free SQE, zeroed but for its fixed file, or NULL if the queue is full (submit first). */
struct io_uring_sqe *uring_get_sqe(struct uring *u);
/* Submits the filled SQEs and, if wait > 0, waits until that many
 * completions are there.  0 or -errno (-EINTR when a signal arrived). */
int uring_submit(struct uring *u, unsigned wait);
/* The oldest completion not yet consumed, or NULL. */
struct io_uring_cqe *uring_peek(struct uring *u);
/* Consumes the completion uring_peek() returned. */
void uring_advance(struct uring *u);
