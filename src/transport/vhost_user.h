/* The vhost-user back-end control plane (VMM <-> us over a unix socket):
 * framing with fd passing, features, guest memory table, ring setup; the
 * rings themselves are served by the caller through struct vu_dev_ops. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport/virtqueue.h"

/* Wire format (native byte order): a 12-byte header, then `size` payload
 * bytes; fds travel as SCM_RIGHTS with the header. */
struct vu_msg_hdr {
        uint32_t request;
        uint32_t flags; /* bits 0-1 version (1), bit 2 reply, bit 3 need_reply */
        uint32_t size;
} __attribute__((packed));
_Static_assert(sizeof(struct vu_msg_hdr) == 12, "vhost-user header is 12 bytes");

#define VU_FLAG_VERSION 0x1u
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_REPLY (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)

struct vu_vring_state {
        uint32_t index;
        uint32_t num;
};
_Static_assert(sizeof(struct vu_vring_state) == 8, "vring state is 8 bytes");

struct vu_vring_addr {
        uint32_t index;
        uint32_t flags;
        uint64_t desc_uva;
        uint64_t used_uva;
        uint64_t avail_uva;
        uint64_t log_gpa;
};
_Static_assert(sizeof(struct vu_vring_addr) == 40, "vring address is 40 bytes");

struct vu_region_desc {
        uint64_t gpa;
        uint64_t size;
        uint64_t uva;
        uint64_t mmap_offset;
};
_Static_assert(sizeof(struct vu_region_desc) == 32, "memory region is 32 bytes");

struct vu_mem_desc {
        uint32_t nregions;
        uint32_t padding;
        struct vu_region_desc regions[VU_MAX_REGIONS];
};
_Static_assert(sizeof(struct vu_mem_desc) == 8 + 8 * 32, "memory table is 264 bytes");

#define VU_CONFIG_MAX 256
struct vu_config_space {
        uint32_t offset;
        uint32_t size;
        uint32_t flags;
        uint8_t data[VU_CONFIG_MAX];
};
_Static_assert(sizeof(struct vu_config_space) == 12 + VU_CONFIG_MAX, "config space message");

union vu_payload {
        uint64_t u64;
        struct vu_vring_state state;
        struct vu_vring_addr addr;
        struct vu_mem_desc mem;
        struct vu_config_space config;
};
#define VU_MAX_PAYLOAD sizeof(union vu_payload)

struct vu_msg {
        struct vu_msg_hdr hdr;
        union vu_payload payload;
} __attribute__((packed));

#define VU_MAX_FDS 8 /* per message; QEMU sends at most 8 */

enum vu_request {
        VU_GET_FEATURES = 1,
        VU_SET_FEATURES = 2,
        VU_SET_OWNER = 3,
        VU_RESET_OWNER = 4,
        VU_SET_MEM_TABLE = 5,
        VU_SET_LOG_BASE = 6,
        VU_SET_LOG_FD = 7,
        VU_SET_VRING_NUM = 8,
        VU_SET_VRING_ADDR = 9,
        VU_SET_VRING_BASE = 10,
        VU_GET_VRING_BASE = 11,
        VU_SET_VRING_KICK = 12,
        VU_SET_VRING_CALL = 13,
        VU_SET_VRING_ERR = 14,
        VU_GET_PROTOCOL_FEATURES = 15,
        VU_SET_PROTOCOL_FEATURES = 16,
        VU_GET_QUEUE_NUM = 17,
        VU_SET_VRING_ENABLE = 18,
        VU_SET_BACKEND_REQ_FD = 21,
        VU_GET_CONFIG = 24,
        VU_SET_CONFIG = 25,
        VU_RESET_DEVICE = 34,
        VU_GET_MAX_MEM_SLOTS = 36,
        VU_REQUEST_MAX = 41,
};

/* vhost-user feature bit: protocol features are negotiated */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VU_PROTOCOL_F_MQ 0
#define VU_PROTOCOL_F_REPLY_ACK 3

#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD (1u << 8)

#define VU_MAX_QUEUES 17 /* high-priority + 16 request queues */

struct vu_dev;

/* How the device serves its rings.  Called on the vhost-user thread. */
struct vu_dev_ops {
        /* Start serving ring q (vu_dev_vq() is mapped, kick fd valid).
         * Returns 0 or -errno (the ring then stays stopped). */
        int (*start)(void *userdata, struct vu_dev *dev, unsigned q);
        /* Stop serving ring q; returns only once nothing touches the ring
         * or guest memory on its behalf anymore. */
        void (*stop)(void *userdata, struct vu_dev *dev, unsigned q);
};

