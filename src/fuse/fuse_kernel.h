/* The FUSE wire protocol: the system's <linux/fuse.h> plus what older
 * headers lack, so the engine builds against Debian 12's 7.38 header and
 * still speaks 7.45 (FUSE passthrough) to newer kernels.  Values follow
 * the kernel's include/uapi/linux/fuse.h. */
#pragma once

#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

/* The protocol minor version this engine implements. */
#define FUSE_LL_MINOR 45
/* Oldest kernel protocol accepted: 7.12 (fuse_attr.blksize, fuse_getattr_in,
 * 40-byte fuse_read_in and the current entry/attr reply sizes). */
#define FUSE_LL_MIN_MINOR 12

/* --- INIT flags (the high 32 bits travel in init_in/init_out.flags2) --- */
#ifndef FUSE_INIT_EXT
#define FUSE_INIT_EXT (1 << 30)
#endif
#ifndef FUSE_SECURITY_CTX
#define FUSE_SECURITY_CTX (1ULL << 32)
#endif
#ifndef FUSE_HAS_INODE_DAX
#define FUSE_HAS_INODE_DAX (1ULL << 33)
#endif
#ifndef FUSE_CREATE_SUPP_GROUP
#define FUSE_CREATE_SUPP_GROUP (1ULL << 34)
#endif
#ifndef FUSE_HAS_EXPIRE_ONLY
#define FUSE_HAS_EXPIRE_ONLY (1ULL << 35)
#endif
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36) /* 7.39 */
#endif
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37) /* 7.40 */
#endif
#ifndef FUSE_NO_EXPORT_SUPPORT
#define FUSE_NO_EXPORT_SUPPORT (1ULL << 38) /* 7.40 */
#endif
#ifndef FUSE_HAS_RESEND
#define FUSE_HAS_RESEND (1ULL << 39) /* 7.40 */
#endif
#ifndef FUSE_ALLOW_IDMAP
#define FUSE_ALLOW_IDMAP (1ULL << 40) /* 7.41 */
#endif
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41) /* 7.42 */
#endif
#ifndef FUSE_REQUEST_TIMEOUT
#define FUSE_REQUEST_TIMEOUT (1ULL << 42) /* 7.43 */
#endif

/* --- open reply flags --- */
#ifndef FOPEN_NOFLUSH
#define FOPEN_NOFLUSH (1 << 5)
#endif
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1 << 7) /* 7.40: backing_id names the backing file */
#endif

/* --- opcodes newer than 7.38 (enum fuse_opcode lacks them there) --- */
#if FUSE_KERNEL_MINOR_VERSION < 39
#define FUSE_STATX 52
#endif
#if FUSE_KERNEL_MINOR_VERSION < 45
#define FUSE_COPY_FILE_RANGE_64 53
#endif
/* One past the highest opcode the dispatch table knows. */
#define FUSE_LL_OPCODE_MAX 54

/* The kernel marks interrupt requests' unique with this bit, and resent
 * requests (FUSE_HAS_RESEND) with the top bit. */
#define FUSE_LL_INT_REQ_BIT (1ULL << 0)
#define FUSE_LL_UNIQUE_RESEND (1ULL << 63)

/* --- device ioctls for passthrough (7.40) --- */
#ifndef FUSE_DEV_IOC_BACKING_OPEN
struct fuse_backing_map {
        int32_t fd;
        uint32_t flags;
        uint64_t padding;
};
#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
#endif
_Static_assert(sizeof(struct fuse_backing_map) == 16, "fuse_backing_map");

/* --- FUSE over io_uring (7.42, Linux 6.14) ---
 * Requests and replies travel through ring entries the daemon registers
 * with IORING_OP_URING_CMD commands on the /dev/fuse descriptor (128-byte
 * SQEs; struct fuse_uring_cmd_req in the SQE's command area, sqe->addr an
 * array of two iovecs: the entry's struct fuse_uring_req_header and its
 * payload buffer).  A request arrives as the fuse_in_header in in_out,
 * its first argument (the per-opcode header; zero bytes for some
 * opcodes) in op_in and the other arguments in the payload, whose length
 * is ring_ent_in_out.payload_sz.  A reply is the fuse_out_header in
 * in_out and all of its arguments in the payload, payload_sz bytes,
 * committed with the request's commit_id.  FORGET and INTERRUPT still
 * come through read() on the device. */
#ifndef FUSE_URING_IN_OUT_HEADER_SZ
#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ 128

struct fuse_uring_ent_in_out {
        uint64_t flags;
        uint64_t commit_id;  /* from a request, to name it in the commit */
        uint32_t payload_sz; /* bytes of payload in a request or reply */
        uint32_t padding;
        uint64_t reserved;
};

