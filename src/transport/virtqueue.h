/* Split virtqueues in guest memory: guest-address translation through the
 * vhost-user memory table and a descriptor-chain walker that treats every
 * byte of guest memory as hostile.  No sockets, no threads, no FUSE. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define VQ_MAX_SIZE 1024        /* largest ring we accept (and offer) */
#define VQ_MAX_IOV 1024         /* segments of one chain, both directions */
#define VQ_MAX_CHAIN_BYTES (64u << 20) /* per direction; FUSE needs ~1 MiB */
#define VU_MAX_REGIONS 8        /* vhost-user memory table limit */

/* virtio feature bits this code knows about */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* Split ring layout (virtio 1.x, little-endian; only x86/arm64 little
 * endian hosts are supported, so no byte swapping):
 *   descriptor table: num x { le64 addr; le32 len; le16 flags; le16 next; }
 *   available ring:   le16 flags; le16 idx; le16 ring[num]; le16 used_event;
 *   used ring:        le16 flags; le16 idx; { le32 id; le32 len; }[num]; le16 avail_event; */
struct vq_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};
_Static_assert(sizeof(struct vq_desc) == 16, "virtq descriptor is 16 bytes");

struct vq_used_elem {
        uint32_t id;
        uint32_t len;
};
_Static_assert(sizeof(struct vq_used_elem) == 8, "virtq used element is 8 bytes");

#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2
#define VQ_DESC_F_INDIRECT 4
#define VQ_AVAIL_F_NO_INTERRUPT 1

/* Bytes of each ring part for a ring of num entries (with the event-index
 * trailer, which is always reserved). */
static inline size_t vq_desc_bytes(unsigned num) { return 16 * (size_t) num; }
static inline size_t vq_avail_bytes(unsigned num) { return 6 + 2 * (size_t) num; }
static inline size_t vq_used_bytes(unsigned num) { return 6 + 8 * (size_t) num; }

/* One guest memory region as mapped here. */
struct vu_mem_region {
        uint64_t gpa;  /* guest physical address of the first byte */
        uint64_t size; /* bytes, > 0 */
        uint64_t uva;  /* the front-end's (VMM's) virtual address of it */
        uint8_t *host; /* our mapping of it */
};

/* The guest memory table.  Immutable while any ring using it runs. */
struct vu_mem {
        unsigned nregions;
        struct vu_mem_region regions[VU_MAX_REGIONS];
};

/* Guest memory can disappear under us: the front-end may shrink the file
 * behind a region after we mapped it, and touching a page past the new end
 * raises SIGBUS.  Every function below that reads or writes guest memory
 * does so under a per-thread recovery point: a SIGBUS at an address inside
 * the guest memory table being accessed unwinds to that function, which
 * fails with -EFAULT (vq functions also mark the ring broken).  A SIGBUS
 * anywhere else, or on a thread outside such an access, gets the action
 * that was installed before (by default: the process dies).
 * vu_mem_guard_init() installs the process-wide handler; it is idempotent,
 * thread-safe and called by vq_map(), so users of struct vq need not call
 * it themselves.  Returns 0 or -errno. */
int vu_mem_guard_init(void);

/* Host pointer for the guest range [gpa, gpa + len) if it lies inside one
 * region, else NULL.  Overflow-safe; len 0 is treated as 1 byte. */
void *vu_mem_gpa(const struct vu_mem *m, uint64_t gpa, uint64_t len);
/* Same for a front-end virtual address (ring addresses of SET_VRING_ADDR). */
void *vu_mem_uva(const struct vu_mem *m, uint64_t uva, uint64_t len);
/* Maps [gpa, gpa + len) to up to max iovecs, splitting at region borders
 * (adjacent regions).  len 0 gives no segment.  Returns the number of
 * segments, -EFAULT if part of the range is outside guest memory, -E2BIG
 * if more than max segments would be needed. */
int vu_mem_gpa_iov(const struct vu_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned max);

/* A split virtqueue.  Nothing here is locked; the caller decides who owns
 * which side.  The available side (vq_pop, vq_enable_kick, last_avail_idx)
 * and the used side (vq_push, vq_should_notify, used_idx, signalled_*) may
 * belong to different threads, as long as each side has one owner at a
 * time (e.g. one popping thread, pushes serialised by a lock); broken is
 * read and set atomically by both.  While the ring is stopped, everything
 * belongs to the vhost-user thread. */
