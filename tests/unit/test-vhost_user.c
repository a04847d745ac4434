/* Unit tests for the vhost-user control plane: framing with fd passing,
 * the front-end handshake as QEMU performs it, ring start/stop, memory
 * table validation, NACKs and fd hygiene. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "transport/vhost_user.h"

static int sv[2]; /* [0] front-end, [1] back-end */
static struct vu_dev dev;
static unsigned starts[VU_MAX_QUEUES], stops[VU_MAX_QUEUES];
static int start_result;

static int op_start(void *userdata, struct vu_dev *d, unsigned q) {
        CHECK(d == &dev);
        CHECK(userdata == &dev);
        if (start_result < 0)
                return start_result;
        starts[q]++;
        return 0;
}

static void op_stop(void *userdata, struct vu_dev *d, unsigned q) {
        stops[q]++;
}

static const struct vu_dev_ops ops = { .start = op_start, .stop = op_stop };

static unsigned count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;
        CHECK(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static void send_raw(const void *buf, size_t len, const int *fds, unsigned nfds) {
        union {
                char buf[CMSG_SPACE(sizeof(int) * 16)];
                struct cmsghdr align;
        } control;
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds) {
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        CHECK_EQ(sendmsg(sv[0], &mh, 0), (ssize_t) len);
}

/* Sends one message and closes the fds passed with it. */
static void send_msg(uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
                     unsigned nfds) {
        uint8_t buf[sizeof(struct vu_msg_hdr) + VU_MAX_PAYLOAD + 64];
        struct vu_msg_hdr h = { .request = req, .flags = flags, .size = size };
        CHECK(size <= VU_MAX_PAYLOAD + 64);
        memcpy(buf, &h, sizeof(h));
        if (size)
                memcpy(buf + sizeof(h), payload, size);
        send_raw(buf, sizeof(h) + size, fds, nfds);
        /* the receiver has its own copies now (same process here) */
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
}

/* Sends a request, lets the device process it, returns whether a reply came. */
static bool request(uint32_t req, uint32_t flags, const void *payload, uint32_t size, const int *fds,
                    unsigned nfds, struct vu_msg *reply) {
        send_msg(req, flags, payload, size, fds, nfds);
        CHECK_OK(vu_dev_process(&dev, sv[1]));
        ssize_t n = recv(sv[0], reply, sizeof(*reply), MSG_DONTWAIT);
        if (n < 0) {
                CHECK(errno == EAGAIN);
                return false;
        }
        CHECK(n >= (ssize_t) sizeof(struct vu_msg_hdr));
        CHECK_EQ(reply->hdr.request, req);
        CHECK_EQ(reply->hdr.flags, VU_FLAG_VERSION | VU_FLAG_REPLY);
        CHECK_EQ(n, (ssize_t) (sizeof(struct vu_msg_hdr) + reply->hdr.size));
        return true;
}

static uint64_t request_u64(uint32_t req) {
        struct vu_msg r;
        CHECK(request(req, VU_FLAG_VERSION, NULL, 0, NULL, 0, &r));
        CHECK_EQ(r.hdr.size, 8);
        return r.payload.u64;
}

/* Sends with need_reply and returns the ack value (0 = success). */
static uint64_t acked(uint32_t req, const void *payload, uint32_t size, const int *fds, unsigned nfds) {
        struct vu_msg r;
        CHECK(request(req, VU_FLAG_VERSION | VU_FLAG_NEED_REPLY, payload, size, fds, nfds, &r));
        CHECK_EQ(r.hdr.size, 8);
        return r.payload.u64;
}

static uint64_t acked_u64(uint32_t req, uint64_t v, int fd) {
        return acked(req, &v, sizeof(v), &fd, fd >= 0 ? 1 : 0);
}

static uint64_t acked_state(uint32_t req, uint32_t index, uint32_t num) {
        struct vu_vring_state st = { index, num };
        return acked(req, &st, sizeof(st), NULL, 0);
}

static void setup(void) {
        memset(starts, 0, sizeof(starts));
        memset(stops, 0, sizeof(stops));
        start_result = 0;
        CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
        CHECK_OK(vu_dev_init(&dev, 2, &ops, &dev));
}

static void teardown(void) {
        vu_dev_done(&dev);
        close(sv[0]);
        close(sv[1]);
}

static int make_memfd(size_t size) {
        int fd = memfd_create("guest", MFD_CLOEXEC);
        CHECK(fd >= 0);
        CHECK_OK(ftruncate(fd, (off_t) size));
        return fd;
}

#define GUEST_SIZE (1u << 20)
#define GPA 0x0ull
#define UVA 0x7f1200000000ull

static void set_mem(int memfd) {
        struct vu_mem_desc md = { .nregions = 2 };
        /* two regions of one file, like QEMU's split around the VGA hole */
        md.regions[0] = (struct vu_region_desc){ .gpa = GPA, .size = 0xa0000, .uva = UVA, .mmap_offset = 0 };
        md.regions[1] = (struct vu_region_desc){
                .gpa = 0xc0000, .size = GUEST_SIZE - 0xc0000, .uva = UVA + 0xc0000, .mmap_offset = 0xc0000
        };
        int fds[2] = { dup(memfd), dup(memfd) };
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 2 * 32, fds, 2), 0);
}