struct vu_vring {
        struct vq vq;              /* the worker's while running, else the vhost-user thread's */
        unsigned num;              /* from SET_VRING_NUM; vhost-user thread */
        uint64_t desc_uva, avail_uva, used_uva; /* from SET_VRING_ADDR; vhost-user thread */
        bool addr_set;             /* vhost-user thread */
        bool started;              /* kick fd received, GET_VRING_BASE not yet; vhost-user thread */
        bool enabled;              /* SET_VRING_ENABLE; vhost-user thread */
        bool running;              /* ops->start succeeded; vhost-user thread */
        int kick_fd;               /* vhost-user thread; read by the worker only while running */
        pthread_mutex_t call_lock; /* protects call_fd and err_fd */
        int call_fd;               /* call_lock */
        int err_fd;                /* call_lock */
        bool broken_logged;        /* atomic while running: the ring's threads report once */
};

/* One front-end connection's device state.  Everything but the rings'
 * call/err fds belongs to the vhost-user thread; the threads serving a ring
 * only read mem and that ring while it runs.  Lock order: a vring's call_lock is a leaf. */
struct vu_dev {
        const struct vu_dev_ops *ops;
        void *userdata;
        unsigned num_queues;        /* what GET_QUEUE_NUM reports; immutable */
        uint64_t features;          /* acked by SET_FEATURES; vhost-user thread */
        uint64_t protocol_features; /* acked by SET_PROTOCOL_FEATURES; vhost-user thread */
        bool owner;                 /* vhost-user thread */
        struct vu_mem mem;          /* vhost-user thread; replaced only while no ring runs */
        size_t map_len[VU_MAX_REGIONS]; /* mmap lengths of mem.regions; vhost-user thread */
        void *map_base[VU_MAX_REGIONS]; /* vhost-user thread */
        struct vu_vring vring[VU_MAX_QUEUES];
};

/* Features offered by GET_FEATURES / GET_PROTOCOL_FEATURES. */
uint64_t vu_dev_offered_features(void);
uint64_t vu_dev_offered_protocol_features(void);

/* Initialises dev for a new connection.  num_queues counts all rings
 * (1..VU_MAX_QUEUES).  -EINVAL on bad arguments. */
int vu_dev_init(struct vu_dev *dev, unsigned num_queues, const struct vu_dev_ops *ops, void *userdata);
/* Stops every ring, unmaps guest memory, closes every fd. */
void vu_dev_done(struct vu_dev *dev);

/* Receives one message from sock: header and payload into *msg, fds
 * (at most VU_MAX_FDS) into fds with their count in *ret_nfds; the caller
 * owns and must close them.  Returns 0, -ECONNRESET on orderly EOF before
 * a header, -EPROTO on a malformed frame (bad version, oversized payload,
 * too many fds, truncated), -errno on socket errors.  On error no fd is
 * left open. */
int vu_msg_recv(int sock, struct vu_msg *msg, int *fds, unsigned *ret_nfds);
/* Sends a message (header + hdr.size payload bytes). */
int vu_msg_send(int sock, const struct vu_msg *msg);

/* Handles one received message.  Takes ownership of the fds (used or
 * closed; entries are set to -1).  Fills *reply and sets *ret_reply when
 * a reply must be sent.  Returns 0, or -errno when the connection must be
 * closed (front-end misbehaved beyond what a NACK can express). */
int vu_dev_handle(struct vu_dev *dev, struct vu_msg *msg, int *fds, unsigned nfds, struct vu_msg *reply,
                  bool *ret_reply);

/* Receives, handles and answers one message on sock.  Returns as
 * vu_msg_recv / vu_dev_handle. */
int vu_dev_process(struct vu_dev *dev, int sock);

/* For the threads serving a ring: the ring and its kick fd (valid while
 * running), and signalling the driver (call eventfd; thread-safe against
 * SET_VRING_CALL and each other). */
static inline struct vq *vu_dev_vq(struct vu_dev *dev, unsigned q) {
        return &dev->vring[q].vq;
}
void vu_dev_notify(struct vu_dev *dev, unsigned q);
/* Reports a broken ring once (log + err eventfd); thread-safe. */
void vu_dev_ring_broken(struct vu_dev *dev, unsigned q);
