/* Worker pool with a bounded ring of jobs, one mutex and three condition
 * variables (not full, not empty, idle). */
#include "util/workqueue.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct job {
        workqueue_fn fn;
        void *arg;
};

struct workqueue {
        pthread_mutex_t lock;
        pthread_cond_t not_full;  /* signalled when a job is taken */
        pthread_cond_t not_empty; /* signalled when a job is queued or on stop */
        pthread_cond_t idle;      /* signalled when running drops to 0 with nothing queued */
        struct job *ring;         /* protected by lock */
        size_t cap, head, count;  /* protected by lock */
        size_t running;           /* jobs being executed; protected by lock */
        bool stop;                /* protected by lock */
        unsigned n_threads;       /* immutable after creation */
        pthread_t *threads;       /* immutable after creation */
};

unsigned cpu_count(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned) n : 1;
}

static void *worker(void *p) {
        struct workqueue *wq = p;

        pthread_mutex_lock(&wq->lock);
        for (;;) {
                while (wq->count == 0 && !wq->stop)
                        pthread_cond_wait(&wq->not_empty, &wq->lock);
                if (wq->count == 0 && wq->stop)
                        break;
                struct job j = wq->ring[wq->head];
                wq->head = (wq->head + 1) % wq->cap;
                wq->count--;
                wq->running++;
                pthread_cond_signal(&wq->not_full);
                pthread_mutex_unlock(&wq->lock);

                j.fn(j.arg);

                pthread_mutex_lock(&wq->lock);
                wq->running--;
                if (wq->running == 0 && wq->count == 0)
                        pthread_cond_broadcast(&wq->idle);
        }
        pthread_mutex_unlock(&wq->lock);
        return NULL;
}

int workqueue_new(unsigned nthreads, size_t capacity, struct workqueue **ret) {
        struct workqueue *wq;
        int r;

        if (nthreads == 0)
                nthreads = cpu_count();
        if (capacity == 0)
                capacity = 1;
        wq = calloc(1, sizeof(*wq));
        if (!wq)
                return -ENOMEM;
        wq->ring = calloc(capacity, sizeof(struct job));
        wq->threads = calloc(nthreads, sizeof(pthread_t));
        if (!wq->ring || !wq->threads) {
                free(wq->ring);
                free(wq->threads);
                free(wq);
                return -ENOMEM;
        }
        wq->cap = capacity;
        pthread_mutex_init(&wq->lock, NULL);
        pthread_cond_init(&wq->not_full, NULL);
        pthread_cond_init(&wq->not_empty, NULL);
        pthread_cond_init(&wq->idle, NULL);
        for (unsigned i = 0; i < nthreads; i++) {
                r = pthread_create(&wq->threads[i], NULL, worker, wq);
                if (r != 0) {
                        wq->n_threads = i;
                        workqueue_free(wq);
                        return -r;
                }
        }
        wq->n_threads = nthreads;
        *ret = wq;
        return 0;
}

int workqueue_push(struct workqueue *wq, workqueue_fn fn, void *arg) {
        pthread_mutex_lock(&wq->lock);
        while (wq->count == wq->cap && !wq->stop)
                pthread_cond_wait(&wq->not_full, &wq->lock);
        if (wq->stop) {
                pthread_mutex_unlock(&wq->lock);
                return -ESHUTDOWN;
        }
        wq->ring[(wq->head + wq->count) % wq->cap] = (struct job){ fn, arg };
        wq->count++;
        pthread_cond_signal(&wq->not_empty);
        pthread_mutex_unlock(&wq->lock);
        return 0;
}

int workqueue_try_push(struct workqueue *wq, workqueue_fn fn, void *arg) {
        int r = 0;

        pthread_mutex_lock(&wq->lock);
        if (wq->stop)
                r = -ESHUTDOWN;
        else if (wq->count == wq->cap)
                r = -EAGAIN;
        else {
                wq->ring[(wq->head + wq->count) % wq->cap] = (struct job){ fn, arg };
                wq->count++;
                pthread_cond_signal(&wq->not_empty);
        }
        pthread_mutex_unlock(&wq->lock);
        return r;
}

void workqueue_discard(struct workqueue *wq, void (*drop)(void *arg)) {
        pthread_mutex_lock(&wq->lock);
        while (wq->count > 0) {
                struct job j = wq->ring[wq->head];
                wq->head = (wq->head + 1) % wq->cap;
                wq->count--;
                if (drop)
                        drop(j.arg);
        }
        pthread_cond_broadcast(&wq->not_full);
        if (wq->running == 0)
                pthread_cond_broadcast(&wq->idle);
        pthread_mutex_unlock(&wq->lock);
}

void workqueue_drain(struct workqueue *wq) {
        pthread_mutex_lock(&wq->lock);
        while (wq->count > 0 || wq->running > 0)
                pthread_cond_wait(&wq->idle, &wq->lock);
        pthread_mutex_unlock(&wq->lock);
}

void workqueue_free(struct workqueue *wq) {
        if (!wq)
                return;
        pthread_mutex_lock(&wq->lock);
        wq->stop = true;
        pthread_cond_broadcast(&wq->not_empty);
        pthread_cond_broadcast(&wq->not_full);
        pthread_mutex_unlock(&wq->lock);
        for (unsigned i = 0; i < wq->n_threads; i++)
                pthread_join(wq->threads[i], NULL);
        pthread_mutex_destroy(&wq->lock);
        pthread_cond_destroy(&wq->not_full);
        pthread_cond_destroy(&wq->not_empty);
        pthread_cond_destroy(&wq->idle);
        free(wq->ring);
        free(wq->threads);
        free(wq);
}

unsigned workqueue_threads(const struct workqueue *wq) {
        return wq->n_threads;
}