static void handshake(int memfd, int *kick, int *call) {
        CHECK_EQ(request_u64(VU_GET_FEATURES), vu_dev_offered_features());
        struct vu_msg r;
        CHECK(!request(VU_SET_OWNER, VU_FLAG_VERSION, NULL, 0, NULL, 0, &r));
        uint64_t pf = request_u64(VU_GET_PROTOCOL_FEATURES);
        CHECK(pf & (1u << VU_PROTOCOL_F_MQ));
        CHECK(pf & (1u << VU_PROTOCOL_F_REPLY_ACK));
        CHECK_EQ(acked_u64(VU_SET_PROTOCOL_FEATURES, pf, -1), 0);
        CHECK_EQ(request_u64(VU_GET_QUEUE_NUM), 2);
        CHECK_EQ(acked_u64(VU_SET_FEATURES, vu_dev_offered_features(), -1), 0);
        set_mem(memfd);
        for (unsigned q = 0; q < 2; q++) {
                CHECK_EQ(acked_state(VU_SET_VRING_NUM, q, 1024), 0);
                CHECK_EQ(acked_state(VU_SET_VRING_BASE, q, 7), 0);
                struct vu_vring_addr a = {
                        .index = q,
                        .desc_uva = UVA + 0x10000 + q * 0x10000,
                        .avail_uva = UVA + 0x14000 + q * 0x10000,
                        .used_uva = UVA + 0x16000 + q * 0x10000,
                };
                CHECK_EQ(acked(VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
                kick[q] = eventfd(0, EFD_CLOEXEC);
                call[q] = eventfd(0, EFD_CLOEXEC);
                CHECK_EQ(acked_u64(VU_SET_VRING_CALL, q, dup(call[q])), 0);
                CHECK_EQ(acked_u64(VU_SET_VRING_KICK, q, dup(kick[q])), 0);
                CHECK_EQ(starts[q], 0); /* protocol features: rings start disabled */
                CHECK_EQ(acked_state(VU_SET_VRING_ENABLE, q, 1), 0);
                CHECK_EQ(starts[q], 1);
        }
}

static void test_framing(void) {
        struct vu_msg msg;
        int fds[VU_MAX_FDS], efd[10];
        unsigned nfds, before;

        setup();
        before = count_fds();
        /* header split over two writes, payload with one fd */
        struct vu_msg_hdr h = { .request = VU_SET_VRING_CALL, .flags = VU_FLAG_VERSION, .size = 8 };
        uint64_t u = 1;
        efd[0] = eventfd(0, EFD_CLOEXEC);
        send_raw(&h, 5, efd, 1);
        send_raw((uint8_t *) &h + 5, 7, NULL, 0);
        send_raw(&u, 8, NULL, 0);
        CHECK_OK(vu_msg_recv(sv[1], &msg, fds, &nfds));
        CHECK_EQ(nfds, 1);
        CHECK_EQ(msg.hdr.request, VU_SET_VRING_CALL);
        CHECK_EQ(msg.payload.u64, 1);
        close(fds[0]);
        close(efd[0]);

        /* bad version */
        h = (struct vu_msg_hdr){ .request = VU_GET_FEATURES, .flags = 2, .size = 0 };
        efd[0] = eventfd(0, EFD_CLOEXEC);
        send_raw(&h, sizeof(h), efd, 1);
        close(efd[0]);
        CHECK_EQ(vu_msg_recv(sv[1], &msg, fds, &nfds), -EPROTO);
        CHECK_EQ(count_fds(), before);

        /* oversized payload */
        h = (struct vu_msg_hdr){ .request = VU_SET_MEM_TABLE, .flags = VU_FLAG_VERSION, .size = 4096 };
        send_raw(&h, sizeof(h), NULL, 0);
        CHECK_EQ(vu_msg_recv(sv[1], &msg, fds, &nfds), -EPROTO);

        /* too many fds: all closed, frame refused */
        teardown();
        setup();
        for (unsigned i = 0; i < 10; i++)
                efd[i] = eventfd(0, EFD_CLOEXEC);
        h = (struct vu_msg_hdr){ .request = VU_SET_MEM_TABLE, .flags = VU_FLAG_VERSION, .size = 0 };
        send_raw(&h, sizeof(h), efd, 10);
        for (unsigned i = 0; i < 10; i++)
                close(efd[i]);
        CHECK_EQ(vu_msg_recv(sv[1], &msg, fds, &nfds), -EPROTO);
        CHECK_EQ(count_fds(), before);

        /* a memory table with its fds, cut off in the middle: the fds
         * that came with the header are closed */
        teardown();
        setup();
        h = (struct vu_msg_hdr){ .request = VU_SET_MEM_TABLE, .flags = VU_FLAG_VERSION, .size = 8 + 2 * 32 };
        efd[0] = memfd_create("guest", MFD_CLOEXEC);
        efd[1] = memfd_create("guest", MFD_CLOEXEC);
        send_raw(&h, sizeof(h), efd, 2);
        close(efd[0]);
        close(efd[1]);
        send_raw(&u, 8, NULL, 0);
        shutdown(sv[0], SHUT_WR);
        CHECK_EQ(vu_msg_recv(sv[1], &msg, fds, &nfds), -EPROTO);
        CHECK_EQ(count_fds(), before);
        teardown();
        setup();

        /* truncated message, then EOF */
        h = (struct vu_msg_hdr){ .request = VU_SET_FEATURES, .flags = VU_FLAG_VERSION, .size = 8 };
        send_raw(&h, sizeof(h), NULL, 0);
        send_raw(&u, 3, NULL, 0);
        shutdown(sv[0], SHUT_WR);
        CHECK_EQ(vu_msg_recv(sv[1], &msg, fds, &nfds), -EPROTO);
        CHECK_EQ(vu_msg_recv(sv[1], &msg, fds, &nfds), -ECONNRESET);
        teardown();
}

static void test_handshake(void) {
        int kick[2], call[2];
        unsigned before = count_fds();
        int memfd = make_memfd(GUEST_SIZE);

        setup();
        handshake(memfd, kick, call);

        /* guest memory is shared: a write through the file shows up */
        uint8_t *view = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        CHECK(view != MAP_FAILED);
        view[0xc0010] = 0x5a;
        uint8_t *p = vu_mem_gpa(&dev.mem, 0xc0010, 1);
        CHECK(p && *p == 0x5a);
        CHECK(vu_mem_gpa(&dev.mem, 0xa0000, 1) == NULL); /* the hole */
        CHECK(vu_mem_gpa(&dev.mem, GUEST_SIZE - 1, 2) == NULL);
        struct vq *vq = vu_dev_vq(&dev, 1);
        CHECK_EQ(vq->num, 1024);
        CHECK_EQ(vq->last_avail_idx, 7);
        CHECK(vq->indirect && vq->event_idx);
        CHECK((void *) vq->desc == vu_mem_gpa(&dev.mem, 0x20000, 1));

        /* notify goes to the call eventfd */
        vu_dev_notify(&dev, 1);
        uint64_t cnt;
        CHECK_EQ(read(call[1], &cnt, 8), 8);
        CHECK_EQ(cnt, 1);

        /* a new memory table while running: rings stop and restart */
        set_mem(memfd);
        CHECK_EQ(stops[0], 1);
        CHECK_EQ(starts[0], 2);

        /* changing the call fd while running needs no restart */
        int call2 = eventfd(0, EFD_CLOEXEC);
        CHECK_EQ(acked_u64(VU_SET_VRING_CALL, 0, dup(call2)), 0);
        CHECK_EQ(stops[0], 1);
        vu_dev_notify(&dev, 0);
        CHECK_EQ(read(call2, &cnt, 8), 8);

        /* GET_VRING_BASE stops the ring and reports where it was */
        vq->last_avail_idx = 42;
        struct vu_vring_state st = { 1, 0 };
        struct vu_msg r;
        CHECK(request(VU_GET_VRING_BASE, VU_FLAG_VERSION, &st, sizeof(st), NULL, 0, &r));
        CHECK_EQ(r.hdr.size, 8);
        CHECK_EQ(r.payload.state.index, 1);
        CHECK_EQ(r.payload.state.num, 42);
        CHECK_EQ(stops[1], 2);

        /* reconfigure it (as after a guest reboot) and start again */
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 1, 256), 0);
        CHECK_EQ(acked_state(VU_SET_VRING_BASE, 1, 0), 0);
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 1, dup(kick[1])), 0);
        CHECK_EQ(starts[1], 3);
        CHECK_EQ(vq->num, 256);
        CHECK_EQ(vq->last_avail_idx, 0);

        /* configuration of a running ring is refused */
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 1, 128), 1);
        CHECK_EQ(acked_state(VU_SET_VRING_BASE, 1, 3), 1);
        /* disabling stops it */
        CHECK_EQ(acked_state(VU_SET_VRING_ENABLE, 1, 0), 0);
        CHECK_EQ(stops[1], 3);

        munmap(view, GUEST_SIZE);
        teardown();
        close(memfd);
        for (unsigned q = 0; q < 2; q++) {
                close(kick[q]);
                close(call[q]);
        }
        close(call2);
        CHECK_EQ(count_fds(), before);
}

