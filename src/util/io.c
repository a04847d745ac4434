/* Whole-buffer read/write loops. */
#include "util/io.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "util/macro.h"

int loop_write(int fd, const void *buf, size_t len) {
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO;
                p += n;
                len -= n;
        }
        return 0;
}

ssize_t loop_read(int fd, void *buf, size_t len) {
        uint8_t *p = buf;
        size_t got = 0;

        while (got < len) {
                ssize_t n = read(fd, p + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                got += n;
        }
        return got;
}