struct fuse_uring_req_header {
        char in_out[FUSE_URING_IN_OUT_HEADER_SZ]; /* fuse_in_header / fuse_out_header */
        char op_in[FUSE_URING_OP_IN_OUT_SZ];      /* the request's first argument */
        struct fuse_uring_ent_in_out ring_ent_in_out;
};

enum fuse_uring_cmd {
        FUSE_IO_URING_CMD_INVALID = 0,
        FUSE_IO_URING_CMD_REGISTER = 1,         /* an entry, ready for a request */
        FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2, /* a reply, and ready for the next request */
};

/* In the command area of the SQE (sqe->cmd). */
struct fuse_uring_cmd_req {
        uint64_t flags;
        uint64_t commit_id;
        uint16_t qid; /* queue: requests of tasks on CPU qid */
        uint8_t padding[6];
};
#endif
_Static_assert(sizeof(struct fuse_uring_ent_in_out) == 32, "fuse_uring_ent_in_out");
_Static_assert(sizeof(struct fuse_uring_req_header) == 288, "fuse_uring_req_header");
_Static_assert(sizeof(struct fuse_uring_cmd_req) == 24, "fuse_uring_cmd_req");

/* --- replies whose 7.40+ fields older headers call padding/unused ---
 * The engine encodes these two with its own definitions of the current
 * layout; the sizes are the same in every protocol version since 7.23. */
struct fuse_ll_open_out { /* = struct fuse_open_out of 7.40 */
        uint64_t fh;
        uint32_t open_flags;
        int32_t backing_id; /* with FOPEN_PASSTHROUGH */
};
_Static_assert(sizeof(struct fuse_ll_open_out) == sizeof(struct fuse_open_out), "open_out");

struct fuse_ll_init_out { /* = struct fuse_init_out of 7.43 */
        uint32_t major;
        uint32_t minor;
        uint32_t max_readahead;
        uint32_t flags;
        uint16_t max_background;
        uint16_t congestion_threshold;
        uint32_t max_write;
        uint32_t time_gran;
        uint16_t max_pages;
        uint16_t map_alignment;
        uint32_t flags2;
        uint32_t max_stack_depth; /* 7.40: passthrough backing files' depth */
        uint16_t request_timeout; /* 7.43 */
        uint16_t unused[11];
};
_Static_assert(sizeof(struct fuse_ll_init_out) == sizeof(struct fuse_init_out), "init_out");
_Static_assert(offsetof(struct fuse_ll_init_out, flags2) == offsetof(struct fuse_init_out, flags2), "flags2");

/* Wire sizes the engine relies on (they are ABI; a header that disagrees
 * would be a different protocol). */
_Static_assert(sizeof(struct fuse_in_header) == 40, "in_header");
_Static_assert(sizeof(struct fuse_out_header) == 16, "out_header");
_Static_assert(sizeof(struct fuse_attr) == 88, "attr");
_Static_assert(sizeof(struct fuse_entry_out) == 128, "entry_out");
_Static_assert(sizeof(struct fuse_attr_out) == 104, "attr_out");
_Static_assert(sizeof(struct fuse_init_in) == 64, "init_in");
_Static_assert(sizeof(struct fuse_init_out) == 64, "init_out size");
_Static_assert(sizeof(struct fuse_open_in) == 8, "open_in");
_Static_assert(sizeof(struct fuse_read_in) == 40, "read_in");
_Static_assert(sizeof(struct fuse_release_in) == 24, "release_in");
_Static_assert(sizeof(struct fuse_getattr_in) == 16, "getattr_in");
_Static_assert(sizeof(struct fuse_getxattr_in) == 8, "getxattr_in");
_Static_assert(sizeof(struct fuse_getxattr_out) == 8, "getxattr_out");
_Static_assert(sizeof(struct fuse_access_in) == 8, "access_in");
_Static_assert(sizeof(struct fuse_forget_in) == 8, "forget_in");
_Static_assert(sizeof(struct fuse_forget_one) == 16, "forget_one");
_Static_assert(sizeof(struct fuse_batch_forget_in) == 8, "batch_forget_in");
_Static_assert(sizeof(struct fuse_interrupt_in) == 8, "interrupt_in");
_Static_assert(sizeof(struct fuse_kstatfs) == 80, "kstatfs");
_Static_assert(sizeof(struct fuse_dirent) == 24, "dirent");
_Static_assert(sizeof(struct fuse_direntplus) == 152, "direntplus");