struct vq {
        unsigned num;                 /* entries, power of two <= VQ_MAX_SIZE; 0 = unset */
        const struct vu_mem *mem;     /* guest memory; set by vq_map */
        struct vq_desc *desc;         /* in guest memory */
        uint16_t *avail;              /* in guest memory: flags, idx, ring[num], used_event */
        uint16_t *used;               /* in guest memory: flags, idx, elems, avail_event */
        bool indirect;                /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
        bool event_idx;               /* VIRTIO_RING_F_EVENT_IDX negotiated */
        bool broken;                  /* guest broke the ring: serve nothing more; atomic */
        uint16_t last_avail_idx;      /* next available entry to take */
        uint16_t used_idx;            /* next used entry to fill (our copy of used->idx) */
        uint16_t signalled_used;      /* used_idx at the last notification */
        bool signalled_used_valid;
};

/* One descriptor chain, translated: iov[0 .. out_num) is what the driver
 * wrote (device-readable), iov[out_num .. out_num + in_num) is where the
 * device writes its answer.  The iovecs point into guest memory. */
struct vq_elem {
        const struct vu_mem *mem; /* the table iov points into */
        uint16_t head;
        unsigned out_num, in_num;
        uint64_t out_len, in_len;
        struct iovec iov[VQ_MAX_IOV];
};

/* Sets up q for a ring of num entries at the given front-end virtual
 * addresses (as SET_VRING_ADDR passes them).  Checks num, alignment and
 * that each part lies inside guest memory.  Keeps last_avail_idx (the
 * ring base) and sets used_idx from the used ring.  -EINVAL for a bad
 * num, -EFAULT for an address outside guest memory or misaligned. */
int vq_map(struct vq *q, const struct vu_mem *mem, unsigned num, uint64_t desc_uva, uint64_t avail_uva,
           uint64_t used_uva);

/* Takes the next available chain.  Returns 1 with *elem filled, 0 if the
 * ring is empty, -EPROTO if the chain was malformed (it is consumed: the
 * caller must still vq_push(q, elem->head, 0)), -EIO if the ring itself is
 * broken (avail index jumped past the ring size, head out of range) and
 * -EFAULT if guest memory vanished under the ring (SIGBUS): q is then
 * marked broken and nothing more is taken or pushed. */
int vq_pop(struct vq *q, struct vq_elem *elem);

/* Returns a chain to the driver with len bytes written (a no-op on a
 * broken ring; marks it broken if guest memory vanished). */
void vq_push(struct vq *q, uint16_t head, uint32_t len);

/* Whether q was marked broken (by any thread). */
bool vq_is_broken(const struct vq *q);

/* Whether the driver wants an interrupt now (call eventfd), honouring
 * EVENT_IDX / NO_INTERRUPT.  Updates the signalled state: call it once
 * per batch of pushes and signal if it returns true. */
bool vq_should_notify(struct vq *q);

/* Before sleeping: tells the driver (EVENT_IDX) to kick at the next new
 * entry and returns true if entries arrived meanwhile (then don't sleep). */
bool vq_enable_kick(struct vq *q);

/* Copies up to len readable bytes of elem, starting at offset 0, into buf.
 * Returns the number copied, or -EFAULT if guest memory vanished. */
ssize_t vq_elem_read(const struct vq_elem *elem, void *buf, size_t len);

/* Scatter cursor over the writable part of an element. */
struct vq_writer {
        const struct vq_elem *elem;
        unsigned i;      /* current iov index (absolute) */
        size_t off;      /* offset into it */
        uint64_t done;   /* bytes written so far */
};
void vq_writer_init(struct vq_writer *w, const struct vq_elem *elem);
/* Writes len bytes; returns -ENOSPC (writing nothing) if they don't fit,
 * -EFAULT if guest memory vanished (part may have been written). */
int vq_writer_put(struct vq_writer *w, const void *data, size_t len);
/* Remaining writable bytes. */
uint64_t vq_writer_space(const struct vq_writer *w);
