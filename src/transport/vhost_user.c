/* vhost-user back-end control plane: reads framed messages with their
 * fds from the front-end, validates them (the VMM is not trusted more than
 * the guest), maintains the memory table and ring configuration and starts
 * or stops the rings through the caller's ops. */
#include "transport/vhost_user.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/macro.h"

#define BIT(n) (1ULL << (n))

uint64_t vu_dev_offered_features(void) {
        return BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_INDIRECT_DESC) | BIT(VIRTIO_F_EVENT_IDX) |
               BIT(VHOST_USER_F_PROTOCOL_FEATURES);
}

uint64_t vu_dev_offered_protocol_features(void) {
        return BIT(VU_PROTOCOL_F_MQ) | BIT(VU_PROTOCOL_F_REPLY_ACK);
}

static const char *request_name(uint32_t req) {
        static const char *const names[VU_REQUEST_MAX] = {
                [VU_GET_FEATURES] = "GET_FEATURES",
                [VU_SET_FEATURES] = "SET_FEATURES",
                [VU_SET_OWNER] = "SET_OWNER",
                [VU_RESET_OWNER] = "RESET_OWNER",
                [VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
                [VU_SET_LOG_BASE] = "SET_LOG_BASE",
                [VU_SET_LOG_FD] = "SET_LOG_FD",
                [VU_SET_VRING_NUM] = "SET_VRING_NUM",
                [VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
                [VU_SET_VRING_BASE] = "SET_VRING_BASE",
                [VU_GET_VRING_BASE] = "GET_VRING_BASE",
                [VU_SET_VRING_KICK] = "SET_VRING_KICK",
                [VU_SET_VRING_CALL] = "SET_VRING_CALL",
                [VU_SET_VRING_ERR] = "SET_VRING_ERR",
                [VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
                [VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
                [VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
                [VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
                [VU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
                [VU_GET_CONFIG] = "GET_CONFIG",
                [VU_SET_CONFIG] = "SET_CONFIG",
                [VU_RESET_DEVICE] = "RESET_DEVICE",
                [VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
        };
        return req < VU_REQUEST_MAX && names[req] ? names[req] : "unknown";
}

static void close_fds(int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        close(fds[i]);
                        fds[i] = -1;
                }
}

static void vring_reset(struct vu_vring *v) {
        v->num = 0;
        v->desc_uva = v->avail_uva = v->used_uva = 0;
        v->addr_set = v->started = v->enabled = v->running = false;
        v->broken_logged = false;
        memset(&v->vq, 0, sizeof(v->vq));
        if (v->kick_fd >= 0)
                close(v->kick_fd);
        v->kick_fd = -1;
        pthread_mutex_lock(&v->call_lock);
        if (v->call_fd >= 0)
                close(v->call_fd);
        if (v->err_fd >= 0)
                close(v->err_fd);
        v->call_fd = v->err_fd = -1;
        pthread_mutex_unlock(&v->call_lock);
}

int vu_dev_init(struct vu_dev *dev, unsigned num_queues, const struct vu_dev_ops *ops, void *userdata) {
        if (!dev || !ops || num_queues == 0 || num_queues > VU_MAX_QUEUES)
                return -EINVAL;
        memset(dev, 0, sizeof(*dev));
        dev->ops = ops;
        dev->userdata = userdata;
        dev->num_queues = num_queues;
        for (unsigned q = 0; q < VU_MAX_QUEUES; q++) {
                struct vu_vring *v = &dev->vring[q];
                pthread_mutex_init(&v->call_lock, NULL);
                v->kick_fd = v->call_fd = v->err_fd = -1;
        }
        return 0;
}

static void stop_ring(struct vu_dev *dev, unsigned q) {
        struct vu_vring *v = &dev->vring[q];
        if (v->running) {
                dev->ops->stop(dev->userdata, dev, q);
                v->running = false;
        }
}

static void unmap_all(struct vu_dev *dev) {
        for (unsigned i = 0; i < VU_MAX_REGIONS; i++) {
                if (dev->map_base[i])
                        munmap(dev->map_base[i], dev->map_len[i]);
                dev->map_base[i] = NULL;
                dev->map_len[i] = 0;
        }
        memset(&dev->mem, 0, sizeof(dev->mem));
}

void vu_dev_done(struct vu_dev *dev) {
        for (unsigned q = 0; q < VU_MAX_QUEUES; q++)
                stop_ring(dev, q);
        for (unsigned q = 0; q < VU_MAX_QUEUES; q++) {
                vring_reset(&dev->vring[q]);
                pthread_mutex_destroy(&dev->vring[q].call_lock);
        }
        unmap_all(dev);
}

static bool ring_enabled(const struct vu_dev *dev, const struct vu_vring *v) {
        /* without protocol features a ring is enabled as soon as it starts */
        return (dev->features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)) ? v->enabled : true;
}

/* Starts ring q if everything it needs is there.  A ring that cannot be
 * mapped stays stopped (the guest waits; we log). */
static int try_start(struct vu_dev *dev, unsigned q) {
        struct vu_vring *v = &dev->vring[q];
        int r;

        if (v->running || !v->started || !ring_enabled(dev, v) || !v->addr_set || v->num == 0 ||
            dev->mem.nregions == 0 || v->kick_fd < 0)
                return 0;
        v->vq.indirect = dev->features & BIT(VIRTIO_F_INDIRECT_DESC);
        v->vq.event_idx = dev->features & BIT(VIRTIO_F_EVENT_IDX);
        r = vq_map(&v->vq, &dev->mem, v->num, v->desc_uva, v->avail_uva, v->used_uva);
        if (r < 0)
                return log_warning_errno(r, "vhost-user: ring %u addresses outside guest memory or misaligned", q);
        v->broken_logged = false;
        r = dev->ops->start(dev->userdata, dev, q);
        if (r < 0)
                return log_error_errno(r, "vhost-user: cannot start ring %u: %m", q);
        v->running = true;
        log_debug("vhost-user: ring %u running (size %u, base %u)", q, v->num, v->vq.last_avail_idx);
        return 0;
}

/* Maps the regions of a SET_MEM_TABLE into *mem.  fds are consumed. */
static int map_table(const struct vu_mem_desc *md, unsigned n, int *fds, struct vu_mem *mem, void **bases,
                     size_t *lens) {
        memset(mem, 0, sizeof(*mem));
        for (unsigned i = 0; i < n; i++) {
                const struct vu_region_desc *rd = &md->regions[i];
                struct stat st;
                uint64_t map_len;

                if (rd->size == 0 || rd->gpa + rd->size < rd->gpa || rd->uva + rd->size < rd->uva ||
                    __builtin_add_overflow(rd->mmap_offset, rd->size, &map_len) || map_len > SIZE_MAX)
                        return log_warning_errno(-EINVAL, "vhost-user: memory region %u has a bad size or address", i);
                if (fstat(fds[i], &st) < 0)
                        return log_warning_errno(negative_errno(), "vhost-user: memory region %u fd: %m", i);
                /* touching a mapping past the end of the file would be SIGBUS */
                if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size < map_len)
                        return log_warning_errno(-EINVAL,
                                                 "vhost-user: memory region %u (%" PRIu64 " bytes at offset %" PRIu64
                                                 ") does not fit its file",
                                                 i, (uint64_t) rd->size, (uint64_t) rd->mmap_offset);
                void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fds[i], 0);
                if (p == MAP_FAILED)
                        return log_warning_errno(negative_errno(), "vhost-user: cannot map memory region %u: %m", i);
                close(fds[i]);
                fds[i] = -1;
                bases[i] = p;
                lens[i] = map_len;
                mem->regions[i] = (struct vu_mem_region){
                        .gpa = rd->gpa,
                        .size = rd->size,
                        .uva = rd->uva,
                        .host = (uint8_t *) p + rd->mmap_offset,
                };
                mem->nregions = i + 1;
        }
        return 0;
}

static int set_mem_table(struct vu_dev *dev, const struct vu_msg *msg, int *fds, unsigned nfds) {
        struct vu_mem_desc md;
        struct vu_mem mem;
        void *bases[VU_MAX_REGIONS] = {};
        size_t lens[VU_MAX_REGIONS] = {};
        bool was_running[VU_MAX_QUEUES];
        int r;

        if (msg->hdr.size < offsetof(struct vu_mem_desc, regions))
                return -EINVAL;
        memcpy(&md, &msg->payload.mem, sizeof(md));
        if (md.nregions == 0 || md.nregions > VU_MAX_REGIONS || md.nregions != nfds ||
            msg->hdr.size < offsetof(struct vu_mem_desc, regions) + md.nregions * sizeof(struct vu_region_desc))
                return log_warning_errno(-EINVAL, "vhost-user: SET_MEM_TABLE with %u regions, %u fds", md.nregions,
                                         nfds);
        r = map_table(&md, md.nregions, fds, &mem, bases, lens);
        if (r < 0) {
                for (unsigned i = 0; i < VU_MAX_REGIONS; i++)
                        if (bases[i])
                                munmap(bases[i], lens[i]);
                return r;
        }

        /* rings read guest memory: none may run while the table changes */
        for (unsigned q = 0; q < dev->num_queues; q++) {
                was_running[q] = dev->vring[q].running;
                stop_ring(dev, q);
        }
        unmap_all(dev);
        dev->mem = mem;
        memcpy(dev->map_base, bases, sizeof(bases));
        memcpy(dev->map_len, lens, sizeof(lens));
        for (unsigned q = 0; q < dev->num_queues; q++)
                if (was_running[q])
                        (void) try_start(dev, q);
        log_debug("vhost-user: memory table with %u regions", mem.nregions);
        return 0;
}

static int vring_index(const struct vu_dev *dev, uint32_t index, struct vu_vring **ret) {
        if (index >= dev->num_queues)
                return log_warning_errno(-EINVAL, "vhost-user: ring index %u out of range", index);
        *ret = (struct vu_vring *) &dev->vring[index];
        return 0;
}

/* SET_VRING_KICK/CALL/ERR: u64 = index | NOFD flag, fd in ancillary data. */
static int vring_fd_msg(struct vu_dev *dev, const struct vu_msg *msg, int *fds, unsigned nfds, unsigned *ret_q,
                        int *ret_fd) {
        struct vu_vring *v = NULL;
        uint64_t u;
        int r;

        if (msg->hdr.size < sizeof(uint64_t))
                return -EINVAL;
        memcpy(&u, &msg->payload.u64, sizeof(u));
        r = vring_index(dev, u & VU_VRING_IDX_MASK, &v);
        if (r < 0)
                return r;
        if (u & ~(uint64_t) (VU_VRING_IDX_MASK | VU_VRING_NOFD))
                return -EINVAL;
        if (u & VU_VRING_NOFD) {
                if (nfds != 0)
                        return -EINVAL;
                *ret_fd = -1;
        } else {
                if (nfds != 1)
                        return -EINVAL;
                /* The ring's worker polls, reads and writes these; whatever
                 * the front-end passed (an eventfd normally, a full pipe or
                 * a descriptor someone else drains when hostile) must never
                 * block it, or stopping the ring would wait forever. */
                int fl = fcntl(fds[0], F_GETFL);
                if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fds[0], F_SETFL, fl | O_NONBLOCK) < 0))
                        return log_warning_errno(-EINVAL, "vhost-user: ring %u fd cannot be made non-blocking",
                                                 (unsigned) (u & VU_VRING_IDX_MASK));
                *ret_fd = fds[0];
                fds[0] = -1;
        }
        *ret_q = u & VU_VRING_IDX_MASK;
        return 0;
}

static int handle(struct vu_dev *dev, const struct vu_msg *msg, int *fds, unsigned nfds, struct vu_msg *reply,
                  bool *has_reply) {
        uint32_t req = msg->hdr.request, size = msg->hdr.size;
        struct vu_vring_state st;
        struct vu_vring *v = NULL;
        uint64_t u;
        unsigned q;
        int fd, r;

        /* payload copies: msg is private already, but keep typed locals */
        switch (req) {
        case VU_GET_FEATURES:
                reply->payload.u64 = vu_dev_offered_features();
                reply->hdr.size = sizeof(uint64_t);
                *has_reply = true;
                return 0;

        case VU_SET_FEATURES:
                if (size < sizeof(uint64_t))
                        return -EINVAL;
                memcpy(&u, &msg->payload.u64, sizeof(u));
                if (u & ~vu_dev_offered_features())
                        return log_warning_errno(-EINVAL, "vhost-user: front-end acked unoffered features %#" PRIx64,
                                                 u & ~vu_dev_offered_features());
                dev->features = u;
                log_debug("vhost-user: features %#" PRIx64, u);
                return 0;

        case VU_GET_PROTOCOL_FEATURES:
                reply->payload.u64 = vu_dev_offered_protocol_features();
                reply->hdr.size = sizeof(uint64_t);
                *has_reply = true;
                return 0;

        case VU_SET_PROTOCOL_FEATURES:
                if (size < sizeof(uint64_t))
                        return -EINVAL;
                memcpy(&u, &msg->payload.u64, sizeof(u));
                if (u & ~vu_dev_offered_protocol_features())
                        return log_warning_errno(-EINVAL, "vhost-user: front-end acked unoffered protocol features %#" PRIx64,
                                                 u & ~vu_dev_offered_protocol_features());
                dev->protocol_features = u;
                return 0;

        case VU_GET_QUEUE_NUM:
                reply->payload.u64 = dev->num_queues;
                reply->hdr.size = sizeof(uint64_t);
                *has_reply = true;
                return 0;

        case VU_GET_MAX_MEM_SLOTS:
                reply->payload.u64 = VU_MAX_REGIONS;
                reply->hdr.size = sizeof(uint64_t);
                *has_reply = true;
                return 0;

        case VU_SET_OWNER:
                dev->owner = true;
                return 0;

        case VU_RESET_OWNER:
                /* deprecated; the spec recommends disabling all rings */
                for (q = 0; q < dev->num_queues; q++) {
                        stop_ring(dev, q);
                        dev->vring[q].started = false;
                }
                return 0;

        case VU_RESET_DEVICE:
                for (q = 0; q < dev->num_queues; q++) {
                        stop_ring(dev, q);
                        vring_reset(&dev->vring[q]);
                }
                unmap_all(dev);
                dev->features = 0;
                return 0;

        case VU_SET_MEM_TABLE:
                return set_mem_table(dev, msg, fds, nfds);

        case VU_SET_LOG_BASE:
        case VU_SET_LOG_FD:
                /* dirty logging (live migration) is not offered */
                log_warning("vhost-user: %s refused: dirty page logging is not supported", request_name(req));
                return -EOPNOTSUPP;

        case VU_SET_VRING_NUM:
                if (size < sizeof(st))
                        return -EINVAL;
                memcpy(&st, &msg->payload.state, sizeof(st));
                r = vring_index(dev, st.index, &v);
                if (r < 0)
                        return r;
                if (v->running || v->started)
                        return log_warning_errno(-EBUSY, "vhost-user: SET_VRING_NUM on started ring %u", st.index);
                if (st.num == 0 || st.num > VQ_MAX_SIZE || (st.num & (st.num - 1)))
                        return log_warning_errno(-EINVAL, "vhost-user: ring %u size %u not supported", st.index, st.num);
                v->num = st.num;
                return 0;

        case VU_SET_VRING_ADDR: {
                struct vu_vring_addr a;
                bool was_running;

                if (size < sizeof(a))
                        return -EINVAL;
                memcpy(&a, &msg->payload.addr, sizeof(a));
                r = vring_index(dev, a.index, &v);
                if (r < 0)
                        return r;
                was_running = v->running;
                stop_ring(dev, a.index);
                v->desc_uva = a.desc_uva;
                v->avail_uva = a.avail_uva;
                v->used_uva = a.used_uva;
                v->addr_set = true;
                if (was_running)
                        (void) try_start(dev, a.index);
                return 0;
        }

        case VU_SET_VRING_BASE:
                if (size < sizeof(st))
                        return -EINVAL;
                memcpy(&st, &msg->payload.state, sizeof(st));
                r = vring_index(dev, st.index, &v);
                if (r < 0)
                        return r;
                if (v->running || v->started)
                        return log_warning_errno(-EBUSY, "vhost-user: SET_VRING_BASE on started ring %u", st.index);
                if (st.num > UINT16_MAX)
                        return -EINVAL;
                v->vq.last_avail_idx = (uint16_t) st.num;
                return 0;

        case VU_GET_VRING_BASE:
                if (size < sizeof(st))
                        return -EINVAL;
                memcpy(&st, &msg->payload.state, sizeof(st));
                r = vring_index(dev, st.index, &v);
                if (r < 0)
                        return r;
                stop_ring(dev, st.index);
                v->started = false;
                if (v->kick_fd >= 0)
                        close(v->kick_fd);
                v->kick_fd = -1;
                reply->payload.state.index = st.index;
                reply->payload.state.num = v->vq.last_avail_idx;
                reply->hdr.size = sizeof(st);
                *has_reply = true;
                log_debug("vhost-user: ring %u stopped at %u", st.index, v->vq.last_avail_idx);
                return 0;

        case VU_SET_VRING_KICK:
                r = vring_fd_msg(dev, msg, fds, nfds, &q, &fd);
                if (r < 0)
                        return r;
                v = &dev->vring[q];
                if (fd < 0) {
                        log_warning("vhost-user: ring %u: polling mode (no kick fd) is not supported", q);
                        return -EOPNOTSUPP;
                }
                stop_ring(dev, q);
                if (v->kick_fd >= 0)
                        close(v->kick_fd);
                v->kick_fd = fd;
                v->started = true;
                return try_start(dev, q);

        case VU_SET_VRING_CALL:
        case VU_SET_VRING_ERR:
                r = vring_fd_msg(dev, msg, fds, nfds, &q, &fd);
                if (r < 0)
                        return r;
                v = &dev->vring[q];
                pthread_mutex_lock(&v->call_lock);
                int *slot = req == VU_SET_VRING_CALL ? &v->call_fd : &v->err_fd;
                int old = *slot;
                *slot = fd;
                pthread_mutex_unlock(&v->call_lock);
                if (old >= 0)
                        close(old);
                return 0;

        case VU_SET_VRING_ENABLE:
                if (size < sizeof(st))
                        return -EINVAL;
                memcpy(&st, &msg->payload.state, sizeof(st));
                r = vring_index(dev, st.index, &v);
                if (r < 0)
                        return r;
                if (st.num > 1)
                        return -EINVAL;
                v->enabled = st.num;
                if (!ring_enabled(dev, v))
                        stop_ring(dev, st.index);
                return try_start(dev, st.index);

        case VU_GET_CONFIG:
                /* no config space of our own (the VMM owns the tag): an
                 * empty payload is the spec's error answer */
                reply->hdr.size = 0;
                *has_reply = true;
                return 0;

        default:
                log_debug("vhost-user: ignoring request %u (%s)", req, request_name(req));
                return -EOPNOTSUPP;
        }
}

int vu_dev_handle(struct vu_dev *dev, struct vu_msg *msg, int *fds, unsigned nfds, struct vu_msg *reply,
                  bool *ret_reply) {
        bool has_reply = false;
        int r;

        memset(reply, 0, sizeof(*reply));
        reply->hdr.request = msg->hdr.request;
        reply->hdr.flags = VU_FLAG_VERSION | VU_FLAG_REPLY;
        if (msg->hdr.size > VU_MAX_PAYLOAD) {
                close_fds(fds, nfds);
                *ret_reply = false;
                return -EPROTO;
        }
        /* unused payload bytes read as zero */
        memset((uint8_t *) &msg->payload + msg->hdr.size, 0, VU_MAX_PAYLOAD - msg->hdr.size);
        log_debug("vhost-user: %s (%u) size %u fds %u", request_name(msg->hdr.request), msg->hdr.request,
                  msg->hdr.size, nfds);

        r = handle(dev, msg, fds, nfds, reply, &has_reply);
        close_fds(fds, nfds); /* whatever the handler did not take */
        if (r < 0 && r != -EOPNOTSUPP)
                log_debug("vhost-user: %s failed: %s", request_name(msg->hdr.request), strerror(-r));
        /* a request whose answer the front-end waits for, and that we cannot
         * answer (bad ring index): there is no way to say no, hang up */
        if (r < 0 && !has_reply && msg->hdr.request == VU_GET_VRING_BASE) {
                *ret_reply = false;
                return log_warning_errno(-EPROTO, "vhost-user: cannot answer GET_VRING_BASE, closing");
        }

        /* REPLY_ACK: a status for requests without their own reply */
        if (!has_reply && (msg->hdr.flags & VU_FLAG_NEED_REPLY)) {
                reply->payload.u64 = r < 0 ? 1 : 0;
                reply->hdr.size = sizeof(uint64_t);
                has_reply = true;
        }
        *ret_reply = has_reply;
        return 0;
}

static int recv_full(int sock, void *buf, size_t len) {
        uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = recv(sock, p, len, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EPROTO; /* EOF inside a message */
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int vu_msg_recv(int sock, struct vu_msg *msg, int *fds, unsigned *ret_nfds) {
        union {
                char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
                struct cmsghdr align;
        } control;
        struct iovec iov = { .iov_base = &msg->hdr, .iov_len = sizeof(msg->hdr) };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        unsigned nfds = 0;
        ssize_t n;
        int r = 0;

        *ret_nfds = 0;
        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if (n == 0)
                return -ECONNRESET;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (nfds < VU_MAX_FDS)
                                fds[nfds++] = fd;
                        else {
                                close(fd);
                                r = -EPROTO;
                        }
                }
        }
        if (mh.msg_flags & MSG_CTRUNC)
                r = -EPROTO; /* more fds than we accept: the kernel dropped some */
        if (r == 0 && (size_t) n < sizeof(msg->hdr))
                r = recv_full(sock, (uint8_t *) &msg->hdr + n, sizeof(msg->hdr) - (size_t) n);
        if (r == 0 && (msg->hdr.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION)
                r = -EPROTO;
        if (r == 0 && msg->hdr.size > VU_MAX_PAYLOAD)
                r = -EPROTO;
        if (r == 0 && msg->hdr.size > 0)
                r = recv_full(sock, &msg->payload, msg->hdr.size);
        if (r < 0) {
                close_fds(fds, nfds);
                return r;
        }
        *ret_nfds = nfds;
        return 0;
}

int vu_msg_send(int sock, const struct vu_msg *msg) {
        const uint8_t *p = (const uint8_t *) msg;
        size_t len = sizeof(msg->hdr) + msg->hdr.size;

        if (msg->hdr.size > VU_MAX_PAYLOAD)
                return -EINVAL;
        while (len > 0) {
                ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int vu_dev_process(struct vu_dev *dev, int sock) {
        struct vu_msg msg, reply;
        int fds[VU_MAX_FDS];
        unsigned nfds;
        bool has_reply;
        int r;

        r = vu_msg_recv(sock, &msg, fds, &nfds);
        if (r < 0)
                return r;
        r = vu_dev_handle(dev, &msg, fds, nfds, &reply, &has_reply);
        if (r < 0)
                return r;
        if (has_reply)
                return vu_msg_send(sock, &reply);
        return 0;
}

static void signal_fd(int fd) {
        uint64_t one = 1;
        /* eventfd: only fails if the counter would overflow, then the
         * driver has a notification pending anyway */
        if (write(fd, &one, sizeof(one)) < 0)
                (void) 0;
}

void vu_dev_notify(struct vu_dev *dev, unsigned q) {
        struct vu_vring *v = &dev->vring[q];
        pthread_mutex_lock(&v->call_lock);
        if (v->call_fd >= 0)
                signal_fd(v->call_fd);
        pthread_mutex_unlock(&v->call_lock);
}

void vu_dev_ring_broken(struct vu_dev *dev, unsigned q) {
        struct vu_vring *v = &dev->vring[q];
        if (__atomic_exchange_n(&v->broken_logged, true, __ATOMIC_RELAXED))
                return; /* reported already (by any of the ring's threads) */
        log_error("vhost-user: guest broke ring %u (bad available index or head, or guest memory gone); "
                  "not serving it anymore",
                  q);
        pthread_mutex_lock(&v->call_lock);
        if (v->err_fd >= 0)
                signal_fd(v->err_fd);
        pthread_mutex_unlock(&v->call_lock);
}