static void test_no_protocol_features(void) {
        int memfd = make_memfd(GUEST_SIZE);
        int kick = eventfd(0, EFD_CLOEXEC);

        setup();
        /* a front-end that does not ack PROTOCOL_FEATURES: rings are
         * enabled as soon as they get their kick fd */
        CHECK_EQ(acked_u64(VU_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1, -1), 0);
        set_mem(memfd);
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 0, 64), 0);
        struct vu_vring_addr a = { .index = 0, .desc_uva = UVA + 0x1000, .avail_uva = UVA + 0x2000,
                                   .used_uva = UVA + 0x3000 };
        CHECK_EQ(acked(VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0, dup(kick)), 0);
        CHECK_EQ(starts[0], 1);
        CHECK(!vu_dev_vq(&dev, 0)->event_idx);

        /* a failing start leaves the ring stopped */
        teardown();
        setup();
        start_result = -ENOMEM;
        set_mem(memfd);
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 0, 64), 0);
        CHECK_EQ(acked(VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0, dup(kick)), 1);
        CHECK(!dev.vring[0].running);
        teardown();
        close(kick);
        close(memfd);
}

static void test_refusals(void) {
        unsigned before = count_fds();
        int memfd = make_memfd(GUEST_SIZE);
        int kick = eventfd(0, EFD_CLOEXEC);
        struct vu_mem_desc md = { .nregions = 1 };
        struct vu_msg r;
        int fds[2];

        setup();
        /* unoffered features */
        CHECK_EQ(acked_u64(VU_SET_FEATURES, 1ull << 34, -1), 1);
        CHECK_EQ(acked_u64(VU_SET_PROTOCOL_FEATURES, 1ull << 5, -1), 1);
        /* region larger than its file would SIGBUS on access */
        md.regions[0] = (struct vu_region_desc){ .gpa = 0, .size = 2 * GUEST_SIZE, .uva = UVA };
        fds[0] = dup(memfd);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, fds, 1), 1);
        /* offset + size overflowing */
        md.regions[0] = (struct vu_region_desc){ .gpa = 0, .size = 4096, .uva = UVA, .mmap_offset = UINT64_MAX - 10 };
        fds[0] = dup(memfd);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, fds, 1), 1);
        /* guest address wrapping */
        md.regions[0] = (struct vu_region_desc){ .gpa = UINT64_MAX - 100, .size = 4096, .uva = UVA };
        fds[0] = dup(memfd);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, fds, 1), 1);
        /* region count and fd count disagree */
        md.regions[0] = (struct vu_region_desc){ .gpa = 0, .size = 4096, .uva = UVA };
        fds[0] = dup(memfd);
        fds[1] = dup(memfd);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, fds, 2), 1);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, NULL, 0), 1);
        /* size field too short for the region count */
        md.nregions = 2;
        fds[0] = dup(memfd);
        fds[1] = dup(memfd);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, fds, 2), 1);
        md.nregions = 9;
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8, NULL, 0), 1);
        /* not a regular file */
        md.nregions = 1;
        fds[0] = eventfd(0, 0);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, fds, 1), 1);
        CHECK_EQ(dev.mem.nregions, 0);

        /* ring index out of range, bad sizes */
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 2, 64), 1);
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 0, 100), 1);
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 0, 2048), 1);
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 0, 0), 1);
        CHECK_EQ(acked_state(VU_SET_VRING_BASE, 0, 70000), 1);
        CHECK_EQ(acked_state(VU_SET_VRING_ENABLE, 0, 2), 1);
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 5, dup(kick)), 1);
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0 | VU_VRING_NOFD, dup(kick)), 1); /* fd despite NOFD */
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0 | VU_VRING_NOFD, -1), 1);        /* polling mode */
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0, -1), 1);                        /* fd missing */
        CHECK_EQ(acked_u64(VU_SET_VRING_CALL, 0 | (1u << 12), -1), 1);           /* unknown flag */
        CHECK_EQ(acked_u64(VU_SET_VRING_CALL, 0 | VU_VRING_NOFD, -1), 0);
        CHECK_EQ(acked(VU_SET_VRING_ADDR, &md, 8, NULL, 0), 1); /* short payload */

        /* ring addresses outside guest memory: it never starts */
        CHECK_EQ(acked_u64(VU_SET_FEATURES, 0, -1), 0);
        md.regions[0] = (struct vu_region_desc){ .gpa = 0, .size = 65536, .uva = UVA };
        fds[0] = dup(memfd);
        CHECK_EQ(acked(VU_SET_MEM_TABLE, &md, 8 + 32, fds, 1), 0);
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 0, 1024), 0);
        struct vu_vring_addr a = { .index = 0, .desc_uva = UVA + 0xf000, .avail_uva = UVA, .used_uva = UVA + 0x1000 };
        CHECK_EQ(acked(VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0, dup(kick)), 1);
        CHECK_EQ(starts[0], 0);

        /* logging refused, unknown requests NACKed or ignored */
        uint64_t logsz[2] = { 4096, 0 };
        fds[0] = dup(memfd);
        CHECK_EQ(acked(VU_SET_LOG_BASE, logsz, 16, fds, 1), 1);
        CHECK_EQ(acked(99, NULL, 0, NULL, 0), 1);
        fds[0] = dup(memfd);
        CHECK(!request(99, VU_FLAG_VERSION, NULL, 0, fds, 1, &r));
        fds[0] = dup(memfd);
        CHECK_EQ(acked(VU_SET_BACKEND_REQ_FD, NULL, 0, fds, 1), 1);
        /* GET_VRING_BASE of a ring that does not exist cannot be answered:
         * the connection is to be closed */
        struct vu_vring_state bad = { 7, 0 };
        send_msg(VU_GET_VRING_BASE, VU_FLAG_VERSION, &bad, sizeof(bad), NULL, 0);
        CHECK_EQ(vu_dev_process(&dev, sv[1]), -EPROTO);
        /* GET_CONFIG: empty payload means "no" */
        struct vu_config_space cs = { .offset = 0, .size = 16 };
        CHECK(request(VU_GET_CONFIG, VU_FLAG_VERSION, &cs, 12 + 16, NULL, 0, &r));
        CHECK_EQ(r.hdr.size, 0);

        teardown();
        close(memfd);
        close(kick);
        CHECK_EQ(count_fds(), before);
}

