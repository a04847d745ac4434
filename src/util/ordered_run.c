/* The ordered run (ordered_run.h): one mutex and one condition variable
 * between the workers, which mark items done, and the calling thread,
 * which waits for each in turn. */
#include "util/ordered_run.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/macro.h"

/* Lock order: only run.lock; work and finish run without it. */
struct run {
        size_t n;
        ordered_work_fn work;
        void *userdata;

        pthread_mutex_t lock;
        pthread_cond_t cond; /* broadcast when an item is done */
        bool *done;          /* per item; protected by lock */
        size_t next;         /* next item a worker takes; protected by lock */
        bool stop;           /* the run failed: take no more items; protected by lock */
};

static void *worker(void *userdata) {
        struct run *run = userdata;

        for (;;) {
                size_t i;

                pthread_mutex_lock(&run->lock);
                if (run->stop || run->next == run->n) {
                        pthread_mutex_unlock(&run->lock);
                        return NULL;
                }
                i = run->next++;
                pthread_mutex_unlock(&run->lock);
                run->work(run->userdata, i);
                pthread_mutex_lock(&run->lock);
                run->done[i] = true;
                pthread_cond_broadcast(&run->cond);
                pthread_mutex_unlock(&run->lock);
        }
}

static void wait_done(struct run *run, size_t i) {
        pthread_mutex_lock(&run->lock);
        while (!run->done[i])
                pthread_cond_wait(&run->cond, &run->lock);
        pthread_mutex_unlock(&run->lock);
}

int ordered_run(size_t n, unsigned jobs, ordered_work_fn work, ordered_finish_fn finish, void *userdata,
                const char *what) {
        struct run run = { .n = n, .work = work, .userdata = userdata,
                           .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        _cleanup_free_ pthread_t *threads = NULL;
        _cleanup_free_ bool *done = NULL;
        unsigned n_threads = 0;
        int r = 0, k;

        if (n == 0)
                return 0;
        if (jobs > n)
                jobs = (unsigned) n;
        if (jobs == 0)
                return -EINVAL;
        threads = calloc(jobs, sizeof(*threads));
        run.done = done = calloc(n, sizeof(*done));
        if (!threads || !done)
                return log_error_errno(-ENOMEM, "Cannot start %s: %m", what);
        for (; n_threads < jobs; n_threads++) {
                k = pthread_create(&threads[n_threads], NULL, worker, &run);
                if (k != 0) {
                        if (n_threads == 0)
                                return log_error_errno(-k, "Cannot start %s: %m", what);
                        break; /* fewer threads will do */
                }
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                wait_done(&run, i);
                r = finish(userdata, i);
        }
        pthread_mutex_lock(&run.lock);
        run.stop = true;
        pthread_mutex_unlock(&run.lock);
        for (unsigned i = 0; i < n_threads; i++)
                pthread_join(threads[i], NULL);
        return r;
}
