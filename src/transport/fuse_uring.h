/* FUSE over io_uring (Linux 6.14+, fuse.enable_uring=Y): once INIT has
 * negotiated FUSE_OVER_IO_URING, threads take requests from ring entries
 * registered on the /dev/fuse session instead of read(), and answer each
 * with the commit that also fetches the next request: one system call
 * per request and reply, on the CPU the request was made on. */
#pragma once

#include <stddef.h>

struct fuse_ll;
struct fuse_uring;

/* Before INIT, on the mounted session descriptor fd: rings for `threads`
 * threads (at least one per kernel queue, i.e. per possible CPU) with
 * their entries' buffers (payload_size bytes each: the engine's scratch
 * size, at least the kernel's largest request or reply).  kick_signal
 * interrupts a thread's wait when it must stop (its handler does
 * nothing).  0, or -errno when io_uring is not available to this process
 * (then INIT must not negotiate it). */
int fuse_uring_new(int fd, unsigned threads, size_t payload_size, int kick_signal, struct fuse_uring **ret);

/* After INIT negotiated FUSE_OVER_IO_URING: starts the threads, which
 * register the entries and then serve ll.  Returns once every thread
 * knows whether the kernel took its entries: 0, or -errno when it refused
 * some (or a thread could not start, and a refusal was provoked): the
 * kernel then drops io_uring for the connection and sends requests
 * through the device, which the caller must read with all its workers,
 * while the threads go on serving whatever still comes to the entries it
 * took.  ended(userdata) is called from a thread that sees the
 * connection end. */
int fuse_uring_start(struct fuse_uring *u, struct fuse_ll *ll, void (*ended)(void *), void *userdata);

/* Requests answered through the rings so far (for logs and tests). */
unsigned long fuse_uring_requests(const struct fuse_uring *u);

/* Stops the threads, if started, and frees the rings and buffers; the
 * kernel cancels the entries still registered.  NULL is fine. */
void fuse_uring_free(struct fuse_uring *u);
