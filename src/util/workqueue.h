/* A fixed pool of worker threads fed from a bounded FIFO of jobs.  Pushing
 * blocks while the queue is full, which bounds memory when a producer (a
 * tree walker) is faster than the workers. */
#pragma once

#include <stddef.h>

struct workqueue;

typedef void (*workqueue_fn)(void *arg);

/* Starts nthreads workers (0: one per online CPU) and a queue of capacity
 * jobs.  0 or -errno. */
int workqueue_new(unsigned nthreads, size_t capacity, struct workqueue **ret);

/* Queues fn(arg); blocks while the queue is full.  Thread-safe. */
int workqueue_push(struct workqueue *wq, workqueue_fn fn, void *arg);

/* Queues fn(arg) if there is room: 0, or -EAGAIN when the queue is full
 * (never blocks).  Thread-safe. */
int workqueue_try_push(struct workqueue *wq, workqueue_fn fn, void *arg);
/* Drops the jobs still queued, passing each arg to drop (jobs running go
 * on).  Before workqueue_free, to stop without doing the queued work. */
void workqueue_discard(struct workqueue *wq, void (*drop)(void *arg));
/* Waits until every queued job has finished. */
void workqueue_drain(struct workqueue *wq);

/* Drains, stops and joins the workers, frees wq.  NULL is fine. */
void workqueue_free(struct workqueue *wq);

unsigned workqueue_threads(const struct workqueue *wq);

/* Number of online CPUs (at least 1). */
unsigned cpu_count(void);
