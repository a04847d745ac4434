/* Fuzz target for the vhost-user message layer: the input is a sequence
 * of records, each one control byte choosing fake fds to attach (eventfds,
 * small memfds standing in for guest RAM) followed by raw message bytes.
 * All records are written to a socketpair and the device reads, handles
 * and answers them until the stream ends or a frame is refused.
 * Record: u8 fdspec, u16 length, length bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/vhost_user.h"
#include "util/log.h"
#include "util/macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int op_start(void *userdata, struct vu_dev *dev, unsigned q) {
        static struct vq_elem elem;
        /* walk what the (zeroed or fuzzed) ring holds, as a worker would */
        struct vq *vq = vu_dev_vq(dev, q);
        for (int i = 0; i < 4 && vq_pop(vq, &elem) != 0; i++)
                vq_push(vq, elem.head, 0);
        (void) vq_should_notify(vq);
        vu_dev_notify(dev, q);
        return 0;
}

static void op_stop(void *userdata, struct vu_dev *dev, unsigned q) {
}

static const struct vu_dev_ops ops = { .start = op_start, .stop = op_stop };

static unsigned make_fds(uint8_t spec, int *fds) {
        unsigned n = 0;
        unsigned nmem = spec & 3, nev = (spec >> 2) & 7;
        size_t memsz = (size_t) 4096 << ((spec >> 5) & 7); /* 4 KiB .. 512 KiB */

        for (unsigned i = 0; i < nmem; i++) {
                int fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
                if (fd < 0)
                        break;
                if (ftruncate(fd, (off_t) memsz) < 0) {
                        close(fd);
                        break;
                }
                fds[n++] = fd;
        }
        for (unsigned i = 0; i < nev; i++) {
                int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (fd < 0)
                        break;
                fds[n++] = fd;
        }
        return n;
}

static void send_record(int sock, const uint8_t *p, size_t len, const int *fds, unsigned nfds) {
        union {
                char buf[CMSG_SPACE(sizeof(int) * 16)];
                struct cmsghdr align;
        } control;
        struct iovec iov = { .iov_base = (void *) p, .iov_len = len };
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
        (void) sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct vu_dev dev;
        int sv[2];
        char drain[4096];

        if (size > 16384)
                return 0;
        /* keep the fuzzer's output readable (FUZZ_DEBUG=1 to follow along) */
        log_set_max_level(getenv("FUZZ_DEBUG") ? LOG_LEVEL_DEBUG : 0);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 0;
        int bufsz = 1 << 20;
        (void) setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
        (void) setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
        /* replies must never block the device: the test drains them late */
        (void) fcntl(sv[1], F_SETFL, O_NONBLOCK);
        if (vu_dev_init(&dev, 1 + (size & 3), &ops, NULL) < 0)
                goto out;

        for (size_t off = 0; off + 3 <= size;) {
                uint8_t spec = data[off];
                uint16_t len;
                memcpy(&len, data + off + 1, 2);
                off += 3;
                if (len > size - off)
                        len = (uint16_t) (size - off);
                int fds[16];
                unsigned nfds = make_fds(spec, fds);
                send_record(sv[0], data + off, len, fds, nfds);
                for (unsigned i = 0; i < nfds; i++)
                        close(fds[i]);
                off += len;
        }
        shutdown(sv[0], SHUT_WR);

        /* process until EOF or a refused frame (the connection would close) */
        for (unsigned n = 0; n < 256; n++) {
                if (vu_dev_process(&dev, sv[1]) < 0)
                        break;
                while (recv(sv[0], drain, sizeof(drain), MSG_DONTWAIT) > 0)
                        ;
        }
        vu_dev_done(&dev);
out:
        close(sv[0]);
        close(sv[1]);
        return 0;
}

#ifdef FUZZ_MUTATOR
/* Structure-aware mutator: the input is parsed into records, one record is
 * changed (its bytes, its fd spec, its request code) or records are
 * inserted, duplicated, dropped or swapped, and most of the time the
 * vhost-user header at the start of the changed record is made coherent
 * (version 1, a known request, size = payload length, the fds the request
 * wants) so the fuzzer spends its time past the framing checks. */
#include "mutator.h"

#define MUT_MAX_RECS 256
#define MUT_MAX_SIZE 16384 /* what LLVMFuzzerTestOneInput accepts */

