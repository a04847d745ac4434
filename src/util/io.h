/* Whole-buffer read and write loops over file descriptors (EINTR and short
 * transfers handled). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes all len bytes: 0 or -errno. */
int loop_write(int fd, const void *buf, size_t len);

/* Reads until len bytes or end of file: the count, or -errno. */
ssize_t loop_read(int fd, void *buf, size_t len);

/* Reads len bytes at off: 0, -EIO if the file ends before, or -errno. */
int pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Reads a whole regular file into a malloc'ed buffer: 0, -EFBIG if it has
 * more than max bytes, or -errno.  The file must not grow while read. */
int read_file_fd(int fd, size_t max, uint8_t **ret, size_t *ret_len);
