/* Unit tests for the minimal io_uring ring: what it was restricted to at
 * set-up runs (a URING_CMD on its fixed file, /dev/null, reaches its driver),
 * anything else is refused by the kernel (another opcode, a plain
 * descriptor, further registrations); a full submission queue is
 * reported, completions come back in order with their user data.  Skips
 * where io_uring is not available. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test.h"
#include "util/macro.h"
#include "util/uring.h"

static bool available;

/* Submits one SQE built by fill and returns its result. */
static int run_one(struct uring *u, void (*fill)(struct io_uring_sqe *)) {
        struct io_uring_sqe *sqe = uring_get_sqe(u);
        struct io_uring_cqe *cqe;
        int res;

        CHECK(sqe != NULL);
        fill(sqe);
        sqe->user_data = 42;
        CHECK_OK(uring_submit(u, 1));
        cqe = uring_peek(u);
        CHECK(cqe != NULL);
        CHECK_EQ(cqe->user_data, 42);
        res = cqe->res;
        uring_advance(u);
        CHECK(uring_peek(u) == NULL);
        return res;
}

static void fill_cmd(struct io_uring_sqe *sqe) {
        sqe->opcode = IORING_OP_URING_CMD;
}
static void fill_nop(struct io_uring_sqe *sqe) {
        sqe->opcode = IORING_OP_NOP;
}
static void fill_cmd_plain_fd(struct io_uring_sqe *sqe) {
        sqe->opcode = IORING_OP_URING_CMD;
        sqe->flags = 0; /* descriptor 0 of the process, not the fixed file */
}

static void test_restricted(void) {
        _cleanup_close_ int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        struct uring u;
        int r;

        CHECK(fd >= 0);
        r = uring_open(&u, 4, IORING_OP_URING_CMD, fd);
        if (r == -ENOSYS || r == -EPERM) {
                fprintf(stderr, "io_uring not available here (%s): skipped\n", strerror(-r));
                return;
        }
        CHECK_OK(r);
        available = true;
        /* allowed: /dev/null's uring_cmd does nothing and succeeds */
        CHECK_EQ(run_one(&u, fill_cmd), 0);
        /* refused by the restrictions */
        CHECK_EQ(run_one(&u, fill_nop), -EACCES);
        CHECK_EQ(run_one(&u, fill_cmd_plain_fd), -EACCES);
        CHECK(syscall(SYS_io_uring_register, u.fd, IORING_REGISTER_FILES, &fd, 1) < 0 && errno == EACCES);
        uring_close(&u);
        uring_close(&u); /* twice is fine */
}

static void test_full_queue(void) {
        _cleanup_close_ int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        struct io_uring_sqe *sqe;
        struct io_uring_cqe *cqe;
        struct uring u;
        unsigned n = 0;

        if (!available)
                return;
        CHECK_OK(uring_open(&u, 4, IORING_OP_URING_CMD, fd));
        while ((sqe = uring_get_sqe(&u))) {
                sqe->opcode = IORING_OP_URING_CMD;
                sqe->user_data = n++;
        }
        CHECK_EQ(n, u.sq_entries);
        CHECK_OK(uring_submit(&u, n));
        for (unsigned i = 0; i < n; i++) {
                cqe = uring_peek(&u);
                CHECK(cqe != NULL);
                CHECK_EQ(cqe->user_data, i);
                CHECK_EQ(cqe->res, 0);
                uring_advance(&u);
        }
        CHECK(uring_peek(&u) == NULL);
        CHECK(uring_get_sqe(&u) != NULL); /* room again */
        uring_close(&u);
}

int main(void) {
        RUN(test_restricted);
        RUN(test_full_queue);
        return 0;
}