struct mut_rec {
        uint8_t spec;
        size_t len;
        const uint8_t *p;
};

static const uint32_t mut_requests[] = {
        VU_GET_FEATURES,          VU_SET_FEATURES,          VU_SET_OWNER,          VU_RESET_OWNER,
        VU_SET_MEM_TABLE,         VU_SET_LOG_BASE,          VU_SET_LOG_FD,         VU_SET_VRING_NUM,
        VU_SET_VRING_ADDR,        VU_SET_VRING_BASE,        VU_GET_VRING_BASE,     VU_SET_VRING_KICK,
        VU_SET_VRING_CALL,        VU_SET_VRING_ERR,         VU_GET_PROTOCOL_FEATURES,
        VU_SET_PROTOCOL_FEATURES, VU_GET_QUEUE_NUM,         VU_SET_VRING_ENABLE,   VU_SET_BACKEND_REQ_FD,
        VU_GET_CONFIG,            VU_SET_CONFIG,            VU_RESET_DEVICE,       VU_GET_MAX_MEM_SLOTS,
};

/* The payload length a well-formed request of this kind carries. */
static size_t mut_payload_len(uint32_t req, const uint8_t *payload, size_t have) {
        switch (req) {
        case VU_SET_MEM_TABLE: {
                uint32_t n = 1;
                if (have >= 4)
                        memcpy(&n, payload, 4);
                return offsetof(struct vu_mem_desc, regions) + MIN(n, VU_MAX_REGIONS) * sizeof(struct vu_region_desc);
        }
        case VU_SET_VRING_ADDR:
                return sizeof(struct vu_vring_addr);
        case VU_SET_CONFIG:
        case VU_GET_CONFIG:
                return offsetof(struct vu_config_space, data) + 16;
        case VU_SET_OWNER:
        case VU_RESET_OWNER:
        case VU_RESET_DEVICE:
        case VU_GET_FEATURES:
        case VU_GET_PROTOCOL_FEATURES:
        case VU_GET_QUEUE_NUM:
        case VU_GET_MAX_MEM_SLOTS:
                return 0;
        default: /* u64 or vring state */
                return sizeof(uint64_t);
        }
}

/* An fd spec giving the request the fds it expects (see make_fds()). */
static uint8_t mut_spec_for(uint32_t req, const uint8_t *payload, size_t have, uint8_t spec) {
        uint32_t u = 0;

        if (have >= 4)
                memcpy(&u, payload, 4);
        switch (req) {
        case VU_SET_MEM_TABLE:
                return (uint8_t) ((spec & 0xe0) | MIN(MAX(u, 1u), 3u));
        case VU_SET_VRING_KICK:
        case VU_SET_VRING_CALL:
        case VU_SET_VRING_ERR:
                return (u & VU_VRING_NOFD) ? (uint8_t) (spec & 0xe0) : (uint8_t) ((spec & 0xe0) | 1u << 2);
        case VU_SET_LOG_FD:
        case VU_SET_BACKEND_REQ_FD:
                return (uint8_t) ((spec & 0xe0) | 1u << 2);
        case VU_SET_LOG_BASE:
                return (uint8_t) ((spec & 0xe0) | 1u);
        default:
                return (uint8_t) (spec & 0xe0);
        }
}

/* Makes rec (its bytes in buf, room for cap) a coherent message. */
static void mut_fix(struct fuzz_rng *rng, struct mut_rec *rec, uint8_t *buf, size_t cap) {
        struct vu_msg_hdr h = {};

        rec->len = MIN(rec->len, cap);
        if (rec->p != buf)
                memcpy(buf, rec->p, rec->len);
        rec->p = buf;
        if (rec->len < sizeof(h)) {
                memset(buf + rec->len, 0, sizeof(h) - rec->len);
                rec->len = sizeof(h);
        }
        memcpy(&h, buf, sizeof(h));
        if (h.request == 0 || h.request >= VU_REQUEST_MAX || fuzz_rand(rng, 8) == 0)
                h.request = mut_requests[fuzz_rand(rng, ELEMENTSOF(mut_requests))];
        h.flags = (h.flags & ~VU_FLAG_VERSION_MASK & ~VU_FLAG_REPLY) | VU_FLAG_VERSION;
        if (fuzz_rand(rng, 2) == 0) { /* resize the payload to the expected length */
                size_t want = mut_payload_len(h.request, buf + sizeof(h), rec->len - sizeof(h));
                if (sizeof(h) + want <= cap) {
                        if (sizeof(h) + want > rec->len)
                                memset(buf + rec->len, 0, sizeof(h) + want - rec->len);
                        rec->len = sizeof(h) + want;
                }
        }
        h.size = (uint32_t) (rec->len - sizeof(h));
        memcpy(buf, &h, sizeof(h));
        if (fuzz_rand(rng, 4) != 0)
                rec->spec = mut_spec_for(h.request, buf + sizeof(h), rec->len - sizeof(h), rec->spec);
}

