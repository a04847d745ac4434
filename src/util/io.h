/* Whole-buffer read and write loops over file descriptors (EINTR and short
 * transfers handled). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Writes all len bytes: 0 or -errno. */
int loop_write(int fd, const void *buf, size_t len);

/* Reads until len bytes or end of file: the count, or -errno. */
ssize_t loop_read(int fd, void *buf, size_t len);