static void test_reset_device(void) {
        int kick[2], call[2];
        int memfd = make_memfd(GUEST_SIZE);

        setup();
        handshake(memfd, kick, call);
        CHECK_EQ(acked(VU_RESET_DEVICE, NULL, 0, NULL, 0), 0);
        CHECK_EQ(stops[0], 1);
        CHECK_EQ(stops[1], 1);
        CHECK_EQ(dev.mem.nregions, 0);
        CHECK_EQ(dev.vring[1].num, 0);
        CHECK_EQ(dev.vring[1].kick_fd, -1);
        teardown();
        close(memfd);
        for (unsigned q = 0; q < 2; q++) {
                close(kick[q]);
                close(call[q]);
        }
}

/* The front-end shrinks a region's file after SET_MEM_TABLE mapped it:
 * starting a ring reads its used index from the lost pages, which must
 * refuse the start rather than kill the process with SIGBUS. */
static void test_shrunk_memory(void) {
        int memfd = make_memfd(GUEST_SIZE);
        int kick = eventfd(0, EFD_CLOEXEC);

        setup();
        CHECK_EQ(acked_u64(VU_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1, -1), 0);
        set_mem(memfd);
        CHECK_OK(ftruncate(memfd, 0));
        CHECK_EQ(acked_state(VU_SET_VRING_NUM, 0, 64), 0);
        struct vu_vring_addr a = { .index = 0, .desc_uva = UVA + 0x1000, .avail_uva = UVA + 0x2000,
                                   .used_uva = UVA + 0x3000 };
        CHECK_EQ(acked(VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0, dup(kick)), 1);
        CHECK_EQ(starts[0], 0);
        CHECK(!dev.vring[0].running);
        /* grown back, the next kick starts it */
        CHECK_OK(ftruncate(memfd, GUEST_SIZE));
        CHECK_EQ(acked_u64(VU_SET_VRING_KICK, 0, dup(kick)), 0);
        CHECK_EQ(starts[0], 1);
        teardown();
        close(kick);
        close(memfd);
}

