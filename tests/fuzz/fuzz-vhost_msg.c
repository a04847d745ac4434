/* Fuzz target for the vhost-user message layer: the input is a sequence
 * of records, each one control byte choosing fake fds to attach (eventfds,
 * small memfds standing in for guest RAM) followed by raw message bytes.
 * All records are written to a socketpair and the device reads, handles
 * and answers them until the stream ends or a frame is refused.
 * Record: u8 fdspec, u16 length, length bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/vhost_user.h"
#include "util/log.h"

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