static size_t mut_parse(const uint8_t *data, size_t size, struct mut_rec *recs) {
        size_t n = 0;

        for (size_t off = 0; off + 3 <= size && n < MUT_MAX_RECS;) {
                uint16_t len;
                memcpy(&len, data + off + 1, 2);
                recs[n].spec = data[off];
                off += 3;
                recs[n].len = MIN((size_t) len, size - off);
                recs[n].p = data + off;
                off += recs[n++].len;
        }
        return n;
}

static size_t mut_serialize(const struct mut_rec *recs, size_t n, uint8_t *out, size_t max) {
        size_t off = 0;

        for (size_t i = 0; i < n; i++) {
                uint16_t len = (uint16_t) MIN(recs[i].len, (size_t) UINT16_MAX);
                if (off + 3 + len > max)
                        break;
                out[off] = recs[i].spec;
                memcpy(out + off + 1, &len, 2);
                memcpy(out + off + 3, recs[i].p, len);
                off += 3 + (size_t) len;
        }
        return off;
}

static size_t mut_insert(struct mut_rec *recs, size_t n, size_t at, struct mut_rec rec) {
        if (n >= MUT_MAX_RECS)
                return n;
        memmove(recs + at + 1, recs + at, (n - at) * sizeof(*recs));
        recs[at] = rec;
        return n + 1;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
        static uint8_t in[MUT_MAX_SIZE], buf[MUT_MAX_SIZE];
        static struct mut_rec recs[MUT_MAX_RECS];
        struct fuzz_rng rng;
        size_t n, i, out;

        fuzz_rng_init(&rng, seed);
        max_size = MIN(max_size, (size_t) MUT_MAX_SIZE);
        if (size > max_size || fuzz_rand(&rng, 16) == 0)
                return LLVMFuzzerMutate(data, MIN(size, max_size), max_size);
        memcpy(in, data, size);
        n = mut_parse(in, size, recs);
        i = n ? fuzz_rand(&rng, n) : 0;
        switch (n ? fuzz_rand(&rng, 8) : 0) {
        case 0: /* a new message */
                i = n ? fuzz_rand(&rng, n + 1) : 0;
                n = mut_insert(recs, n, i, (struct mut_rec) { .spec = 0, .len = 0, .p = in });
                if (i < n)
                        mut_fix(&rng, &recs[i], buf, sizeof(buf));
                break;
        case 1: /* the fd spec */
                recs[i].spec = (uint8_t) fuzz_rand(&rng, 256);
                break;
        case 2:
                n = mut_insert(recs, n, fuzz_rand(&rng, n + 1), recs[i]);
                break;
        case 3:
                memmove(recs + i, recs + i + 1, (n - i - 1) * sizeof(*recs));
                n--;
                break;
        case 4: {
                size_t j = fuzz_rand(&rng, n);
                struct mut_rec t = recs[i];
                recs[i] = recs[j];
                recs[j] = t;
                break;
        }
        default: /* the message bytes */
                memcpy(buf, recs[i].p, recs[i].len);
                recs[i].len = LLVMFuzzerMutate(buf, recs[i].len, MIN(max_size, (size_t) UINT16_MAX));
                recs[i].p = buf;
                if (fuzz_rand(&rng, 8) != 0)
                        mut_fix(&rng, &recs[i], buf, sizeof(buf));
                break;
        }
        out = mut_serialize(recs, n, data, max_size);
        return out ? out : LLVMFuzzerMutate(data, MIN(size, max_size), max_size);
}
#endif