/* Ring fds the front-end passes are made non-blocking: a call fd that is a
 * full pipe (not an eventfd) must not block the ring's worker, which would
 * then never stop, and with it the whole control plane. */
static void test_nonblocking_ring_fds(void) {
        int memfd = make_memfd(GUEST_SIZE);
        int kick[2], call[2], p[2];
        unsigned char junk[4096];

        setup();
        handshake(memfd, kick, call);
        CHECK(fcntl(dev.vring[0].kick_fd, F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(dev.vring[0].call_fd, F_GETFL) & O_NONBLOCK);
        CHECK_OK(pipe(p));
        memset(junk, 0, sizeof(junk));
        CHECK_OK(fcntl(p[1], F_SETFL, O_NONBLOCK));
        while (write(p[1], junk, sizeof(junk)) > 0)
                ;
        CHECK_OK(fcntl(p[1], F_SETFL, 0)); /* as a front-end would leave it */
        CHECK_EQ(acked_u64(VU_SET_VRING_CALL, 1, dup(p[1])), 0);
        CHECK_EQ(acked_u64(VU_SET_VRING_ERR, 1, dup(p[1])), 0);
        alarm(10); /* a blocking write would hang here */
        vu_dev_notify(&dev, 1);
        vu_dev_ring_broken(&dev, 1);
        alarm(0);
        teardown();
        close(p[0]);
        close(p[1]);
        close(memfd);
        for (unsigned q = 0; q < 2; q++) {
                close(kick[q]);
                close(call[q]);
        }
}

int main(void) {
        RUN(test_framing);
        RUN(test_handshake);
        RUN(test_no_protocol_features);
        RUN(test_refusals);
        RUN(test_reset_device);
        RUN(test_shrunk_memory);
        RUN(test_nonblocking_ring_fds);
        return 0;
}
